"""Judge stage settings: where a stage sends its calls and what they cost. Pure: no Django.

Every setting comes from the environment (``SIEVE_LLM_STAGE<n>_<NAME>``) and can be changed
per run on the launch form; a run stores its stage settings in ``CascadeRun.stages`` so it
can always be traced and resumed with the same ones. The API key itself is NEVER part of the
settings: a stage names the environment variable that holds it (``api_key_env``), and the
worker reads the key from its own environment when it calls.

    SIEVE_LLM_STAGE1_BASE_URL     default $OPENAI_BASE_URL or https://api.openai.com/v1
    SIEVE_LLM_STAGE1_MODEL        stage 1: gpt-4o-mini, stage 2: gpt-4o
    SIEVE_LLM_STAGE1_API_KEY_ENV  name of the variable that holds the key (OPENAI_API_KEY)
    SIEVE_LLM_STAGE1_PRICE_IN     USD per 1M input tokens (known models: list price)
    SIEVE_LLM_STAGE1_PRICE_OUT    USD per 1M output tokens
    SIEVE_LLM_STAGE1_CONCURRENCY  calls in flight at once (16)
    SIEVE_LLM_STAGE1_RPM          requests per minute, 0 = no limit (0)
    SIEVE_LLM_STAGE1_JSON_MODE    response_format json_object (true)
    SIEVE_LLM_STAGE1_MAX_TOKENS   output token limit per call (4096)
    SIEVE_LLM_STAGE1_TEMPERATURE  (0)
    SIEVE_LLM_STAGE1_TIMEOUT      seconds per call attempt (120)
    SIEVE_LLM_STAGE1_MAX_ATTEMPTS tries per call on 429 / 5xx / timeouts (6)
    SIEVE_LLM_STAGE1_BACKOFF      seconds of the first backoff, doubled per retry (1)
    SIEVE_LLM_STAGE1_BATCH_MAX_REQUESTS  requests per Batch API file (250)

Stage 2 reads ``SIEVE_LLM_STAGE2_*`` the same way; a stage 3, 4, … exists when its
``SIEVE_LLM_STAGE<n>_MODEL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODELS = {1: "gpt-4o-mini", 2: "gpt-4o"}
# USD per 1M tokens (input, output): OpenAI's list prices. Unknown models default to 0 and the
# form asks for a price (a self-hosted vLLM costs nothing per token).
KNOWN_PRICES: dict[str, tuple[str, str]] = {
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4o": ("2.50", "10.00"),
}
# The Batch API charges half of the online price.
BATCH_DISCOUNT = Decimal("0.5")
MICRO_USD = Decimal("0.000001")


@dataclass(frozen=True)
class StageSettings:
    number: int
    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    price_in_per_m: str = "0"  # a decimal string: JSON-safe and exact
    price_out_per_m: str = "0"
    concurrency: int = 16
    rpm: int = 0  # 0: no requests-per-minute limit
    json_mode: bool = True
    max_tokens: int = 4096
    temperature: float = 0.0
    timeout_s: float = 120.0
    max_attempts: int = 6
    backoff_base_s: float = 1.0  # first retry waits up to this long, doubling each time
    batch_max_requests: int = 250

    @property
    def rater(self) -> str:
        return f"llm:{self.model}:stage{self.number}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> StageSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, **changes) -> StageSettings:
        return replace(self, **changes)

    def request_params(self, *, attempt: int = 1) -> dict:
        """What goes into the chat completion call besides model and messages. A retry of a
        truncated answer gets twice the output room."""
        params: dict = {"temperature": self.temperature}
        if self.max_tokens:
            params["max_tokens"] = self.max_tokens * (2 if attempt > 1 else 1)
        if self.json_mode:
            params["response_format"] = {"type": "json_object"}
        return params


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


_CASTS = {
    "base_url": ("BASE_URL", str),
    "model": ("MODEL", str),
    "api_key_env": ("API_KEY_ENV", str),
    "price_in_per_m": ("PRICE_IN", lambda v: str(Decimal(v))),
    "price_out_per_m": ("PRICE_OUT", lambda v: str(Decimal(v))),
    "concurrency": ("CONCURRENCY", int),
    "rpm": ("RPM", int),
    "json_mode": ("JSON_MODE", _env_bool),
    "max_tokens": ("MAX_TOKENS", int),
    "temperature": ("TEMPERATURE", float),
    "timeout_s": ("TIMEOUT", float),
    "max_attempts": ("MAX_ATTEMPTS", int),
    "backoff_base_s": ("BACKOFF", float),
    "batch_max_requests": ("BATCH_MAX_REQUESTS", int),
}


def stage_settings_from_env(number: int, environ: Mapping[str, str] | None = None) -> StageSettings:
    """Stage ``number``'s settings from the environment, with the defaults above."""
    environ = os.environ if environ is None else environ
    prefix = f"SIEVE_LLM_STAGE{number}_"
    model = environ.get(prefix + "MODEL") or DEFAULT_MODELS.get(number, DEFAULT_MODELS[2])
    price_in, price_out = KNOWN_PRICES.get(model, ("0", "0"))
    values: dict = {
        "number": number,
        "model": model,
        "base_url": environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        "price_in_per_m": price_in,
        "price_out_per_m": price_out,
    }
    for name, (suffix, cast) in _CASTS.items():
        raw = environ.get(prefix + suffix)
        if raw not in (None, ""):
            try:
                values[name] = cast(raw)
            except (ValueError, ArithmeticError):
                raise ValueError(f"{prefix}{suffix}={raw!r} is not a valid {name}") from None
    return StageSettings(**values)


def stages_from_env(environ: Mapping[str, str] | None = None) -> list[StageSettings]:
    """Stages 1 and 2 always; stage n >= 3 when its model is set."""
    environ = os.environ if environ is None else environ
    stages = [stage_settings_from_env(1, environ), stage_settings_from_env(2, environ)]
    number = 3
    while environ.get(f"SIEVE_LLM_STAGE{number}_MODEL"):
        stages.append(stage_settings_from_env(number, environ))
        number += 1
    return stages


def call_cost(
    *, input_tokens: int, output_tokens: int, stage: StageSettings, batch: bool = False
) -> Decimal:
    """USD for one call, to the micro-dollar."""
    cost = (
        Decimal(input_tokens) * Decimal(stage.price_in_per_m)
        + Decimal(output_tokens) * Decimal(stage.price_out_per_m)
    ) / Decimal(1_000_000)
    if batch:
        cost *= BATCH_DISCOUNT
    return cost.quantize(MICRO_USD, rounding=ROUND_HALF_UP)
