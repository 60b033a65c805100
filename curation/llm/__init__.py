"""Talking to OpenAI-compatible endpoints, for the cascade's judges and synthesis's generator:
stage settings and prices (``stages.py``), the call engine with rate limits, retries and the
ledger key (``engine.py``), the ``LLMCall`` row of an answer (``ledger.py``), the Batch API
client (``batch.py``) and token counting (``tokens.py``). What is asked and how answers are
read belongs to the caller (``curation/cascade/prompts.py`` and ``verdict.py``,
``curation/synthesis/core.py``)."""
