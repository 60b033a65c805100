"""Approval benchmark: applying a cascade's final verdicts to 1,000,000 candidates on PostgreSQL.

    .venv/bin/python bench/approval_bench.py                       # 40,000 queries × 25 negatives
    .venv/bin/python bench/approval_bench.py --queries 4000        # a quick look

Builds a database for the run (``sieve_bench_approval``, migrated) with COPY: one dataset of
N queries, each with one positive and 25 mined negatives; a finished two-stage cascade run
whose stage 1 judged every negative and whose stage 2 re-judged the 30 % of queries stage 1
flagged (one LLM call per query and stage, as the cascade records them); 2 % of negatives
are false negatives. Then, in one run:

  (a) ours, the path a user feels: the approval job end to end (``approval_submit`` +
      ``approval_execute``: row, chunks of INSERT … SELECT picking each negative's final
      verdict with its judgment and LLM call, counts, job bookkeeping), with rows/s;
  (b) the baseline: the same decisions computed in Python from the ORM (judgments read
      per chunk of queries, the final verdict picked per candidate, ``bulk_create``), on the
      first 10 % of the queries, extrapolated to the whole dataset;
  (c) what the approval costs a snapshot: ``dataset_candidates_stream`` over the first
      2,000 queries with the approval in force vs with none (the precedence subquery).

Goal (issue 9): (a) at most 10 s for 1,000,000 candidates.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_django import copy_lines as _text
from bench_django import copy_text as _copy
from bench_django import database_recreate, django_setup

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_bench_approval"
NEGATIVES = 25
STAGE1 = "llm:gpt-4o-mini:stage1"
STAGE2 = "llm:gpt-4o:stage2"


def generate(*, queries: int, seed: int):
    """The dataset and its finished cascade run; returns the run."""
    from django.db import connection

    from core.models import JobStatus
    from curation.llm.stages import StageSettings
    from curation.models import CascadeRun, Corpus, Dataset

    rng = np.random.default_rng(seed)
    corpus = Corpus.objects.create(name="bench")
    dataset = Dataset.objects.create(name="bench", corpus=corpus, format="bge", query_count=queries)
    stages = [
        StageSettings(number=1, model="gpt-4o-mini").as_dict(),
        StageSettings(number=2, model="gpt-4o").as_dict(),
    ]
    run = CascadeRun.objects.create(dataset=dataset, stages=stages, status=JobStatus.SUCCEEDED)
    per_query = NEGATIVES + 1
    n = queries * per_query
    ids = np.arange(1, n + 1)
    query_of = (ids - 1) // per_query + 1
    position = (ids - 1) % per_query  # 0: the positive, 1..25: negatives by rank
    _copy(
        "curation_passage",
        ["id", "corpus_id", "doc_id", "title", "text", "text_hash"],
        _text(ids, corpus.pk, np.char.add("d", ids.astype(str)), "",
              np.char.add("passage text ", ids.astype(str)), np.char.zfill(ids.astype(str), 32)),
    )  # fmt: skip
    qids = np.arange(1, queries + 1)
    _copy(
        "curation_query",
        ["id", "dataset_id", "query_id", "text"],
        _text(qids, dataset.pk, np.char.add("q", np.char.zfill(qids.astype(str), 8)),
              np.char.add("query ", qids.astype(str))),
    )  # fmt: skip
    negative = position > 0
    _copy(
        "curation_candidate",
        ["id", "query_id", "passage_id", "role", "origin", "rank"],
        _text(ids, query_of, ids, np.where(negative, "negative", "positive"), "original",
              np.where(negative, position.astype(str), "\\N")),
    )  # fmt: skip

    # Stage 1 judged every negative; a query with a false negative (or a "worse") is flagged.
    relevant = negative & (rng.random(n) < 0.02)
    flagged_query = np.zeros(queries + 1, dtype=bool)
    flagged_query[query_of[relevant]] = True
    flagged_query[1:] |= rng.random(queries) < 0.15
    calls1 = qids
    calls2 = qids[flagged_query[1:]]
    call_ids = np.concatenate([calls1, queries + np.arange(1, len(calls2) + 1)])
    call_stage = np.concatenate([np.ones(len(calls1), int), np.full(len(calls2), 2)])
    _copy(
        "curation_llmcall",
        ["id", "key", "base_url", "model", "request", "response_text", "finish_reason",
         "input_tokens", "output_tokens", "cost_usd", "latency_ms", "attempts", "batch",
         "cascade_run_id", "stage", "created_at"],
        _text(call_ids, np.char.add("k", call_ids.astype(str)), "http://x", "m", "{}", "", "stop",
              0, 0, 0, 0, 1, "f", run.pk, call_stage, "2026-12-01 00:00:00+00"),
    )  # fmt: skip
    item_query = np.concatenate([calls1, calls2])
    _copy(
        "curation_cascadeitem",
        ["id", "run_id", "stage", "query_id", "status", "flagged", "candidate_ids", "call_id",
         "error", "updated_at"],
        _text(np.arange(1, len(item_query) + 1), run.pk, call_stage, item_query, "judged",
              np.where(call_stage == 1, np.where(flagged_query[item_query], "t", "f"), "f"),
              "[]", call_ids, "", "2026-12-01 00:00:00+00"),
    )  # fmt: skip
    negatives = ids[negative]
    second = negatives[flagged_query[query_of[negatives - 1]]]
    judged = np.concatenate([negatives, second])
    rater = np.concatenate([np.full(len(negatives), STAGE1), np.full(len(second), STAGE2)])
    # Stage 2 confirms four in five of stage 1's false negatives.
    verdict_relevant = relevant[judged - 1] & ((rater == STAGE1) | (rng.random(len(judged)) < 0.8))
    _copy(
        "curation_judgment",
        ["id", "candidate_id", "rater", "rater_kind", "verdict", "tag", "rationale", "note",
         "model_name", "prompt_version", "prompt_hash", "source_run", "created_at"],
        _text(np.arange(1, len(judged) + 1), judged, rater, "machine",
              np.where(verdict_relevant, "relevant", "not_relevant"),
              np.where(verdict_relevant, "better", ""), "", "", "m", "v1", "h",
              f"cascade:{run.pk}", "2026-12-01 00:00:00+00"),
    )  # fmt: skip
    with connection.cursor() as cursor:
        for table in ("passage", "query", "candidate", "llmcall", "cascadeitem", "judgment"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('curation_{table}', 'id'), "
                f"(SELECT MAX(id) FROM curation_{table}))"
            )
        cursor.execute("ANALYZE")
    return run


def bench_ours(run) -> float:
    from curation.cascade.approvals import approval_execute
    from review.approvals.services import approval_submit

    started = time.perf_counter()
    approval = approval_submit(cascade_run=run, reason="bench", enqueue=False)
    approval_execute(run_id=approval.pk)
    elapsed = time.perf_counter() - started
    approval.refresh_from_db()
    assert approval.status == "succeeded", approval.error
    print(
        f"(a) ours: approval job, {approval.decision_count:,} verdicts "
        f"({approval.false_negative_count:,} false negatives) in {elapsed:.2f} s = "
        f"{approval.decision_count / elapsed:,.0f} rows/s"
    )
    return elapsed


def bench_orm(run, *, queries: int) -> float:
    """The same decisions in Python, for the first ``queries`` queries, rolled back."""
    from django.db import transaction

    from curation.models import Approval, Decision, Judgment

    sample = max(1, queries // 10)
    started = time.perf_counter()
    with transaction.atomic():
        approval = Approval.objects.create(
            dataset_id=run.dataset_id, cascade_run=run, reason="baseline"
        )
        written = 0
        for start in range(1, sample + 1, 2000):
            end = min(sample, start + 1999)
            final: dict[int, tuple[int, Judgment]] = {}
            judgments = Judgment.objects.filter(
                candidate__query_id__gte=start,
                candidate__query_id__lte=end,
                source_run=f"cascade:{run.pk}",
            ).select_related("candidate")
            for judgment in judgments:
                number = 2 if judgment.rater == STAGE2 else 1
                best = final.get(judgment.candidate_id)
                if best is None or (number, judgment.pk) > (best[0], best[1].pk):
                    final[judgment.candidate_id] = (number, judgment)
            Decision.objects.bulk_create(
                [
                    Decision(
                        candidate_id=candidate_id,
                        label=judgment.verdict,
                        source="approval",
                        approval=approval,
                        judgment=judgment,
                    )
                    for candidate_id, (_, judgment) in final.items()
                ],
                batch_size=5000,
            )
            written += len(final)
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    whole = elapsed * queries / sample
    print(
        f"(b) baseline: ORM read + pick in Python + bulk_create, {written:,} verdicts of the "
        f"first {sample:,} queries in {elapsed:.2f} s = {written / elapsed:,.0f} rows/s; "
        f"extrapolated to the dataset: {whole:.1f} s"
    )
    return whole


def bench_snapshot_read(run) -> None:
    from curation.datasets.selectors import (
        approvals_in_force,
        dataset_candidates_stream,
        decision_cutoff,
    )

    in_force = [a.pk for a in approvals_in_force(dataset=run.dataset)]
    cutoff = decision_cutoff()
    for label, ids in (("no approval", []), ("approval in force", in_force)):
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            count = 0
            for _query in dataset_candidates_stream(
                dataset=run.dataset, decision_cutoff=cutoff, approval_ids=ids
            ):
                count += 1
                if count == 2000:
                    break
            best = min(best, time.perf_counter() - started)
        print(f"(c) snapshot read, first 2,000 queries, {label}: {best:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=40_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()

    database_recreate(args.database_url)
    django_setup(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    run = generate(queries=args.queries, seed=args.seed)
    print(
        f"generated {args.queries:,} queries × {NEGATIVES} negatives = "
        f"{args.queries * NEGATIVES:,} candidates judged in {time.perf_counter() - started:.0f} s;"
        f" load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    baseline = bench_orm(run, queries=args.queries)
    ours = bench_ours(run)
    bench_snapshot_read(run)
    print(
        f"approval of {args.queries * NEGATIVES:,} candidates: {ours:.2f} s (goal <= 10 s): "
        f"{'OK' if ours <= 10 else 'MISSED'}; {baseline / ours:.1f}× faster than the ORM "
        f"baseline; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
