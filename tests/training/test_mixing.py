"""Training on several snapshots (issue 12, the Linq-Embed-Mistral recipe): every batch from
one snapshot in the chosen order, then a short phase of batches mixed across them — the plan,
the sampler in the trainer's place, and a real LoRA run of MiniLM whose batches are recorded."""

from collections import Counter

import pytest

from training.core.data import TaskRows, TrainingRows, build_rows, read_examples
from training.core.mixing import batch_plan, mixed_batches, planned_mix_steps

from . import minilm_path, scifact_train_bge

# --- the plan ------------------------------------------------------------------------------


def test_each_order_plans_the_batches_it_promises():
    counts = [3, 1, 2]
    proportional = batch_plan(counts, order="proportional", seed=7)
    assert Counter(proportional) == {0: 3, 1: 1, 2: 2}  # every batch of every dataset
    assert proportional == batch_plan(counts, order="proportional", seed=7)  # seeded
    shuffles = {tuple(batch_plan(counts, order="proportional", seed=s)) for s in range(20)}
    assert len(shuffles) > 1
    assert batch_plan(counts, order="round_robin", seed=7) == [0, 1, 2]  # the smallest: 1
    assert batch_plan([2, 3], order="round_robin", seed=0) == [0, 1, 0, 1]
    assert batch_plan(counts, order="sequential", seed=7) == [0, 0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match="unknown task order"):
        batch_plan(counts, order="alphabetical", seed=0)


def test_mixed_batches_draw_from_every_dataset_without_a_row_twice_in_a_batch():
    sizes = [10, 6]
    batches = mixed_batches(sizes, batch_size=8, steps=5, seed=1)
    assert len(batches) == 5 and all(len(b) == 8 and len(set(b)) == 8 for b in batches)
    assert all(0 <= i < 16 for b in batches for i in b)
    # Rows come in a shuffle of all 16 taken in turn: 5 x 8 rows use each row 2 or 3 times.
    uses = Counter(i for b in batches for i in b)
    assert set(uses) == set(range(16)) and set(uses.values()) <= {2, 3}
    assert any(min(b) < 10 <= max(b) for b in batches)  # mixed across the two
    [small] = mixed_batches([3], batch_size=8, steps=1, seed=0)  # fewer rows than a batch
    assert sorted(small) == [0, 1, 2]
    assert mixed_batches(sizes, batch_size=8, steps=0, seed=1) == []


def test_planned_steps_count_the_homogeneous_batches_and_the_mixed_phase():
    # 20 rows in batches of 8 -> 3 batches; 9 -> 2.
    plan = dict(sizes=[20, 9], batch_size=8, mixed_steps=4, epochs=1, max_steps=0)
    assert planned_mix_steps(order="proportional", **plan) == 3 + 2 + 4
    assert planned_mix_steps(order="round_robin", **plan) == 2 + 2 + 4
    assert planned_mix_steps(order="sequential", **{**plan, "epochs": 2}) == 2 * (5 + 4)
    assert planned_mix_steps(order="sequential", **{**plan, "max_steps": 6}) == 6


# --- the sampler -----------------------------------------------------------------------------


def _concat(sizes):
    from datasets import Dataset
    from torch.utils.data import BatchSampler, ConcatDataset, SequentialSampler

    parts = [Dataset.from_dict({"anchor": [f"{d}-{i}" for i in range(n)]}) for d, n in
             enumerate(sizes)]  # fmt: skip
    samplers = [BatchSampler(SequentialSampler(range(n)), 4, drop_last=False) for n in sizes]
    return ConcatDataset(parts), samplers


@pytest.mark.parametrize("order", ["proportional", "round_robin", "sequential"])
def test_the_sampler_yields_homogeneous_batches_then_mixed_ones(order):
    from training.core.sampler import task_batch_sampler

    dataset, samplers = _concat([12, 8])  # 3 and 2 batches of 4
    sampler = task_batch_sampler(dataset, batch_samplers=samplers, seed=3, order=order,
                                 mixed_steps=2)  # fmt: skip
    batches = list(sampler)
    homogeneous = {"proportional": 5, "round_robin": 4, "sequential": 5}[order]
    assert len(sampler) == len(batches) == homogeneous + 2
    sources = [{"first" if i < 12 else "second" for i in b} for b in batches]
    assert all(len(s) == 1 for s in sources[:homogeneous])
    if order == "sequential":
        assert [s.pop() for s in sources[:homogeneous]] == ["first"] * 3 + ["second"] * 2
    assert all(len(b) == 4 for b in batches[homogeneous:])
    assert any(len(s) == 2 for s in sources[homogeneous:])


def test_a_step_limit_keeps_the_mixed_phase_at_the_end():
    from training.core.sampler import task_batch_sampler

    dataset, samplers = _concat([40, 40])  # 10 + 10 batches
    sampler = task_batch_sampler(dataset, batch_samplers=samplers, seed=0, order="sequential",
                                 mixed_steps=3, max_steps=7)  # fmt: skip
    batches = list(sampler)
    assert len(sampler) == len(batches) == 7
    assert all(max(b) < 40 for b in batches[:4])  # 4 of the first snapshot, then 3 mixed


@pytest.mark.parametrize("order", ["proportional", "sequential"])
def test_with_two_processes_each_step_takes_both_shares_from_one_snapshot(order):
    """accelerate gives process i every second batch (its own BatchSamplerShard): the two
    batches of one step come from the same snapshot, and every batch is full (accelerate
    keeps a step only when its last batch is)."""
    from accelerate.data_loader import BatchSamplerShard

    from training.core.sampler import task_batch_sampler

    dataset, samplers = _concat([14, 9])  # batches of 4: 3 full + 2, 2 full + 1
    sampler = task_batch_sampler(dataset, batch_samplers=samplers, seed=5, order=order,
                                 mixed_steps=1, world=2)  # fmt: skip
    shards = [list(BatchSamplerShard(sampler, num_processes=2, process_index=i))
              for i in range(2)]  # fmt: skip
    assert len(shards[0]) == len(shards[1]) == len(sampler) // 2 == 2 + 2 + 1
    for step, (mine, theirs) in enumerate(zip(*shards, strict=True)):
        assert len(mine) == len(theirs) == 4
        if step < 4:  # homogeneous: both shares of the step in one snapshot
            sources = {"first" if i < 14 else "second" for i in mine + theirs}
            assert len(sources) == 1, (step, mine, theirs)
            assert len(set(mine)) == 4  # a topped-up batch takes other rows, not repeats
    covered = {i for shard in shards for batch in shard[:4] for i in batch}
    assert covered == set(range(23))  # every row of both snapshots is used


# --- a real run ------------------------------------------------------------------------------


def test_task_rows_add_up_and_name_their_layouts():
    one = build_rows([_example("a", 2)], num_negatives=1, seed=0)
    pairs = build_rows([_example("b", 0)], num_negatives=1, seed=0)
    tasks = TaskRows({"one": one, "pairs": pairs})
    assert len(tasks) == 2 and tasks.num_negatives == 1
    assert tasks.stats["snapshots"] == 2 and tasks.stats["rows"] == 2
    assert tasks.layouts() == {
        "one": ("anchor", "positive", "negative_1"),
        "pairs": ("anchor", "positive"),
    }


def _example(query, negatives):
    from training.core.data import Example

    return Example(query=query, positives=[f"{query} answer"],
                   negatives=[f"{query} other {i}" for i in range(negatives)])  # fmt: skip


@pytest.fixture(scope="module")
def two_snapshots(tmp_path_factory):
    from tests.conftest import SHARED_DATA
    from tests.support.environment import missing

    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    path = tmp_path_factory.mktemp("scifact") / "train.jsonl"
    scifact_train_bge(SHARED_DATA, path, queries=32)
    examples = list(read_examples(path, "bge"))
    first = build_rows(examples[:16], num_negatives=2, seed=0)
    second = build_rows(examples[16:], num_negatives=2, seed=0)
    return TaskRows({"first": first, "second": second})


@pytest.mark.slow
def test_a_run_on_two_snapshots_takes_each_batch_from_one_then_mixes(
    two_snapshots, tmp_path, monkeypatch
):
    """The batches the model really trained on, recorded at the collator: 4 homogeneous
    ones in the sequential order, then 2 mixed. A checkpoint at step 2 and 4 pickles the
    trainer's arguments, sampler included."""
    from training.core import loop
    from training.core.config import TrainConfig
    from training.core.loop import train

    seen: list[list[str]] = []
    make_collator = loop.make_collator

    def recording_collator(model, **kwargs):
        collator = make_collator(model, **kwargs)
        call = type(collator).__call__

        def record(self, features):
            seen.append([feature["anchor"] for feature in features])
            return call(self, features)

        type(collator).__call__ = record
        return collator

    monkeypatch.setattr(loop, "make_collator", recording_collator)
    config = TrainConfig.from_dict(
        {
            "base_model": minilm_path(),
            "num_negatives": 2,
            "batch_size": 8,
            "max_steps": 6,
            "task_order": "sequential",
            "mixed_steps": 2,
            "query_max_length": 32,
            "passage_max_length": 64,
            "logging_steps": 1,
            "save_steps": 2,
        }
    )
    result = train(config=config, rows=two_snapshots, output_dir=tmp_path / "run")

    assert (result.step, result.total_steps) == (6, 6)
    assert result.metrics["tasks"] == [
        {"name": name, "rows": len(rows)} for name, rows in two_snapshots.tasks.items()
    ]
    assert result.metrics["task_order"] == "sequential" and result.metrics["mixed_steps"] == 2
    first = set(two_snapshots.tasks["first"].columns["anchor"])
    second = set(two_snapshots.tasks["second"].columns["anchor"])
    sources = [
        ("first" if set(batch) <= first else "second" if set(batch) <= second else "mixed")
        for batch in seen[:6]
    ]
    # 4 homogeneous steps in the given order (the first snapshot's batches first), then 2
    # mixed.
    first_batches = -(-len(two_snapshots.tasks["first"]) // 8)
    expected = (["first"] * first_batches + ["second"] * 4)[:4] + ["mixed", "mixed"]
    assert sources == expected
    assert result.artifact_kind == "adapter"


def test_rows_of_one_snapshot_still_train_as_one_dataset():
    from training.core.loop import _dataset

    rows = TrainingRows(columns={"anchor": ["q"], "positive": ["p"]}, stats={})
    assert type(_dataset(rows)).__name__ == "Dataset"
    both = TaskRows({"a": rows, "b": rows})
    assert list(_dataset(both)) == ["a", "b"]
