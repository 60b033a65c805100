"""Training on several snapshots at once: the order of the batches. Pure: no Django, no torch.

The Linq-Embed-Mistral recipe (issue 12): every batch comes from ONE dataset
("homogeneous task ordering": in-batch negatives then stay meaningful — a query is not pushed
away from passages of another task, which would be trivially easy), and a short final phase of
batches mixed across the datasets ("mixed-task fine-tuning", a few steps) so the model does not
end on the last task it saw. ``batch_plan`` decides, before training, which dataset each
homogeneous batch comes from, in one of three orders:

* ``proportional``: a seeded shuffle of every dataset's batches: larger datasets come more
  often, all of every dataset is used (sentence-transformers' default for several datasets);
* ``round_robin``: one batch of each dataset in turn until the smallest runs out (each dataset
  weighs the same; the larger ones are not used to the end);
* ``sequential``: all batches of the first snapshot, then all of the second, … in the order
  the snapshots were given (a curriculum).

Then ``mixed_steps`` batches drawn from all rows of all datasets together. The sampler that
follows this plan in the trainer is ``training/core/sampler.py``.
"""

from __future__ import annotations

import math
import random

TASK_ORDERS = (
    ("proportional", "proportional: every dataset's batches shuffled together, all used"),
    ("round_robin", "round robin: one batch of each in turn, until the smallest runs out"),
    ("sequential", "sequential: all of the first snapshot, then the next, in the order given"),
)


def batch_plan(batch_counts: list[int], *, order: str, seed: int) -> list[int]:
    """The dataset index of each homogeneous batch, in training order."""
    if order == "round_robin":
        rounds = min(batch_counts) if batch_counts else 0
        return [index for _ in range(rounds) for index in range(len(batch_counts))]
    plan = [index for index, count in enumerate(batch_counts) for _ in range(count)]
    if order == "proportional":
        random.Random(f"{seed}:plan").shuffle(plan)
    elif order != "sequential":
        raise ValueError(f"unknown task order {order!r}")
    return plan


def mixed_batches(sizes: list[int], *, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches of rows drawn across all datasets together: indices into their
    concatenation (dataset 0's rows first), a seeded shuffle of all of them taken in turn
    (and shuffled again if the steps need more rows than there are)."""
    total = sum(sizes)
    if not total or steps <= 0:
        return []
    rng = random.Random(f"{seed}:mixed")
    pool: list[int] = []
    batches = []
    for _ in range(steps):
        batch: list[int] = []
        while len(batch) < min(batch_size, total):
            if not pool:
                pool = list(range(total))
                rng.shuffle(pool)
            index = pool.pop()
            if index not in batch:
                batch.append(index)
        batches.append(batch)
    return batches


def homogeneous_batches(batch_counts: list[int], *, order: str, mixed_steps: int,
                        max_steps: int) -> int:  # fmt: skip
    """How many homogeneous batches one epoch takes: the plan's, or fewer when ``max_steps``
    would otherwise end the run before the mixed phase."""
    planned = len(batch_plan(batch_counts, order=order, seed=0))
    if max_steps:
        return min(planned, max(0, max_steps - mixed_steps))
    return planned


def planned_mix_steps(sizes: list[int], *, batch_size: int, order: str, mixed_steps: int,
                      epochs: int, max_steps: int) -> int:  # fmt: skip
    """Optimizer steps of a run on several datasets, as the trainer will count them. With
    several epochs the mixed phase closes each one."""
    counts = [math.ceil(size / batch_size) for size in sizes]
    per_epoch = homogeneous_batches(counts, order=order, mixed_steps=mixed_steps,
                                    max_steps=max_steps) + mixed_steps  # fmt: skip
    if max_steps:
        return max_steps
    return per_epoch * epochs
