"""A/B of one benchmark between an earlier commit and this checkout, in one run.

    .venv/bin/python bench/ab.py --base 9ae2ef4 import_bench.py --rows 200000
    .venv/bin/python bench/ab.py --base 9ae2ef4 --rounds 2 review_bench.py --queries 10000

Checks ``--base`` out into a temporary git worktree, then runs ``bench/<script> ARGS`` there
("A", the base) and here ("B", this checkout) in turn, ``--rounds`` times (A B A B …, so load
that changes during the run falls on both sides), each side on its own database (the bench's
``--database-url`` with ``_a`` / ``_b`` appended) and with the same virtualenv. Prints each
run's output under a header, the load average before each run, and the wall time of each.
The bench itself prints the figures to compare; this script adds none of its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against (A)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--database-url", default="", help="the bench's --database-url; _a / _b appended"
    )
    parser.add_argument("script", help="a file in bench/, e.g. import_bench.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the bench")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sieve-ab-") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            for round_number in range(1, args.rounds + 1):
                for side, tree in (("A", base), ("B", ROOT)):
                    _run(side, tree, args, round_number)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                check=False,
                capture_output=True,
            )


def _run(side: str, tree: Path, args, round_number: int) -> None:
    command = [sys.executable, str(tree / "bench" / args.script), *args.args]
    if args.database_url:
        command += ["--database-url", f"{args.database_url}_{side.lower()}"]
    label = f"{side} ({args.base})" if side == "A" else "B (this checkout)"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n=== round {round_number}, {label}: load average {load}", flush=True)
    started = time.monotonic()
    # The tree's own code: its folder first on the path, its own settings and var folder.
    env = {**os.environ, "PYTHONPATH": str(tree), "SIEVE_VAR_DIR": str(tree / "var" / "bench")}
    result = subprocess.run(command, cwd=tree, env=env, check=False)
    print(f"=== {label}: exit {result.returncode}, {time.monotonic() - started:.1f} s wall")


if __name__ == "__main__":
    main()
