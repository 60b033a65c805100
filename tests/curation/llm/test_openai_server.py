"""The test stand-in speaks enough of the API for the real openai client."""

import openai
import pytest

from tests.support.openai_server import FakeOpenAIServer, Reply


def test_real_client_reads_a_reply_and_usage():
    with FakeOpenAIServer(
        lambda body: Reply(content="<verdict>ok</verdict>", completion_tokens=7)
    ) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
    assert answer.choices[0].message.content == "<verdict>ok</verdict>"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == 7
    assert server.requests[0]["body"]["model"] == "gpt-4o-mini"
    assert server.requests[0]["auth"] == "Bearer test-key"


def test_rate_limit_is_surfaced_with_retry_after():
    with FakeOpenAIServer(lambda body: Reply(status=429, headers={"Retry-After": "0"})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["Retry-After"] == "0"
