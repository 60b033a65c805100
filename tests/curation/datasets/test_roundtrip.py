"""Every format round-trips: import a file, export it under ``default``, import the export
into a new dataset, export again — the normalized content (queries, positive and negative
passage texts, ids where the format has them, teacher scores) is the same at every step.

Normalized = order-free: exports order negatives by rank then doc_id, and BGE /
sentence-transformers ids are hashes, so only the content is compared, never the layout.
Passages repeated within one query collapse to one (a candidate is unique per query ×
passage), so the source side is normalized as sets too.
"""

import json
from pathlib import Path

import pytest

from curation.datasets.imports import dataset_import
from curation.datasets.snapshots import snapshot_create, snapshot_file_path

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def snapshot_dir(settings, tmp_path):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"


def jsonl(path: Path):
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def bge_content(path: Path) -> dict:
    """query text -> {"pos": {(text, score)}, "neg": {(text, score)}}."""
    content: dict = {}
    for row in jsonl(path):
        entry = content.setdefault(row["query"], {"pos": set(), "neg": set()})
        for key in ("pos", "neg"):
            scores = row.get(f"{key}_scores") or [None] * len(row[key])
            assert len(scores) == len(row[key])
            entry[key] |= set(zip(row[key], scores, strict=True))
    return content


def tevatron_content(path: Path) -> dict:
    """query_id -> (query text, {(docid, title, text)} positives, {...} negatives)."""

    def passages(items):
        return frozenset((p["docid"], p.get("title") or "", p["text"]) for p in items)

    return {
        row["query_id"]: (
            row["query"],
            passages(row["positive_passages"]),
            passages(row["negative_passages"]),
        )
        for row in jsonl(path)
    }


def st_content(path: Path) -> set:
    """The set of (anchor, positive[, negative]) rows."""
    return {tuple(row.values()) for row in jsonl(path)}


def roundtrip(source: Path, *, format: str, export_format: str, name: str, **import_kwargs):
    """import → export → import the export → export; returns the two export paths."""
    first = dataset_import(source=source, dataset_name=f"{name}-1", format=format, **import_kwargs)
    export_1 = snapshot_create(dataset=first.dataset, policy="default", format=export_format)
    path_1 = snapshot_file_path(snapshot=export_1)
    second = dataset_import(source=path_1, dataset_name=f"{name}-2", format=export_format)
    export_2 = snapshot_create(dataset=second.dataset, policy="default", format=export_format)
    path_2 = snapshot_file_path(snapshot=export_2)
    assert export_1.manifest["counts"]["queries_out"] == export_2.manifest["counts"]["queries_out"]
    return path_1, path_2


BGE_ROWS = [
    {
        "query": "what is the capital of france",
        "pos": ["Paris is the capital of France.", "France's capital city is Paris."],
        "neg": ["Lyon is in France.", "Berlin is the capital of Germany.", "Lyon is in France."],
        "pos_scores": [0.98, 0.91],
        "neg_scores": [0.2, 0.05, 0.2],
    },
    {
        "query": "café opening hours ☕",
        "pos": ["The café opens at 8 am."],
        "neg": ["Tea is a drink."],
        "pos_scores": [0.7],
        "neg_scores": [0.1],
    },
]


def test_bge_roundtrip_keeps_texts_and_scores(tmp_path):
    source = write_jsonl(tmp_path / "small.jsonl", BGE_ROWS)
    path_1, path_2 = roundtrip(source, format="bge", export_format="bge", name="bge-small")
    assert bge_content(path_1) == bge_content(source)
    assert bge_content(path_2) == bge_content(source)
    # the repeated negative is exported once
    first = next(row for row in jsonl(path_1) if row["query"].startswith("what"))
    assert first["neg"].count("Lyon is in France.") == 1


@pytest.mark.parametrize("file", ["bge/msmarco.jsonl", "bge/nq.jsonl"])
def test_real_bge_files_roundtrip(shared_data, file):
    source = shared_data / file
    path_1, path_2 = roundtrip(source, format="bge", export_format="bge", name=Path(file).stem)
    expected = bge_content(source)
    assert len(expected) == 10
    assert bge_content(path_1) == expected
    assert bge_content(path_2) == expected
    # the export is a stable function of the content: same bytes from both datasets
    assert path_1.read_bytes() == path_2.read_bytes()


TEVATRON_ROWS = [
    {
        "query_id": "q1",
        "query": "who wrote hamlet",
        "positive_passages": [
            {"docid": "d1", "title": "Hamlet", "text": "Hamlet is a tragedy by Shakespeare."}
        ],
        "negative_passages": [
            {"docid": "d2", "title": "Macbeth", "text": "Macbeth is another tragedy."},
            {"docid": "d3", "title": "", "text": "Plays were performed at the Globe."},
        ],
    },
    {
        "query_id": "q2",
        "query": "globe theatre",
        "positive_passages": [
            {"docid": "d3", "title": "", "text": "Plays were performed at the Globe."}
        ],
        "negative_passages": [],
    },
]


def test_tevatron_roundtrip_keeps_ids_and_titles(tmp_path):
    source = write_jsonl(tmp_path / "small.jsonl", TEVATRON_ROWS)
    path_1, path_2 = roundtrip(
        source, format="tevatron", export_format="tevatron", name="tev-small"
    )
    assert tevatron_content(path_1) == tevatron_content(source)
    assert tevatron_content(path_2) == tevatron_content(source)


def test_real_rlhn_file_roundtrips_through_tevatron(shared_data):
    source = shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
    path_1, path_2 = roundtrip(source, format="tevatron", export_format="tevatron", name="rlhn")
    expected = tevatron_content(source)
    assert len(expected) == 25
    assert all(len(negatives) == 25 for _, _, negatives in expected.values())
    assert tevatron_content(path_1) == expected
    assert tevatron_content(path_2) == expected
    # negatives keep their mined order (rank) through both trips
    source_order = {
        r["query_id"]: [p["docid"] for p in r["negative_passages"]] for r in jsonl(source)
    }
    for path in (path_1, path_2):
        assert {
            r["query_id"]: [p["docid"] for p in r["negative_passages"]] for r in jsonl(path)
        } == source_order


def test_sentence_transformers_triplets_roundtrip(tmp_path):
    rows = [
        {
            "anchor": "how tall is everest",
            "positive": "Everest is 8,849 m high.",
            "negative": "K2 is 8,611 m high.",
        },
        {
            "anchor": "how tall is everest",
            "positive": "Everest is 8,849 m high.",
            "negative": "The Alps are in Europe.",
        },
        {
            "anchor": "largest ocean",
            "positive": "The Pacific is the largest ocean.",
            "negative": "The Atlantic is large.",
        },
        {
            "anchor": "largest ocean",
            "positive": "Pacific: the biggest ocean.",
            "negative": "The Atlantic is large.",
        },
    ]
    source = write_jsonl(tmp_path / "triplets.jsonl", rows)
    path_1, path_2 = roundtrip(
        source, format="sentence_transformers", export_format="sentence_transformers", name="st"
    )
    assert st_content(path_1) == st_content(source)
    assert st_content(path_2) == st_content(source)


def test_sentence_transformers_pairs_roundtrip(tmp_path):
    rows = [
        {"anchor": "capital of italy", "positive": "Rome is the capital of Italy."},
        {"anchor": "capital of spain", "positive": "Madrid is the capital of Spain."},
    ]
    source = write_jsonl(tmp_path / "pairs.jsonl", rows)
    path_1, path_2 = roundtrip(
        source, format="sentence_transformers", export_format="sentence_transformers", name="pairs"
    )
    assert st_content(path_1) == st_content(source)
    assert st_content(path_2) == st_content(source)


def test_beir_folder_roundtrips_through_tevatron(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    corpus = {
        "c1": ("Aspirin", "Aspirin reduces fever."),
        "c2": ("", "Ibuprofen is an NSAID."),
        "c3": ("Vitamin C", "Vitamin C does not cure colds."),
        "c4": ("Unjudged", "A distractor nobody asked about."),
    }
    write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": k, "title": t, "text": x, "metadata": {}} for k, (t, x) in corpus.items()],
    )
    write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "1", "text": "what reduces fever", "metadata": {}},
            {"_id": "2", "text": "do vitamins cure colds", "metadata": {}},
        ],
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n1\tc1\t1\n1\tc2\t1\n2\tc3\t1\n", encoding="utf-8"
    )
    path_1, path_2 = roundtrip(
        folder, format="beir", export_format="tevatron", name="beir", options={"split": "test"}
    )
    expected = {
        "1": (
            "what reduces fever",
            frozenset(
                {("c1", "Aspirin", "Aspirin reduces fever."), ("c2", "", "Ibuprofen is an NSAID.")}
            ),
            frozenset(),
        ),
        "2": (
            "do vitamins cure colds",
            frozenset({("c3", "Vitamin C", "Vitamin C does not cure colds.")}),
            frozenset(),
        ),
    }
    assert tevatron_content(path_1) == expected
    assert tevatron_content(path_2) == expected
