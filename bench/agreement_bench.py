"""Agreement report benchmark: the report job over 100,000 items × 4 raters in PostgreSQL.

    .venv/bin/python bench/agreement_bench.py                      # 100k items, 1M candidates
    .venv/bin/python bench/agreement_bench.py --items 20000 --other-candidates 0

Builds a database for the run (``sieve_bench_agreement``, migrated) with COPY: one review
campaign of N items (negatives of one dataset, four strata), two annotators who judged every
item (1% of their verdicts undone), and two LLM stages that judged every item — 4 raters,
4N judgments in scope — plus ``--other-candidates`` candidates outside the campaign with two
machine judgments each (by default the table holds 1M candidates and 2.2M judgments, so the
scope's reads must use the indexes). Then, in one run:

  (a) ours, end to end: the report job (``agreement_report_run``: job row, keyset fetch,
      statistics, bootstrap of every pair and slice, result saved), twice (cold, warm), with
      its breakdown: SQL fetch, statistics, bootstrap;
  (b) the page's cache check (is the report stale?) and a reused "compute" request;
  (c) the same ratings read as ORM objects (``select_related``) instead of values in SQL;
  (d) the bootstrap of the machine-vs-majority pairs by item resampling
      (``stats.cohen_kappa_ci``) vs the confusion-matrix multinomial we use.

Goal: (a) at most 2 s.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_django import copy_lines as _text
from bench_django import copy_text as _copy
from bench_django import database_recreate, django_setup

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_bench_agreement"
STAGE1 = "llm:gpt-4o-mini:stage1"
STAGE2 = "llm:gpt-4o:stage2"
VERDICTS = np.array(["relevant", "not_relevant", "partly_relevant", "unsure"])
STRATA = np.array(["stage2_flagged", "stage1_only", "unflagged", "synthetic"])
PER_QUERY = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--other-candidates", type=int, default=900_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    database_recreate(args.database_url)
    _django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    campaign_id = generate(items=args.items, others=args.other_candidates, seed=args.seed)
    print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)

    from django.db.models import Max

    from curation.models import Candidate, Judgment

    print(
        f"database: {Candidate.objects.aggregate(n=Max('id'))['n']:,} candidates, "
        f"{Judgment.objects.aggregate(n=Max('id'))['n']:,} judgments; "
        f"scope: {args.items:,} items × 4 raters",
        flush=True,
    )
    print()
    ours = bench_ours(campaign_id)
    print()
    bench_orm_objects(campaign_id)
    print()
    bench_bootstrap(campaign_id)
    print()
    best = min(ours)
    print(f"report job end to end: {best:.2f} s (goal <= 2 s): {'OK' if best <= 2 else 'MISSED'}")


# --- data ------------------------------------------------------------------------------------


_JUDGMENT_COLUMNS = [
    "id",
    "candidate_id",
    "rater",
    "rater_kind",
    "user_id",
    "verdict",
    "tag",
    "rationale",
    "note",
    "model_name",
    "prompt_version",
    "prompt_hash",
    "source_run",
    "created_at",
]


def _judgments_copy(ids, candidates, rater, kind, user_id, verdicts, source_run, created_at):
    """Judgment rows by COPY; tag, rationale, note, model and prompt are left empty."""
    empty = ("",) * 6
    _copy(
        "curation_judgment",
        _JUDGMENT_COLUMNS,
        _text(ids, candidates, rater, kind, user_id, verdicts, *empty, source_run, created_at),
    )


def generate(*, items: int, others: int, seed: int) -> int:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from curation.models import Corpus, Dataset
    from review.models import ReviewCampaign

    rng = np.random.default_rng(seed)
    total = items + others
    with transaction.atomic():
        corpus = Corpus.objects.create(name="bench")
        dataset = Dataset.objects.create(name="bench", corpus=corpus, format="bge")
        users = [User.objects.create_user(username=n) for n in ("ann", "ben")]
        campaign = ReviewCampaign.objects.create(name="bench", dataset=dataset, overlap=2)

        ids = np.arange(1, total + 1)
        _copy(
            "curation_passage",
            ["id", "corpus_id", "doc_id", "title", "text", "text_hash"],
            _text(
                ids,
                corpus.pk,
                np.char.add("d", ids.astype(str)),
                "",
                np.char.add("passage ", ids.astype(str)),
                np.char.zfill(ids.astype(str), 32),
            ),
        )
        queries = np.arange(1, total // PER_QUERY + 2)
        _copy(
            "curation_query",
            ["id", "dataset_id", "query_id", "text"],
            _text(queries, dataset.pk, np.char.add("q", queries.astype(str)), "question"),
        )
        _copy(
            "curation_candidate",
            ["id", "query_id", "passage_id", "role", "origin", "rank"],
            _text(
                ids,
                (ids - 1) // PER_QUERY + 1,
                ids,
                "negative",
                "original",
                (ids - 1) % PER_QUERY + 1,
            ),
        )

        # Items: the first ``items`` candidates, in a shuffled order like a sampled campaign.
        item_ids = np.arange(1, items + 1)
        candidate_of_item = rng.permutation(items) + 1
        _copy(
            "review_reviewitem",
            ["id", "campaign_id", "candidate_id", "stratum", "position", "judgment_count", "done"],
            _text(
                item_ids,
                campaign.pk,
                candidate_of_item,
                STRATA[rng.integers(0, 4, items)],
                item_ids,
                2,
                "t",
            ),
        )

        truth = rng.random(total) < 0.3
        next_id = 1
        start = 1_790_000_000  # Sept 2026
        for user in users:
            item_truth = truth[candidate_of_item - 1]
            verdict = np.where(
                rng.random(items) < 0.75, np.where(item_truth, 0, 1), rng.integers(0, 4, items)
            )
            jids = np.arange(next_id, next_id + items)
            when = (start + rng.random(items) * 70 * 86400).astype("datetime64[s]")
            _judgments_copy(
                jids,
                candidate_of_item,
                f"user:{user.username}",
                "human",
                user.pk,
                VERDICTS[verdict],
                f"campaign:{campaign.pk}",
                np.char.add(when.astype(str), "+00"),
            )
            undone = np.where(rng.random(items) < 0.01, "2026-11-20 10:00:00+00", "\\N")
            _copy(
                "review_reviewsubmission",
                [
                    "id",
                    "item_id",
                    "user_id",
                    "judgment_id",
                    "client_token",
                    "created_at",
                    "undone_at",
                ],
                _text(
                    jids,
                    item_ids,
                    user.pk,
                    jids,
                    np.char.add("b", jids.astype(str)),
                    np.char.add(when.astype(str), "+00"),
                    undone,
                ),
            )
            next_id += items
        for rater, accuracy, count in ((STAGE1, 0.7, total), (STAGE2, 0.85, items)):
            hit = np.where(rng.random(count) < accuracy, truth[:count], ~truth[:count])
            jids = np.arange(next_id, next_id + count)
            _judgments_copy(
                jids,
                np.arange(1, count + 1),
                rater,
                "machine",
                "\\N",
                np.where(hit, "relevant", "not_relevant"),
                "cascade:1",
                "2026-09-01 00:00:00+00",
            )
            next_id += count
        if others:
            jids = np.arange(next_id, next_id + others)
            _judgments_copy(
                jids,
                np.arange(items + 1, total + 1),
                "teacher:minilm:margin",
                "machine",
                "\\N",
                np.where(truth[items:], "relevant", "not_relevant"),
                "mining:1",
                "2026-09-01 00:00:00+00",
            )
        with connection.cursor() as cursor:
            for table in (
                "curation_passage",
                "curation_query",
                "curation_candidate",
                "curation_judgment",
                "review_reviewitem",
                "review_reviewsubmission",
            ):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return campaign.pk


# --- contenders --------------------------------------------------------------------------


def bench_ours(campaign_id: int) -> list[float]:
    from review.agreement.selectors import AgreementScope, agreement_report_staleness
    from review.agreement.services import agreement_report_create, agreement_report_run
    from review.models import AgreementReport, ReviewCampaign

    campaign = ReviewCampaign.objects.get(pk=campaign_id)
    scope = AgreementScope(campaign_id=campaign_id)
    times = []
    print(f"{'(a) report job':<34}{'total':>8}{'fetch':>8}{'stats':>8}{'bootstrap':>10}")
    for label in ("cold", "warm"):
        # The row a "compute" request creates; the worker's part is what we time.
        report = AgreementReport.objects.create(
            campaign=campaign, dataset_id=campaign.dataset_id, scope=scope.as_json()
        )
        started = time.perf_counter()
        agreement_report_run(report_id=report.pk)
        elapsed = time.perf_counter() - started
        report.refresh_from_db()
        assert report.status == "succeeded", report.error
        s = report.stats
        times.append(elapsed)
        print(
            f"    {label:<30}{elapsed:>7.2f}s{s['fetch_s']:>7.2f}s{s['stats_s']:>7.2f}s"
            f"{s['bootstrap_s']:>9.2f}s"
        )
    result = report.result
    print(
        f"    {result['items']:,} items, {result['human_ratings']:,} human verdicts, "
        f"{len(result['flag_pairs']) + len(result['human_pairs'])} rater pairs, "
        f"{sum(len(v) for v in result['slices'].values())} slices, "
        f"result JSON {len(str(result)) / 1e3:.0f} kB"
    )
    for machine in result["machines"]:
        print(
            f"    {machine['rater']:<26} κ {machine['kappa']:.3f} "
            f"[{machine['ci_low']:.3f}, {machine['ci_high']:.3f}] n={machine['n']:,}"
        )
    started = time.perf_counter()
    stale = agreement_report_staleness(report=report).stale
    check = time.perf_counter() - started
    started = time.perf_counter()
    reused, created = agreement_report_create(campaign=campaign)
    reuse = time.perf_counter() - started
    assert not stale and not created and reused.pk == report.pk
    print(f"(b) cache check (stale?)     {check * 1000:8.1f} ms")
    print(f"    reused 'compute' request {reuse * 1000:8.1f} ms")
    return times


def bench_orm_objects(campaign_id: int) -> None:
    """The same reads as model instances: what "loop over ORM objects" would cost."""
    from curation.models import Judgment
    from review.models import ReviewItem, ReviewSubmission

    started = time.perf_counter()
    humans = [
        (s.item.candidate_id, s.user_id, s.judgment.verdict, s.judgment_id, s.judgment.created_at)
        for s in ReviewSubmission.objects.filter(
            item__campaign_id=campaign_id, undone_at__isnull=True
        )
        .select_related("item", "judgment")
        .iterator(chunk_size=10_000)
    ]
    machines = [
        (j.candidate_id, j.rater, j.verdict, j.pk)
        for j in Judgment.objects.filter(
            rater_kind="machine",
            candidate_id__in=ReviewItem.objects.filter(campaign_id=campaign_id).values(
                "candidate_id"
            ),
        ).iterator(chunk_size=10_000)
    ]
    elapsed = time.perf_counter() - started
    print(
        f"(c) read as ORM objects      {elapsed:8.2f} s  "
        f"({len(humans) + len(machines):,} judgments, reading only, no statistics)"
    )


def bench_bootstrap(campaign_id: int) -> None:
    from review.agreement import report as rep
    from review.agreement import stats
    from review.agreement.selectors import (
        AgreementScope,
        agreement_ratings_fetch,
        judgment_cutoff_now,
    )

    ratings = agreement_ratings_fetch(
        scope=AgreementScope(campaign_id=campaign_id), judgment_cutoff=judgment_cutoff_now()
    )
    rows = rep.latest_ratings(ratings)
    matrix = rep.rating_matrix(ratings, rows)
    kinds = [r.kind for r in ratings.raters]
    humans = rep.flag_codes(
        matrix[:, [i for i, k in enumerate(kinds) if k == rep.HUMAN]],
        partly_relevant_is_false_negative=False,
    )
    majority = stats.majority(humans, n_categories=2)
    machines = [
        rep.flag_codes(matrix[:, i], partly_relevant_is_false_negative=False)
        for i, k in enumerate(kinds)
        if k == rep.MACHINE
    ]
    started = time.perf_counter()
    for flags in machines:
        stats.cohen_kappa_ci(flags, majority, n_categories=2, n_boot=1000)
    items = time.perf_counter() - started
    started = time.perf_counter()
    for flags in machines:
        stats.kappa_bootstrap_ci(stats.confusion_matrix(flags, majority, n_categories=2))
    multinomial = time.perf_counter() - started
    print(f"(d) bootstrap, 1,000 resamples, {len(machines)} machine-vs-majority pairs")
    print(f"    item resampling           {items:8.3f} s")
    print(f"    confusion multinomial     {multinomial:8.3f} s   ({items / multinomial:,.0f}x)")


# --- setup ---------------------------------------------------------------------------------


def _django(url: str) -> None:
    # The job enqueues nothing here (rows are created directly), but settings need a broker.
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    django_setup(url)


if __name__ == "__main__":
    main()
