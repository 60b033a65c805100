"""The units a cascade stage moves around: ``Work`` (one item's call, prepared and keyed),
``Done`` (its result, waiting to be committed) and ``BudgetReached``."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ..models import CascadeItem, LLMCall
from .verdict import ParsedVerdict


@dataclass
class Work:
    item: CascadeItem
    messages: list[dict]
    prompt_version: str
    prompt_hash: str
    n: int
    attempt: int = 1
    key: str = ""
    params: dict = field(default_factory=dict)
    input_tokens: int = 0  # of the prompt, counted when prepared
    reserve: Decimal = Decimal(0)


@dataclass
class Done:
    item: CascadeItem
    status: str
    call: LLMCall | None = None
    verdict: ParsedVerdict | None = None
    work: Work | None = None
    error: str = ""


class BudgetReached(Exception):
    pass
