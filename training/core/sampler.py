"""The batch sampler that follows ``mixing.batch_plan`` in sentence-transformers' trainer: a
``MultiDatasetDefaultBatchSampler`` over the concatenation of the snapshots' datasets, whose
per-dataset batches come from the trainer's own batch samplers (no duplicate texts within a
batch). Imports torch and sentence-transformers: imported by ``loop.py`` only when a run mixes
several snapshots.

The trainer's arguments are saved in every checkpoint (pickled), so what they hold is a
``functools.partial`` of the module-level ``task_batch_sampler``, never a closure.
"""

from __future__ import annotations

from itertools import accumulate

from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler

from .mixing import batch_plan, homogeneous_batches, mixed_batches


class TaskBatchSampler(MultiDatasetDefaultBatchSampler):
    """Homogeneous batches in the planned order, then ``mixed_steps`` mixed ones; the same
    length every epoch (the trainer counts its steps from it)."""

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, *,
                 order: str, mixed_steps: int, max_steps: int = 0):  # fmt: skip
        super().__init__(dataset, batch_samplers, generator=generator, seed=seed)
        self.order = order
        self.mixed_steps = mixed_steps
        self.homogeneous = homogeneous_batches(
            [len(sampler) for sampler in batch_samplers],
            order=order,
            mixed_steps=mixed_steps,
            max_steps=max_steps,
        )

    def __iter__(self):
        seed = (self.seed or 0) + self.epoch
        sizes = [len(part) for part in self.dataset.datasets]
        offsets = [0, *accumulate(sizes)]
        plan = batch_plan([len(s) for s in self.batch_samplers], order=self.order, seed=seed)
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        for index in plan[: self.homogeneous]:
            # A no-duplicates sampler may yield fewer batches than it announced.
            batch = next(iterators[index], None)
            if batch is not None:
                yield [offsets[index] + row for row in batch]
        yield from mixed_batches(
            sizes, batch_size=self.batch_size, steps=self.mixed_steps, seed=seed
        )

    def __len__(self) -> int:
        return self.homogeneous + self.mixed_steps


def task_batch_sampler(dataset, *, batch_samplers, generator=None, seed=0, order: str,
                       mixed_steps: int, max_steps: int = 0) -> TaskBatchSampler:  # fmt: skip
    return TaskBatchSampler(dataset, batch_samplers, generator, seed, order=order,
                            mixed_steps=mixed_steps, max_steps=max_steps)  # fmt: skip
