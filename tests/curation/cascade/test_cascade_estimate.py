"""The dry-run estimate: input tokens counted on our exact prompts (checked against what a
real run sends the local OpenAI-compatible server), output tokens assumed,
stage-2 volume from the flag rate, and an honest flag when the count is approximate."""

import sys
from decimal import Decimal

import pytest

from curation.cascade import create as cascade
from curation.cascade.create import cascade_estimate, cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.llm import tokens
from curation.llm.stages import StageSettings, call_cost, stage_settings_from_env, stages_from_env
from tests.curation.cascade.cascade_support import (
    byte_counter,
    chat_requests,
    received_tokens,
    small_dataset,
    sound_judge,
    stage,
)
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.django_db


def stages():
    return [
        StageSettings(number=1, model="gpt-4o-mini", price_in_per_m="0.15", price_out_per_m="0.60"),
        StageSettings(number=2, model="gpt-4o", price_in_per_m="2.50", price_out_per_m="10.00"),
    ]


def received_bytes(dataset, *, max_negatives: int) -> int:
    """Run stage 1 of the cascade for real against the local OpenAI-compatible server and
    count, one token a byte, what the server received, the way OpenAI counts a chat request:
    3 tokens per message plus its role and content, and 3 for the reply's priming."""
    with FakeOpenAIServer(sound_judge) as server:
        run = cascade_run_create(
            dataset=dataset, stages=[stage(1, server)], max_negatives=max_negatives, enqueue=False
        )
        cascade_run_execute(run_id=run.pk)
    bodies = chat_requests(server)
    assert len(bodies) == dataset.queries.count()  # one call per query, no retry
    return received_tokens(bodies)


def test_input_tokens_are_counted_exactly_on_our_prompts(monkeypatch):
    dataset = small_dataset(queries=5, negatives=4)
    monkeypatch.setattr(cascade, "token_counter_for", lambda model: byte_counter())
    estimate = cascade_estimate(
        dataset=dataset,
        stages=stages(),
        max_negatives=3,
        output_tokens_per_call=2048,
        flag_rate=0.4,
    )
    assert estimate["queries"] == 5 and not estimate["sampled"]
    assert estimate["exact_tokens"] is True
    stage1, stage2 = estimate["stages"]
    assert stage1["input_tokens"] == received_bytes(dataset, max_negatives=3)
    assert stage1["output_tokens"] == 5 * 2048
    assert stage2["calls"] == 2  # 40 % of 5 queries reach the strong judge
    assert stage2["input_tokens"] == round(stage1["input_tokens"] / 5 * 2)
    assert Decimal(stage1["cost_usd"]) == call_cost(
        input_tokens=stage1["input_tokens"], output_tokens=5 * 2048, stage=stages()[0]
    )
    assert Decimal(estimate["cost_usd"]) == Decimal(stage1["cost_usd"]) + Decimal(
        stage2["cost_usd"]
    )
    # What the strong judge alone would cost on all 5 queries.
    assert Decimal(estimate["strong_judge_only_cost_usd"]) > Decimal(stage2["cost_usd"])


def test_batch_mode_halves_the_price(monkeypatch):
    dataset = small_dataset(queries=3)
    monkeypatch.setattr(cascade, "token_counter_for", lambda model: byte_counter())
    online = cascade_estimate(dataset=dataset, stages=stages())
    batch = cascade_estimate(dataset=dataset, stages=stages(), mode="batch")
    for a, b in zip(online["stages"], batch["stages"], strict=True):
        assert abs(Decimal(a["cost_usd"]) / 2 - Decimal(b["cost_usd"])) <= Decimal("0.000001")


def test_offline_the_estimate_is_exact_from_the_compiled_in_vocabulary(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: nothing to load
    monkeypatch.delenv("SIEVE_TIKTOKEN_DOWNLOAD", raising=False)
    tokens.token_counter_for.cache_clear()
    try:
        dataset = small_dataset(queries=2)
        estimate = cascade_estimate(dataset=dataset, stages=stages())
    finally:
        tokens.token_counter_for.cache_clear()
    assert estimate["exact_tokens"] is True
    assert estimate["stages"][0]["token_count"] == "bpe-openai o200k_base"


def test_without_any_vocabulary_the_estimate_says_it_is_approximate(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SIEVE_TIKTOKEN_DOWNLOAD", raising=False)
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # as if it were not installed
    tokens.token_counter_for.cache_clear()
    try:
        dataset = small_dataset(queries=2)
        estimate = cascade_estimate(dataset=dataset, stages=stages())
    finally:
        tokens.token_counter_for.cache_clear()
    assert estimate["exact_tokens"] is False
    assert "characters / 4" in estimate["stages"][0]["token_count"]
    assert estimate["stages"][0]["input_tokens"] > 0


def test_a_large_dataset_is_estimated_from_an_even_sample(monkeypatch):
    dataset = small_dataset(queries=9)
    monkeypatch.setattr(cascade, "token_counter_for", lambda model: byte_counter())
    full = cascade_estimate(dataset=dataset, stages=stages())
    sampled = cascade_estimate(dataset=dataset, stages=stages(), sample_limit=3)
    assert sampled["sampled"] and sampled["counted_queries"] == 3 and sampled["queries"] == 9
    # The sample's prompts are the same size give or take a digit: close to the full count.
    ratio = sampled["stages"][0]["input_tokens"] / full["stages"][0]["input_tokens"]
    assert 0.98 < ratio < 1.02


def test_stage_settings_come_from_the_environment_and_never_hold_a_key():
    environ = {
        "SIEVE_LLM_STAGE1_BASE_URL": "http://vllm.internal:8000/v1",
        "SIEVE_LLM_STAGE1_MODEL": "Qwen/Qwen2.5-7B-Instruct",
        "SIEVE_LLM_STAGE1_API_KEY_ENV": "VLLM_KEY",
        "SIEVE_LLM_STAGE1_CONCURRENCY": "64",
        "SIEVE_LLM_STAGE1_RPM": "600",
        "SIEVE_LLM_STAGE1_JSON_MODE": "false",
        "SIEVE_LLM_STAGE3_MODEL": "o3",
        "VLLM_KEY": "secret-value",
    }
    first, second, third = stages_from_env(environ)
    assert (first.base_url, first.model, first.api_key_env) == (
        "http://vllm.internal:8000/v1", "Qwen/Qwen2.5-7B-Instruct", "VLLM_KEY",
    )  # fmt: skip
    assert (first.concurrency, first.rpm, first.json_mode) == (64, 600, False)
    assert first.price_in_per_m == "0"  # unknown model: no price until one is given
    assert (second.model, second.price_in_per_m, second.price_out_per_m) == (
        "gpt-4o",
        "2.50",
        "10.00",
    )
    assert third.number == 3 and third.model == "o3"
    assert "secret-value" not in str([s.as_dict() for s in (first, second, third)])
    defaults = stage_settings_from_env(1, {})
    assert (defaults.model, defaults.price_in_per_m, defaults.price_out_per_m) == (
        "gpt-4o-mini",
        "0.15",
        "0.60",
    )
    with pytest.raises(ValueError, match="SIEVE_LLM_STAGE2_RPM"):
        stage_settings_from_env(2, {"SIEVE_LLM_STAGE2_RPM": "lots"})
