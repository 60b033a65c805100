"""The whole loop on one screen: for each dataset, where it stands in imported → mined →
judged → reviewed → approved → frozen → trained → evaluated, and the next thing to do.

Experiments is the one app that may read every other (docs/architecture.md), so the page
lives here. Sized for many datasets: one keyset page of datasets at a time, and per kind of
job two grouped statements for the whole page (the newest row id per dataset, then those
rows; training twice: the newest run and the newest that made a model), never a query per
dataset — but for the scores of an evaluated dataset's run and its base model's (two
small statements for each of those on the page, a third for a one-task run's name)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Max
from django.urls import reverse

from core.models import USABLE_STATUSES, JobStatus
from core.pagination import KeysetPage, keyset_paginate
from curation.datasets.selectors import dataset_import_splits, evaluation_split_of
from curation.models import Approval, CascadeRun, Dataset, MiningRun, Snapshot
from evaluation.models import EvalResult, EvaluationRun
from evaluation.services.dataset_tasks import DATASET_PREFIX
from evaluation.services.task_specs import evaluation_task_labels
from review.models import AgreementReport, ReviewCampaign
from training.models import TrainingRun
from training.templatetags.model_names import model_short_name

DONE, RUNNING, FAILED, TODO, SKIPPED = "done", "running", "failed", "todo", "skipped"
RUNNING_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass
class Step:
    key: str
    label: str
    state: str = TODO
    summary: str = ""
    url: str | None = None  # the thing this step made
    action: str = ""  # what to do next here
    action_url: str | None = None
    note: str = ""  # a newer job that this cell is not about (a failed run after a good one)
    note_url: str | None = None


@dataclass
class DatasetLoop:
    dataset: Dataset
    steps: list[Step] = field(default_factory=list)

    @property
    def next_step(self) -> Step | None:
        """The first step that is not done (a skipped optional step counts as done)."""
        return next((s for s in self.steps if s.state not in (DONE, SKIPPED)), None)


def _newest(model, *, dataset_field: str, ids: list[int], **filters) -> dict[int, object]:
    """The newest row of ``model`` per dataset in ``ids``: two statements for the page."""
    newest = (
        model.objects.filter(**{f"{dataset_field}__in": ids}, **filters)
        .values(dataset_field)
        .annotate(last=Max("id"))
        .order_by()
    )
    by_id = {row["last"]: row[dataset_field] for row in newest}
    rows = model.objects.in_bulk(list(by_id))
    return {by_id[pk]: row for pk, row in rows.items()}


def _job_state(job) -> str:
    if job.status in RUNNING_STATUSES:
        return RUNNING
    if job.status in USABLE_STATUSES:
        return DONE
    return FAILED


def _kappa(report: AgreementReport | None) -> float | None:
    if report is None:
        return None
    machines = (report.result or {}).get("machines", [])
    final = next((m for m in machines if m.get("rater") == "cascade_final"), None)
    return final.get("kappa") if final else None


def _ndcg(result: EvalResult) -> float:
    return result.ndcg_at_10 if result.ndcg_at_10 is not None else result.main_score


@dataclass
class _Scores:
    tasks: int
    mean: float  # nDCG@10 over the run's tasks (the one task's where it has one)
    delta: float | None  # against the base model's newest results on the same tasks
    task: str = ""  # the task's name where the run has one task
    base_partial: bool = False  # the base model is evaluated on some of the tasks only


def _scores(run: EvaluationRun) -> _Scores | None:
    """The run's mean nDCG@10 over its tasks, as the leaderboard's Mean, and its difference
    to the base model's newest results on the same tasks, split and mode. Two statements
    (the run's results; the base model's newest per task and split), plus the task's name
    where there is one task."""
    results = list(run.results.all())
    if not results:
        return None
    base_ids = (
        EvalResult.objects.filter(
            run__model_key=run.base_model,
            run__mode=run.mode,
            task__in={r.task for r in results},
        )
        .values("task", "split")
        .annotate(last=Max("id"))
        .order_by()
    )
    base = {
        (r.task, r.split): _ndcg(r)
        for r in EvalResult.objects.filter(id__in=[row["last"] for row in base_ids])
    }
    mean = sum(_ndcg(r) for r in results) / len(results)
    matched = [base[(r.task, r.split)] for r in results if (r.task, r.split) in base]
    delta = mean - sum(matched) / len(matched) if len(matched) == len(results) else None
    scores = _Scores(len(results), mean, delta, base_partial=0 < len(matched) < len(results))
    if len(results) == 1:
        scores.task = evaluation_task_labels([results[0].task])[results[0].task]
    return scores


class _Page:
    """The newest job of each kind for every dataset of one page."""

    def __init__(self, datasets: list[Dataset]):
        ids = [d.pk for d in datasets]
        self.mining = _newest(MiningRun, dataset_field="dataset_id", ids=ids)
        self.splits = dataset_import_splits(dataset_ids=ids)
        self.cascade = _newest(CascadeRun, dataset_field="dataset_id", ids=ids)
        self.campaign = _newest(ReviewCampaign, dataset_field="dataset_id", ids=ids)
        self.report = _newest(
            AgreementReport,
            dataset_field="campaign__dataset_id",
            ids=ids,
            status=JobStatus.SUCCEEDED,
        )
        self.approval = _newest(
            Approval,
            dataset_field="dataset_id",
            ids=ids,
            status=JobStatus.SUCCEEDED,
            revoked_at__isnull=True,
        )
        self.approval_any = _newest(Approval, dataset_field="dataset_id", ids=ids)
        self.snapshot = _newest(Snapshot, dataset_field="dataset_id", ids=ids)
        # Trained and Evaluated are about the newest run that trained a model (a newer one
        # that failed or still runs is a note beside it), and that run's newest evaluation:
        # never a failed run next to the score of an older one.
        self.training = _newest(TrainingRun, dataset_field="snapshot__dataset_id", ids=ids)
        self.trained = _newest(
            TrainingRun,
            dataset_field="snapshot__dataset_id",
            ids=ids,
            status__in=USABLE_STATUSES,
        )
        self.evaluation = _newest(
            EvaluationRun,
            dataset_field="training_run_id",
            ids=[run.pk for run in self.trained.values()],
        )
        # A benchmark split is an evaluation task of its own (``dataset:<id>``): its newest
        # score, of whichever model.
        self.benchmarks = {
            pk for pk in ids if evaluation_split_of(self.splits.get(pk, set())) is not None
        }
        specs = {f"{DATASET_PREFIX}{pk}": pk for pk in self.benchmarks}
        newest = (
            EvalResult.objects.filter(task__in=specs)
            .values("task")
            .annotate(last=Max("id"))
            .order_by()
        )
        results = EvalResult.objects.select_related("run").in_bulk([row["last"] for row in newest])
        self.benchmark_result = {specs[r.task]: r for r in results.values()}


def _imported(dataset: Dataset) -> Step:
    return Step(
        "imported",
        "Imported",
        DONE,
        f"{dataset.query_count:,} queries · {dataset.negative_count:,} negatives",
        reverse("curation:dataset_detail", args=[dataset.pk]),
    )


def _mined(dataset: Dataset, run: MiningRun | None, splits: set[str]) -> Step:
    step = Step("mined", "Mined")
    if run is None and (split := evaluation_split_of(splits)) is not None:
        # As on the dataset's page: mined negatives are training data, not a benchmark's.
        step.state, step.summary = SKIPPED, f"{split} split of a benchmark: not mined"
        return step
    if run is None:
        step.action, step.action_url = (
            "Mine hard negatives",
            reverse("curation:mining_new", args=[dataset.pk]),
        )
        if dataset.negative_count:
            step.state, step.summary = SKIPPED, "came with its negatives"
        return step
    step.state, step.url = _job_state(run), reverse("curation:mining_run_detail", args=[run.pk])
    added = (run.stats or {}).get("negatives_added")
    step.summary = (
        f"{added:,} negatives added"
        if step.state == DONE and added is not None
        else run.get_status_display()
    )
    return step


def _judged(dataset: Dataset, run: CascadeRun | None) -> Step:
    step = Step("judged", "Judged")
    step.action, step.action_url = (
        "Run the cascade",
        reverse("curation:cascade_new", args=[dataset.pk]),
    )
    if run is None:
        return step
    stages = (run.stats or {}).get("stages", {})
    flagged = stages.get(str(len(run.stages)), {}).get("flagged")
    step.state, step.url = _job_state(run), reverse("curation:cascade_run_detail", args=[run.pk])
    # A stage flags queries (one of whose negatives it tagged), not passages.
    step.summary = f"${run.cost_usd:.4f}" + (
        f" · {flagged:,} {'query' if flagged == 1 else 'queries'} flagged" if flagged else ""
    )
    return step


def _reviewed(dataset: Dataset, campaign, report) -> Step:
    step = Step("reviewed", "Reviewed")
    step.action, step.action_url = "Start a review campaign", reverse("review:campaign_list")
    if campaign is None:
        return step
    step.url = reverse("review:campaign_detail", args=[campaign.pk])
    step.summary = f"{campaign.done_count:,} of {campaign.item_count:,} items"
    kappa = _kappa(report)
    if kappa is not None:
        step.summary += f" · κ {kappa:.3f} vs people"
    if report is not None:
        step.state = DONE
    else:
        step.state = RUNNING
        step.action, step.action_url = (
            "Compute the agreement report",
            reverse("review:agreement_index") + f"?campaign={campaign.pk}",
        )
    return step


def _approved(dataset: Dataset, approval, latest, cascade) -> Step:
    step = Step("approved", "Approved")
    step.action = "Approve the cascade's verdicts"
    step.action_url = reverse("review:approval_new") + (f"?run={cascade.pk}" if cascade else "")
    if approval is not None:
        step.state = DONE
        step.url = reverse("review:approval_detail", args=[approval.pk])
        gate = "gate met" if approval.gate_passed else "gate not met: reason given"
        step.summary = f"{approval.false_negative_count:,} false negatives · {gate}"
    elif latest is not None and latest.status in RUNNING_STATUSES:
        step.state, step.summary = RUNNING, "being applied"
        step.url = reverse("review:approval_detail", args=[latest.pk])
    elif latest is not None and latest.revoked_at is not None:
        step.summary = "the last approval was revoked"
    return step


def _frozen(dataset: Dataset, snapshot) -> Step:
    step = Step("frozen", "Frozen")
    step.action, step.action_url = (
        "Freeze a snapshot",
        reverse("curation:dataset_detail", args=[dataset.pk]),
    )
    if snapshot is not None:
        step.state = DONE
        step.url = reverse("curation:snapshot_detail", args=[snapshot.pk])
        manifest = snapshot.manifest or {}
        queries = manifest.get("counts", {}).get("queries_out")
        held = (manifest.get("held_out") or {}).get("queries")
        step.summary = snapshot.policy + (f" · {queries:,} queries" if queries is not None else "")
        if held:
            step.summary += f" (+{held:,} held out for evaluation)"
    return step


def _trained(snapshot, trained, newest) -> Step:
    """``trained``: the newest run that made a model; ``newest``: the newest run of all."""
    step = Step("trained", "Trained")
    if snapshot is not None:
        step.action, step.action_url = (
            "Train on the snapshot",
            reverse("training:new", args=[snapshot.pk]),
        )
    run = trained or newest
    if run is None:
        return step
    step.state, step.url = _job_state(run), reverse("training:run_detail", args=[run.pk])
    step.summary = (
        f"run #{run.pk} · {model_short_name(run.base_model)} · {run.get_method_display()}"
    )
    if newest is not None and newest.pk != run.pk:
        state = "running" if _job_state(newest) == RUNNING else newest.get_status_display().lower()
        step.note = f"newer run #{newest.pk} {state}"
        step.note_url = reverse("training:run_detail", args=[newest.pk])
    return step


def _evaluated(training, run) -> Step:
    """``run``: the newest evaluation of ``training``, the run the Trained cell is about."""
    step = Step("evaluated", "Evaluated")
    if training is None or training.status not in USABLE_STATUSES:
        return step
    step.action = f"Evaluate run #{training.pk}"
    step.action_url = reverse("evaluation:new") + f"?training_run={training.pk}"
    if run is None:
        return step
    step.state, step.url = _job_state(run), reverse("evaluation:run_detail", args=[run.pk])
    step.summary = f"run #{training.pk}"
    if step.state == DONE and (scores := _scores(run)) is not None:
        if scores.task:
            step.summary += f" · {scores.task} nDCG@10 {scores.mean * 100:.2f}"
        else:
            step.summary += f" · mean nDCG@10 {scores.mean * 100:.2f} over {scores.tasks} tasks"
        if scores.delta is not None:
            step.summary += f" (Δ {scores.delta * 100:+.2f} vs base)"
        elif scores.base_partial:
            step.summary += " (base not evaluated on every task)"
        else:
            step.summary += " (base not evaluated)"
    return step


def _benchmark_steps(dataset: Dataset, steps: list[Step], result: EvalResult | None) -> None:
    """A benchmark split is evaluated on, not trained on: the training steps nobody took
    are skipped (a cascade run on it still shows), and Evaluated is about the dataset as
    an evaluation task — its newest score, of whichever model — and offers one."""
    for step in steps:
        if step.key in ("judged", "reviewed", "approved", "frozen", "trained") and (
            step.state == TODO
        ):
            step.state, step.action, step.action_url = SKIPPED, "", None
    steps[-2].summary = steps[-2].summary or "evaluation data: not trained on"
    step = steps[-1] = Step("evaluated", "Evaluated")
    step.action = "Evaluate a model on it"
    step.action_url = reverse("evaluation:new") + f"?tasks={DATASET_PREFIX}{dataset.pk}"
    if result is None:
        return
    run = result.run
    step.state, step.url = _job_state(run), reverse("evaluation:run_detail", args=[run.pk])
    model = run.model_label or model_short_name(run.model_ref)
    step.summary = f"{model} · nDCG@10 {_ndcg(result) * 100:.2f}"


def dataset_loops(
    *, after: str | None = None, before: str | None = None, size: int = 20
) -> tuple[KeysetPage, list[DatasetLoop]]:
    """One page of datasets (by name) with their steps."""
    page = keyset_paginate(Dataset.objects.all(), key="name", after=after, before=before, size=size)
    newest = _Page(page.items)
    loops = []
    for dataset in page.items:
        pk = dataset.pk
        snapshot, trained = newest.snapshot.get(pk), newest.trained.get(pk)
        cascade = newest.cascade.get(pk)
        steps = [
            _imported(dataset),
            _mined(dataset, newest.mining.get(pk), newest.splits.get(pk, set())),
            _judged(dataset, cascade),
            _reviewed(dataset, newest.campaign.get(pk), newest.report.get(pk)),
            _approved(dataset, newest.approval.get(pk), newest.approval_any.get(pk), cascade),
            _frozen(dataset, snapshot),
            _trained(snapshot, trained, newest.training.get(pk)),
            _evaluated(trained, newest.evaluation.get(trained.pk) if trained else None),
        ]
        if pk in newest.benchmarks:
            _benchmark_steps(dataset, steps, newest.benchmark_result.get(pk))
        loops.append(DatasetLoop(dataset, steps))
    return page, loops
