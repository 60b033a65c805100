"""The leaderboard's arithmetic, on plain data (no Django): rows = models, columns = tasks.

    rows = leaderboard_build(models=[ModelEntry(...)], scores={(key, task): score}, tasks=[...])

* A model's **mean** is taken over the selected tasks only when it has a score on every one of
  them (MTEB's leaderboard does the same: a partial mean would rank a model by the tasks it
  happens to have); such models are listed, unranked, after the ranked ones.
* **Rank**: by mean, highest first; equal means share a rank ("1, 2, 2, 4").
* **Δ**: each fine-tuned row against the row of its base model, per task and on the mean, in
  the same units as the scores (nDCG@10 as a fraction; the page shows points).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelEntry:
    key: str  # model_key: "training:<id>" or the model reference
    label: str
    base_key: str | None = None  # the base model's key, for a fine-tune
    info: dict = field(default_factory=dict)  # links and counts for the page


@dataclass
class LeaderboardRow:
    entry: ModelEntry
    scores: list[float | None]  # one per task, in the order of ``tasks``
    mean: float | None
    rank: int | None = None
    deltas: list[float | None] = field(default_factory=list)
    mean_delta: float | None = None
    has_base_row: bool = False

    @property
    def key(self) -> str:
        return self.entry.key


def _mean(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def leaderboard_build(
    *, models: list[ModelEntry], scores: dict[tuple[str, str], float], tasks: list[str]
) -> list[LeaderboardRow]:
    rows = []
    for entry in models:
        task_scores = [scores.get((entry.key, task)) for task in tasks]
        if all(s is None for s in task_scores):
            continue  # nothing in the selected task set
        rows.append(LeaderboardRow(entry=entry, scores=task_scores, mean=_mean(task_scores)))

    by_key = {row.key: row for row in rows}
    for row in rows:
        base = by_key.get(row.entry.base_key) if row.entry.base_key else None
        if base is None or base is row:
            row.deltas = [None] * len(tasks)
            continue
        row.has_base_row = True
        row.deltas = [_delta(s, b) for s, b in zip(row.scores, base.scores, strict=True)]
        row.mean_delta = _delta(row.mean, base.mean)

    ranked = sorted((r for r in rows if r.mean is not None), key=lambda r: -r.mean)
    previous_mean, previous_rank = None, 0
    for position, row in enumerate(ranked, start=1):
        row.rank = previous_rank if row.mean == previous_mean else position
        previous_mean, previous_rank = row.mean, row.rank
    unranked = sorted(
        (r for r in rows if r.mean is None),
        key=lambda r: (
            -(sum(s for s in r.scores if s is not None) / sum(1 for s in r.scores if s is not None))
        ),
    )
    return ranked + unranked


# A snapshot manifest's counts (curation's export policy) in words, the ones a reader of
# the leaderboard compares first; the rest go into the cell's tooltip.
MANIFEST_WORDS = {
    "queries_out": "queries",
    "positives": "positives",
    "negatives": "hard negatives",
    "false_negatives_removed": "false negatives removed",
    "false_negatives_relabelled": "false negatives relabelled",
    "positives_removed": "positives removed",
    "dropped_remove": "queries dropped (remove policy)",
    "dropped_ambiguous": "queries dropped (ambiguous)",
}


def manifest_summary(manifest: dict) -> dict:
    """``{"short": "8,000 queries · 8,012 positives · …", "full": "every count"}`` of a
    snapshot manifest: its counts, the first three always, the others only when not zero;
    queries held out for evaluation beside the queries written (else a snapshot with a
    hold-out reads as one that lost queries)."""
    counts = manifest.get("counts") or {}
    held = (manifest.get("held_out") or {}).get("queries")
    parts = []
    for index, (key, words) in enumerate(MANIFEST_WORDS.items()):
        value = counts.get(key)
        if isinstance(value, int) and (index < 3 or value):
            parts.append(f"{value:,} {words}")
            if key == "queries_out" and held:
                parts[-1] += f" (+{held:,} held out for evaluation)"
    full = " · ".join(
        f"{key.replace('_', ' ')} {value:,}" if isinstance(value, int) else f"{key} {value}"
        for key, value in counts.items()
    )
    if held:
        full += f" · held out for evaluation {held:,}"
    return {"short": " · ".join(parts), "full": full}


def model_key_for(model_ref: str) -> str:
    """The leaderboard key of a model that is not a training run: a local folder by its
    resolved absolute path (so ``./models/x`` and ``/abs/models/x`` are one row), a hub id as
    given."""
    from pathlib import Path

    path = Path(model_ref).expanduser()
    return str(path.resolve()) if path.is_dir() else model_ref.strip()
