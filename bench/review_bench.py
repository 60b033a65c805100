"""Review queue benchmark: server time of "submit verdict + get next item" under 1, 10 and 50
concurrent annotators, on a PostgreSQL database holding 1,000,000 candidates and 2,000,000
judgments; then a count check that no judgment was lost or duplicated.

    .venv/bin/python bench/review_bench.py                      # the full size
    .venv/bin/python bench/review_bench.py --queries 10000      # 100k candidates, quick

Data (generated with COPY into a database created for the run, ``sieve_review_bench``):
``--queries`` queries x (1 positive + 9 negatives) = 1,000,000 candidates over 200,000
passages; judgments: a teacher-margin verdict and a stage-1 LLM verdict on every negative, and
a stage-2 verdict on 200,000 of the stage-1 flagged ones = 2,000,000. A campaign is created by
the real service (stratified sample of 50,000 items, overlap 2, 50 annotators) and its creation
time is reported too.

Each annotator is a separate process (as separate web workers would be; threads would share
one GIL) with its own database connection, looping over ``judgment_submit`` — which saves the
verdict and returns the next item in one transaction: one timed operation per verdict, exactly
what the page's POST does before rendering. Three modes: "paced" (each annotator pauses
``--think`` seconds, x0.5-1.5, between verdicts — a person needs several seconds per item, so
this is still ~10x faster than people), "unpaced" (back to back: a saturation test of the
machine) and "HTTP view" (paced; the whole request in-process through Django's test client with
``HX-Request``: session, permission checks, submit + next, the pane's reads and the template).
Every 10th verdict is sent twice with the same client token (a double click), which must not
count. Latencies are per operation, p50 and p95; the run ends by checking that every accepted
verdict is exactly one active submission, one human judgment and one count on its item, that no
item has more than k answers and that the campaign's done counter equals its done items.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_review_bench"
NEGATIVES = 9
PASSAGES = 200_000
WORDS = (
    "coffee water brew grind bean roast bike frame size height tyre pressure bread flour yeast "
    "oven garden tomato soil seed water light battery phone charge screen river bridge city "
    "train ticket price minute hour degree steep press"
).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000, help="x10 candidates")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--items", type=int, default=50_000, help="campaign sample size")
    parser.add_argument("--reuse", action="store_true", help="use the data generated before")
    parser.add_argument("--generate-only", action="store_true", help="generate, measure nothing")
    parser.add_argument("--think", type=float, default=0.3, help="seconds between verdicts")
    parser.add_argument(
        "--trap",
        action="store_true",
        help="only the planner-trap case: a new campaign beside a large past one, "
        "picks before and after ANALYZE",
    )
    parser.add_argument("--past-items", type=int, default=500_000, help="--trap: past campaign")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SIEVE_VAR_DIR", "/tmp/sieve-review-bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    sys.path.insert(0, str(ROOT))
    if not args.reuse:
        _create_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not args.reuse:
        started = time.perf_counter()
        shape = generate(args.queries)
        print(
            f"generated {shape['candidates']:,} candidates, {shape['judgments']:,} judgments "
            f"in {time.perf_counter() - started:.0f} s (COPY)",
            flush=True,
        )
    if args.generate_only:
        return
    if args.trap:
        planner_trap(past_items=args.past_items)
        return
    campaign, users = make_campaign(items=args.items)

    # Paced: each annotator pauses --think seconds between verdicts (a person needs several
    # seconds per item, so this is already ~10x faster than real people). Unpaced: every
    # annotator fires back to back — a saturation test of this 2-core machine.
    phases = [
        ("services, paced", False, args.think, ((1, 100), (10, 40), (50, 12))),
        ("services, unpaced", False, 0.0, ((1, 200), (10, 40), (50, 10))),
        ("HTTP view, paced", True, args.think, ((1, 60), (10, 20))),
    ]
    rows = []
    for label, view, think, steps in phases:
        for concurrency, per_person in steps:
            timing = run_phase(campaign, users[:concurrency], per_person, view=view, think=think)
            rows.append((label, concurrency, *timing))
            print_row(rows[-1])
    check_counts(campaign, sum(r[-1] for r in rows))


def print_row(row) -> None:
    mode, concurrency, p50, p95, ops, seconds, _accepted = row
    print(
        f"{mode:18s} {concurrency:3d} annotators: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
        f"({ops:,} verdicts in {seconds:.1f} s, {ops / seconds:,.0f}/s)",
        flush=True,
    )


# --- data --------------------------------------------------------------------------------------


def _create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _copy(cursor, table: str, columns: str, lines) -> None:
    """Stream ``lines`` (COPY text format) in chunks of ~8 MB."""
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            if buffer.tell() > 8_000_000:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def generate(n_queries: int) -> dict:
    from django.db import connection

    rng = random.Random(5)
    now = "2026-11-23 00:00:00+00"
    n_passages = min(PASSAGES, n_queries * 2)
    with connection.cursor() as django_cursor:
        cursor = django_cursor.connection.cursor()
        cursor.execute(
            "INSERT INTO curation_corpus (id, name, description, passage_count, created_at) "
            "VALUES (1, 'bench', '', %s, now())",
            [n_passages],
        )
        cursor.execute(
            "INSERT INTO curation_dataset (id, name, corpus_id, source, format, description, "
            "query_count, positive_count, negative_count, created_at) VALUES "
            "(1, 'bench', 1, '', 'bge', '', %s, %s, %s, now())",
            [n_queries, n_queries, n_queries * NEGATIVES],
        )

        def text(words: int) -> str:
            return " ".join(rng.choice(WORDS) for _ in range(words))

        _copy(
            cursor, "curation_passage", "id, corpus_id, doc_id, title, text, text_hash",
            (f"{i}\t1\td{i}\t\t{text(45)}\t{i:032x}\n" for i in range(1, n_passages + 1)),
        )  # fmt: skip
        _copy(
            cursor, "curation_query", "id, dataset_id, query_id, text",
            (f"{q}\t1\tq{q}\t{text(7)}\n" for q in range(1, n_queries + 1)),
        )  # fmt: skip

        def candidates():
            cid = 0
            for q in range(1, n_queries + 1):
                picked = rng.sample(range(1, n_passages + 1), NEGATIVES + 1)
                for rank, passage in enumerate(picked):
                    cid += 1
                    role = "positive" if rank == 0 else "negative"
                    rank_sql = "\\N" if rank == 0 else str(rank)
                    yield f"{cid}\t{q}\t{passage}\t{role}\toriginal\t{rank_sql}\t0.5\n"

        _copy(
            cursor, "curation_candidate",
            "id, query_id, passage_id, role, origin, rank, teacher_score", candidates(),
        )  # fmt: skip
        n_candidates = n_queries * (NEGATIVES + 1)
        negatives = [c for c in range(1, n_candidates + 1) if (c - 1) % (NEGATIVES + 1)]
        stage2_quota = n_candidates // 5  # 200,000 of 1,000,000
        counted = {"judgments": 0}

        def judgments():
            jid = 0
            stage2_left = stage2_quota
            for cid in negatives:
                r = rng.random()
                for rater, verdict in (
                    ("teacher:all-minilm-l6-v2:margin", "relevant" if r < 0.05 else "not_relevant"),
                    ("llm:gpt-4o-mini:stage1", "relevant" if r < 0.3 else "not_relevant"),
                ):
                    jid += 1
                    yield _judgment(jid, cid, rater, verdict, now)
                if r < 0.3 and stage2_left:
                    stage2_left -= 1
                    jid += 1
                    verdict = "relevant" if rng.random() < 0.6 else "not_relevant"
                    yield _judgment(jid, cid, "llm:gpt-4o:stage2", verdict, now)
            counted["judgments"] = jid

        _copy(
            cursor, "curation_judgment",
            "id, candidate_id, rater, rater_kind, verdict, tag, rationale, note, model_name, "
            "prompt_version, prompt_hash, source_run, created_at",
            judgments(),
        )  # fmt: skip
        for table in ("corpus", "dataset", "passage", "query", "candidate", "judgment"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('curation_{table}', 'id'), "
                f"(SELECT max(id) FROM curation_{table}))"
            )
        cursor.execute("ANALYZE")
    return {"candidates": n_candidates, "judgments": counted["judgments"]}


def _judgment(jid: int, cid: int, rater: str, verdict: str, now: str) -> str:
    rationale = "The passage names the same facts as the positive." if verdict == "relevant" else ""
    return (
        f"{jid}\t{cid}\t{rater}\tmachine\t{verdict}\t\t{rationale}\t\t{rater.split(':')[1]}\t"
        f"v1\t\t\t{now}\n"
    )


def make_campaign(*, items: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from curation.models import Candidate, Dataset
    from review.services.campaigns import review_campaign_create

    User = get_user_model()
    group = Group.objects.get(name="annotator")
    users = []
    for i in range(50):
        user, _ = User.objects.get_or_create(username=f"bench{i:02d}")
        user.set_password("pw")
        user.save()
        user.groups.add(group)
        users.append(user)
    third = items // 4
    started = time.perf_counter()
    campaign = review_campaign_create(
        name=f"bench {time.time():.0f}",
        dataset=Dataset.objects.get(name="bench"),
        strata={"stage2_flagged": third, "stage1_only": third, "unflagged": items - 2 * third},
        annotators=users,
        overlap=2,
        seed=1,
    )
    print(
        f"campaign of {campaign.item_count:,} items (3 strata sampled from "
        f"{Candidate.objects.count():,} candidates) created in "
        f"{time.perf_counter() - started:.2f} s",
        flush=True,
    )
    return campaign, users


# --- the measured loop -------------------------------------------------------------------------


def run_phase(campaign, users, per_person: int, *, view: bool, think: float):
    """One process per annotator (as separate web workers would be: no shared GIL), started
    together; returns p50 and p95 in ms, operations, wall seconds, verdicts accepted."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # children must not share the parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(users))
    results = context.Queue()
    processes = [
        context.Process(
            target=_annotator,
            args=(campaign.pk, user.pk, per_person, view, think, barrier, results),
        )
        for user in users
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    collected = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    errors = [r for r in collected if isinstance(r, str)]
    if errors:
        raise SystemExit("errors: " + "; ".join(errors[:5]))
    latencies = sorted(d for durations, _ in collected for d in durations)
    accepted = sum(n for _, n in collected)
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000
    return p50, p95, len(latencies), seconds, accepted


def _annotator(campaign_id, user_id, per_person, view, think, barrier, results) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from review.models import ReviewCampaign

    try:
        campaign = ReviewCampaign.objects.get(pk=campaign_id)
        user = get_user_model().objects.get(pk=user_id)
        act = _view_actor(campaign, user) if view else _service_actor(campaign, user)
        rng = random.Random(user_id)
        durations, accepted = [], 0
        barrier.wait()
        for n in range(per_person):
            if think:
                time.sleep(think * rng.uniform(0.5, 1.5))
            duration, ok = act(n)
            durations.append(duration)
            accepted += ok
        results.put((durations, accepted))
    except Exception as exc:  # reported by the parent
        results.put(f"{user_id}: {exc!r}")
    finally:
        connection.close()


def _service_actor(campaign, user):
    from curation.models import Verdict
    from review.services.queue import judgment_submit, review_item_next_for_user

    state = {"item": review_item_next_for_user(campaign=campaign, user=user)}
    verdicts = [Verdict.RELEVANT, Verdict.NOT_RELEVANT, Verdict.NOT_RELEVANT, Verdict.UNSURE]

    def act(n: int):
        item = state["item"]
        token = f"{user.username}-{campaign.pk}-{time.monotonic_ns()}"
        started = time.perf_counter()
        result = judgment_submit(
            campaign=campaign, item_id=item.pk, user=user,
            verdict=verdicts[n % 4], client_token=token,
        )  # fmt: skip
        duration = time.perf_counter() - started
        if n % 10 == 0:  # a double click: same token, must change nothing
            again = judgment_submit(
                campaign=campaign, item_id=item.pk, user=user,
                verdict=verdicts[n % 4], client_token=token,
            )  # fmt: skip
            assert again.duplicate
        state["item"] = result.next_item
        return duration, 1

    return act


def _view_actor(campaign, user):
    import re

    from django.test import Client

    client = Client(HTTP_HOST="localhost")  # an allowed host of the default settings
    client.force_login(user)
    url = f"/review/{campaign.pk}/work/"
    state = {"html": client.get(url).content.decode()}
    verdicts = ["relevant", "not_relevant", "partly_relevant", "unsure"]

    def act(n: int):
        html = state["html"]
        data = {
            "item": re.search(r'name="item" value="(\d+)"', html).group(1),
            "token": re.search(r'name="token" value="([0-9a-f]+)"', html).group(1),
            "verdict": verdicts[n % 4],
        }
        started = time.perf_counter()
        response = client.post(url + "submit", data, HTTP_HX_REQUEST="true")
        duration = time.perf_counter() - started
        assert response.status_code == 200 and b"message-error" not in response.content
        if n % 10 == 0:
            client.post(url + "submit", data, HTTP_HX_REQUEST="true")
        state["html"] = response.content.decode()
        return duration, 1

    return act


def planner_trap(*, past_items: int) -> None:
    """Issue 13's trap, kept caught (run it on a fresh database: ``--trap`` without
    ``--reuse``): a past campaign of ``past_items`` items (half still open) is the only one in
    the table and in its statistics; a new campaign of 2,000 items is created (a) as the
    service did before (no ANALYZE: its rows unknown to the planner until autovacuum) and (b)
    after ``tables_analyze``, what the service does now. One annotator, 150 verdicts back to
    back through ``judgment_submit`` (submit + next pick), p50/p95 of each."""
    from unittest import mock

    from django.db import connection

    from core.db import tables_analyze
    from review.models import ReviewItem

    with connection.cursor() as django_cursor:
        cursor = django_cursor.connection.cursor()
        cursor.execute(
            "INSERT INTO review_reviewcampaign (name, dataset_id, strata, seed, overlap, blind, "
            "status, item_count, done_count, created_at) VALUES "
            "('past', 1, '{}', 0, 2, true, 'active', %s, 0, now()) RETURNING id",
            [past_items],
        )
        past = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO review_reviewitem (campaign_id, candidate_id, stratum, position, "
            "judgment_count, done) SELECT %s, id, 'unflagged', id, "
            "CASE WHEN id %% 2 = 0 THEN 2 ELSE 1 END, id %% 2 = 0 "
            "FROM curation_candidate WHERE role = 'negative' ORDER BY id LIMIT %s",
            [past, past_items],
        )
        cursor.execute("ANALYZE review_reviewitem")
    with mock.patch("review.services.campaigns.tables_analyze", lambda *models: None):
        fresh, users = make_campaign(items=2_000)
    annotator = users[:1]
    before = run_phase(fresh, annotator, 150, view=False, think=0.0)
    print_row(("not analysed (before)", 1, *before))
    started = time.perf_counter()
    tables_analyze(ReviewItem)
    print(f"ANALYZE review_reviewitem: {(time.perf_counter() - started) * 1000:.0f} ms")
    after = run_phase(fresh, annotator, 150, view=False, think=0.0)
    print_row(("analysed (ours)", 1, *after))
    print(
        f"planner trap, {past_items:,} past items: p50 {before[0]:.1f} → {after[0]:.1f} ms, "
        f"p95 {before[1]:.1f} → {after[1]:.1f} ms; load average {os.getloadavg()[0]:.2f}"
    )


def check_counts(campaign, accepted: int) -> None:
    from django.db.models import Count, F, Q, Sum

    from curation.models import Judgment
    from review.models import ReviewItem, ReviewSubmission

    active = ReviewSubmission.objects.filter(item__campaign=campaign, undone_at__isnull=True)
    judgments = Judgment.objects.filter(source_run=f"campaign:{campaign.pk}").count()
    counted = ReviewItem.objects.filter(campaign=campaign).aggregate(s=Sum("judgment_count"))["s"]
    over = active.values("item_id").annotate(n=Count("id")).filter(n__gt=campaign.overlap).count()
    drift = (
        ReviewItem.objects.filter(campaign=campaign)
        .annotate(n=Count("submissions", filter=Q(submissions__undone_at__isnull=True)))
        .exclude(n=F("judgment_count"))
        .count()
    )
    campaign.refresh_from_db()
    done = ReviewItem.objects.filter(campaign=campaign, done=True).count()
    print(
        f"check: {accepted:,} verdicts accepted, {active.count():,} active submissions, "
        f"{judgments:,} human judgments, items' judgment_count sum {counted:,}, "
        f"items over k: {over}, items whose count drifted: {drift}, "
        f"campaign done_count {campaign.done_count:,} = done items {done:,}",
        flush=True,
    )
    ok = accepted == active.count() == judgments == counted and over == drift == 0
    ok = ok and campaign.done_count == done
    print("zero lost or duplicated judgments" if ok else "MISMATCH", flush=True)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
