"""The annotator's verdict over real HTTP: gunicorn (sync workers, as docs/deployment.md
runs it), logged-in sessions, the exact htmx request the review page sends, 1 / 10 / 50
concurrent annotators; beside it, in the same run, the service alone (``judgment_submit``)
under the same load, to show what the request adds.

    .venv/bin/python bench/review_http_bench.py                    # 1,000,000 candidates
    .venv/bin/python bench/review_http_bench.py --reuse            # data generated before
    .venv/bin/python bench/review_http_bench.py --queries 2000     # 20k candidates, quick
    .venv/bin/python bench/review_http_bench.py --reuse --profile 200   # where a submit goes

Data: ``bench/review_bench.py``'s COPY generator (``--queries`` x 10 candidates, two to three
machine judgments per negative) into ``sieve_review_http``; a blind campaign of ``--items``
items, overlap 2, 50 annotators, created by the real service.

The server: ``gunicorn config.wsgi:application --workers 3`` with production's settings plus
one measuring middleware (``bench/review_http_settings.py``) that answers with the SQL
statements the request ran and its time inside Django. The clients speak plain HTTP to
127.0.0.1 with ``X-Forwarded-Proto: https``, as the TLS proxy in front would.

Each annotator is its own process: it logs in (GET the login form, POST it: a real session),
opens the review page once, then loops over the page's verdict form exactly as htmx sends it
(``hx-post`` of ``.verdict-form``: the form's fields — CSRF token, item, client token, note —
plus the pressed button's ``verdict``, headers ``HX-Request``, ``HX-Current-URL``,
``HX-Target: review-pane`` and ``X-CSRFToken`` from ``<body hx-headers>``), and reads the
next item from the pane it gets back. Every 10th verdict is sent twice with the same token
(a retried POST), which must not count. "Paced": a pause of ``--think`` seconds (x0.5-1.5)
between verdicts, still ~10x faster than people; ``--think 0`` is a saturation test.

Printed per concurrency: p50 / p95 / max of the whole request as the client saw it, of the
time inside Django, of the service alone; verdicts/s; SQL statements per submit; and at the
end the counts: every accepted verdict is one active submission, one human judgment and one
count on its item, no item has more than k answers, the campaign's done counter matches.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import review_bench  # noqa: E402  (beside this file: the generator, the campaign, the checks)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_review_http"
LEVELS = ((1, 100), (10, 30), (50, 10))  # (annotators, verdicts each)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000, help="x10 candidates")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--items", type=int, default=20_000, help="campaign sample size")
    parser.add_argument("--reuse", action="store_true", help="use the data generated before")
    parser.add_argument("--think", type=float, default=0.3, help="seconds between verdicts")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8391)
    parser.add_argument("--levels", default="1,10,50", help="concurrent annotators")
    parser.add_argument("--scale", type=float, default=1.0, help="x verdicts per annotator")
    parser.add_argument("--profile", type=int, default=0, help="profile N submits, no server")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="another checkout (e.g. a worktree of main): a second server runs its code on the "
        "same database, measured after ours at each level",
    )
    args = parser.parse_args()

    data_prepare(args, var_dir="/tmp/sieve-http-bench")
    campaign, users = review_bench.make_campaign(items=args.items)
    if args.profile:
        profile(campaign, users[0], args.profile)
        return
    levels = [int(n) for n in args.levels.split(",")]
    steps = [(n, max(1, round(per * args.scale))) for n, per in LEVELS if n in levels]
    accepted = service_statements(campaign, users[-1])
    secret = secrets.token_urlsafe(40)  # both servers read the same sessions
    server = server_start(args, ROOT, args.port, secret)
    other = server_start(args, Path(args.compare), args.port + 1, secret) if args.compare else None
    try:
        cookies = {user.username: log_in(args.port, user.username, "pw") for user in users}
        print(f"{len(cookies)} annotators logged in (POST /accounts/login/)", flush=True)
        rows = []
        for concurrency, per_person in steps:
            # The service alone first, then the same load over HTTP: same machine, same
            # minute, same campaign (a little further along).
            service = review_bench.run_phase(
                campaign, users[:concurrency], per_person, view=False, think=args.think
            )
            load_service = os.getloadavg()[0]
            http = http_phase(
                args.port, campaign.pk, [cookies[u.username] for u in users[:concurrency]],
                per_person, args.think,
            )  # fmt: skip
            accepted += service[-1] + http["accepted"]
            rows.append((concurrency, service, load_service, http, os.getloadavg()[0]))
            print_row(*rows[-1])
            if other is not None:
                sessions = [cookies[u.username] for u in users[:concurrency]]
                base = http_phase(args.port + 1, campaign.pk, sessions, per_person, args.think)
                accepted += base["accepted"]
                print_http(f"HTTP, {args.compare}", base, os.getloadavg()[0])
    finally:
        server_stop(server)
        if other is not None:
            server_stop(other)
    review_bench.check_counts(campaign, accepted)


def data_prepare(args, *, var_dir: str) -> None:
    """Django set up on ``args.database_url`` (created, migrated and filled with
    ``args.queries`` x 10 candidates by review_bench's COPY generator, unless ``args.reuse``).
    Shared with bench/listwise_bench.py."""
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SIEVE_VAR_DIR", var_dir)
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/10")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    sys.path.insert(0, str(ROOT))
    if not args.reuse:
        review_bench._create_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not args.reuse:
        started = time.perf_counter()
        shape = review_bench.generate(args.queries)
        print(
            f"generated {shape['candidates']:,} candidates, {shape['judgments']:,} judgments "
            f"in {time.perf_counter() - started:.0f} s (COPY)",
            flush=True,
        )


def pct(values: list[float], q: float) -> float:
    """The q-quantile, interpolated between the two nearest ranks (numpy's default): p50 is
    the median, and p95 is never below it."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def print_http(label: str, http, load) -> None:
    client, inside, sql = http["client"], http["inside"], http["sql"]
    print(
        f"    {label}: p50 {statistics.median(client):.1f}  p95 {pct(client, 0.95):.1f}  max "
        f"{max(client):.1f} ms (inside Django p50 {statistics.median(inside):.1f} p95 "
        f"{pct(inside, 0.95):.1f}); {http['accepted'] / http['seconds']:.1f} verdicts/s; SQL per "
        f"submit median {statistics.median(sql):.0f}; load {load:.2f}",
        flush=True,
    )


def print_row(concurrency, service, load_service, http, load_http) -> None:
    s_p50, s_p95, s_ops, s_seconds, _ = service
    client, inside, sql = http["client"], http["inside"], http["sql"]
    print(
        f"{concurrency:3d} annotators, think {http['think']:.2f} s\n"
        f"    HTTP (client)    p50 {statistics.median(client):6.1f}  p95 {pct(client, 0.95):6.1f}"
        f"  max {max(client):7.1f} ms   {len(client):,} requests in {http['seconds']:.1f} s "
        f"({http['accepted'] / http['seconds']:.1f} verdicts/s)  load {load_http:.2f}\n"
        f"    inside Django    p50 {statistics.median(inside):6.1f}  p95 {pct(inside, 0.95):6.1f}"
        f"  max {max(inside):7.1f} ms   SQL per submit: median {statistics.median(sql):.0f}, "
        f"max {max(sql)} (first posts: {sorted(set(http['sql_new']))}, "
        f"retried posts: {sorted(set(http['sql_dup']))})\n"
        f"    service alone    p50 {s_p50:6.1f}  p95 {s_p95:6.1f}              "
        f"{s_ops:,} verdicts in {s_seconds:.1f} s ({s_ops / s_seconds:.1f}/s)  "
        f"load {load_service:.2f}",
        flush=True,
    )


def _statements(captured) -> int:
    """Statements as the server's middleware counts them: Django's debug log also lists the
    transaction's BEGIN and COMMIT, which the execute wrapper never sees."""
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return sum(not q["sql"].startswith(control) for q in captured.captured_queries)


def service_statements(campaign, user) -> int:
    """SQL statements of ``judgment_submit`` alone (submit + next pick), the service's
    share of the request's statements; returns the verdicts it accepted."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from review.services.queue import judgment_submit, review_item_next_for_user

    item = review_item_next_for_user(campaign=campaign, user=user)
    counts = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as captured:
            result = judgment_submit(
                campaign=campaign, item_id=item.pk, user=user, verdict="not_relevant",
                client_token=secrets.token_hex(16),
            )  # fmt: skip
        counts.append(_statements(captured))
        item = result.next_item
    print(f"judgment_submit alone (submit + next item): {counts} SQL statements", flush=True)
    return len(counts)


# --- the server ------------------------------------------------------------------------------


def server_start(args, root: Path, port: int, secret: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "review_http_settings",
        "DJANGO_SECRET_KEY": secret,
        "PYTHONPATH": str(Path(__file__).resolve().parent),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [
        str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--timeout", "120", "--worker-class", "sync",
        "--no-control-socket",  # another gunicorn on this machine may own the default one
    ]  # fmt: skip
    # whitenoise warns about a missing STATIC_ROOT; the bench fetches no static file.
    (Path(os.environ["SIEVE_VAR_DIR"]) / "staticfiles").mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(command, cwd=root, env=env, start_new_session=True)
    for _ in range(300):
        try:
            status, _, _ = request(port, "GET", "/healthz")
            if status == 200:
                print(f"gunicorn up in {root}: {' '.join(command[1:])}", flush=True)
                return server
        except OSError:
            pass
        if server.poll() is not None:
            raise SystemExit("gunicorn exited at start")
        time.sleep(0.1)
    server_stop(server)
    raise SystemExit("gunicorn did not answer /healthz")


def server_stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- one client ------------------------------------------------------------------------------


def request(port: int, method: str, path: str, *, cookies=None, body=None, headers=None):
    """One request on a fresh connection (a sync worker closes it after each response);
    returns status, headers and body, and updates ``cookies`` from Set-Cookie."""
    origin = f"https://127.0.0.1:{port}"
    sent = {"Host": f"127.0.0.1:{port}", "X-Forwarded-Proto": "https", **(headers or {})}
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        sent.update({
            "Content-Type": "application/x-www-form-urlencoded", "Origin": origin,
        })  # fmt: skip
        body = urlencode(body)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        content = response.read().decode()
    finally:
        connection.close()
    if cookies is not None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            cookies[name.strip()] = rest.split(";", 1)[0]
    return response.status, response.headers, content


def log_in(port: int, username: str, password: str) -> dict:
    cookies: dict[str, str] = {}
    _, _, html = request(port, "GET", "/accounts/login/", cookies=cookies)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    status, headers, _ = request(
        port, "POST", "/accounts/login/", cookies=cookies,
        body={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"Referer": f"https://127.0.0.1:{port}/accounts/login/"},
    )  # fmt: skip
    if status != 302 or "sessionid" not in cookies:
        raise SystemExit(f"login of {username} failed: {status}")
    return cookies


_FORM_RE = re.compile(r'<form class="verdict-form".*?</form>', re.S)
_INPUT_RE = re.compile(r'<input type="(?:hidden|text)"[^>]*?name="([^"]+)" value="([^"]*)"')


def verdict_form(html: str) -> tuple[dict, list[str]] | None:
    """The fields htmx sends for the pane's verdict form and the verdicts its buttons offer;
    None when the pane says nothing is left."""
    form = _FORM_RE.search(html)
    if form is None:
        return None
    fields = dict(_INPUT_RE.findall(form.group(0)))
    fields["note"] = ""  # the note <textarea>, empty
    buttons = re.findall(r'name="verdict" value="([a-z_]+)"', form.group(0))
    return fields, buttons


def _client(port: int, campaign_id: int, cookies: dict, per_person: int, think: float, seed):
    """One annotator: the page once, then ``per_person`` verdicts as htmx posts them."""
    page = f"/review/{campaign_id}/work/"
    status, _, html = request(port, "GET", page, cookies=cookies)
    assert status == 200, status
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    htmx = {
        "HX-Request": "true",
        "HX-Current-URL": f"https://127.0.0.1:{port}{page}",
        "HX-Target": "review-pane",
        "X-CSRFToken": csrf,
        "Referer": f"https://127.0.0.1:{port}{page}",
    }
    rng = random.Random(seed)
    out = {"client": [], "inside": [], "sql": [], "sql_new": [], "sql_dup": [], "accepted": 0}
    for n in range(per_person):
        form = verdict_form(html)
        if form is None:
            break
        fields, buttons = form
        fields["verdict"] = buttons[n % len(buttons)]
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        for attempt in range(2 if n % 10 == 0 else 1):
            started = time.perf_counter()
            status, headers, body = request(
                port, "POST", page + "submit", cookies=cookies, body=fields, headers=htmx
            )
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200 or "message-error" in body:
                raise RuntimeError(f"submit answered {status}: {body[:300]}")
            sql = int(headers["X-Bench-Sql"])
            out["client"].append(elapsed)
            out["inside"].append(float(headers["X-Bench-Ms"]))
            out["sql"].append(sql)
            out["sql_dup" if attempt else "sql_new"].append(sql)
            if attempt == 0:
                out["accepted"] += 1
                next_html = body
        html = next_html
    return out


def http_phase(port: int, campaign_id: int, sessions: list[dict], per_person: int, think):
    """One process per annotator, started together (as review_bench.run_phase does)."""
    import multiprocessing

    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(sessions))
    results = context.Queue()

    def run(index: int, cookies: dict) -> None:
        try:
            barrier.wait()
            results.put(_client(port, campaign_id, cookies, per_person, think, index))
        except Exception as exc:  # reported by the parent
            results.put(f"annotator {index}: {exc!r}")

    processes = [context.Process(target=run, args=(i, c)) for i, c in enumerate(sessions)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    collected = [results.get(timeout=900) for _ in processes]
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    errors = [r for r in collected if isinstance(r, str)]
    if errors:
        raise SystemExit("errors: " + "; ".join(errors[:5]))
    merged = {
        key: [v for r in collected for v in r[key]] for key in collected[0] if key != "accepted"
    }
    return {**merged, "accepted": sum(r["accepted"] for r in collected), "seconds": seconds,
            "think": think}  # fmt: skip


# --- the profile -----------------------------------------------------------------------------


def profile(campaign, user, submits: int) -> None:
    """``submits`` verdicts through Django's whole request path in this process (test client
    after a real login POST, ``HX-Request`` like htmx), under pyinstrument when it is
    installed (``pip install pyinstrument``), else cProfile."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="localhost")
    response = client.post("/accounts/login/", {"username": user.username, "password": "pw"})
    assert response.status_code == 302, response.status_code
    page = f"/review/{campaign.pk}/work/"
    html = client.get(page).content.decode()

    def one(n: int) -> str:
        fields, buttons = verdict_form(html_box[0])
        fields["verdict"] = buttons[n % len(buttons)]
        body = client.post(page + "submit", fields, HTTP_HX_REQUEST="true").content.decode()
        assert "message-error" not in body, body[:300]
        html_box[0] = body
        return body

    html_box = [html]
    for n in range(20):  # warm up: templates compiled, connections open
        one(n)
    with CaptureQueriesContext(connection) as captured:
        one(0)
    print(f"one submit through the view: {_statements(captured)} SQL statements (+ BEGIN/COMMIT)")
    for query in captured.captured_queries:
        print("   ", query["sql"][:150].replace("\n", " "))
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
    started = time.perf_counter()
    if Profiler is not None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for n in range(submits):
            one(n)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            for n in range(submits):
                one(n)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    seconds = time.perf_counter() - started
    print(f"{submits} submits in {seconds:.2f} s: {seconds / submits * 1000:.1f} ms each "
          f"(profiler overhead included); load {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
