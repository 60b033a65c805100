"""Approving a cascade's verdicts for a whole dataset: a real two-stage cascade (the real
``openai`` client against the local OpenAI-compatible server), a review campaign sampled from
it answered through the queue service, the agreement report job, then the approval job and
snapshots. Gate met / refused / overridden with a reason; a person's decision wins over an
approved verdict; revoking leaves later snapshots without it; manifests count by source."""

import json
import uuid

import pytest

from core.errors import ApplicationError
from core.models import JobStatus
from curation.cascade.approvals import approval_execute, approval_revoke
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.datasets.snapshots import snapshot_create, snapshot_file_path
from curation.models import (
    Approval,
    Candidate,
    CandidateRole,
    Decision,
    DecisionLabel,
    DecisionSource,
    Judgment,
    Verdict,
)
from review.agreement.services import agreement_report_create, agreement_report_run
from review.approvals.gate import GateSettings
from review.approvals.services import approval_gate, approval_submit
from review.services.campaigns import review_campaign_create
from review.services.queue import judgment_submit, review_item_next_for_user
from tests.curation.cascade.cascade_support import small_dataset, sound_judge, stage
from tests.factories import DecisionFactory
from tests.support.openai_server import FakeOpenAIServer
from tests.support.users import user_with_role

pytestmark = pytest.mark.django_db

QUERIES = 12  # odd queries hold one false negative ("ANSWERS"): 6 in all


def _judged_dataset():
    dataset = small_dataset(queries=QUERIES, negatives=4, name=f"approve-{uuid.uuid4().hex[:6]}")
    with FakeOpenAIServer(sound_judge) as server:
        run = cascade_run_create(
            dataset=dataset,
            stages=[stage(1, server), stage(2, server)],
            forward_tags=["better", "worse"],
            false_negative_tags=["better"],
            enqueue=False,
        )
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    return dataset, run


def _truth(candidate: Candidate) -> str:
    return Verdict.RELEVANT if "ANSWERS" in candidate.passage.text else Verdict.NOT_RELEVANT


def _reviewed_report(dataset, run, user, *, answer=_truth):
    """A campaign sampled from ``run`` (every flagged negative and some unflagged ones),
    answered by ``user`` through the queue, and its agreement report computed."""
    campaign = review_campaign_create(
        name="sample",
        dataset=dataset,
        strata={"stage2_flagged": 50, "stage1_only": 50, "unflagged": 12},
        annotators=[user],
        cascade_run=run,
    )
    while (item := review_item_next_for_user(campaign=campaign, user=user)) is not None:
        candidate = Candidate.objects.select_related("passage").get(pk=item.candidate_id)
        judgment_submit(
            campaign=campaign,
            item_id=item.pk,
            user=user,
            verdict=answer(candidate),
            client_token=uuid.uuid4().hex,
        )
    report, _ = agreement_report_create(campaign=campaign)
    agreement_report_run(report_id=report.pk)
    report.refresh_from_db()
    assert report.status == JobStatus.SUCCEEDED, report.error
    return report


def _applied(approval: Approval) -> Approval:
    approval_execute(run_id=approval.pk)
    approval.refresh_from_db()
    assert approval.status == JobStatus.SUCCEEDED, approval.error
    return approval


def _lines(snapshot) -> dict[str, dict]:
    path = snapshot_file_path(snapshot=snapshot)
    return {row["query_id"]: row for row in map(json.loads, path.read_text().splitlines())}


def _false_negative_doc_ids(dataset) -> set[str]:
    return set(
        Candidate.objects.filter(
            query__dataset=dataset,
            role=CandidateRole.NEGATIVE,
            passage__text__contains="ANSWERS",
        ).values_list("passage__doc_id", flat=True)
    )


@pytest.fixture
def alice(django_user_model):
    return user_with_role(django_user_model, "alice", "annotator")


@pytest.fixture
def judged():
    return _judged_dataset()


def test_a_met_gate_applies_the_final_verdicts_and_snapshots_relabel_them(judged, alice):
    dataset, run = judged
    report = _reviewed_report(dataset, run, alice)

    gate = approval_gate(cascade_run=run, stage=None, report=report)
    assert gate.passed, gate.to_json()
    figures = gate.figures
    assert figures["kappa"] == 1.0 and figures["precision"] == 1.0
    assert figures["precision_ci_low"] >= 0.5

    approval = _applied(approval_submit(cascade_run=run, report=report, enqueue=False))
    assert approval.gate_passed and approval.reason == ""
    assert approval.gate["checks"][0]["value"] == 1.0
    negatives = Candidate.objects.filter(query__dataset=dataset, role=CandidateRole.NEGATIVE)
    assert approval.decision_count == negatives.count() == QUERIES * 4
    assert approval.false_negative_count == QUERIES // 2

    # Provenance: each machine decision names its judgment (of this run, the highest stage
    # that judged the passage) and the LLM call behind it.
    machine = Decision.objects.filter(approval=approval).select_related("judgment")
    assert machine.count() == QUERIES * 4
    for decision in machine:
        assert decision.source == DecisionSource.APPROVAL
        assert decision.judgment.source_run == f"cascade:{run.pk}"
        assert decision.judgment.candidate_id == decision.candidate_id
        assert decision.llm_call_id is not None
        assert decision.label == decision.judgment.verdict
    stage2_judged = set(
        Judgment.objects.filter(
            rater__endswith=":stage2", source_run=f"cascade:{run.pk}"
        ).values_list("candidate_id", flat=True)
    )
    assert stage2_judged
    for decision in machine.filter(candidate_id__in=stage2_judged):
        assert decision.judgment.rater.endswith(":stage2")

    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="tevatron")
    expected = _false_negative_doc_ids(dataset)
    moved = {p["docid"] for row in _lines(snapshot).values() for p in row["positive_passages"]} & {
        c.passage.doc_id for c in negatives.select_related("passage")
    }
    assert moved == expected
    manifest = snapshot.manifest
    assert [a["id"] for a in manifest["approvals"]] == [approval.pk]
    assert manifest["approvals"][0]["gate_passed"] is True
    assert manifest["counts_by_source"] == {
        f"approval:{approval.pk}": {
            "false_negatives_confirmed": len(expected),
            "false_negatives_relabelled": len(expected),
        }
    }


def test_a_failing_gate_is_refused_unless_a_reason_is_written(judged, alice):
    dataset, run = judged
    # An annotator who disagrees with every flag: κ far below 0.30.
    report = _reviewed_report(
        dataset,
        run,
        alice,
        answer=lambda c: (
            Verdict.NOT_RELEVANT if _truth(c) == Verdict.RELEVANT else Verdict.RELEVANT
        ),
    )
    gate = approval_gate(cascade_run=run, stage=2, report=report)
    assert not gate.passed
    assert gate.figures["kappa"] < 0.30

    with pytest.raises(ApplicationError) as refused:
        approval_submit(cascade_run=run, stage=2, report=report, enqueue=False)
    assert refused.value.detail["field"] == "reason"
    assert not Approval.objects.exists()

    # Thresholds are the curator's: a gate they lower to what was measured passes.
    lowered = approval_gate(
        cascade_run=run,
        stage=2,
        report=report,
        settings=GateSettings(kappa_min=-1.0, precision_low_min=0.0),
    )
    assert lowered.passed

    reason = "stage 2 is GPT-4o as in RLHN; the sample annotator misread the guidelines"
    approval = _applied(
        approval_submit(cascade_run=run, stage=2, report=report, reason=reason, enqueue=False)
    )
    assert not approval.gate_passed and approval.reason == reason
    assert approval.gate["figures"]["kappa"] == gate.figures["kappa"]
    snapshot = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert snapshot.manifest["approvals"][0]["reason"] == reason
    assert snapshot.manifest["approvals"][0]["gate_passed"] is False


def test_no_report_means_nothing_measured_and_needs_a_reason(judged):
    _, run = judged
    gate = approval_gate(cascade_run=run, stage=None, report=None)
    assert not gate.passed and "nothing was measured" in gate.problem
    with pytest.raises(ApplicationError):
        approval_submit(cascade_run=run, enqueue=False)


def test_a_report_of_another_cascade_cannot_gate_this_one(judged, alice):
    dataset, run = judged
    report = _reviewed_report(dataset, run, alice)
    other_dataset, other_run = _judged_dataset()
    with pytest.raises(ApplicationError) as wrong:
        approval_gate(cascade_run=other_run, stage=None, report=report)
    assert wrong.value.detail["field"] == "report"


def test_a_person_wins_over_the_machine_and_revoking_leaves_later_snapshots_without_it(judged):
    dataset, run = judged
    expected = _false_negative_doc_ids(dataset)
    overruled = Candidate.objects.get(query__dataset=dataset, passage__doc_id=sorted(expected)[0])
    promoted = Candidate.objects.filter(
        query__dataset=dataset, role=CandidateRole.NEGATIVE, passage__text__contains="PARTLY"
    ).first()
    # One decision by a person before the approval, one after: both win.
    DecisionFactory(candidate=overruled, label=DecisionLabel.NOT_RELEVANT)
    approval = _applied(approval_submit(cascade_run=run, reason="replay, no humans", enqueue=False))
    DecisionFactory(candidate=promoted, label=DecisionLabel.RELEVANT)

    before = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    removed = {
        c.passage.doc_id
        for c in Candidate.objects.filter(
            query__dataset=dataset, role=CandidateRole.NEGATIVE
        ).select_related("passage")
    } - {p["docid"] for row in _lines(before).values() for p in row["negative_passages"]}
    assert removed == (expected - {overruled.passage.doc_id}) | {promoted.passage.doc_id}
    by_source = before.manifest["counts_by_source"]
    assert by_source["human"]["false_negatives_removed"] == 1
    assert by_source[f"approval:{approval.pk}"]["false_negatives_removed"] == len(expected) - 1
    before_bytes = snapshot_file_path(snapshot=before).read_bytes()

    approval_revoke(approval=approval, reason="the judge prompt had a bug")
    after = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert after.pk != before.pk
    assert after.manifest["approvals"] == []
    assert after.manifest["counts_by_source"] == {
        "human": {"false_negatives_confirmed": 1, "false_negatives_removed": 1}
    }
    # The earlier snapshot keeps its bytes and still lists the approval it used.
    before.refresh_from_db()
    assert snapshot_file_path(snapshot=before).read_bytes() == before_bytes
    assert before.manifest["approvals"][0]["id"] == approval.pk
    with pytest.raises(ApplicationError):
        approval_revoke(approval=approval)


def test_an_approval_is_not_used_until_every_verdict_is_applied(judged):
    dataset, run = judged
    approval = approval_submit(cascade_run=run, reason="replay", enqueue=False)
    pending = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert pending.manifest["approvals"] == []
    assert pending.manifest["counts"]["false_negatives_removed"] == 0
    _applied(approval)
    applied = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert applied.manifest["counts"]["false_negatives_removed"] == QUERIES // 2


def test_a_resumed_approval_writes_nothing_twice(judged, monkeypatch):
    """A worker that died after some chunks: the job runs again from the committed cursor."""
    import curation.cascade.approvals as approvals

    dataset, run = judged
    monkeypatch.setattr(approvals, "CHUNK_CANDIDATES", 7)
    approval = approval_submit(cascade_run=run, reason="replay", enqueue=False)
    calls = {"n": 0}
    real = approvals._apply_chunk

    def dies_after_two_chunks(*args, **kwargs):
        if calls["n"] == 2:
            raise SystemExit("worker killed")
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(approvals, "_apply_chunk", dies_after_two_chunks)
    with pytest.raises(SystemExit):
        approval_execute(run_id=approval.pk)
    approval.refresh_from_db()
    assert approval.status == JobStatus.RUNNING
    assert 0 < approval.decision_count < QUERIES * 4

    monkeypatch.setattr(approvals, "_apply_chunk", real)
    _applied(approval)
    assert approval.decision_count == QUERIES * 4
    assert Decision.objects.filter(approval=approval).count() == QUERIES * 4
    assert (
        Decision.objects.filter(approval=approval).values("candidate").distinct().count()
        == QUERIES * 4
    )
