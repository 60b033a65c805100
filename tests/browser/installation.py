"""An installation that looks like a real one, for the page tour (test_page_tour.py): the
demo dataset imported by an import job, judged by a two-stage cascade (the real one, against
a local OpenAI-compatible server, with judges that err as RLHN's did), reviewed by three
people, the agreement report computed, the cascade approved, three snapshots frozen; mining,
synthesis, training, evaluation and a policy comparison as the finished rows their jobs leave
(no model is loaded). ``installation()`` builds it and names each page to visit."""

import json
import uuid

from django.db.models import F
from django.urls import reverse

from core.models import JobStatus
from curation.cascade.approvals import approval_execute
from curation.cascade.create import cascade_estimate, cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.datasets.formats.base import text_hash, text_id
from curation.datasets.imports import import_job_create, import_job_run
from curation.datasets.snapshots import export_job_create, export_job_run
from curation.demo import DEMO_FALSE_NEGATIVES, demo_file_write
from curation.models import (
    Candidate,
    Corpus,
    Dataset,
    ExportJob,
    ImportJob,
    MiningRun,
    Passage,
    Query,
    SynthesisRun,
    Verdict,
)
from curation.synthesis.core import synthetic_query_id
from evaluation.models import EvalResult, EvaluationRun
from experiments.models import PolicyComparison
from review.agreement.services import agreement_report_create, agreement_report_run
from review.approvals.services import approval_submit
from review.models import ReviewItem
from review.services.campaigns import review_campaign_create
from review.services.decisions import adjudication_decide
from review.services.queue import judgment_submit, review_item_next_for_user
from tests.curation.cascade.cascade_support import docs_of, query_of, stage
from tests.evaluation import write_beir
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.sends import capture_sends
from tests.support.users import user_with_role
from training.core.config import TrainConfig
from training.models import TrainingRun

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OPENAI = "https://api.openai.com/v1"


def _imports(tmp_path, cora) -> tuple[ImportJob, Dataset, ImportJob]:
    """The demo dataset through an import job, a BEIR test split for evaluation, and an
    upload that failed on a bad line."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    bad = uploads / "msmarco-hn.jsonl"
    bad.write_text('{"query": "q1", "pos": ["p"], "neg": ["n"]}\n{"query": "q2", "pos": "p"}\n')
    jobs = [
        import_job_create(source_path=str(path), source_name=path.name, user=cora, **options)
        for path, options in (
            (demo_file_write(path=uploads / "demo.bge.jsonl"), {"dataset_name": "demo"}),
            (write_beir(uploads / "coffee-eval", queries=BREWING_QUERIES, qrels=BREWING_QRELS,
                        corpus={f"d{n}": ("", text) for n, text in enumerate(BREWING)}),
             {"dataset_name": "coffee-eval", "format": "beir", "options": {"split": "test"}}),
            (bad, {"dataset_name": "msmarco-hn"}),
        )
    ]  # fmt: skip
    for job in jobs:
        import_job_run(job_id=job.pk)
    demo, beir, failed = (ImportJob.objects.select_related("dataset").get(pk=j.pk) for j in jobs)
    assert failed.status == JobStatus.FAILED, failed.status
    return demo, beir.dataset, failed


BREWING = [
    "Steep a french press for four minutes, then press slowly.",
    "Soft, filtered water brews the clearest tea.",
    "Espresso wants a fine grind, like table salt.",
    "Cold brew steeps for twelve to eighteen hours.",
]
BREWING_QUERIES = {"q1": "how long to steep a french press", "q2": "best water for brewing tea",
                   "q3": "how fine to grind for espresso"}  # fmt: skip
BREWING_QRELS = {"q1": {"d0": 1}, "q2": {"d1": 1}, "q3": {"d2": 1}}
FALSE_NEGATIVE_TEXTS = {passage for _, passage in DEMO_FALSE_NEGATIVES}


def _judge(body: dict) -> Reply:
    """Judges as RLHN's did, not perfectly: both find most of the demo's false negatives;
    the cheap stage 1 also flags a document of a query in three, which stage 2 mostly clears,
    and stage 2 misses one false negative."""
    docs, query = docs_of(body), query_of(body)
    true = [n for n, text in docs.items() if text in FALSE_NEGATIVE_TEXTS]
    other = [n for n in docs if n not in true]
    if body["model"] == "gpt-4o-mini":
        better = true + (other[:1] if len(query) % 3 == 0 else [])
        worse = other[1:2] if len(query) % 4 == 0 else []
    else:
        better = [n for n in true if len(query) % 7] + (other[:1] if len(query) % 5 == 0 else [])
        worse = []
    reasoning = " ".join(
        f"Doc ({n}) answers the question as the ground truth does." if n in better
        else f"Doc ({n}) is on the topic but does not answer the question."
        for n in docs
    )  # fmt: skip
    answer = json.dumps({"reasoning": reasoning, "better": better, "worse": worse})
    return Reply(content=answer, completion_tokens=150 + 12 * len(docs))


def _cascade(dataset, cora, monkeypatch, tmp_path):
    from curation.llm.tokens import token_counter_for

    # Count tokens with bpe-openai (no vocabulary download), as the cascade tests do.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    monkeypatch.delenv("SIEVE_TIKTOKEN_DOWNLOAD", raising=False)
    monkeypatch.setenv("SIEVE_TEST_LLM_KEY", "sk-test")
    token_counter_for.cache_clear()
    with FakeOpenAIServer(_judge) as server:
        stages = [stage(1, server), stage(2, server)]
        run = cascade_run_create(
            dataset=dataset, stages=stages, forward_tags=["better", "worse"],
            false_negative_tags=["better"], budget_usd="5", user=cora, enqueue=False,
            estimate=cascade_estimate(dataset=dataset, stages=stages),
        )  # fmt: skip
        cascade_run_execute(run_id=run.pk)
    token_counter_for.cache_clear()
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    # The pages show the endpoint a real installation calls, not this test's port.
    run.stages = [{**s, "base_url": OPENAI} for s in run.stages]
    run.save(update_fields=["stages"])
    return run


def _review(dataset, run, cora, annotators):
    """A blind campaign over the cascade's flags and a sample of the rest: two people answered
    every item, the third some; one disagreement adjudicated; the agreement report; the
    cascade approved."""
    campaign = review_campaign_create(
        name="Demo false negatives, round 1", dataset=dataset, cascade_run=run,
        strata={"stage2_flagged": 20, "stage1_only": 10, "unflagged": 60}, annotators=annotators,
        overlap=3, blind=True, seed=7, created_by=cora,
        guidelines="Relevant: the passage answers the query as well as the positive does.\n"
        "Partly relevant: it answers part of it. Unsure: say why in a note.",
    )  # fmt: skip
    ann1, ann2, ann3 = annotators
    for user, limit, slip in ((ann2, None, 6), (ann3, None, 9), (ann1, 30, 5)):
        item, answered = review_item_next_for_user(campaign=campaign, user=user), 0
        while item is not None and answered != limit:
            candidate = item.candidate
            truth = (candidate.query.text, candidate.passage.text) in DEMO_FALSE_NEGATIVES
            verdict = Verdict.RELEVANT if truth else Verdict.NOT_RELEVANT
            if answered % slip == slip - 1:
                verdict = Verdict.PARTLY_RELEVANT if truth else Verdict.UNSURE
            item = judgment_submit(
                campaign=campaign, item_id=item.pk, user=user, verdict=verdict,
                client_token=uuid.uuid4().hex,
                note="answers it as the positive does" if truth and answered % 2 else "",
            ).next_item  # fmt: skip
            answered += 1
    split = ReviewItem.objects.filter(campaign=campaign, judgment_count=3).order_by("pk").first()
    adjudication_decide(
        campaign=campaign, item_id=split.pk, label="relevant", user=cora,
        note="It answers the query: same facts as the positive.",
    )  # fmt: skip
    report, _ = agreement_report_create(campaign=campaign, user=cora)
    agreement_report_run(report_id=report.pk)
    report.refresh_from_db()
    approval = approval_submit(
        cascade_run=run, report=report, user=cora, enqueue=False,
        reason="Checked the flags of the first 30 queries by hand as well.",
    )  # fmt: skip
    approval_execute(run_id=approval.pk)
    return campaign, report, approval


def _snapshots(dataset, cora) -> dict:
    policies = (("default", {}), ("remove_hn", {}),
                ("relabel", {"held_out": 0.1, "held_out_seed": 1}))  # fmt: skip
    jobs = [
        export_job_create(dataset=dataset, policy=policy, format="bge", user=cora, **held_out)
        for policy, held_out in policies
    ]
    for job in jobs:
        export_job_run(job_id=job.pk)
    return {job.policy: ExportJob.objects.get(pk=job.pk).snapshot for job in jobs}


# Triplets a generator wrote for corpus passages (found by their first words).
SYNTHETIC = (
    ("Decaffeinated coffee is made", "how is the caffeine taken out of coffee beans",
     "Decaf still holds a little caffeine, about 2 mg per cup."),
    ("Coffee was first cultivated", "where was coffee first grown",
     "Brazil grows about a third of the world's coffee today."),
    ("The Tour de France, first held", "when was the first tour de france",
     "The Giro d'Italia is the first of cycling's three grand tours each year."),
)  # fmt: skip


def _mining_and_synthesis(dataset, cora):
    """Mining and synthesis as their jobs end (their stats are the services' keys), with the
    mined negatives and the generated triplets in the dataset as a real run leaves them."""
    passages = list(Passage.objects.filter(corpus=dataset.corpus).order_by("pk"))
    added = 0
    for n, query in enumerate(Query.objects.filter(dataset=dataset).order_by("pk")[:12]):
        taken = set(Candidate.objects.filter(query=query).values_list("passage_id", flat=True))
        for rank, passage in enumerate([p for p in passages[n * 5 :] if p.pk not in taken][:2]):
            Candidate.objects.create(
                query=query, passage=passage, role="negative", origin="mined", rank=rank + 1,
                teacher_score=round(0.71 - 0.04 * rank, 3),
            )  # fmt: skip
            added += 1
    for start, text, negative in SYNTHETIC:
        positive = Passage.objects.get(corpus=dataset.corpus, text__startswith=start)
        query = Query.objects.create(
            dataset=dataset, text=text,
            query_id=synthetic_query_id(passage_doc_id=positive.doc_id, query=text),
        )  # fmt: skip
        written = Passage.objects.create(
            corpus=dataset.corpus, doc_id=text_id(negative), text=negative,
            text_hash=text_hash("", negative),
        )  # fmt: skip
        for role, passage, score in (("positive", positive, 0.82), ("negative", written, 0.57)):
            Candidate.objects.create(
                query=query, passage=passage, role=role, origin="generated", teacher_score=score
            )
    Corpus.objects.filter(pk=dataset.corpus_id).update(passage_count=F("passage_count") + 3)
    Dataset.objects.filter(pk=dataset.pk).update(
        query_count=F("query_count") + 3, positive_count=F("positive_count") + 3,
        negative_count=F("negative_count") + 3 + added,
    )  # fmt: skip
    done = {"status": JobStatus.SUCCEEDED, "progress": 1.0, "created_by": cora}
    mining = MiningRun.objects.create(
        dataset=dataset, model_name=BASE_MODEL, num_negatives=2, range_min=10, range_max=50,
        relative_margin=0.05, progress_message=f"{added} negatives added to 12 queries",
        stats={"queries": 36, "queries_with_positives": 36, "negatives_selected": 72,
               "negatives_added": added, "negatives_already_present": 72 - added,
               "queries_with_new_negatives": 12, "teacher_judgments": 72,
               "teacher_flagged_relevant": 2, "corpus_passages": 60, "passages_encoded": 60,
               "precision": "fp32", "corpus_seconds": 3.1, "query_encode_seconds": 0.4,
               "search_seconds": 0.02, "write_seconds": 0.05},
        **done,
    )  # fmt: skip
    synthesis = SynthesisRun.objects.create(
        dataset=dataset, sample_size=6, seed=3, teacher_model=BASE_MODEL, cost_usd="0.0031",
        generator={"model": "gpt-4o-mini", "base_url": OPENAI},
        progress_message="3 triplets kept of 6 passages",
        stats={"passages_sampled": 6, "queries_generated": 6, "negatives_generated": 6,
               "unusable_answers": 0, "dropped_positive_not_in_top_k": 2,
               "dropped_negative_too_close": 1, "triplets_kept": 3, "queries_added": 3,
               "passages_added": 3, "paid_calls": 12, "cached_calls": 0, "failed_calls": 0,
               "input_tokens": 4_210, "output_tokens": 980, "cost_usd": "0.003100"},
        **done,
    )  # fmt: skip
    return mining, synthesis


def _history(final: float) -> list[dict]:
    return [
        {"step": s, "epoch": round(s / 120, 3), "loss": round(final + 1.6 * 0.97**s, 4),
         "learning_rate": 2e-4 * min(1, s / 12) * (1 - s / 130), "elapsed_s": round(s * 0.9, 2)}
        for s in range(5, 121, 5)
    ]  # fmt: skip


def _training_and_evaluation(snapshots, eval_dataset, cora, tmp_path):
    """The policy comparison that made a fine-tune per snapshot and evaluated each and the
    base model, as those jobs leave their rows; then a fine-tune that ran out of memory."""
    config = TrainConfig.defaults()
    config.base_model = BASE_MODEL
    config = config.resolved().to_dict()
    tasks = [f"dataset:{eval_dataset.pk}", "SciFact", "NFCorpus"]
    names = [eval_dataset.name, "SciFact", "NFCorpus"]  # as the status line names them
    done = {"status": JobStatus.SUCCEEDED, "progress": 1.0, "created_by": cora}

    def evaluate(scores, **fields) -> EvaluationRun:
        run = EvaluationRun.objects.create(
            tasks=tasks, base_model=BASE_MODEL, **done, **fields,
            progress_message="nDCG@10 "
            + ", ".join(f"{t} {s * 100:.2f}" for t, s in zip(names, scores, strict=True)),
            stats={"model": {"ref": fields["model_ref"], "device": "cuda:0", "precision": "fp16",
                             "max_seq_length": 256, "load_seconds": 2.4},
                   "documents_encoded": 8_820, "documents_cached": 0, "queries_encoded": 603},
        )  # fmt: skip
        for task, score, size in zip(tasks, scores, (4, 5_183, 3_633), strict=True):
            EvalResult.objects.create(
                run=run, task=task, split="test", main_score=score, ndcg_at_10=score,
                recall_at_100=min(1.0, score + 0.28), mrr_at_10=score - 0.02, corpus_size=size,
                query_count=3 if size == 4 else 300, evaluation_seconds=size / 900,
            )  # fmt: skip
        return run

    base_scores = (0.512, 0.645, 0.316)
    base = evaluate(base_scores, model_ref=BASE_MODEL, model_key=BASE_MODEL,
                    model_label="all-MiniLM-L6-v2")  # fmt: skip
    comparison = PolicyComparison.objects.create(
        dataset=snapshots["default"].dataset, name="RLHN policies on demo", train_config=config,
        policies=list(snapshots), eval_tasks=tasks, progress_message="3 training runs queued",
        stats={"snapshots": {p: s.pk for p, s in snapshots.items()}, "training_runs": {},
               "base_evaluation_run": base.pk},
        **done,
    )  # fmt: skip
    runs = {}
    for gain, (policy, snapshot) in zip((0.004, 0.011, 0.019), snapshots.items(), strict=True):
        history = _history(0.24 - gain)
        run = TrainingRun.objects.create(
            snapshot=snapshot, name=f"demo {policy}", base_model=BASE_MODEL, method="lora",
            config=config, step=120, total_steps=120, output_dir=str(tmp_path / policy),
            artifact_kind="adapter", artifact_path=str(tmp_path / policy / "adapter"),
            history=history, progress_message=f"step 120 of 120 · loss {history[-1]['loss']}",
            metrics={"device": "cuda:0", "precision": "bf16", "trainable_params": 73_728,
                     "total_params": 22_786_944, "rows": snapshot.manifest["counts"]["rows"],
                     "samples_per_s": 212.4, "tokens_per_s": 31_870.0, "gpu_memory_max_mb": 1942,
                     "train_loss": history[-1]["loss"]},
            log_tail=f"LoRA r=8 on all-MiniLM-L6-v2, snapshot #{snapshot.pk}\n"
            f"step 120 of 120 · loss {history[-1]['loss']}\nsaved the adapter",
            **done,
        )  # fmt: skip
        comparison.stats["training_runs"][policy] = run.pk
        runs[policy] = run
        evaluate(
            [round(s + gain * (1 + n / 4), 4) for n, s in enumerate(base_scores)],
            training_run=run, model_ref=run.artifact_path, model_key=f"training:{run.pk}",
            model_label=run.name,
        )  # fmt: skip
    comparison.save(update_fields=["stats"])
    TrainingRun.objects.create(
        snapshot=snapshots["relabel"], name="full fine-tune, batch 256", base_model=BASE_MODEL,
        method="full", config={**config, "method": "full", "batch_size": 256}, step=3,
        total_steps=120, progress=0.025, status=JobStatus.FAILED, created_by=cora,
        error="CUDA out of memory: a batch of 256 does not fit; lower the batch size or turn "
        "on gradient caching.",
    )  # fmt: skip
    return runs, comparison


def installation(django_user_model, tmp_path, monkeypatch, settings) -> dict:
    """Build it; returns each page to visit: name -> (username or None, path)."""
    from curation import tasks as curation_tasks
    from review import tasks as review_tasks

    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    settings.SIEVE_MODEL_DIR = tmp_path / "models"
    # The jobs run here, in the test; nothing goes to a broker.
    capture_sends(
        monkeypatch, curation_tasks.import_job_run, curation_tasks.export_job_run,
        review_tasks.agreement_report_run,
    )  # fmt: skip
    cora = user_with_role(django_user_model, "cora", "curator")
    annotators = [user_with_role(django_user_model, f"ann{n}", "annotator") for n in (1, 2, 3)]
    user_with_role(django_user_model, "vic", "viewer")
    user_with_role(django_user_model, "root", "admin")
    import_job, eval_dataset, failed_import = _imports(tmp_path, cora)
    demo = import_job.dataset
    run = _cascade(demo, cora, monkeypatch, tmp_path)
    campaign, report, approval = _review(demo, run, cora, annotators)
    snapshots = _snapshots(demo, cora)
    mining, synthesis = _mining_and_synthesis(demo, cora)
    runs, comparison = _training_and_evaluation(snapshots, eval_dataset, cora, tmp_path)
    relabel, trained = snapshots["relabel"], runs["relabel"]
    query = Query.objects.get(dataset=demo, text="how long should french press coffee steep")
    d, c = demo.pk, campaign.pk
    gate = f"?cascade_run={run.pk}&report={report.pk}&kappa_min=0.3&precision_low_min=0.5"
    curator = {
        "overview": reverse("overview:overview"),
        "datasets": reverse("curation:dataset_list"),
        "dataset": reverse("curation:dataset_detail", args=[d]),
        # A benchmark's test split: evaluated on, not mined or trained on.
        "dataset-benchmark": reverse("curation:dataset_detail", args=[eval_dataset.pk]),
        "query": reverse("curation:query_detail", args=[query.pk]),
        "imports": reverse("curation:import_page"),
        "import-job": reverse("curation:import_job_detail", args=[import_job.pk]),
        "import-failed": reverse("curation:import_job_detail", args=[failed_import.pk]),
        "mining-new": reverse("curation:mining_new", args=[d]),
        "mining-run": reverse("curation:mining_run_detail", args=[mining.pk]),
        "cascade-new": reverse("curation:cascade_new", args=[d]),
        "cascade-run": reverse("curation:cascade_run_detail", args=[run.pk]),
        "synthesis-new": reverse("curation:synthesis_new", args=[d]),
        "synthesis-run": reverse("curation:synthesis_run_detail", args=[synthesis.pk]),
        "campaigns": reverse("review:campaign_list"),
        "campaign-new": reverse("review:campaign_create") + f"?dataset={d}",
        "campaign": reverse("review:campaign_detail", args=[c]),
        "adjudication": reverse("review:adjudication_queue", args=[c]),
        "agreement-reports": reverse("review:agreement_index"),
        "agreement-report": reverse("review:agreement_detail", args=[report.pk]),
        "approvals": reverse("review:approval_index"),
        "approval-new": reverse("review:approval_new") + gate,
        "approval": reverse("review:approval_detail", args=[approval.pk]),
        "snapshots": reverse("curation:snapshot_list"),
        "snapshot": reverse("curation:snapshot_detail", args=[relabel.pk]),
        "export-job": reverse(
            "curation:export_job_detail", args=[ExportJob.objects.get(snapshot=relabel).pk]
        ),
        "training-runs": reverse("training:run_list"),
        "training-new": reverse("training:new", args=[relabel.pk]),
        "training-run": reverse("training:run_detail", args=[trained.pk]),
        "evaluation-new": reverse("evaluation:new") + f"?training_run={trained.pk}",
        "evaluation-run": reverse(
            "evaluation:run_detail", args=[EvaluationRun.objects.get(training_run=trained).pk]
        ),
        "leaderboard": reverse("evaluation:leaderboard"),
        "experiments": reverse("experiments:experiments"),
        "comparison-new": reverse("experiments:comparison_new", args=[d]),
        "comparison": reverse("experiments:comparison_detail", args=[comparison.pk]),
        "api-token": reverse("api_token"),
        "api-docs": reverse("api-docs"),
        "api-redoc": reverse("api-redoc"),
    }
    pages = {name: ("cora", path) for name, path in curator.items()}
    pages["login"] = (None, reverse("login"))
    pages["annotator-home"] = ("ann1", reverse("review:annotator_home"))
    pages["review"] = ("ann1", reverse("review:review_page", args=[c]))
    pages["review-history"] = ("ann1", reverse("review:review_history", args=[c]))
    # A viewer reads: the links these pages show a viewer must open for a viewer.
    for name in ("overview", "dataset", "snapshot", "campaign", "training-run", "leaderboard"):
        pages[f"viewer-{name}"] = ("vic", curator[name])
    pages["admin"] = ("root", reverse("admin:index"))
    pages["admin-training-runs"] = ("root", reverse("admin:training_trainingrun_changelist"))
    return pages
