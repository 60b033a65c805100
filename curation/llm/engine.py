"""Concurrent judge calls against any OpenAI-compatible endpoint. Pure: no Django.

``JudgeClient`` wraps ``openai.AsyncOpenAI`` with ``max_retries=0`` and does the retrying
itself, because what a cascade needs differs from the client's defaults:

* a semaphore caps the calls in flight (``concurrency``) and a limiter spaces them to the
  stage's requests-per-minute;
* 429, 408, 409, 5xx, timeouts and dropped connections are retried with exponential backoff
  and full jitter, up to ``max_attempts``; a ``Retry-After`` (or ``retry-after-ms``) header is
  honoured, and a 429 pauses the WHOLE stage for that long (a storm of 429s is the endpoint
  asking every caller to back off, not just the one that was told);
* 401 / 403 / 404 are fatal (a wrong key or model name fails every call: stop the run);
  other 4xx fail only that call.

``CallPool`` runs a ``JudgeClient`` on an event loop in its own thread, so synchronous code
(the Django service, which keeps every ORM call in its own thread) submits calls and gets
``concurrent.futures.Future`` objects back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import itertools
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .stages import StageSettings

RETRYABLE_STATUS = {408, 409, 429}
CONNECTIONS_PER_CLIENT = 16
FATAL_STATUS = {401, 403, 404}


@dataclass(frozen=True)
class CallOutcome:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    latency_ms: int  # of the attempt that answered
    attempts: int


class CallFailed(Exception):
    """The endpoint did not answer after every attempt (or refused for good)."""

    def __init__(
        self, message: str, *, attempts: int, status: int | None = None, fatal=False, stopped=False
    ):
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.status = status
        self.fatal = fatal
        self.stopped = stopped  # never sent: the caller stopped first (cancel, fatal error)


def retry_after_seconds(headers) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``
    (seconds or an HTTP date); None when it said nothing usable."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateLimiter:
    """Spaces request starts ``60 / rpm`` seconds apart (no limit when rpm is 0) and holds
    every start until a pause asked for by a 429 has passed."""

    def __init__(self, rpm: int = 0):
        self.interval = 60.0 / rpm if rpm and rpm > 0 else 0.0
        self._next = 0.0
        self._resume_at = 0.0
        self._lock = asyncio.Lock()

    def pause_until(self, moment: float) -> None:
        self._resume_at = max(self._resume_at, moment)

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next, self._resume_at)
            self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
        # A pause that began while we slept applies to us too.
        while (wait := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)


class JudgeClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        concurrency: int = 16,
        rpm: int = 0,
        timeout_s: float = 120.0,
        max_attempts: int = 6,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        retry_after_cap_s: float = 300.0,
    ):
        import httpx2
        import openai

        self.model = model
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self.limiter = RateLimiter(rpm)
        self.stopping = False
        # One connection per concurrent call, spread over several clients of at most
        # CONNECTIONS_PER_CLIENT connections each: httpcore's pool scans every connection it
        # holds (with a socket poll each) to place each request, so one pool of 256
        # connections spends more CPU on that than on the call itself (bench/cascade_bench.py).
        concurrency = max(1, concurrency)
        self.clients = []
        for start in range(0, concurrency, CONNECTIONS_PER_CLIENT):
            size = min(CONNECTIONS_PER_CLIENT, concurrency - start)
            limits = httpx2.Limits(max_connections=size, max_keepalive_connections=size)
            self.clients.append(
                openai.AsyncOpenAI(
                    base_url=base_url,
                    api_key=api_key or "no-key",  # local servers take any key; never logged
                    max_retries=0,
                    timeout=timeout_s,
                    http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s),
                )
            )
        self._next_client = itertools.cycle(self.clients)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def complete(self, *, messages: list[dict], params: dict) -> CallOutcome:
        import openai

        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            wait: float | None = None
            async with self.semaphore:
                # The limiter inside the slot: a call that waited for a slot still honours a
                # pause that a 429 began meanwhile.
                await self.limiter.acquire()
                if self.stopping:
                    raise CallFailed(
                        "not sent: the run is stopping", attempts=attempt - 1, stopped=True
                    )
                started = time.perf_counter()
                try:
                    response = await next(self._next_client).chat.completions.create(
                        model=self.model, messages=messages, **params
                    )
                except openai.APIStatusError as error:
                    status = error.status_code
                    problem = f"HTTP {status}: {_message(error)}"
                    if status in FATAL_STATUS:
                        raise CallFailed(
                            problem, attempts=attempt, status=status, fatal=True
                        ) from None
                    if status not in RETRYABLE_STATUS and status < 500:
                        raise CallFailed(problem, attempts=attempt, status=status) from None
                    wait = retry_after_seconds(error.response.headers)
                except openai.APITimeoutError:
                    problem = "timed out"
                except openai.APIConnectionError as error:
                    problem = f"connection failed: {_message(error)}"
                else:
                    latency_ms = int((time.perf_counter() - started) * 1000)
                    return _outcome(response, latency_ms=latency_ms, attempts=attempt)
            if attempt >= self.max_attempts:
                raise CallFailed(
                    f"{problem} (gave up after {attempt} attempts)", attempts=attempt, status=status
                )
            if wait is not None:
                wait = min(wait, self.retry_after_cap_s)
                delay = wait + random.uniform(0, 0.1 * wait + 0.05)
                if status == 429:
                    self.limiter.pause_until(time.monotonic() + wait)
            else:
                delay = self._backoff(attempt)
            await asyncio.sleep(delay)


def _message(error) -> str:
    return str(getattr(error, "message", "") or error)[:300]


def finish_reason_text(value) -> str:
    """The finish reason as one word. Some OpenAI-compatible servers send a list
    (``["length"]``); its first entry is the reason, so a truncation is still seen as one."""
    if isinstance(value, list | tuple):
        value = next((item for item in value if item), "")
    return str(value or "")


def _outcome(response, *, latency_ms: int, attempts: int) -> CallOutcome:
    choice = response.choices[0] if response.choices else None
    text = (choice.message.content if choice and choice.message else None) or ""
    usage = response.usage
    return CallOutcome(
        text=text,
        finish_reason=finish_reason_text(choice.finish_reason if choice else None),
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        latency_ms=latency_ms,
        attempts=attempts,
    )


def stage_client_factory(stage: StageSettings) -> Callable[[], JudgeClient]:
    """What ``CallPool`` needs to build the client for one stage's endpoint: its settings,
    with the key read now from the environment variable the stage names."""
    api_key = os.environ.get(stage.api_key_env, "")

    def factory() -> JudgeClient:
        return JudgeClient(
            base_url=stage.base_url, api_key=api_key, model=stage.model,
            concurrency=stage.concurrency, rpm=stage.rpm, timeout_s=stage.timeout_s,
            max_attempts=stage.max_attempts, backoff_base_s=stage.backoff_base_s,
        )  # fmt: skip

    return factory


class CallPool:
    """An event loop in a background thread running one ``JudgeClient``.

    with CallPool(stage_client_factory(stage)) as pool:
        future = pool.submit(messages=..., params=...)   # concurrent.futures.Future
    """

    def __init__(self, client_factory):
        self._factory = client_factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.client: JudgeClient | None = None

    def __enter__(self) -> CallPool:
        self._thread.start()

        async def make():
            return self._factory()

        self.client = asyncio.run_coroutine_threadsafe(make(), self._loop).result()
        return self

    def submit(self, *, messages: list[dict], params: dict) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(
            self.client.complete(messages=messages, params=params), self._loop
        )

    def stop_sending(self) -> None:
        """Calls not yet sent fail with ``CallFailed(stopped=True)``; those on the wire finish
        (they may already be paid for, so their answers are still recorded)."""
        self.client.stopping = True

    def __exit__(self, *exc) -> None:
        async def shutdown():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.client is not None:
                await self.client.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


def call_key(*, base_url: str, model: str, messages: list[dict], params: dict) -> str:
    """The ledger key of one call: sha256 over endpoint, model, messages and parameters
    (including our own ``attempt`` number, so a deliberate retry is a different call)."""
    import hashlib
    import json

    payload = json.dumps(
        {"base_url": base_url.rstrip("/"), "model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()
