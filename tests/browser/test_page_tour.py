"""Every page of the web UI, opened by the role that uses it, over an installation that looks
like a real one (issue 10; tests/browser/installation.py builds it: every kind of job, most of
them run for real).

Each page must answer 200 with one <h1> and a plain title, raise no JavaScript error, log no
console error, ask no other host for anything, have no failed request (htmx's included), be
no wider than the window and show no Python internals; every link on it to this site must
open for the same person. It then saves a full-page screenshot, ``page-<name>.png`` (``make
screenshots`` writes them into docs/screenshots)."""

import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.browser.conftest import SCREENSHOTS, log_in
from tests.browser.installation import installation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOW = {"width": 1400, "height": 900}
MAX_SCREENSHOT_BYTES, MAX_SCREENSHOT_HEIGHT = 400_000, 3_200
REGISTRY = [
    {"name": "SciFact", "splits": ["test"], "description": "Scientific claim verification."},
    {"name": "NFCorpus", "splits": ["test"], "description": "Medical information retrieval."},
    {"name": "ArguAna", "splits": ["test"], "description": "Counter-argument retrieval."},
]  # fmt: skip
# No page asks another host for anything (Redoc's logo from its CDN included:
# templates/drf_spectacular/redoc.html).
OTHER_HOSTS_ALLOWED: set[str] = set()
# Python reprs and tracebacks: internals a page must never show.
INTERNALS = ("{'", "[{'", "object at 0x", "Traceback (most recent call last)")
# Stored names that pages show in words (core/labels.py, the evaluation's task names): a
# verdict, a judge, an annotator, a task spec. The API pages and the admin show them as stored.
RAW_NAMES = re.compile(r"\b(not_relevant|partly_relevant|llm:\S+:stage\d+|user:\w+|dataset:\d+)")
AS_STORED = {"api-docs", "api-redoc", "admin", "admin-training-runs"}
# Third-party pages (drf-spectacular's Swagger UI and Redoc) title the API in their own way.
NO_H1 = {"api-docs", "api-redoc"}
# Checked, but no picture: Redoc shows what Swagger UI does; the admin's lists are Django's.
NO_SCREENSHOT = {"api-redoc", "admin-training-runs"}


def _open_as(new_page, live_server, username: str | None):
    """A browser of ``username``'s own (None: signed out) that records what goes wrong."""
    origin, page = live_server.url, new_page()
    page.set_viewport_size(WINDOW)
    page.failed, page.console_errors, page.in_flight = [], [], set()

    def other_host(route):
        if route.request.url not in OTHER_HOSTS_ALLOWED:
            page.failed.append(f"asks another host for {route.request.url}")
        route.abort()

    def request_failed(request):
        page.in_flight.discard(request)
        # Leaving a page aborts what it still had in flight: no failure of the page.
        if request.url.startswith(origin) and "ERR_ABORTED" not in (request.failure or ""):
            page.failed.append(f"{request.failure} {request.url}")

    page.route(lambda url: not url.startswith((origin, "data:", "blob:")), other_host)
    page.on("request", lambda r: page.in_flight.add(r))
    page.on("requestfinished", lambda r: page.in_flight.discard(r))
    page.on("requestfailed", request_failed)
    page.on(
        "response",
        lambda r: r.status >= 400 and page.failed.append(f"{r.status} {r.request.method} {r.url}"),
    )
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and m.location.get("url") not in OTHER_HOSTS_ALLOWED
            and page.console_errors.append(m.text)
        ),
    )
    if username:
        log_in(page, live_server, username, "pw-" + username)
    return page


def _settle(page) -> None:
    """Wait until nothing has been in flight for 150 ms (htmx sections, the API schema)."""
    quiet, deadline = 0, time.monotonic() + 15
    while quiet < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        quiet = quiet + 1 if not page.in_flight else 0


def _statuses(page, urls: list[str]) -> list[int]:
    """What each URL answers to this browser's user (its session cookie), a few at a time."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())

    def status(url: str) -> int:
        request = urllib.request.Request(url, headers={"Cookie": cookie})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(status, urls))


def _inspect(page, name: str, origin: str, link_status: dict) -> list[str]:
    """What is wrong with the page on screen, in words (empty: nothing)."""
    _settle(page)
    problems = [f"JavaScript error: {e}" for e in page.errors]
    problems += [f"console error: {e}" for e in page.console_errors]
    problems += [f"failed request: {f}" for f in page.failed]
    title = page.title()
    if not title or "<" in title:
        problems.append(f"title {title!r}")
    h1 = page.locator("h1")
    if name not in NO_H1 and (h1.count() != 1 or not h1.inner_text().strip()):
        problems.append(f"{h1.count()} <h1> elements, or an empty one")
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > WINDOW["width"]:
        problems.append(f"{width} px wide in a window of {WINDOW['width']} px")
    text = page.inner_text("body")
    problems += [f"shows {raw!r}" for raw in INTERNALS if raw in text]
    if name not in AS_STORED:
        problems += [f"shows the stored name {m!r}" for m in sorted(set(RAW_NAMES.findall(text)))]
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    links = sorted({h.split("#")[0] for h in hrefs if h.startswith(origin + "/")})
    if name in NO_H1 and origin + "/" not in links:
        problems.append("no link back to the app")  # third-party pages: Sieve's bar
    new = [url for url in links if url not in link_status]
    link_status.update(zip(new, _statuses(page, new), strict=True))
    problems += [f"link {u[len(origin) :]} answers {link_status[u]}" for u in links
                 if link_status[u] >= 400]  # fmt: skip
    page.errors.clear(), page.console_errors.clear(), page.failed.clear()
    return problems


def _screenshot(page, name: str) -> None:
    """The whole page, cut at the height that keeps the file small when it is long."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"page-{name}.png"
    height = min(MAX_SCREENSHOT_HEIGHT, page.evaluate("document.documentElement.scrollHeight"))
    while True:
        clip = {"x": 0, "y": 0, "width": WINDOW["width"], "height": height}
        page.screenshot(path=str(path), full_page=True, clip=clip)
        if path.stat().st_size <= MAX_SCREENSHOT_BYTES or height <= WINDOW["height"]:
            return
        height = max(WINDOW["height"], int(height * 0.75))


def test_every_page_opens_cleanly_for_the_people_who_use_it(
    live_server, new_page, django_user_model, tmp_path, monkeypatch, settings
):
    from core.ml.hardware import Machine
    from evaluation import forms as evaluation_forms
    from evaluation import views as evaluation_views
    from evaluation.services import task_specs

    # The evaluation form asks this machine about its GPU and mteb for its registry: fixed
    # answers for both (listing mteb's registry takes seconds).
    gpu = Machine(gpu=True, gpu_names=("NVIDIA H100 80GB HBM3",), bitsandbytes=True)
    monkeypatch.setattr(evaluation_views, "machine_detect", lambda: gpu)
    monkeypatch.setattr(evaluation_forms, "machine_detect", lambda: gpu)
    monkeypatch.setattr(task_specs, "_registry_tasks", lambda: REGISTRY)
    pages = installation(django_user_model, tmp_path, monkeypatch, settings)
    origin = live_server.url
    browsers, problems = {}, {}
    for name, (user, path) in pages.items():
        if user not in browsers:
            # What a link answers depends on who follows it: one record per person.
            browsers[user] = (_open_as(new_page, live_server, user), {})
        page, link_status = browsers[user]
        response = page.goto(origin + path)
        found = [] if response.status == 200 else [f"answers {response.status}"]
        found += _inspect(page, name, origin, link_status)
        if not name.startswith("viewer-") and name not in NO_SCREENSHOT:
            _screenshot(page, name)
        if name == "review":
            # The list-wise mode: every candidate of one query at once.
            page.keyboard.press("l")
            page.wait_for_selector("[data-listwise] [data-row]")
            found += _inspect(page, "review-listwise", origin, link_status)
            _screenshot(page, "review-listwise")
            page.keyboard.press("l")
            page.wait_for_selector("#review-pane [data-item]")
        if found:
            problems[name] = found
    assert problems == {}
    # The links were looked at: a selector that found none would pass every page.
    assert sum(len(status) for _, status in browsers.values()) > 150
