"""The leaderboard's arithmetic: mean only over complete rows, shared ranks, Δ to the base."""

import pytest

from evaluation.leaderboard import ModelEntry, leaderboard_build, model_key_for


def entry(key, base=None):
    return ModelEntry(key=key, label=key, base_key=base)


def test_rank_mean_and_delta_against_the_base_row():
    scores = {
        ("base", "a"): 0.60, ("base", "b"): 0.40,
        ("ft", "a"): 0.65, ("ft", "b"): 0.41,
        ("other", "a"): 0.70, ("other", "b"): 0.35,
    }  # fmt: skip
    rows = leaderboard_build(
        models=[entry("base"), entry("ft", "base"), entry("other")], scores=scores, tasks=["a", "b"]
    )
    assert [r.key for r in rows] == ["ft", "other", "base"]
    assert [r.rank for r in rows] == [1, 2, 3]
    ft = rows[0]
    assert ft.mean == pytest.approx(0.53)
    assert ft.deltas == [pytest.approx(0.05), pytest.approx(0.01)]
    assert ft.mean_delta == pytest.approx(0.03)
    assert rows[1].deltas == [None, None] and rows[1].mean_delta is None


def test_equal_means_share_a_rank_and_incomplete_rows_are_unranked():
    scores = {("x", "a"): 0.5, ("y", "a"): 0.5, ("z", "a"): 0.4, ("w", "b"): 0.9}
    rows = leaderboard_build(models=[entry(k) for k in "xyzw"], scores=scores, tasks=["a", "b"])
    # Nobody has both tasks: no mean, no rank.
    assert all(r.rank is None and r.mean is None for r in rows)
    rows = leaderboard_build(models=[entry(k) for k in "xyzw"], scores=scores, tasks=["a"])
    assert [(r.key, r.rank) for r in rows] == [("x", 1), ("y", 1), ("z", 3)]  # w has no "a"


def test_a_fine_tune_whose_base_was_not_evaluated_has_no_delta():
    rows = leaderboard_build(
        models=[entry("ft", "missing")], scores={("ft", "a"): 0.3}, tasks=["a"]
    )
    assert rows[0].deltas == [None] and not rows[0].has_base_row


def test_model_key_resolves_local_folders(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    assert model_key_for("m") == str(folder.resolve()) == model_key_for(str(folder))
    assert model_key_for("org/name ") == "org/name"
