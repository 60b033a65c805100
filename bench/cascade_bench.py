"""Cascade throughput benchmark: judged queries/s at concurrency 1, 16, 64, 256 against a local
OpenAI-compatible endpoint with 300 ms simulated latency, and CPU time per call, in one run.

    .venv/bin/python bench/cascade_bench.py [--levels 1,16,64,256] [--latency 0.3] [--waves 6]

Each level runs the real service (``cascade_run_execute``: items, prompts, ledger, judgments,
commits) on its own synthetic dataset of concurrency x waves queries with 25 negatives each,
in a fresh PostgreSQL database (``sieve_bench_cascade``). The ceiling is concurrency / latency:
the rate at which the endpoint alone would answer. "engine only" is the call engine without
the database, at the highest level. CPU ms/call is this process's CPU time (all threads) per
judged query; the database server's CPU is not in it.

The bench needs a database, and a fast OpenAI-compatible
server (asyncio, in its own process) that answers every chat completion after a fixed delay.

The tests' FakeOpenAIServer is a thread per connection in the test process; at 256 calls in
flight it would compete with the code being measured for the GIL. This one runs in a child
process, parses only the request line, headers and body length, and answers with a fixed
valid verdict, so it is never the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def django_setup(url: str, *, fresh: bool) -> None:
    if fresh:
        import psycopg

        name = url.rsplit("/", 1)[1]
        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SIEVE_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    # httpx2 logs every request at INFO (settings quiet only "httpx"): keep the figures clean.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


ANSWER = json.dumps(
    {
        "reasoning": "Doc (1) answers the query as well as the ground truth.",
        "better": [1],
        "worse": [],
    }
)


def _completion_bytes(model: str, number: int) -> bytes:
    body = json.dumps(
        {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 2500, "completion_tokens": 400, "total_tokens": 2900},
        }
    ).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _serve(port_pipe, latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        number = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                await asyncio.sleep(latency)
                number += 1
                writer.write(_completion_bytes("bench", number))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_pipe.send(server.sockets[0].getsockname()[1])
        port_pipe.close()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class LatencyServer:
    """``with LatencyServer(0.3) as base_url:`` a local endpoint answering after 300 ms."""

    def __init__(self, latency: float):
        self.latency = latency

    def __enter__(self) -> str:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.latency), daemon=True)
        self.process.start()
        port = parent.recv()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(5)


# --- the benchmark -------------------------------------------------------------------------------

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_bench_cascade"
NEGATIVES = 25


def make_dataset(name: str, *, queries: int, seed: int = 7):
    """``queries`` queries with 1 positive and 25 negatives of ~400 characters each (an MS
    MARCO-sized prompt: ~10,000 characters, ~2,500 tokens)."""
    import random

    from curation.models import Candidate, CandidateRole, Corpus, Dataset, Passage, Query

    rng = random.Random(seed)
    words = [
        "tax",
        "rate",
        "income",
        "federal",
        "state",
        "average",
        "percent",
        "law",
        "year",
        "report",
        "city",
        "water",
        "price",
        "energy",
        "health",
        "school",
        "market",
        "data",
    ]
    corpus = Corpus.objects.create(name=name)
    dataset = Dataset.objects.create(
        name=name,
        corpus=corpus,
        format="tevatron",
        query_count=queries,
        negative_count=queries * NEGATIVES,
    )
    passages = [
        Passage(
            corpus=corpus,
            doc_id=f"{name}-{i}",
            text=" ".join(rng.choices(words, k=70)),
            text_hash=f"{i:032x}",
        )
        for i in range(queries * (NEGATIVES + 1))
    ]
    Passage.objects.bulk_create(passages, batch_size=5000)
    query_rows = Query.objects.bulk_create(
        [
            Query(
                dataset=dataset, query_id=f"q{i:06d}", text=f"question {i}: " + " ".join(words[:6])
            )
            for i in range(queries)
        ],
        batch_size=5000,
    )
    candidates = []
    for i, query in enumerate(query_rows):
        block = passages[i * (NEGATIVES + 1) : (i + 1) * (NEGATIVES + 1)]
        candidates.append(Candidate(query=query, passage=block[0], role=CandidateRole.POSITIVE))
        candidates += [
            Candidate(query=query, passage=p, role=CandidateRole.NEGATIVE, rank=r)
            for r, p in enumerate(block[1:], start=1)
        ]
    Candidate.objects.bulk_create(candidates, batch_size=5000)
    return dataset


def bench_service(base_url: str, concurrency: int, queries: int) -> dict:
    from curation.cascade.create import cascade_run_create
    from curation.cascade.execute import cascade_run_execute
    from curation.llm.stages import StageSettings
    from curation.models import CascadeItem, CascadeRun

    dataset = make_dataset(f"bench-c{concurrency}", queries=queries)
    stage = StageSettings(number=1, model=f"bench-c{concurrency}", base_url=base_url,
                          price_in_per_m="0.15", price_out_per_m="0.60", concurrency=concurrency,
                          timeout_s=30, max_attempts=3)  # fmt: skip
    run = cascade_run_create(dataset=dataset, stages=[stage], estimate={}, enqueue=False)
    cpu, started = time.process_time(), time.perf_counter()
    cascade_run_execute(run_id=run.pk)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    run = CascadeRun.objects.get(pk=run.pk)
    judged = CascadeItem.objects.filter(run=run, status="judged").count()
    assert run.status == "succeeded" and judged == queries, (run.status, run.error, judged)
    return {"wall": wall, "cpu": cpu, "judged": judged}


def bench_engine(base_url: str, concurrency: int, calls: int) -> dict:
    """The call engine alone (no database): what our HTTP side costs per call."""
    from curation.llm.engine import CallPool, JudgeClient

    messages = [{"role": "system", "content": "judge"}, {"role": "user", "content": "x" * 10_000}]
    factory = lambda: JudgeClient(  # noqa: E731
        base_url=base_url,
        api_key="k",
        model="bench",  # noqa: E731
        concurrency=concurrency,
        timeout_s=30,
    )
    with CallPool(factory) as pool:
        cpu, started = time.process_time(), time.perf_counter()
        futures = [pool.submit(messages=messages, params={"temperature": 0}) for _ in range(calls)]
        for future in futures:
            future.result()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "judged": calls}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Cascade throughput against a 300 ms endpoint.")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument(
        "--waves", type=int, default=6, help="queries per level = concurrency x waves"
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    django_setup(args.database_url, fresh=True)
    print(
        f"endpoint latency {args.latency * 1000:.0f} ms; {NEGATIVES} negatives per query "
        f"(~10,000-character prompts); PostgreSQL; one process, os.cpu_count()={os.cpu_count()}"
    )
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other processes on this machine share its cores)"
    )
    print(
        f"{'what':<22}{'conc.':>6}{'queries':>9}{'wall s':>9}{'queries/s':>11}"
        f"{'ceiling':>9}{'of ceiling':>12}{'CPU ms/call':>13}{'1 core q/s':>12}"
    )
    with LatencyServer(args.latency) as base_url:
        bench_engine(base_url, 4, 8)  # warm up imports and the server
        rows = []
        for concurrency in levels:
            queries = max(20, concurrency * args.waves)
            rows.append(
                ("cascade (service)", concurrency, bench_service(base_url, concurrency, queries))
            )
            _print(*rows[-1], args.latency)
        for concurrency in levels[-1:]:
            calls = max(20, concurrency * args.waves)
            rows.append(("engine only", concurrency, bench_engine(base_url, concurrency, calls)))
            _print(*rows[-1], args.latency)
    print(
        f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        "'1 core q/s' = judged queries per second of this process's CPU time: the rate one "
        "free core would sustain"
    )


def _print(what: str, concurrency: int, result: dict, latency: float) -> None:
    rate = result["judged"] / result["wall"]
    ceiling = concurrency / latency
    print(
        f"{what:<22}{concurrency:>6}{result['judged']:>9}{result['wall']:>9.2f}{rate:>11.1f}"
        f"{ceiling:>9.0f}{rate / ceiling:>11.0%}{1000 * result['cpu'] / result['judged']:>13.2f}"
        f"{result['judged'] / result['cpu']:>12.0f}",
        flush=True,
    )


if __name__ == "__main__":
    import time

    main()
