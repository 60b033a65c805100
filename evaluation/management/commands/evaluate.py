"""manage.py evaluate (--model REF | --training-run ID) --task SPEC [--task SPEC ...]
[--mode full|streamlined] [--split test] [--batch-size B] [--max-seq-length L]
[--precision auto|fp32|bf16] [--query-prefix Q] [--passage-prefix P] [--corpus-sample N]
[--seed S] [--enqueue]
manage.py evaluate --list-tasks

Evaluates a model on mteb retrieval tasks (``beir:<folder>`` for a local BEIR folder, or an
mteb task name) with a progress line and prints the scores; ``--enqueue`` records the run for
a ``gpu`` worker instead.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from evaluation.models import EvaluationMode
from evaluation.services.execution import evaluation_run_execute
from evaluation.services.runs import evaluation_run_create
from evaluation.services.task_specs import evaluation_tasks_available
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Evaluate an embedding model on MTEB retrieval tasks (local BEIR folders or mteb's)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            default="",
            help="Hugging Face id or local folder (default: the configured model, "
            "all-MiniLM-L6-v2 offline)",
        )
        parser.add_argument(
            "--training-run", type=int, help="evaluate this training run's artifact"
        )
        parser.add_argument(
            "--task",
            dest="tasks",
            action="append",
            default=[],
            help="beir:<folder> or an mteb task name; repeat for several",
        )
        parser.add_argument(
            "--first-stage",
            help="the model is a reranker (a cross-encoder): the embedding model whose top "
            "results it re-orders ('' for the configured one; a fine-tuned reranker's default)",
        )
        parser.add_argument("--top-k", type=int, help="reranker: results re-ordered (100)")
        parser.add_argument("--mode", choices=EvaluationMode.values, default="full")
        parser.add_argument("--split", help="default: test (or the task's own split)")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--max-seq-length", type=int, help="default: the model's own")
        parser.add_argument("--precision", choices=("auto", "fp32", "bf16"))
        parser.add_argument("--query-prefix", help="default: the model family's (E5: 'query: ')")
        parser.add_argument("--passage-prefix", help="default: the model family's")
        parser.add_argument(
            "--corpus-sample",
            type=int,
            help="streamlined: documents kept besides every judged one (default 10,000)",
        )
        parser.add_argument("--seed", type=int, help="streamlined: subsample seed (default 0)")
        parser.add_argument(
            "--enqueue", action="store_true", help="queue the run for a gpu worker instead"
        )
        parser.add_argument("--list-tasks", action="store_true", help="list the tasks on offer")

    def handle(self, *args, **options):
        if options["list_tasks"]:
            for option in evaluation_tasks_available():
                self.stdout.write(f"{option.spec:<40} {option.source:<8} {','.join(option.splits)}")
            return
        if not options["tasks"]:
            raise CommandError("name at least one --task (see --list-tasks)")
        training_run = None
        if options["training_run"] is not None:
            try:
                training_run = TrainingRun.objects.get(pk=options["training_run"])
            except TrainingRun.DoesNotExist:
                raise CommandError(f"no training run #{options['training_run']}") from None
        names = {
            "split": "split",
            "batch_size": "batch_size",
            "max_seq_length": "max_seq_length",
            "precision": "precision",
            "query_prefix": "query_prefix",
            "passage_prefix": "passage_prefix",
        }
        if options["mode"] == EvaluationMode.STREAMLINED:
            names.update(corpus_sample="corpus_sample", seed="seed")
        config = {key: options[opt] for key, opt in names.items() if options[opt] is not None}
        try:
            run = evaluation_run_create(
                model_ref=options["model"],
                training_run=training_run,
                tasks=options["tasks"],
                mode=options["mode"],
                config=config,
                enqueue=options["enqueue"],
                first_stage=options["first_stage"],
                top_k=options["top_k"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["enqueue"]:
            self.stdout.write(f"queued evaluation run #{run.pk} of {run.model_label}")
            return
        started = time.monotonic()
        run = command_job_run(self, job=run, execute=evaluation_run_execute)
        self.stdout.write(
            self.style.SUCCESS(
                f"evaluation run #{run.pk} of {run.model_label} ({run.mode}) in "
                f"{time.monotonic() - started:.1f} s"
            )
        )
        for result in run.results.all():
            task_stats = run.stats["tasks"].get(result.task, {})
            encoded = task_stats.get("documents_encoded", 0)
            line = (
                f"{result.task} [{result.split}]  nDCG@10 {result.ndcg_at_10:.4f}  "
                f"recall@100 {result.recall_at_100:.4f}  MRR@10 {result.mrr_at_10:.4f}  "
                f"({result.query_count:,} queries, {result.corpus_size:,} documents, "
                + (f"{encoded:,} encoded now" if encoded else "corpus from the embedding cache")
                + f", {result.evaluation_seconds:.1f} s)"
            )
            delta = result.metrics.get("delta_vs_full")
            if delta:
                line += f"  Δ vs full {delta['main_score']:+.4f}"
            self.stdout.write(line)
        four_bit = run.stats.get("four_bit") or {}
        if four_bit.get("requested") and not four_bit.get("used"):
            self.stdout.write(f"4-bit loading not available: {four_bit.get('reason')}")
        self.stdout.write(f"mteb result JSON: {run.results_dir}")
