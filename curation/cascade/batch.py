"""The Batch API path of a cascade stage (mode ``batch``): the stage's pending calls that the
ledger cannot answer go out as JSONL files at half price; their answers are stored in the
ledger as they come back, and the online pass that follows finds them there (design:
cascade.md, "Batch mode"). Each file is recorded on the run before it is waited for, so a
resumed run polls it again instead of paying for it twice."""

from __future__ import annotations

import json
import logging
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from core.jobs import JobCancelled

from ..llm.batch import BatchClient, batch_line
from ..llm.engine import call_key
from ..llm.stages import StageSettings
from ..llm.tokens import token_counter_for
from ..models import LLMCall
from .work import BudgetReached, Work

if TYPE_CHECKING:
    from .execute import Executor

logger = logging.getLogger(__name__)

BATCH_POLL_SECONDS = float(os.environ.get("SIEVE_LLM_BATCH_POLL_SECONDS", "30"))


class BatchStage:
    """One stage's Batch API files: submit, wait, ingest."""

    def __init__(self, executor: Executor, stage: StageSettings):
        self.executor = executor
        self.stage = stage
        self.client = BatchClient(
            base_url=stage.base_url, api_key=os.environ.get(stage.api_key_env, ""),
            timeout_s=stage.timeout_s,
        )  # fmt: skip
        self.counter = token_counter_for(stage.model)
        self.folder = Path(settings.MEDIA_ROOT) / "cascade" / str(executor.run.pk)

    def run(self) -> None:
        """Send the stage's pending, not yet answered calls as Batch API files, wait for them
        and store their answers in the ledger at half price. What the batches did not answer
        (missing lines, failed lines, unparseable answers to retry) is then done online by
        ``OnlineStage``, which finds everything else in the ledger."""
        stage, executor = self.stage, self.executor
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            records = [b for b in executor.stats["batches"] if b["stage"] == stage.number]
            sent_items = set()
            for record in records:
                if not record.get("ingested"):
                    sent_items.update(_jsonl_custom_ids(Path(record["path"])))
            try:
                self._submit_pending(sent_items)
            except BudgetReached:
                pass  # what was sent is still waited for; the online pass then stops paying
            self._wait()
        finally:
            self.client.close()

    def _submit_pending(self, sent_items: set[str]) -> None:
        stage, executor = self.stage, self.executor
        chunk: list[Work] = []
        for page in executor.pending_pages(stage):
            works = [w for w in executor.work_for(stage, page) if isinstance(w, Work)]
            works = [
                executor.prepare(stage, w, self.counter)
                for w in works
                if str(w.item.id) not in sent_items
            ]
            keys = [w.key for w in works]
            known = set(LLMCall.objects.filter(key__in=keys).values_list("key", flat=True))
            for work in works:
                if work.key in known:
                    continue  # answered already: the online pass reads it from the ledger
                chunk.append(work)
                if len(chunk) >= stage.batch_max_requests:
                    self._submit(chunk)
                    chunk = []
        if chunk:
            self._submit(chunk)

    def _submit(self, chunk: list[Work]) -> None:
        stage, executor = self.stage, self.executor
        # Reserve the whole file at batch price (half the online price) before sending it.
        reserve = sum((w.reserve for w in chunk), Decimal(0)) / 2
        if (
            executor.budget is not None
            and executor.spent + executor.reserved + reserve > executor.budget
        ):
            raise BudgetReached
        lines = [
            batch_line(
                custom_id=str(w.item.id), model=stage.model, messages=w.messages, params=w.params
            )
            for w in chunk
        ]
        sequence = len(executor.stats["batches"]) + 1
        path = self.folder / f"stage{stage.number}-{sequence:05d}.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        batch_id, file_id = self.client.submit(
            lines,
            filename=path.name,
            metadata={"sieve_cascade_run": executor.run.pk, "file": path.name},
        )
        executor.reserved += reserve
        # Recorded at once: a resumed run polls this batch instead of paying for it again.
        executor.stats["batches"].append(
            {
                "stage": stage.number,
                "id": batch_id,
                "input_file_id": file_id,
                "path": str(path),
                "requests": len(lines),
                "reserve": str(reserve),
                "status": "submitted",
                "ingested": False,
            }
        )
        executor.save_stats()

    def _wait(self) -> None:
        stage, executor = self.stage, self.executor
        open_records = [
            b for b in executor.stats["batches"] if b["stage"] == stage.number and not b["ingested"]
        ]
        while open_records:
            for record in list(open_records):
                state = self.client.retrieve(record["id"])
                record["status"] = state.status
                if state.finished:
                    self._ingest(record, state)
                    open_records.remove(record)
            executor.save_stats()
            if not open_records:
                break
            done = sum(
                1 for b in executor.stats["batches"] if b["stage"] == stage.number and b["ingested"]
            )
            total = sum(1 for b in executor.stats["batches"] if b["stage"] == stage.number)
            try:
                executor.report(
                    executor.index / len(executor.stages),
                    f"stage {stage.number}: waiting for the Batch API "
                    f"({done} of {total} files done)",
                )
            except JobCancelled:
                for record in open_records:
                    try:
                        self.client.cancel(record["id"])
                    except Exception:  # already finished, or the endpoint is gone
                        logger.warning("could not cancel batch %s", record["id"])
                raise
            time.sleep(BATCH_POLL_SECONDS)

    def _ingest(self, record: dict, state) -> None:
        stage, executor = self.stage, self.executor
        sent = {}
        for raw in Path(record["path"]).read_text().splitlines():
            line = json.loads(raw)
            sent[line["custom_id"]] = line["body"]
        results = self.client.results(state)
        answered, missing = [], 0
        for custom_id, body in sent.items():
            result = results.get(custom_id)
            if result is None or result.outcome is None:
                missing += 1
                continue
            params = {k: v for k, v in body.items() if k not in ("model", "messages")}
            work = Work(None, body["messages"], "", "", 0, attempt=1, params=params)
            work.key = call_key(
                base_url=stage.base_url,
                model=stage.model,
                messages=body["messages"],
                params={**params, "attempt": 1},
            )
            answered.append((work, result.outcome))
        if answered:
            executor.ledger_write(stage, answered, batch=True)
        executor.reserved -= Decimal(record.get("reserve", "0"))
        stats = executor.stage_stats(stage)
        stats["batch_missing"] += missing
        record.update(ingested=True, answered=len(answered), missing=missing)
        if missing:
            logger.warning(
                "cascade #%s stage %s: batch %s answered %s of %s requests; the rest go online",
                executor.run.pk, stage.number, record["id"], len(answered), len(sent),
            )  # fmt: skip


def _jsonl_custom_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(raw)["custom_id"] for raw in path.read_text().splitlines() if raw.strip()}
