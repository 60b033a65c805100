"""The list-wise review submit (one query's candidates answered in one request) against the
one-item submit (the same kind of candidates answered one request each), over real HTTP,
measured in one run: per verdict and per query, p50 / p95, and SQL statements per submit.

    .venv/bin/python bench/listwise_bench.py                      # 20,000 queries
    .venv/bin/python bench/listwise_bench.py --reuse              # data generated before
    .venv/bin/python bench/listwise_bench.py --reuse --levels 50 --think 3   # a person's pace
    .venv/bin/python bench/listwise_bench.py --queries 2000 --levels 1 --scale 0.3   # quick

Data: ``bench/review_bench.py``'s COPY generator (``--queries`` x 1 positive + 9 negatives,
two to three machine judgments per negative) into ``sieve_listwise_bench``. Two campaigns
made by the real service from the same seed and strata, each holding EVERY negative of the
dataset (so a query's list is its 9 candidates, as a campaign meant for list-wise review
would be; a sparse sample gives lists of one or two rows): blind, overlap k = 2, 50
annotators. The list-wise phase works in one, the one-item phase in the other: the same
candidates, fresh in both (``--reuse`` makes two new campaigns each run).

The server, the logins and the measuring headers are ``bench/review_http_bench.py``'s:
gunicorn (3 sync workers, production settings plus ``bench/review_http_settings.py``'s
middleware, which answers with the request's SQL statements and its time inside Django).
Each annotator is its own process with two sessions (a real login POST each): one switched
to the list-wise mode (``POST …/work/mode``), one left on one item at a time.

* list-wise: the annotator reads the list form of the pane (``.list-form``: token, one
  ``item`` per row), waits ``--think`` seconds per row (x0.5-1.5), and sends every row's
  verdict in the one htmx post the page sends (``hx-post`` of the form: ``HX-Request``,
  ``HX-Target: review-pane``, ``X-CSRFToken``); the answer is the next list.
* one item at a time: the annotator answers as many items as it sent rows in the
  list-wise phase, one ``.verdict-form`` post each (review_http_bench's request), with the
  same ``--think`` before each.

Per verdict: a one-item submit's time; a list submit's time divided by its rows. Per query:
a list submit's time; one at a time, the sum of the same annotator's consecutive one-item
submits, as many as the rows of each list it sent (a query's candidates take that many
requests one at a time; the queue serves them interleaved with other queries, so they are
not literally the same items). Both phases of a level run back to back, list-wise first.
The run ends with review_bench's count check on both campaigns.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import review_bench  # noqa: E402  (beside this file: the generator, the count check)
import review_http_bench as http_bench  # noqa: E402  (the server, logins, one-item form)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_listwise_bench"
LEVELS = ((1, 20), (10, 6), (50, 2))  # (annotators, lists each)
VERDICTS = ("relevant", "not_relevant", "not_relevant", "unsure")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20_000, help="x 9 negatives, at most 22,222")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--reuse", action="store_true", help="use the data generated before")
    parser.add_argument("--think", type=float, default=0.3, help="seconds per verdict")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8395)
    parser.add_argument("--levels", default="1,10", help="concurrent annotators: 1, 10, 50")
    parser.add_argument("--scale", type=float, default=1.0, help="x lists per annotator")
    args = parser.parse_args()

    print(f"load before: {_loadavg()}", flush=True)
    http_bench.data_prepare(args, var_dir="/tmp/sieve-listwise-bench")
    users = annotators_make(50)
    listed, single = (campaign_make(users, label) for label in ("list-wise", "one item"))
    levels = [int(n) for n in args.levels.split(",")]
    steps = [(n, max(1, round(per * args.scale))) for n, per in LEVELS if n in levels]
    server = http_bench.server_start(args, ROOT, args.port, secrets.token_urlsafe(40))
    accepted = {"list": 0, "single": 0}
    try:
        sessions = []
        for user in users[: max(n for n, _ in steps)]:
            sessions.append(
                {
                    "list": list_session(args.port, listed.pk, user.username),
                    "single": http_bench.log_in(args.port, user.username, "pw"),
                }
            )
        print(f"{len(sessions)} annotators logged in twice (list-wise, one item)", flush=True)
        for concurrency, lists_each in steps:
            people = sessions[:concurrency]
            load = [os.getloadavg()[0]]
            lists = phase(list_client, [(args.port, listed.pk, s["list"], lists_each, args.think)
                                        for s in people])  # fmt: skip
            load.append(os.getloadavg()[0])
            rows_each = [list(out["rows"]) for out in lists["each"]]
            ones = phase(single_client, [
                (args.port, single.pk, s["single"], sum(rows), args.think)
                for s, rows in zip(people, rows_each, strict=True)
            ])  # fmt: skip
            load.append(os.getloadavg()[0])
            accepted["list"] += lists["accepted"]
            accepted["single"] += ones["accepted"]
            print_level(concurrency, args.think, lists, ones, rows_each, load)
    finally:
        http_bench.server_stop(server)
    review_bench.check_counts(listed, accepted["list"])
    review_bench.check_counts(single, accepted["single"])
    print(f"load after: {_loadavg()}", flush=True)


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# --- data ------------------------------------------------------------------------------------


def annotators_make(n: int):
    """``n`` annotators (``bench00`` …, password ``pw``), as review_bench makes them."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="annotator")
    users = []
    for i in range(n):
        user, _ = get_user_model().objects.get_or_create(username=f"bench{i:02d}")
        user.set_password("pw")
        user.save()
        user.groups.add(group)
        users.append(user)
    return users


def campaign_make(users, label: str):
    """A blind campaign, k = 2, of every negative of the dataset (each stratum asked for all
    it holds), seed 1: two calls give the same items."""
    from curation.models import Dataset
    from review.services.campaigns import review_campaign_create, stratum_candidates

    dataset = Dataset.objects.get(name="bench")
    strata = {
        stratum: stratum_candidates(dataset=dataset, stratum=stratum, cascade_run=None).count()
        for stratum in ("stage2_flagged", "stage1_only", "unflagged")
    }
    started = time.perf_counter()
    campaign = review_campaign_create(
        name=f"{label} bench {time.time():.0f}", dataset=dataset, strata=strata,
        annotators=users, overlap=2, seed=1,
    )  # fmt: skip
    print(
        f"{label} campaign: {campaign.item_count:,} items (every negative) created in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return campaign


# --- the clients -----------------------------------------------------------------------------


def list_session(port: int, campaign_id: int, username: str) -> dict:
    """A logged-in session switched to the list-wise mode, as the page's ``L`` key does."""
    cookies = http_bench.log_in(port, username, "pw")
    page = f"/review/{campaign_id}/work/"
    _, _, html = http_bench.request(port, "GET", page, cookies=cookies)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    status, _, html = http_bench.request(
        port, "POST", page + "mode", cookies=cookies, body={"mode": "list"},
        headers={**_htmx(port, page), "X-CSRFToken": csrf},
    )  # fmt: skip
    if status != 200 or "data-listwise" not in html:
        raise SystemExit(f"{username}: the switch to the list-wise mode answered {status}")
    return cookies


def _htmx(port: int, page: str) -> dict:
    return {
        "HX-Request": "true",
        "HX-Current-URL": f"https://127.0.0.1:{port}{page}",
        "HX-Target": "review-pane",
        "Referer": f"https://127.0.0.1:{port}{page}",
    }


_LIST_FORM_RE = re.compile(r'<form class="list-form".*?</form>', re.S)
_HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_REFUSED_RE = re.compile(r"(\d+) of your answers could not be saved")


def list_form(html: str) -> list[tuple[str, str]] | None:
    """The list form's hidden fields in page order (CSRF token, list token, one ``item`` per
    row); None when the pane says nothing is left."""
    form = _LIST_FORM_RE.search(html)
    return None if form is None else _HIDDEN_RE.findall(form.group(0))


def _measure(out: dict, port: int, path: str, cookies: dict, body, headers: dict) -> str:
    started = time.perf_counter()
    status, answer, html = http_bench.request(
        port, "POST", path, cookies=cookies, body=body, headers=headers
    )
    out["client"].append((time.perf_counter() - started) * 1000)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {html[:300]}")
    out["inside"].append(float(answer["X-Bench-Ms"]))
    out["sql"].append(int(answer["X-Bench-Sql"]))
    return html


def _open(port: int, campaign_id: int, cookies: dict):
    page = f"/review/{campaign_id}/work/"
    status, _, html = http_bench.request(port, "GET", page, cookies=cookies)
    assert status == 200, status
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    return page, html, {**_htmx(port, page), "X-CSRFToken": csrf}


def list_client(port: int, campaign_id: int, cookies: dict, lists: int, think: float, seed):
    """One annotator in the list-wise mode: ``lists`` list submits, every row answered."""
    page, html, headers = _open(port, campaign_id, cookies)
    rng = random.Random(seed)
    out = {"client": [], "inside": [], "sql": [], "rows": [], "accepted": 0}
    for _ in range(lists):
        fields = list_form(html)
        if fields is None:
            break
        items = [value for name, value in fields if name == "item"]
        body = fields + [(f"verdict-{item}", rng.choice(VERDICTS)) for item in items]
        if think:
            time.sleep(think * len(items) * rng.uniform(0.5, 1.5))
        html = _measure(out, port, page + "list-submit", cookies, body, headers)
        refused = _REFUSED_RE.search(html)
        out["rows"].append(len(items))
        out["accepted"] += len(items) - (int(refused.group(1)) if refused else 0)
    return out


def single_client(port: int, campaign_id: int, cookies: dict, verdicts: int, think, seed):
    """One annotator one item at a time: ``verdicts`` one-item submits."""
    page, html, headers = _open(port, campaign_id, cookies)
    rng = random.Random(seed)
    out = {"client": [], "inside": [], "sql": [], "rows": [], "accepted": 0}
    for _ in range(verdicts):
        form = http_bench.verdict_form(html)
        if form is None:
            break
        fields, _buttons = form
        fields["verdict"] = rng.choice(VERDICTS)
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        html = _measure(out, port, page + "submit", cookies, fields, headers)
        if "message-error" in html:
            raise RuntimeError(f"the one-item submit was refused: {html[:300]}")
        out["rows"].append(1)
        out["accepted"] += 1
    return out


def phase(client, calls: list[tuple]) -> dict:
    """One process per annotator, started together; each result kept apart (``each``) and
    merged."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # children must not share the parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(calls))
    results = context.Queue()

    def run(index: int, call: tuple) -> None:
        try:
            barrier.wait()
            results.put((index, client(*call, index)))
        except Exception as exc:  # reported by the parent
            results.put((index, f"annotator {index}: {exc!r}"))

    processes = [context.Process(target=run, args=(i, c)) for i, c in enumerate(calls)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    collected = dict(results.get(timeout=900) for _ in processes)
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    errors = [r for r in collected.values() if isinstance(r, str)]
    if errors:
        raise SystemExit("errors: " + "; ".join(errors[:5]))
    each = [collected[i] for i in range(len(calls))]
    merged = {key: [v for r in each for v in r[key]] for key in ("client", "inside", "sql")}
    accepted = sum(r["accepted"] for r in each)
    return {**merged, "each": each, "accepted": accepted, "seconds": seconds}


# --- the comparison --------------------------------------------------------------------------


def _p(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} / {http_bench.pct(values, 0.95):6.1f}"


def _counts(values: list[float]) -> str:
    """Statement counts: one figure when they never vary, else the median and the range."""
    low, mid, high = (round(v, 1) for v in (min(values), statistics.median(values), max(values)))
    return f"{low:g}" if low == high else f"{mid:g} ({low:g}-{high:g})"


def per_query_single(ones: dict, rows_each: list[list[int]]) -> tuple[list, list]:
    """One at a time, per query: each annotator's consecutive one-item submits summed, as
    many at a time as the rows of each list it sent in the list-wise phase."""
    times, sqls = [], []
    for out, rows in zip(ones["each"], rows_each, strict=True):
        start = 0
        for n in rows:
            chunk = slice(start, start + n)
            if start + n > len(out["client"]):
                break
            times.append(sum(out["client"][chunk]))
            sqls.append(sum(out["sql"][chunk]))
            start += n
    return times, sqls


def print_level(concurrency, think, lists, ones, rows_each, load) -> None:
    rows = [n for r in rows_each for n in r]
    per_row = [t / n for t, n in zip(lists["client"], rows, strict=True)]
    sql_row = [s / n for s, n in zip(lists["sql"], rows, strict=True)]
    query_times, query_sql = per_query_single(ones, rows_each)
    people = f"{concurrency} annotator{'s' if concurrency > 1 else ''}"
    print(
        f"\n{people}, think {think:.2f} s per verdict: {len(rows)} lists ({sum(rows)} rows, "
        f"{statistics.median(rows):g} per list median, {min(rows)}-{max(rows)}) | "
        f"{len(ones['client'])} one-item submits | load {load[0]:.2f} -> {load[1]:.2f} -> "
        f"{load[2]:.2f}\n"
        f"{'':20s}{'per verdict':>17s}{'per query':>17s}{'inside Django':>17s}"
        f"{'SQL per':>14s}{'SQL per':>14s}{'SQL per':>14s}{'verdicts':>10s}\n"
        f"{'':20s}{'p50 / p95 ms':>17s}{'p50 / p95 ms':>17s}{'per submit':>17s}"
        f"{'submit':>14s}{'verdict':>14s}{'query':>14s}{'per s':>10s}",
        flush=True,
    )
    for label, out, verdict, query, sql_verdict, sql_query in (
        ("list-wise (1 POST)", lists, per_row, lists["client"], sql_row, lists["sql"]),
        ("one item at a time", ones, ones["client"], query_times, ones["sql"], query_sql),
    ):
        print(
            f"{label:20s}{_p(verdict):>17s}{_p(query):>17s}{_p(out['inside']):>17s}"
            f"{_counts(out['sql']):>14s}{_counts(sql_verdict):>14s}{_counts(sql_query):>14s}"
            f"{out['accepted'] / out['seconds']:10.1f}",
            flush=True,
        )
    ratio_verdict = statistics.median(ones["client"]) / statistics.median(per_row)
    ratio_query = statistics.median(query_times) / statistics.median(lists["client"])
    print(
        f"{'':20s}one at a time / list-wise, p50: {ratio_verdict:.1f}x per verdict, "
        f"{ratio_query:.1f}x per query",
        flush=True,
    )


if __name__ == "__main__":
    main()
