"""Corpus embeddings over the content-addressed cache: a second ask encodes nothing, another
prefix or max length is another family, a grown or edited corpus encodes only its new texts,
a deleted cache is rebuilt."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from core.ml.encoder import Encoder, EncoderSettings
from curation.embeddings import corpus_embeddings_get
from tests.factories import CorpusFactory, PassageFactory

from .mining_support import minilm_path


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

    settings_ = EncoderSettings(max_seq_length=64, precision="fp32")
    options = dict(corpus=corpus, model=minilm_path(), settings=settings_)
    first = corpus_embeddings_get(**options)
    assert first.built and count_passage_encodes == [3]
    assert first.passage_ids.tolist() == [p.pk for p in passages]
    assert first.rows_of([passages[2].pk, -5, passages[0].pk]).tolist() == [2, -1, 0]
    assert np.allclose(np.linalg.norm(first.matrix, axis=1), 1, atol=1e-5)

    again = corpus_embeddings_get(**options)
    assert not again.built and count_passage_encodes == [3]
    assert np.array_equal(np.asarray(again.matrix), np.asarray(first.matrix))

    # Another prefix or max length is another matrix.
    prefixed = corpus_embeddings_get(
        **{**options, "settings": replace(settings_, passage_prefix="passage: ")}
    )
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
    fresh = corpus_embeddings_get(**{**options, "settings": replace(settings_, max_seq_length=65)})
    assert fresh.encoded == 4
    assert np.allclose(np.asarray(fresh.matrix), np.asarray(edited.matrix), atol=1e-5)
    passages[0].delete()
    shrunk = corpus_embeddings_get(**options)
    assert not shrunk.built and shrunk.encoded == 0 and len(shrunk) == 3
    assert shrunk.key != edited.key

    # Another corpus with the same texts finds them: vectors are filed by text, not corpus.
    twin = CorpusFactory()
    for passage in (passages[2], passages[1]):
        PassageFactory(corpus=twin, title="", text=passage.text)
    assert not corpus_embeddings_get(**{**options, "corpus": twin}).built

    # A deleted cache folder is simply rebuilt.
    shutil.rmtree(tmp_path / "embeddings")
    assert corpus_embeddings_get(**options).built


def test_a_text_whose_key_ends_in_a_zero_byte_is_encoded_and_found(db, settings, tmp_path):
    from core.ml.embedding_cache import text_key

    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    text = "Passage number 525."
    assert text_key(text)[-1] == 0  # numpy hands such a key out one byte shorter
    corpus = CorpusFactory()
    PassageFactory(corpus=corpus, title="", text=text)
    options = dict(corpus=corpus, model=minilm_path(), settings=EncoderSettings(max_seq_length=32))
    assert corpus_embeddings_get(**options).encoded == 1
    assert not corpus_embeddings_get(**options).built
