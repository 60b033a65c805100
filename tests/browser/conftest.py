"""Browser tests: Playwright drives Debian's chromium (``/usr/bin/chromium``; ``.ci/run``
installs it — never ``playwright install``) against pytest-django's ``live_server``.

A hand-made ``sync_playwright()`` fixture, not pytest-playwright's: the two must not be mixed in
one run. ``DJANGO_ALLOW_ASYNC_UNSAFE`` is needed because Playwright's sync API runs an event
loop in the test thread and Django refuses ORM calls from a thread with a running loop.
"""

import os
from pathlib import Path

import pytest

from tests.support.environment import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]  # fmt: skip
# Screenshots go to an ignored folder, so a test run never dirties the checkout; `make
# screenshots` writes them into docs/screenshots (the README's pictures) on purpose.
SCREENSHOTS = Path(
    os.environ.get("SIEVE_SCREENSHOTS_DIR")
    or Path(__file__).resolve().parents[2] / "var" / "screenshots"
)
VIEWPORT = {"width": 1280, "height": 860}


@pytest.fixture(scope="package")
def chromium():
    """One chromium for the browser tests (launching costs ~1.5 s); each test gets fresh
    contexts from it, so cookies and storage never leak between tests. Package scope, not
    session: Playwright's sync API keeps an event loop running in this thread while it is
    open, and later tests that call asyncio.run() would fail."""
    if not Path(CHROMIUM).exists():
        missing("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(chromium):
    """``new_page()`` opens a page in a new browser context (a separate person: own cookies).
    Every page records JavaScript dialogs (an ``alert`` from injected markup would show up
    there) and uncaught page errors."""
    contexts = []

    def make():
        context = chromium.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.dialogs = []
        page.errors = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(autouse=True)
def _role_groups(request):
    """Live-server tests run on a transactional database, which pytest-django flushes after
    each test: put back the role groups the migrations created."""
    if "live_server" not in request.fixturenames:
        return
    request.getfixturevalue("transactional_db")
    from django.contrib.auth.models import Group

    from core.roles import Role

    for role in Role.values:
        Group.objects.get_or_create(name=role)


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    """Save the visible part of the page (not the full length: small files for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# --- the review pane ---------------------------------------------------------------------


def current_item(page) -> int:
    return int(page.get_attribute("#review-pane [data-item]", "data-item"))


def press_and_wait(page, key: str) -> None:
    """Press ``key`` and wait until htmx swapped in a new pane."""
    page.evaluate("document.getElementById('review-pane').dataset.old = '1'")
    page.keyboard.press(key)
    page.wait_for_function("!document.getElementById('review-pane').dataset.old")


def counter(page, name: str) -> str:
    return page.inner_text(f'[data-counter="{name}"]').strip()
