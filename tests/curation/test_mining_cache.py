"""The corpus embedding cache: atomic entries, keys that change with the corpus and the model
settings, reuse without encoding, and the encoder's helpers."""

import shutil

import numpy as np
import pytest

from curation.embeddings import corpus_embeddings_get
from curation.mining.cache import EmbeddingCache
from curation.mining.encode import (
    Encoder,
    EncoderSpec,
    default_prefixes,
    model_identity,
    passage_text,
    resolve_precision,
)
from tests.factories import CorpusFactory, PassageFactory

from .mining_support import minilm_path

FAMILY = "ab" * 32


def _fill(cache, version, rows=5, dim=3, fail_after=None):
    ids = np.arange(10, 10 + rows)
    hashes = np.array([f"{i:032x}" for i in range(rows)], dtype="S32")
    with cache.build(
        FAMILY, version, passage_ids=ids, text_hashes=hashes, dim=dim, meta={"what": "test"}
    ) as writer:
        writer.append_doc_ids([f"d{i}" for i in range(rows)])
        for i in reversed(range(rows)):  # rows may come in any order
            if fail_after is not None and rows - i > fail_after:
                raise RuntimeError("worker died")
            writer.put([i], np.full((1, dim), i, np.float32))


def test_entry_is_published_whole_and_reads_back(tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert cache.get(FAMILY, "v1") is None and cache.latest(FAMILY) is None
    _fill(cache, "v1")
    entry = cache.get(FAMILY, "v1")
    ids, matrix = entry
    assert ids.tolist() == [10, 11, 12, 13, 14]
    assert matrix.dtype == np.float32 and matrix.shape == (5, 3) and matrix[3, 0] == 3
    assert entry.doc_ids() == ["d0", "d1", "d2", "d3", "d4"]
    assert entry.rows_of([12, 99, 10]).tolist() == [2, -1, 0]
    assert entry.meta["what"] == "test" and entry.meta["rows"] == 5
    assert cache.latest(FAMILY).key == entry.key


def test_a_crash_while_building_publishes_nothing(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(RuntimeError, match="worker died"):
        _fill(cache, "v1", fail_after=3)
    assert cache.get(FAMILY, "v1") is None
    assert not list(tmp_path.rglob(".partial-*"))
    ids, hashes = np.arange(3), np.array([b"0" * 32] * 3, dtype="S32")
    with pytest.raises(RuntimeError, match="wrote 2 vectors"):
        with cache.build(FAMILY, "v2", passage_ids=ids, text_hashes=hashes, dim=3, meta={}) as w:
            w.append_doc_ids(["a", "b", "c"])
            w.put([0, 2], np.zeros((2, 3), np.float32))
    assert cache.get(FAMILY, "v2") is None and cache.latest(FAMILY) is None


def test_only_the_newest_versions_are_kept(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for version in ("v1", "v2", "v3"):
        _fill(cache, version)
    assert cache.get(FAMILY, "v1") is None
    assert cache.get(FAMILY, "v2") is not None and cache.latest(FAMILY).key.endswith("/v3")


def test_encoder_helpers():
    assert default_prefixes("intfloat/e5-base-v2") == ("query: ", "passage: ")
    assert default_prefixes("intfloat/multilingual-e5-large") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-base-en-v1.5")[0].startswith("Represent this sentence")
    assert default_prefixes(minilm_path()) == ("", "")
    assert passage_text("Title", "Body.") == "Title Body." and passage_text("", "Body.") == "Body."
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError):
        EncoderSpec(model="x", precision="fp8")


def test_auto_precision_uses_bf16_only_where_it_is_native(monkeypatch):
    import curation.mining.encode as encode

    monkeypatch.setattr(encode, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(encode, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"


def test_model_identity_names_the_model_and_follows_its_files(tmp_path):
    identity = model_identity(minilm_path())
    assert identity.short_name == "all-minilm-l6-v2"
    assert model_identity(minilm_path()) == identity
    folder = tmp_path / "my-encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "weights.bin").write_bytes(b"\0" * (3 << 20))
    before = model_identity(str(folder))
    assert before.short_name == "my-encoder"
    with (folder / "weights.bin").open("r+b") as f:
        f.seek(-10, 2)
        f.write(b"fine-tuned")
    assert model_identity(str(folder)).revision != before.revision


@pytest.fixture
def count_passage_encodes(monkeypatch):
    calls = []
    original = Encoder.encode_passages

    def counting(self, texts, **kwargs):
        calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(Encoder, "encode_passages", counting)
    return calls


def test_corpus_cache_is_reused_and_follows_the_corpus(
    db, settings, tmp_path, count_passage_encodes
):
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    corpus = CorpusFactory()
    texts = ["Cats purr when content.", "The Rhine flows into the North Sea.", "Bread needs yeast."]
    passages = [PassageFactory(corpus=corpus, title="", text=t) for t in texts]
    PassageFactory(text="a passage of another corpus")  # never encoded with this one

    options = dict(corpus=corpus, model=minilm_path(), max_seq_length=64, precision="fp32")
    first = corpus_embeddings_get(**options)
    assert first.built and count_passage_encodes == [3]
    assert first.passage_ids.tolist() == [p.pk for p in passages]
    assert first.doc_ids() == [p.doc_id for p in passages]
    assert np.allclose(np.linalg.norm(first.matrix, axis=1), 1, atol=1e-5)

    again = corpus_embeddings_get(**options)
    assert not again.built and count_passage_encodes == [3]
    assert np.array_equal(np.asarray(again.matrix), np.asarray(first.matrix))

    # Another prefix or max length is another matrix.
    prefixed = corpus_embeddings_get(**{**options, "passage_prefix": "passage: "})
    assert prefixed.built and prefixed.key != first.key
    assert not np.allclose(np.asarray(prefixed.matrix), np.asarray(first.matrix))

    # A new passage or an edited one makes a new version, and only it is encoded.
    PassageFactory(corpus=corpus, text="Tides follow the moon.")
    grown = corpus_embeddings_get(**options)
    assert grown.built and len(grown) == 4 and grown.encoded == 1
    assert count_passage_encodes == [3, 3, 1]
    assert np.array_equal(np.asarray(grown.matrix[:3]), np.asarray(first.matrix))
    passages[1].text, passages[1].text_hash = "The Danube flows into the Black Sea.", "f" * 32
    passages[1].save()
    edited = corpus_embeddings_get(**options)
    assert edited.built and edited.key != grown.key and edited.encoded == 1
    changed = not np.allclose(np.asarray(edited.matrix[1]), np.asarray(grown.matrix[1]))
    assert changed and np.array_equal(
        np.asarray(edited.matrix[[0, 2, 3]]), np.asarray(grown.matrix[[0, 2, 3]])
    )
    # Encoding the whole corpus from scratch gives the same rows (to float noise).
    fresh = corpus_embeddings_get(**{**options, "max_seq_length": 65})
    assert fresh.encoded == 4
    assert np.allclose(np.asarray(fresh.matrix), np.asarray(edited.matrix), atol=1e-5)
    passages[0].delete()
    shrunk = corpus_embeddings_get(**options)
    assert shrunk.encoded == 0 and len(shrunk) == 3

    # A deleted cache folder is simply rebuilt.
    shutil.rmtree(tmp_path / "embeddings")
    assert corpus_embeddings_get(**options).built
