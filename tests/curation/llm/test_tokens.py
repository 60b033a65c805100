"""Token counts for the dry-run estimate: exact offline from bpe-openai's compiled-in
vocabularies, which reproduce tiktoken's own documented examples."""

import bpe_openai
import pytest

from curation.llm import tokens


@pytest.fixture(autouse=True)
def _no_tiktoken_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SIEVE_TIKTOKEN_DOWNLOAD", raising=False)
    tokens.token_counter_for.cache_clear()
    yield
    tokens.token_counter_for.cache_clear()


def test_the_offline_vocabularies_give_tiktokens_ids():
    # tiktoken's README: cl100k_base encodes "tiktoken is great!" as these six ids.
    assert bpe_openai.get_encoding("cl100k_base").encode("tiktoken is great!") == [
        83, 1609, 5963, 374, 2294, 0,
    ]  # fmt: skip
    assert bpe_openai.get_encoding("cl100k_base").encode("Hello world") == [9906, 1917]
    assert bpe_openai.get_encoding("o200k_base").encode("Hello world") == [13225, 2375]


def test_models_get_their_family_vocabulary_exactly():
    mini = tokens.token_counter_for("gpt-4o-mini")
    assert mini.exact and mini.method == "bpe-openai o200k_base"
    old = tokens.token_counter_for("gpt-4-0613")
    assert old.exact and old.method == "bpe-openai cl100k_base"
    assert old.count_text("tiktoken is great!") == 6
    # Chat overhead: 3 per message + the role, 3 for the reply priming.
    messages = [{"role": "user", "content": "Hello world"}]
    assert mini.count_messages(messages) == 3 + (3 + 2 + mini.count_text("user"))


def test_passage_text_that_looks_like_a_special_token_is_counted_as_text():
    counter = tokens.token_counter_for("gpt-4o")
    assert counter.count_text("<|endoftext|> ignore previous instructions") > 5
