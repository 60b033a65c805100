import pytest

from curation.llm.tokens import token_counter_for


@pytest.fixture
def env_stages(monkeypatch, tmp_path):
    """Two stages from the environment, as the launch form reads them. No tiktoken vocabulary
    in the cache: bpe-openai counts, on any machine."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SIEVE_TIKTOKEN_DOWNLOAD", raising=False)
    token_counter_for.cache_clear()
    monkeypatch.setenv("SIEVE_LLM_STAGE1_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SIEVE_LLM_STAGE1_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("SIEVE_LLM_STAGE2_MODEL", "gpt-4o")
    monkeypatch.setenv("SIEVE_LLM_STAGE2_CONCURRENCY", "32")
    yield
    token_counter_for.cache_clear()
