"""OpenAI Batch API: the same judge calls at half price, answered within 24 h. Pure: no Django.

A stage's requests are written as jsonl lines ``{custom_id, method, url, body}``, uploaded
with ``files.create(purpose="batch")`` and started with ``batches.create``; the batch is polled
until it ends, then its output (and error) file is downloaded and read back per custom_id.

Files hold at most ``max_requests`` lines each (RLHN's pipeline saw larger files silently
lose rows and settled on 250), and the caller checks that every custom_id it sent came back:
a missing one is never taken as an answer.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from .engine import CallOutcome, finish_reason_text

ENDPOINT = "/v1/chat/completions"
FINISHED = {"completed", "failed", "expired", "cancelled"}


def batch_line(*, custom_id: str, model: str, messages: list[dict], params: dict) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": model, "messages": messages, **params},
    }


@dataclass(frozen=True)
class BatchState:
    id: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    completed: int = 0
    failed: int = 0
    total: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class BatchLineResult:
    custom_id: str
    outcome: CallOutcome | None  # None: this request failed inside the batch
    error: str = ""


class BatchClient:
    def __init__(self, *, base_url: str, api_key: str, timeout_s: float = 120.0):
        import openai

        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "no-key", max_retries=3, timeout=timeout_s
        )

    def close(self) -> None:
        self.client.close()

    def submit(self, lines: list[dict], *, filename: str, metadata: dict | None = None):
        """Upload ``lines`` and start a batch; returns (batch id, input file id)."""
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        uploaded = self.client.files.create(
            file=(filename, io.BytesIO(data), "application/jsonl"), purpose="batch"
        )
        batch = self.client.batches.create(
            input_file_id=uploaded.id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={k: str(v) for k, v in (metadata or {}).items()} or None,
        )
        return batch.id, uploaded.id

    def retrieve(self, batch_id: str) -> BatchState:
        batch = self.client.batches.retrieve(batch_id)
        counts = batch.request_counts
        return BatchState(
            id=batch.id,
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            completed=getattr(counts, "completed", 0) or 0,
            failed=getattr(counts, "failed", 0) or 0,
            total=getattr(counts, "total", 0) or 0,
        )

    def cancel(self, batch_id: str) -> None:
        self.client.batches.cancel(batch_id)

    def download(self, file_id: str) -> str:
        return self.client.files.content(file_id).text

    def results(self, state: BatchState) -> dict[str, BatchLineResult]:
        found: dict[str, BatchLineResult] = {}
        for file_id in (state.error_file_id, state.output_file_id):  # output wins on overlap
            if file_id:
                found.update(batch_results_parse(self.download(file_id)))
        return found


def batch_results_parse(text: str) -> dict[str, BatchLineResult]:
    """Read a batch output or error file: custom_id → the answer, or why there is none."""
    results: dict[str, BatchLineResult] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a damaged line: its custom_id counts as missing, so it is retried
        custom_id = str(line.get("custom_id", ""))
        if not custom_id:
            continue
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        if line.get("error") or status != 200 or not body.get("choices"):
            error = line.get("error") or body.get("error") or {"message": f"HTTP {status}"}
            message = error.get("message") if isinstance(error, dict) else str(error)
            results[custom_id] = BatchLineResult(custom_id, None, str(message)[:300])
            continue
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        outcome = CallOutcome(
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=finish_reason_text(choice.get("finish_reason")),
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=0,
            attempts=1,
        )
        results[custom_id] = BatchLineResult(custom_id, outcome)
    return results
