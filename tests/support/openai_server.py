"""A local OpenAI-compatible HTTP server for tests: the only stand-in the project allows,
for the paid API. The real ``openai`` client talks to it over 127.0.0.1.

It answers ``POST /v1/chat/completions`` with whatever the test's ``responder`` returns
for the request body, and records every request. Responders can replay recorded answers and
inject the faults a real endpoint produces: 429 with Retry-After, 5xx, slow answers,
garbage and truncated output (``finish_reason=length``).

It also speaks the Batch API: ``POST /v1/files`` (multipart upload, ``purpose=batch``),
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
``POST /v1/batches/{id}/cancel``. A batch runs every line of its input file through the same
responder (in a background thread); ``batch_drop(line)`` returning True silently leaves a
line out of the output file, as RLHN saw large batch files do. ``batch_lines`` records every
request line a batch answered.
"""

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str = ""
    finish_reason: str = "stop"
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (latency, or a timeout)
    prompt_tokens: int = 0
    completion_tokens: int = 0


Responder = Callable[[dict], Reply]


def _completion(body: dict, reply: Reply, number: int) -> dict:
    prompt_tokens = reply.prompt_tokens or sum(
        len(str(m.get("content", ""))) // 4 for m in body.get("messages", [])
    )
    completion_tokens = reply.completion_tokens or max(1, len(reply.content) // 4)
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeOpenAIServer:
    def __init__(self, responder: Responder, *, batch_drop: Callable[[dict], bool] | None = None):
        self.responder = responder
        self.batch_drop = batch_drop
        self.requests: list[dict] = []
        self.batch_lines: list[dict] = []
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- Batch API -------------------------------------------------------------------------

    def _file_view(self, file_id: str) -> dict:
        record = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(record["data"]),
            "created_at": int(time.time()),
            "filename": record["filename"] or "file.jsonl",
            "purpose": record["purpose"] or "batch",
            "status": "processed",
        }

    def _add_file(self, data: bytes, filename: str, purpose: str) -> str:
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = {"data": data, "filename": filename, "purpose": purpose}
        return file_id

    def _batch_create(self, body: dict) -> dict:
        batch_id = f"batch_{next(self._ids)}"
        self.batches[batch_id] = {
            "input_file_id": body.get("input_file_id"),
            "endpoint": body.get("endpoint"),
            "completion_window": body.get("completion_window", "24h"),
            "metadata": body.get("metadata"),
            "status": "validating",
            "cancel": False,
            "output_file_id": None,
            "error_file_id": None,
            "counts": (0, 0, 0),
            "created_at": int(time.time()),
        }
        threading.Thread(target=self._batch_work, args=(batch_id,), daemon=True).start()
        return self._batch_view(batch_id)

    def _batch_work(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        lines = [
            json.loads(raw)
            for raw in self.files[batch["input_file_id"]]["data"].decode().splitlines()
            if raw.strip()
        ]
        batch["status"] = "in_progress"
        output, errors, done, failed = [], [], 0, 0
        for number, line in enumerate(lines, start=1):
            if batch["cancel"]:
                break
            reply = self.responder(line["body"])
            with self._lock:
                self.batch_lines.append(line)
            if self.batch_drop is not None and self.batch_drop(line):
                continue  # silently lost, as RLHN saw large files do
            if reply.status != 200:
                failed += 1
                errors.append(
                    {
                        "id": f"batch_req_{number}",
                        "custom_id": line["custom_id"],
                        "response": {
                            "status_code": reply.status,
                            "body": {"error": {"message": reply.content or "fault"}},
                        },
                        "error": None,
                    }
                )
                continue
            done += 1
            output.append(
                {
                    "id": f"batch_req_{number}",
                    "custom_id": line["custom_id"],
                    "response": {
                        "status_code": 200,
                        "request_id": f"req_{number}",
                        "body": _completion(line["body"], reply, number),
                    },
                    "error": None,
                }
            )
        dump = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        if output:
            batch["output_file_id"] = self._add_file(dump(output), "output.jsonl", "batch_output")
        if errors:
            batch["error_file_id"] = self._add_file(dump(errors), "errors.jsonl", "batch_output")
        batch["counts"] = (len(lines), done, failed)
        batch["status"] = "cancelled" if batch["cancel"] else "completed"

    def _batch_view(self, batch_id: str) -> dict | None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        total, done, failed = batch["counts"]
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": batch["endpoint"],
            "input_file_id": batch["input_file_id"],
            "completion_window": batch["completion_window"],
            "status": batch["status"],
            "output_file_id": batch["output_file_id"],
            "error_file_id": batch["error_file_id"],
            "created_at": batch["created_at"],
            "metadata": batch["metadata"],
            "request_counts": {"total": total, "completed": done, "failed": failed},
        }

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    """The routes of a ``FakeOpenAIServer`` (``self.fake``)."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        with self.fake._lock:
            self.fake.requests.append(
                {
                    "path": self.path,
                    "method": "GET",
                    "body": None,
                    "auth": self.headers.get("Authorization", ""),
                }
            )
        parts = self.path.rstrip("/").split("/")
        if self.path.startswith("/v1/files/") and parts[-1] == "content":
            record = self.fake.files.get(parts[-2])
            if record is None:
                return self._send(404, {"error": {"message": "no such file"}})
            return self._send_raw(200, record["data"], "application/octet-stream")
        if self.path.startswith("/v1/batches/") and len(parts) == 4:
            batch = self.fake._batch_view(parts[-1])
            if batch is None:
                return self._send(404, {"error": {"message": "no such batch"}})
            return self._send(200, batch)
        return self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        if self.path.rstrip("/") == "/v1/files":
            return self._upload(raw, content_type)
        body = json.loads(raw or b"{}")
        with self.fake._lock:
            self.fake.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization", "")}
            )
        path = self.path.rstrip("/")
        if path == "/v1/batches":
            return self._send(200, self.fake._batch_create(body))
        if path.startswith("/v1/batches/") and path.endswith("/cancel"):
            batch_id = path.split("/")[-2]
            if batch_id not in self.fake.batches:
                return self._send(404, {"error": {"message": "no such batch"}})
            self.fake.batches[batch_id]["cancel"] = True
            return self._send(200, self.fake._batch_view(batch_id))
        if path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        reply = self.fake.responder(body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            return self._send(
                reply.status,
                {"error": {"message": reply.content or "fault", "type": "server_error"}},
                reply.headers,
            )
        self._send(200, _completion(body, reply, len(self.fake.requests)), reply.headers)

    def _upload(self, raw: bytes, content_type: str):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        filename, data = fields.get("file", ("upload.jsonl", b""))
        purpose = (fields.get("purpose", (None, b""))[1] or b"").decode()
        file_id = f"file-{next(self.fake._ids)}"
        self.fake.files[file_id] = {"data": data, "filename": filename, "purpose": purpose}
        with self.fake._lock:
            self.fake.requests.append(
                {
                    "path": self.path,
                    "body": {"purpose": purpose, "filename": filename, "bytes": len(data)},
                    "auth": self.headers.get("Authorization", ""),
                }
            )
        return self._send(200, self.fake._file_view(file_id))

    def _send_raw(self, status, data: bytes, content_type: str):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): that is the point of the test
