"""The judge-call engine on its own: retries, Retry-After, fatal errors, the RPM limiter and
the Batch API output reader, with the real openai client against the local server."""

import asyncio
import json
import time
from email.utils import formatdate

import pytest

from curation.llm.batch import batch_results_parse
from curation.llm.engine import (
    CallFailed,
    CallPool,
    JudgeClient,
    RateLimiter,
    call_key,
    retry_after_seconds,
)
from tests.support.openai_server import FakeOpenAIServer, Reply

MESSAGES = [{"role": "user", "content": "judge this"}]


def pool_for(server, **options):
    options = {
        "concurrency": 4,
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff_base_s": 0.01,
        **options,
    }
    return CallPool(
        lambda: JudgeClient(base_url=server.base_url, api_key="k", model="m", **options)
    )


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    in_three = retry_after_seconds({"retry-after": formatdate(time.time() + 3, usegmt=True)})
    assert 1.5 < in_three <= 3.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_server_errors_are_retried_until_an_answer():
    replies = iter([Reply(status=503), Reply(status=500), Reply(content="ok", completion_tokens=3)])
    with FakeOpenAIServer(lambda body: next(replies)) as server, pool_for(server) as pool:
        outcome = pool.submit(messages=MESSAGES, params={"temperature": 0}).result(timeout=20)
    assert (outcome.text, outcome.attempts, outcome.output_tokens) == ("ok", 3, 3)


def test_a_bad_request_is_not_retried_and_a_wrong_key_is_fatal():
    with (
        FakeOpenAIServer(lambda body: Reply(status=400, content="bad")) as server,
        pool_for(server) as pool,
    ):
        with pytest.raises(CallFailed) as caught:
            pool.submit(messages=MESSAGES, params={}).result(timeout=20)
    assert caught.value.attempts == 1 and not caught.value.fatal and len(server.requests) == 1
    with FakeOpenAIServer(lambda body: Reply(status=401)) as server, pool_for(server) as pool:
        with pytest.raises(CallFailed) as caught:
            pool.submit(messages=MESSAGES, params={}).result(timeout=20)
    assert caught.value.fatal and caught.value.status == 401


def test_giving_up_names_the_last_problem():
    with FakeOpenAIServer(lambda body: Reply(status=502, content="upstream")) as server:
        with pool_for(server, max_attempts=2) as pool:
            with pytest.raises(CallFailed, match="HTTP 502.*gave up after 2 attempts"):
                pool.submit(messages=MESSAGES, params={}).result(timeout=20)
    assert len(server.requests) == 2


def test_the_rpm_limiter_spaces_request_starts():
    async def starts():
        limiter = RateLimiter(rpm=600)  # one start every 0.1 s
        moments = []

        async def one():
            await limiter.acquire()
            moments.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(5)))
        return sorted(moments)

    moments = asyncio.run(starts())
    assert all(b - a >= 0.095 for a, b in zip(moments, moments[1:], strict=False))


def test_call_keys_change_with_anything_that_changes_the_answer():
    base = dict(base_url="http://x/v1", model="m", messages=MESSAGES, params={"attempt": 1})
    assert call_key(**base) == call_key(**{**base, "base_url": "http://x/v1/"})
    for change in (
        {"model": "n"},
        {"params": {"attempt": 2}},
        {"messages": [{"role": "user", "content": "other"}]},
    ):
        assert call_key(**{**base, **change}) != call_key(**base)


def test_batch_output_lines_are_read_per_custom_id():
    ok = {
        "custom_id": "7",
        "response": {
            "status_code": 200,
            "body": {
                "choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2},
            },
        },
        "error": None,
    }
    failed = {
        "custom_id": "8",
        "response": {"status_code": 500, "body": {"error": {"message": "boom"}}},
        "error": None,
    }
    text = json.dumps(ok) + "\n" + json.dumps(failed) + "\n{broken\n"
    results = batch_results_parse(text)
    assert results["7"].outcome.input_tokens == 10 and results["7"].outcome.text == "{}"
    assert results["8"].outcome is None and results["8"].error == "boom"
    assert set(results) == {"7", "8"}


def test_a_429_pauses_the_other_calls_of_the_stage_too():
    arrivals = []

    def respond(body):
        arrivals.append((time.monotonic(), body["messages"][0]["content"]))
        if len(arrivals) == 1:
            return Reply(status=429, headers={"Retry-After": "0.5"})
        return Reply(content="ok")

    with FakeOpenAIServer(respond) as server, pool_for(server, concurrency=1) as pool:
        first = pool.submit(messages=[{"role": "user", "content": "a"}], params={})
        second = pool.submit(messages=[{"role": "user", "content": "b"}], params={})
        assert first.result(timeout=20).text == second.result(timeout=20).text == "ok"
    told_at, refused = arrivals[0]
    # The other call was never refused itself, yet it waited for the pause the first was told
    # to take.
    other_at = next(at for at, content in arrivals if content != refused)
    assert other_at - told_at >= 0.5
