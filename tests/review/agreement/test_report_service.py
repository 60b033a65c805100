"""The agreement report job on a factory-built review: every figure equals the one computed
straight from the database with the reference libraries; undone verdicts never count; a
report is reused until a judgment in its scope is newer, or a verdict was undone."""

import math

import pytest
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from core.models import JobStatus
from curation.models import Verdict
from review.agreement import stats
from review.agreement.selectors import agreement_report_staleness
from review.agreement.services import agreement_report_create, agreement_report_run
from review.models import AgreementReport, ReviewSubmission

from .conftest import STAGE1, STAGE2, TEACHER, machine_judge
from .reference import Reference


def close(ours, reference, tol=1e-9) -> bool:
    if ours is None:  # undefined statistics are stored as null
        return reference is None or math.isnan(reference)
    return math.isclose(ours, reference, abs_tol=tol)


def computed(**kwargs) -> AgreementReport:
    """Request a report and run its job here, as the worker would."""
    report, created = agreement_report_create(**kwargs)
    assert created
    agreement_report_run(report_id=report.pk)
    report.refresh_from_db()
    assert report.status == JobStatus.SUCCEEDED, report.error
    return report


def _human_pair(report, a, b) -> dict:
    return next(p for p in report.result["human_pairs"] if {p["rater_a"], p["rater_b"]} == {a, b})


@pytest.mark.django_db
def test_figures_equal_the_reference_libraries_on_the_database(reviewed):
    report = computed(dataset=reviewed.dataset)
    result = report.result
    ref = Reference(campaigns=[reviewed.full, reviewed.partial])

    assert result["items"] == len(ref.candidates) == 80  # 4 candidates in both campaigns
    assert {r["key"] for r in result["raters"] if r["kind"] == "human"} == set(ref.humans)
    assert {r["key"] for r in result["raters"] if r["kind"] == "machine"} == {
        TEACHER, STAGE1, STAGE2,
    }  # fmt: skip
    assert result["human_ratings"] == len(ref.human)

    pairs = {(p["rater_a"], p["rater_b"]): p for p in result["human_pairs"]}
    assert len(pairs) == 3
    for (a, b), pair in pairs.items():
        n, agreement, kappa = ref.human_pair(a, b)
        assert pair["n"] == n
        assert close(pair["percent_agreement"], agreement)
        assert close(pair["kappa"], kappa)
        assert pair["ci_low"] < pair["kappa"] < pair["ci_high"]
        assert sum(map(sum, pair["confusion"])) == n

    verdicts = next(g for g in result["humans"] if g["scheme"] == "verdict")
    assert close(verdicts["krippendorff_alpha"], ref.krippendorff())
    # The report's Fleiss κ is the standard one, on the items every annotator judged.
    fleiss_items, fleiss_reference = ref.fleiss()
    assert verdicts["fleiss_items"] == fleiss_items
    assert close(verdicts["fleiss_kappa"], fleiss_reference)

    machines = {m["rater"]: m for m in result["machines"]}
    assert set(machines) == {TEACHER, STAGE1, STAGE2, "cascade_final"}
    for rater, row in machines.items():
        expected = ref.machine_vs_majority(rater)
        assert row["n"] == expected["n"] > 0, rater
        for name in ("kappa", "precision", "recall", "f1"):
            assert close(row[name], expected[name]), (rater, name)
        assert close(row["percent_agreement"], expected["agreement"])
        # Stored for the approval gate: Wilson intervals at the report's level (0.95).
        tp, fp, fn = row["true_positive"], row["false_positive"], row["false_negative"]
        for name, n in (("precision", tp + fp), ("recall", tp + fn)):
            low, high = proportion_confint(tp, n, alpha=0.05, method="wilson")
            assert close(row[f"{name}_ci_low"], low) and close(row[f"{name}_ci_high"], high)
    assert machines[STAGE1]["paper_kappa"] == 0.320
    assert machines[STAGE2]["paper_kappa"] == 0.390
    # Stage 2 judged only the flagged queries; the cascade's final verdict covers them all.
    assert machines[STAGE2]["n"] < machines["cascade_final"]["n"] == machines[STAGE1]["n"]


@pytest.mark.django_db
def test_fleiss_equals_statsmodels_where_every_item_has_all_three_annotators(reviewed):
    # Alice's undone-and-replaced answers and Bob's undone ones leave some items with two.
    report = computed(campaign=reviewed.full)
    ref = Reference(campaigns=[reviewed.full])
    full_items = [c for c in ref.candidates if all((h, c) in ref.human for h in ref.humans)]
    ours, _ = stats.fleiss_kappa(
        [[["relevant", "not_relevant", "partly_relevant", "unsure"].index(ref.human[(h, c)])
          for h in ref.humans] for c in full_items],
        n_categories=4,
    )  # fmt: skip
    n, reference = ref.fleiss()
    assert n == len(full_items) > 30
    assert close(ours, reference)
    # The report itself uses every item with two or more verdicts; on the full-overlap
    # campaign that differs from the all-three subset only by Bob's undone items.
    verdicts = next(g for g in report.result["humans"] if g["scheme"] == "verdict")
    two_or_more = [c for c in ref.candidates if sum((h, c) in ref.human for h in ref.humans) >= 2]
    assert verdicts["items"] == len(two_or_more)
    assert close(verdicts["krippendorff_alpha"], ref.krippendorff())
    # The report's Fleiss κ is the standard one, on the complete items.
    assert verdicts["fleiss_items"] == n and close(verdicts["fleiss_kappa"], reference)


@pytest.mark.django_db
def test_undone_verdicts_and_unsubmitted_judgments_do_not_count(reviewed):
    report = computed(campaign=reviewed.partial)
    alice_bob = _human_pair(report, "user:alice", "user:bob")
    active = ReviewSubmission.objects.filter(
        item__campaign=reviewed.partial, undone_at__isnull=True
    )
    by_bob = set(active.filter(user__username="bob").values_list("item_id", flat=True))
    by_alice = set(active.filter(user__username="alice").values_list("item_id", flat=True))
    assert alice_bob["n"] == len(by_bob & by_alice) < reviewed.partial.items.count()
    # Alice's undone answers were replaced: each of those items counts once, with the new one.
    alice = next(r for r in report.result["raters"] if r["key"] == "user:alice")
    assert alice["items"] == len(by_alice)

    # Undoing one more of Bob's verdicts makes the report stale and the next one smaller.
    submission = active.filter(user__username="bob").first()
    ReviewSubmission.objects.filter(pk=submission.pk).update(undone_at=timezone.now())
    assert agreement_report_staleness(report=report).undone
    again = computed(campaign=reviewed.partial)
    assert again.pk != report.pk
    pair = _human_pair(again, "user:alice", "user:bob")
    assert pair["n"] == alice_bob["n"] - 1


@pytest.mark.django_db
def test_report_is_reused_until_a_newer_judgment_in_its_scope(reviewed):
    first = computed(campaign=reviewed.full)
    again, created = agreement_report_create(campaign=reviewed.full)
    assert (again.pk, created) == (first.pk, False)

    # A judgment on a candidate outside the scope changes nothing ...
    machine_judge(
        candidate_id=reviewed.outside_candidate.pk, rater=STAGE2, verdict=Verdict.RELEVANT
    )
    assert not agreement_report_staleness(report=first).stale
    assert agreement_report_create(campaign=reviewed.full) == (first, False)
    # ... and so does a different option: that is another report.
    other, created = agreement_report_create(
        campaign=reviewed.full, partly_relevant_is_false_negative=True
    )
    assert created and other.pk != first.pk

    # A new machine judgment on one of the campaign's candidates makes it stale.
    candidate_id = reviewed.full.items.values_list("candidate_id", flat=True).first()
    machine_judge(candidate_id=candidate_id, rater=STAGE2, verdict=Verdict.NOT_RELEVANT)
    assert agreement_report_staleness(report=first).new_judgments
    fresh, created = agreement_report_create(campaign=reviewed.full)
    assert created and fresh.pk != first.pk
    # "Recompute" (force) starts a job even when nothing changed.
    agreement_report_run(report_id=fresh.pk)
    forced, created = agreement_report_create(campaign=reviewed.full, force=True)
    assert created and forced.pk != fresh.pk


@pytest.mark.django_db
def test_partly_relevant_option_changes_the_majority_and_the_flags(reviewed):
    strict = computed(campaign=reviewed.partial)
    loose = computed(campaign=reviewed.partial, partly_relevant_is_false_negative=True)
    ref = Reference(campaigns=[reviewed.partial], partly_is_fn=True)
    for row in loose.result["machines"]:
        expected = ref.machine_vs_majority(row["rater"])
        assert row["n"] == expected["n"]
        assert close(row["kappa"], expected["kappa"])
        assert close(row["recall"], expected["recall"])
    strict_stage1 = next(m for m in strict.result["machines"] if m["rater"] == STAGE1)
    loose_stage1 = next(m for m in loose.result["machines"] if m["rater"] == STAGE1)
    assert strict_stage1["confusion"] != loose_stage1["confusion"]


@pytest.mark.django_db
def test_slices_by_stratum_campaign_and_week(reviewed):
    report = computed(dataset=reviewed.dataset)
    ref = Reference(campaigns=[reviewed.full, reviewed.partial])
    slices = report.result["slices"]
    assert set(slices) == {"dataset", "stratum", "campaign", "week"}
    assert [row["items"] for row in slices["dataset"]] == [80]

    by_stratum = {row["value"]: row for row in slices["stratum"]}
    for label, candidates in ref.strata().items():
        row = by_stratum[label]
        assert row["items"] == len(candidates)
        stage1 = next(m for m in row["machines"] if m["rater"] == STAGE1)
        expected = ref.machine_vs_majority(STAGE1, candidates)
        assert stage1["n"] == expected["n"]
        assert close(stage1["kappa"], expected["kappa"])
        assert close(row["humans"]["krippendorff_alpha"], ref.krippendorff(candidates))

    # A candidate in both campaigns counts once, under its first campaign.
    campaigns = {row["value"]: row["items"] for row in slices["campaign"]}
    assert campaigns == {f"full (#{reviewed.full.pk})": 48, f"partial (#{reviewed.partial.pk})": 32}

    # Weeks start on Mondays; an item belongs to the week of its latest human verdict.
    weeks = [row["value"] for row in slices["week"]]
    assert weeks == sorted(weeks) and weeks[0] == "2026-11-02" and len(weeks) >= 3
    expected_weeks: dict[str, int] = {}
    for c in ref.candidates:
        times = [t for (h, cand), t in ref.human_time.items() if cand == c]
        if times:
            latest = max(times)
            monday = (latest - timezone.timedelta(days=latest.weekday())).date().isoformat()
            expected_weeks[monday] = expected_weeks.get(monday, 0) + 1
    assert {row["value"]: row["items"] for row in slices["week"]} == expected_weeks


@pytest.mark.django_db
def test_a_scope_without_judgments_gives_an_empty_report(reviewed, django_user_model):
    from review.models import ReviewCampaign

    empty = ReviewCampaign.objects.create(name="empty", dataset=reviewed.dataset)
    report = computed(campaign=empty)
    assert report.result["items"] == 0
    assert report.result["machines"] == [] and report.result["human_pairs"] == []


def _rows(ratings) -> list[tuple]:
    keys = [r.key for r in ratings.raters]
    return sorted(
        zip(
            ratings.item.tolist(),
            [keys[r] for r in ratings.rater.tolist()],
            ratings.code.tolist(),
            ratings.order.tolist(),
            [None if math.isnan(t) else round(t, 3) for t in ratings.time.tolist()],
            strict=True,
        )
    )


@pytest.mark.django_db
def test_every_way_of_reading_gives_the_same_ratings(reviewed, monkeypatch):
    """Small keyset batches (a candidate of both campaigns falls in two batches) and the plain
    values_list read (SQLite's) give exactly what one packed read gives."""
    from review.agreement import selectors as reads

    scope = reads.AgreementScope(dataset_id=reviewed.dataset.pk)
    cutoff = reads.judgment_cutoff_now()
    whole = reads.agreement_ratings_fetch(scope=scope, judgment_cutoff=cutoff)
    batched = reads.agreement_ratings_fetch(scope=scope, judgment_cutoff=cutoff, batch_size=7)
    monkeypatch.setattr(reads, "PACKED_VENDORS", ())
    plain = reads.agreement_ratings_fetch(scope=scope, judgment_cutoff=cutoff, batch_size=30)
    assert whole.n_items == batched.n_items == plain.n_items == 80
    assert _rows(whole) == _rows(batched) == _rows(plain)
    for a, b in zip(whole.slicings, plain.slicings, strict=True):
        assert a.labels == b.labels and a.codes.tolist() == b.codes.tolist()
    # The unknown "mystery:judge" is not a rater; the unsubmitted human judgment is not read.
    assert "mystery:judge" not in {r.key for r in whole.raters}
    assert len([row for row in _rows(whole) if row[1].startswith("user:")]) == sum(
        1
        for _ in reads.ReviewSubmission.objects.filter(
            item__campaign__dataset=reviewed.dataset, undone_at__isnull=True
        )
    )
