"""Adjudication queue benchmark: the curator's first page of disagreements and the count of
agreeing items, on a campaign of N finished items (k = 2), in one run:

    .venv/bin/python bench/adjudication_bench.py                 # 50,000 finished items
    .venv/bin/python bench/adjudication_bench.py --items 200000  # the campaign size limit

  (a) before: what the queue did until 2026-11-23 — tally every finished item's answers in
      correlated subqueries and keep those that disagree (the same annotations and rule,
      rebuilt here as they were);
  (b) ours: the ``ReviewItem.agreed`` flag the queue sets when an item is done, on the
      (campaign, agreed, id) index; the tallies are computed for the page's rows only.

Data (generated in SQL into a database created for the run, ``sieve_adjudication_bench``):
N negatives, a campaign over them made by the real service, two annotators who answered every
item (one disagreement in four), the flags set by the migration's backfill statement. Prints
the median of 5 timings of each, and checks both give the same items.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_adjudication_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()

    _create_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("SIEVE_VAR_DIR", str(Path(tempfile.gettempdir()) / "sieve-bench"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    campaign = generate(args.items)
    print(f"{args.items:,} finished items generated in {time.perf_counter() - started:.0f} s")

    from review.selectors import adjudication_page, consensus_count

    def ours():
        page = adjudication_page(campaign=campaign)
        return [view.item.pk for view, _ in page.items], consensus_count(campaign=campaign)

    def before():
        page = _before_queue(campaign)
        return [item.pk for item in page], _before_consensus(campaign).count()

    results = {}
    for name, run in (("before: tally scan", before), ("ours: agreed flag", ours)):
        answer = run()  # warm
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            run()
            timings.append(time.perf_counter() - t)
        results[name] = (statistics.median(timings), answer)
    (slow, first), (fast, second) = results.values()
    assert first == second, "the two ways disagree on the page or the count"
    print(f"\nfirst page of 20 disagreements + count of agreeing items ({first[1]:,}):")
    for name, (seconds, _) in results.items():
        print(f"  {name:<22}{seconds * 1000:9.1f} ms")
    print(f"  ours is {slow / fast:.0f}x faster")


def _tallied(campaign):
    """The finished items with their tallies, as review.selectors.items_with_tallies makes
    them (unchanged)."""
    from review.selectors import items_with_tallies

    return items_with_tallies(campaign=campaign)


def _before_q():
    """The rule as the queue applied it in SQL before the flag."""
    from django.db.models import F, Q

    same_label = Q(n_relevant=F("judgment_count")) | Q(n_not_relevant=F("judgment_count"))
    same_edit = Q(n_edits=0) | (Q(n_edits=F("judgment_count")) & Q(edit_min=F("edit_max")))
    return same_label & same_edit


def _before_queue(campaign):
    return list(_tallied(campaign).filter(~_before_q(), settled=False).order_by("id")[:20])


def _before_consensus(campaign):
    return _tallied(campaign).filter(_before_q(), settled=False)


def generate(n: int):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from curation.models import Corpus, Dataset
    from review.models import ReviewCampaign
    from review.services.campaigns import review_campaign_create

    corpus = Corpus.objects.create(name="bench")
    dataset = Dataset.objects.create(name="bench", corpus=corpus, format="bge")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO curation_passage (corpus_id, doc_id, title, text, text_hash) "
            "SELECT %s, 'd' || g, '', 'passage ' || g, md5(g::text) "
            "FROM generate_series(0, %s) g",
            [corpus.pk, n],
        )
        cursor.execute(
            "INSERT INTO curation_query (dataset_id, query_id, text) "
            "SELECT %s, 'q' || g, 'query ' || g FROM generate_series(0, %s) g",
            [dataset.pk, n // 10],
        )
        cursor.execute(
            "INSERT INTO curation_candidate (query_id, passage_id, role, origin, rank) "
            "SELECT q.id, p.id, 'negative', 'original', 1 + (substr(p.doc_id, 2)::int %% 10) "
            "FROM curation_passage p JOIN curation_query q "
            "ON q.query_id = 'q' || (substr(p.doc_id, 2)::int / 10) "
            "WHERE p.corpus_id = %s AND q.dataset_id = %s",
            [corpus.pk, dataset.pk],
        )
    user_model = get_user_model()
    people = [user_model.objects.create(username=name) for name in ("ann-a", "ann-b")]
    campaign = review_campaign_create(
        name="bench", dataset=dataset, strata={"unflagged": n}, annotators=people, overlap=2
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for who, person in enumerate(people):
            # a says not relevant everywhere; b says relevant on every 4th item.
            verdict = (
                "'not_relevant'"
                if who == 0
                else "CASE WHEN i.position %% 4 = 0 THEN 'relevant' ELSE 'not_relevant' END"
            )
            cursor.execute(
                "WITH j AS (INSERT INTO curation_judgment (candidate_id, rater, rater_kind, "
                "user_id, verdict, tag, rationale, note, model_name, prompt_version, "
                "prompt_hash, source_run, created_at) "
                f"SELECT i.candidate_id, %s, 'human', %s, {verdict}, '', '', '', '', '', '', "
                "%s, now() FROM review_reviewitem i WHERE i.campaign_id = %s "
                "RETURNING id, candidate_id) "
                "INSERT INTO review_reviewsubmission (item_id, user_id, judgment_id, "
                "client_token, created_at) "
                "SELECT i.id, %s, j.id, 'bench-' || %s || '-' || i.id, now() "
                "FROM j JOIN review_reviewitem i ON i.candidate_id = j.candidate_id "
                "AND i.campaign_id = %s",
                [
                    f"user:{person.username}", person.pk, f"campaign:{campaign.pk}",
                    campaign.pk, person.pk, who, campaign.pk,
                ],
            )  # fmt: skip
        cursor.execute(
            "UPDATE review_reviewitem SET judgment_count = 2, done = true WHERE campaign_id = %s",
            [campaign.pk],
        )
        cursor.execute(importlib.import_module("review.migrations.0002_item_agreed").BACKFILL)
        ReviewCampaign.objects.filter(pk=campaign.pk).update(done_count=n)
        cursor.execute("ANALYZE")
    campaign.refresh_from_db()
    return campaign


def _create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
