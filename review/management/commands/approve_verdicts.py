"""manage.py approve_verdicts DATASET --run ID [--stage N] [--report ID] [--reason TEXT]
[--kappa-min 0.30] [--precision-min 0.5] [--async]

Approves a cascade run's verdicts (its final ones, or one stage's) for the whole dataset,
gated by the agreement report of a review campaign sampled from that run. Prints the gate;
a gate that is not met is refused unless ``--reason`` says why. Applies the verdicts here
with a progress line, or with ``--async`` queues the job for the workers.
"""

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.cascade.approvals import approval_execute
from curation.models import CascadeRun, Dataset
from review.approvals.gate import DEFAULT_KAPPA_MIN, DEFAULT_PRECISION_LOW_MIN, GateSettings
from review.approvals.services import approval_gate, approval_submit
from review.models import AgreementReport


def _number(value) -> str:
    return "undefined" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = "Approve a cascade run's verdicts for a whole dataset, gated by measured agreement."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument("--run", type=int, required=True, help="cascade run id")
        parser.add_argument("--stage", type=int, help="one stage's verdicts (default: final)")
        parser.add_argument("--report", type=int, help="agreement report id (the gate's figures)")
        parser.add_argument("--reason", default="", help="why approve when the gate is not met")
        parser.add_argument("--kappa-min", type=float, default=DEFAULT_KAPPA_MIN)
        parser.add_argument("--precision-min", type=float, default=DEFAULT_PRECISION_LOW_MIN)
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="queue it for the workers"
        )

    def _objects(self, options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        try:
            run = CascadeRun.objects.select_related("dataset").get(pk=options["run"])
        except CascadeRun.DoesNotExist:
            raise CommandError(f"no cascade run #{options['run']}") from None
        if run.dataset_id != dataset.pk:
            raise CommandError(
                f"cascade #{run.pk} judged {run.dataset.name!r}, not {dataset.name!r}"
            )
        report = None
        if options["report"] is not None:
            try:
                report = AgreementReport.objects.select_related("campaign").get(
                    pk=options["report"]
                )
            except AgreementReport.DoesNotExist:
                raise CommandError(f"no agreement report #{options['report']}") from None
        return run, report

    def handle(self, *args, **options):
        run, report = self._objects(options)
        settings = GateSettings(
            kappa_min=options["kappa_min"], precision_low_min=options["precision_min"]
        )
        try:
            gate = approval_gate(
                cascade_run=run, stage=options["stage"], report=report, settings=settings
            )
            self.stdout.write(f"gate for {gate.rater}: {'met' if gate.passed else 'NOT met'}")
            if gate.problem:
                self.stdout.write(f"  {gate.problem}")
            for check in gate.checks:
                result = "passed" if check.passed else "failed"
                self.stdout.write(
                    f"  {check.label}: {_number(check.value)} (needs >= {check.threshold}) {result}"
                )
            approval = approval_submit(
                cascade_run=run,
                stage=options["stage"],
                report=report,
                settings=settings,
                reason=options["reason"],
                enqueue=options["run_async"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["run_async"]:
            self.stdout.write(f"approval #{approval.pk} queued")
            return
        approval = command_job_run(self, job=approval, execute=approval_execute)
        self.stdout.write(
            f"approval #{approval.pk}: {approval.decision_count:,} verdicts applied, "
            f"{approval.false_negative_count:,} false negatives"
        )
