"""How long the "Evaluate a model" form takes to load: the whole GET through Django's test
client (session, role check, the task list, the template), on a fresh PostgreSQL database.

    .venv/bin/python bench/eval_form_bench.py                  # cold, then warm, x3 each
    .venv/bin/python bench/eval_form_bench.py --repeat 5

"cold" is the first request of a web process with no task list cached in ``VAR_DIR/cache``;
"warm" is every request after it. The page's size (bytes of HTML) is reported too: the old
form listed mteb's registry (computed on a cold cache) and sent every registry task as a
checkbox. Then the picker's first search, which lists the registry on a cold cache.

Measured 2026-12-04 on the 2-core machine: before (every task a checkbox) cold 8.75 s, warm
0.161 s, 81,343 bytes; after (a search) cold 0.68 s, warm 0.014 s, 6,699 bytes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_django import database_recreate, django_setup  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_eval_form_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    database_recreate(args.url)
    django_setup(args.url)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="x")
    user.groups.add(Group.objects.get(name="curator"))
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)

    cache = Path(settings.VAR_DIR) / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    response = client.get("/leaderboard/new/")
    cold = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    warm = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        response = client.get("/leaderboard/new/")
        warm.append(time.perf_counter() - started)
    print(f"cold (no cached task list): {cold:.2f} s")
    each = ", ".join(f"{w:.3f}" for w in warm)
    print(f"warm: median {statistics.median(warm):.3f} s over {args.repeat} ({each})")
    print(f"page: {len(response.content):,} bytes")
    # The picker's first search lists mteb's registry (cold: a subprocess imports mteb).
    for label in ("cold", "warm"):
        started = time.perf_counter()
        search = client.get("/leaderboard/new/tasks", {"q": "nfcorpus"}, HTTP_HX_REQUEST="true")
        assert search.status_code == 200 and b"NFCorpus" in search.content
        print(f"first search, {label}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
