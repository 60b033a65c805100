"""The batch sampler that follows ``mixing.batch_plan`` in sentence-transformers' trainer: a
``MultiDatasetDefaultBatchSampler`` over the concatenation of the snapshots' datasets, whose
per-dataset batches come from the trainer's own batch samplers (no duplicate texts within a
batch). Imports torch and sentence-transformers: imported by ``loop.py`` only when a run mixes
several snapshots.

**Several processes (DDP).** accelerate hands process ``i`` every ``world``-th batch of this
sampler (``BatchSamplerShard``), so one optimizer step takes ``world`` consecutive batches, one
per process. The plan is therefore made in *steps*: each step yields ``world`` batches of the
same snapshot (the loss gathers them into one batch: its in-batch negatives stay within one
snapshot), and every batch is full — accelerate keeps a group only when its last batch is
full, so a snapshot's short last batch is topped up with other rows of the same snapshot, and
a snapshot that runs out within a step starts over.

The trainer's arguments are saved in every checkpoint (pickled), so what they hold is a
``functools.partial`` of the module-level ``task_batch_sampler``, never a closure.
"""

from __future__ import annotations

import math
import random
from itertools import accumulate

from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler

from .mixing import batch_plan, homogeneous_batches, mixed_batches


def _world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class TaskBatchSampler(MultiDatasetDefaultBatchSampler):
    """Homogeneous steps in the planned order, then ``mixed_steps`` mixed ones; the same
    length every epoch (the trainer counts its steps from it). ``world``: the processes of a
    DDP run (default: the initialised process group's size, else 1)."""

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, *,
                 order: str, mixed_steps: int, max_steps: int = 0,
                 world: int | None = None):  # fmt: skip
        super().__init__(dataset, batch_samplers, generator=generator, seed=seed)
        self.order = order
        self.mixed_steps = mixed_steps
        self.world = world or _world_size()
        self.homogeneous = homogeneous_batches(
            self._step_counts(), order=order, mixed_steps=mixed_steps, max_steps=max_steps
        )

    def _step_counts(self) -> list[int]:
        return [math.ceil(len(sampler) / self.world) for sampler in self.batch_samplers]

    def __iter__(self):
        seed = (self.seed or 0) + self.epoch
        sizes = [len(part) for part in self.dataset.datasets]
        offsets = [0, *accumulate(sizes)]
        plan = batch_plan(self._step_counts(), order=self.order, seed=seed)
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        rng = random.Random(f"{seed}:fill")
        for index in plan[: self.homogeneous]:
            if self.world == 1:
                # A no-duplicates sampler may yield fewer batches than it announced.
                batch = next(iterators[index], None)
                if batch is not None:
                    yield [offsets[index] + row for row in batch]
                continue
            for _ in range(self.world):
                batch = next(iterators[index], None)
                if batch is None:  # this snapshot ran out within the step: start it over
                    iterators[index] = iter(self.batch_samplers[index])
                    batch = next(iterators[index])
                batch = _topped_up(list(batch), size=self.batch_size, rows=sizes[index], rng=rng)
                yield [offsets[index] + row for row in batch]
        yield from mixed_batches(
            sizes, batch_size=self.batch_size, steps=self.mixed_steps * self.world, seed=seed
        )

    def __len__(self) -> int:
        return (self.homogeneous + self.mixed_steps) * self.world


def _topped_up(batch: list[int], *, size: int, rows: int, rng: random.Random) -> list[int]:
    """``batch`` filled to ``size`` with other rows of its snapshot (all of them when it has
    fewer than ``size``, then repeats)."""
    if len(batch) >= size:
        return batch
    taken = set(batch)
    if rows <= size:  # a tiny snapshot: every row, then repeats
        batch += [row for row in range(rows) if row not in taken]
        while len(batch) < size:
            batch.append(rng.randrange(rows))
        return batch
    while len(batch) < size:
        row = rng.randrange(rows)
        if row not in taken:
            taken.add(row)
            batch.append(row)
    return batch


def task_batch_sampler(dataset, *, batch_samplers, generator=None, seed=0, order: str,
                       mixed_steps: int, max_steps: int = 0,
                       world: int | None = None) -> TaskBatchSampler:  # fmt: skip
    return TaskBatchSampler(dataset, batch_samplers, generator, seed, order=order,
                            mixed_steps=mixed_steps, max_steps=max_steps,
                            world=world)  # fmt: skip
