"""Import benchmark: Sieve's importer vs a raw COPY and vs plain ORM bulk_create, one run.

    .venv/bin/python bench/import_bench.py                 # 1,000,000 candidate rows
    .venv/bin/python bench/import_bench.py --rows 100000   # smaller

Generates (in a temporary folder) a BGE jsonl file of N candidate rows: 1 positive + 25
negatives per query, ~600-character passages drawn from a pool of 0.4 x N distinct texts
with repeats (hard negatives recur across queries, some close together, some far apart).
Then, into a PostgreSQL database created for the run (``sieve_bench``, migrated):

  (a) ours: ``dataset_import`` end to end (parse, hash, COPY to staging, checks, merge),
      in a child process so that its peak RSS is measured on its own;
  (b) raw COPY: the same rows flattened (query text, passage text, role, rank, score),
      prepared beforehand in COPY text format, streamed into a plain table: the
      server's ingest speed, no parsing, no deduplication, no indexes;
  (c) ORM: parse the same file and ``bulk_create(batch_size=5000)`` Passage (deduplicated
      with an in-memory dict), Query and Candidate into the real tables, one transaction;
  (d) for reference, COPY into Sieve's own tables: the same data already normalized
      beforehand (distinct passages, queries, candidate pairs, with their ids) and COPYed
      into curation_passage / _query / _candidate with their indexes and foreign keys, one
      transaction, commit included: the floor any importer into this schema stands on.

Prints rows/s (candidate rows per second) of each, the ratios to the goals (ours >= 0.5x
raw COPY, >= 3x bulk_create), ours against (d), and our importer's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_django import database_recreate, django_setup

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_bench"
NEGATIVES = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="candidate rows")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", help="write the generated file here and keep it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child), args.database_url)
        return

    with tempfile.TemporaryDirectory(prefix="sieve-bench-") as scratch:
        path = Path(args.keep) if args.keep else Path(scratch) / "bench.jsonl"
        started = time.perf_counter()
        shape = generate(path, rows=args.rows, seed=args.seed)
        print(
            f"generated {path.stat().st_size / 1e6:,.0f} MB: {shape['queries']:,} queries, "
            f"{shape['rows']:,} candidate rows, {shape['distinct']:,} distinct passages "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        database_recreate(args.database_url)
        django_setup(args.database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

        flat = Path(scratch) / "flat.copy"
        _flatten(path, flat)
        results = {}
        results["raw COPY"] = bench_copy(flat)
        flat.unlink()
        print(f"raw COPY      {results['raw COPY']:8.1f} s", flush=True)

        _reset()
        ours = _run_child(path, args.database_url)
        results["ours"] = ours["seconds"]
        print(
            f"ours          {ours['seconds']:8.1f} s  peak RSS {ours['rss_mb']:.0f} MB", flush=True
        )
        print(f"              {json.dumps(ours['stats'])}", flush=True)

        _reset()
        results["ORM"] = bench_orm(path)
        print(f"bulk_create   {results['ORM']:8.1f} s", flush=True)

        _reset()
        normalized = Path(scratch) / "normalized"
        normalized.mkdir()
        _normalize(path, normalized)
        results["schema COPY"] = bench_schema_copy(normalized)
        print(f"schema COPY   {results['schema COPY']:8.1f} s", flush=True)

    rows = shape["rows"]
    rate = {name: rows / seconds for name, seconds in results.items()}
    print()
    print(f"{'method':<16}{'seconds':>10}{'rows/s':>12}")
    labels = {"ORM": "ORM bulk_create", "schema COPY": "COPY into schema"}
    for name in ("ours", "raw COPY", "ORM", "schema COPY"):
        label = labels.get(name, name)
        print(f"{label:<18}{results[name]:>8.1f}{rate[name]:>12,.0f}")
    print()
    print(f"ours / raw COPY   = {rate['ours'] / rate['raw COPY']:.2f}x  (goal >= 0.5x)")
    print(f"ours / bulk_create = {rate['ours'] / rate['ORM']:.2f}x  (goal >= 3x)")
    print(f"ours / COPY into schema = {rate['ours'] / rate['schema COPY']:.2f}x  (reference)")
    print(f"peak RSS of our importer: {ours['rss_mb']:.0f} MB")


# --- data ------------------------------------------------------------------------------


def generate(path: Path, *, rows: int, seed: int) -> dict:
    """Write a BGE file with ``rows`` candidate rows; about 40% of draws are new passages."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10)))
        for _ in range(20_000)
    ]

    def passage(number: int) -> str:
        words = rng.choices(vocabulary, k=95)
        return f"Doc {number}. " + " ".join(words)[:590]

    queries = max(1, rows // (NEGATIVES + 1))
    used: list[str] = []
    with open(path, "w", encoding="utf-8") as handle:
        for number in range(queries):

            def draw() -> str:
                # New text 40% of the time; else a repeat, half from recent queries
                # (neighbouring topics share hard negatives), half from anywhere.
                if not used or rng.random() < 0.4:
                    used.append(passage(len(used)))
                    return used[-1]
                if rng.random() < 0.5:
                    return used[rng.randrange(max(0, len(used) - 20_000), len(used))]
                return used[rng.randrange(len(used))]

            record = {
                "query": f"query {number}: " + " ".join(rng.choices(vocabulary, k=8)),
                "pos": [draw()],
                "neg": [draw() for _ in range(NEGATIVES)],
                "pos_scores": [round(rng.uniform(0.8, 1.0), 4)],
                "neg_scores": [round(rng.uniform(0.0, 0.8), 4) for _ in range(NEGATIVES)],
                "prompt": "Given a web search query, retrieve relevant passages.",
            }
            handle.write(json.dumps(record) + "\n")
    return {"queries": queries, "rows": queries * (NEGATIVES + 1), "distinct": len(used)}


def _copy_escape(text: str) -> str:
    """``text`` as a field of COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _flatten(path: Path, target: Path) -> None:
    """The file's rows as COPY text, prepared before the clock starts."""

    with open(path, encoding="utf-8") as source, open(target, "w", encoding="utf-8") as out:
        for line in source:
            record = json.loads(line)
            query = _copy_escape(record["query"])
            for text, score in zip(record["pos"], record["pos_scores"], strict=True):
                out.write(f"{query}\t{_copy_escape(text)}\tpositive\t\\N\t{score}\n")
            for rank, (text, score) in enumerate(
                zip(record["neg"], record["neg_scores"], strict=True), 1
            ):
                out.write(f"{query}\t{_copy_escape(text)}\tnegative\t{rank}\t{score}\n")


def _normalize(path: Path, folder: Path) -> None:
    """The file as rows of Sieve's tables (ids assigned here, passages deduplicated by text,
    candidate pairs by first occurrence, which keeps the positive), in COPY text format;
    prepared before the clock starts. Corpus and dataset get id 1."""
    from curation.datasets.formats import text_hash, text_id

    NULL = "\\N"  # noqa: N806 - COPY's null
    passage_ids: dict[str, int] = {}
    with (
        open(path, encoding="utf-8") as source,
        open(folder / "passage", "w", encoding="utf-8") as passages,
        open(folder / "query", "w", encoding="utf-8") as queries,
        open(folder / "candidate", "w", encoding="utf-8") as candidates,
    ):
        candidate_id = 0
        for query_pk, line in enumerate(source, 1):
            record = json.loads(line)
            query = record["query"]
            queries.write(f"{query_pk}\t1\t{text_id(query)}\t{_copy_escape(query)}\n")
            seen: set[int] = set()
            lists = (
                ("positive", record["pos"], record["pos_scores"], False),
                ("negative", record["neg"], record["neg_scores"], True),
            )
            for role, texts, scores, ranked in lists:
                for rank, (text, score) in enumerate(zip(texts, scores, strict=True), 1):
                    doc_id = text_id(text)
                    passage_pk = passage_ids.get(doc_id)
                    if passage_pk is None:
                        passage_pk = passage_ids[doc_id] = len(passage_ids) + 1
                        passages.write(
                            f"{passage_pk}\t1\t{doc_id}\t\t{_copy_escape(text)}\t"
                            f"{text_hash('', text)}\n"
                        )
                    if passage_pk in seen:
                        continue
                    seen.add(passage_pk)
                    candidate_id += 1
                    candidates.write(
                        f"{candidate_id}\t{query_pk}\t{passage_pk}\t{role}\toriginal\t"
                        f"{rank if ranked else NULL}\t{score}\n"
                    )


# --- the contenders ----------------------------------------------------------------------


def bench_copy(flat: Path) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute(
            "CREATE TABLE bench_raw_copy (query text, passage text, role text, rank integer, "
            "score double precision)"
        )
    _checkpoint()
    started = time.perf_counter()
    with connection.cursor() as cursor, open(flat, "rb") as source:
        with cursor.copy("COPY bench_raw_copy FROM STDIN") as copy:
            while block := source.read(1 << 20):
                copy.write(block)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_raw_copy")
    return seconds


def bench_schema_copy(folder: Path) -> float:
    from django.db import connection, transaction

    from curation.models import Corpus, Dataset

    Dataset.objects.create(
        id=1, name="bench-copy", corpus=Corpus.objects.create(id=1, name="bench-copy"), format="bge"
    )
    columns = {
        "curation_passage": "id, corpus_id, doc_id, title, text, text_hash",
        "curation_query": "id, dataset_id, query_id, text",
        "curation_candidate": "id, query_id, passage_id, role, origin, rank, teacher_score",
    }
    _checkpoint()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for table, names in columns.items():
            with (
                open(folder / table.removeprefix("curation_"), "rb") as source,
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
    # The commit ran the deferred foreign-key checks of every row, as it does for any writer.
    return time.perf_counter() - started


def bench_orm(path: Path) -> float:
    from django.db import transaction

    from curation.datasets.formats import text_hash, text_id
    from curation.models import Candidate, Corpus, Dataset, Passage, Query

    _checkpoint()
    started = time.perf_counter()
    with transaction.atomic():
        corpus = Corpus.objects.create(name="bench-orm")
        dataset = Dataset.objects.create(name="bench-orm", corpus=corpus, format="bge")
        passage_ids: dict[str, int] = {}
        seen_pairs: set[tuple[int, int]] = set()
        records: list[dict] = []

        def flush() -> None:
            new = {}
            for record in records:
                for text in (*record["pos"], *record["neg"]):
                    doc_id = text_id(text)
                    if doc_id not in passage_ids and doc_id not in new:
                        new[doc_id] = Passage(
                            corpus=corpus, doc_id=doc_id, text=text, text_hash=text_hash("", text)
                        )
            for passage in Passage.objects.bulk_create(new.values(), batch_size=5000):
                passage_ids[passage.doc_id] = passage.pk
            queries = Query.objects.bulk_create(
                [
                    Query(dataset=dataset, query_id=text_id(r["query"]), text=r["query"])
                    for r in records
                ],
                batch_size=5000,
            )
            candidates = []
            for query, record in zip(queries, records, strict=True):
                lists = (
                    ("positive", record["pos"], record["pos_scores"]),
                    ("negative", record["neg"], record["neg_scores"]),
                )
                for role, texts, scores in lists:
                    for rank, (text, score) in enumerate(zip(texts, scores, strict=True), 1):
                        pair = (query.pk, passage_ids[text_id(text)])
                        if pair in seen_pairs:
                            continue
                        seen_pairs.add(pair)
                        candidates.append(
                            Candidate(
                                query_id=pair[0],
                                passage_id=pair[1],
                                role=role,
                                rank=rank if role == "negative" else None,
                                teacher_score=score,
                            )
                        )
            Candidate.objects.bulk_create(candidates, batch_size=5000)
            records.clear()

        with open(path, encoding="utf-8") as source:
            for line in source:
                records.append(json.loads(line))
                if len(records) >= 2000:
                    flush()
        flush()
    return time.perf_counter() - started


def _run_child(path: Path, url: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def _child(path: Path, url: str) -> None:
    django_setup(url)
    from curation.datasets.imports import dataset_import

    _checkpoint()
    started = time.perf_counter()
    result = dataset_import(source=path, dataset_name="bench-ours")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": _peak_rss_mb(), "stats": result.stats}))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process's own image. Linux's ru_maxrss keeps the high
    water mark across fork + exec, so a child of the (big) generating parent would report
    the parent's size; VmHWM belongs to the exec'd image alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- plumbing ---------------------------------------------------------------------------


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE curation_candidate, curation_query, curation_passage, curation_dataset, "
            "curation_corpus, curation_importjob RESTART IDENTITY CASCADE"
        )
        cursor.execute("VACUUM ANALYZE")


def _checkpoint() -> None:
    """Start each contender with no dirty pages left by the previous one."""
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute("CHECKPOINT")
        except Exception:  # noqa: BLE001 - needs superuser; the figures are still comparable
            pass


if __name__ == "__main__":
    main()
