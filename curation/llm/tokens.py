"""Count the tokens of our prompts for the dry-run estimate. Pure: no Django.

tiktoken's vocabularies are not part of its wheel: ``get_encoding("o200k_base")`` downloads
the file on first use and keeps it in its cache folder (``TIKTOKEN_CACHE_DIR``, else
``$TMPDIR/data-gym-cache``). On a machine without internet that download fails, and on a
machine behind a silent firewall it could hang a web request. So tiktoken is used only when
its vocabulary file is already in the cache (or ``SIEVE_TIKTOKEN_DOWNLOAD=true`` allows the
download). Otherwise the count comes from ``bpe-openai`` (GitHub's Rust BPE with the same
OpenAI vocabularies compiled in, tiktoken-compatible: it reproduces tiktoken's documented
examples, see tests/curation/llm/test_tokens.py), which needs no network. Only if neither can load
does the count fall back to characters / 4 and say so (``exact=False``).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

# Models of the gpt-4o / o-series family use o200k_base; older gpt-4 / 3.5 cl100k_base.
_VOCABULARY_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
# Chat formatting overhead per message and for the assistant's reply priming (OpenAI cookbook).
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


def encoding_name_for(model: str) -> str:
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith(("gpt-4-", "gpt-3.5")) or name == "gpt-4":
        return "cl100k_base"
    return "o200k_base"  # gpt-4o, gpt-4.1, o1/o3/o4 and, as the best guess, unknown models


def vocabulary_cache_path(encoding_name: str) -> str:
    """Where tiktoken looks for a downloaded vocabulary file (its own cache layout)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if not cache_dir:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    key = hashlib.sha1(_VOCABULARY_URLS[encoding_name].encode()).hexdigest()
    return os.path.join(cache_dir, key)


@dataclass(frozen=True)
class TokenCounter:
    method: str  # "tiktoken o200k_base" or "characters / 4 (...)"
    exact: bool
    _encode: Callable[[str], int]

    def count_text(self, text: str) -> int:
        return self._encode(text)

    def count_messages(self, messages: list[dict]) -> int:
        total = TOKENS_REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE + self._encode(str(message.get("content", "")))
            total += self._encode(message.get("role", ""))
        return total


def _chars_over_four(text: str) -> int:
    return math.ceil(len(text) / 4)


def approximate_counter(reason: str) -> TokenCounter:
    return TokenCounter(f"characters / 4 ({reason})", False, _chars_over_four)


def encoding_counter(encoding, name: str) -> TokenCounter:
    """A counter over any tiktoken ``Encoding``."""
    return TokenCounter(
        f"tiktoken {name}", True, lambda text: len(encoding.encode(text, disallowed_special=()))
    )


@lru_cache(maxsize=8)
def token_counter_for(model: str) -> TokenCounter:
    name = encoding_name_for(model)
    allow_download = os.environ.get("SIEVE_TIKTOKEN_DOWNLOAD", "").lower() in ("1", "true", "yes")
    if allow_download or os.path.exists(vocabulary_cache_path(name)):
        try:
            import tiktoken

            return encoding_counter(tiktoken.get_encoding(name), name)
        except Exception:  # network, hash mismatch: the offline tokenizer below is as exact
            pass
    return offline_counter(name)


def offline_counter(name: str) -> TokenCounter:
    """The exact count from ``bpe-openai``'s compiled-in vocabulary; characters / 4 when it
    is not installed or does not know ``name``."""
    try:
        import bpe_openai

        encoding = bpe_openai.get_encoding(name)
    except Exception as error:  # not installed, unknown encoding: estimate anyway
        return approximate_counter(f"no offline vocabulary for {name}: {type(error).__name__}")
    return TokenCounter(
        f"bpe-openai {name}", True, lambda text: len(encoding.encode(text, disallowed_special=()))
    )
