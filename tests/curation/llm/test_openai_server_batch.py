"""The test server's Batch API speaks enough of it for the real openai client: upload,
create, poll, download; and it can lose lines the way RLHN saw large batch files do."""

import io
import json
import time

import openai

from tests.support.openai_server import FakeOpenAIServer, Reply


def line(custom_id: str, text: str) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": text}]}}  # fmt: skip


def test_a_batch_round_trip_with_the_real_client():
    lines = [line("a", "one"), line("b", "two"), line("c", "lose me")]
    respond = lambda body: Reply(content=body["messages"][0]["content"].upper())  # noqa: E731
    drop = lambda request: request["custom_id"] == "c"  # noqa: E731
    with FakeOpenAIServer(respond, batch_drop=drop) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 10
        while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.02)
            batch = client.batches.retrieve(batch.id)
        output = client.files.content(batch.output_file_id).text
    assert batch.status == "completed" and batch.request_counts.total == 3
    answers = {r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"]
               for r in map(json.loads, output.splitlines())}  # fmt: skip
    assert answers == {"a": "ONE", "b": "TWO"}  # "c" silently lost
    assert server.files[uploaded.id]["purpose"] == "batch"
    assert len(server.batch_lines) == 3
