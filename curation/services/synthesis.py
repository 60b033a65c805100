"""Synthetic triplets: sample passages of the dataset's corpus (seeded), have an LLM write a
query for each, then a hard negative (``generate``) or mine one with the teacher (``mine``);
the teacher filter drops triplets whose positive does not rank in the top k for its own
query and negatives scoring above ``negative_max_ratio`` x the positive. Survivors become a
``syn:<hash>`` query with an ``origin=generated`` positive and negative. Flow, resume and
costs: ``curation/mining/mining.md``.

    sample ─► per chunk: query calls ─► (negative calls) ─► teacher scores ─► filter
           ─► ONE transaction: passages, queries, candidates (ON CONFLICT DO NOTHING), counts

Calls go through the ``LLMCall`` ledger: an answer already there (same endpoint, model,
messages, parameters) is reused, so a resumed or repeated run pays nothing twice.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import F

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run, no_progress
from core.ml.encoder import EncoderSettings, default_prefixes, encoder_get, passage_text

from ..datasets.corpus import corpus_generated_negative_ids, corpus_version, passages_by_ids
from ..datasets.formats.base import text_hash, text_id
from ..embeddings import corpus_embeddings_get, default_model_name, default_precision
from ..llm.engine import CallFailed, CallPool, JudgeClient, call_key
from ..llm.stages import StageSettings, call_cost, stage_settings_from_env
from ..mining.core import MiningConfig, build_index, search, select_negatives
from ..mining.synthesis import (
    Prompt,
    generated_parse,
    negative_prompt_build,
    query_prompt_build,
    synthetic_query_id,
    teacher_verdict,
)
from ..models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Corpus,
    Dataset,
    LLMCall,
    Passage,
    Query,
    SynthesisNegativeMode,
    SynthesisRun,
)
from .mining import rows_insert_ignoring_conflicts

logger = logging.getLogger(__name__)

# Passages per chunk: the calls of a chunk run concurrently, then its survivors are written
# in one transaction; a cancel or a crash loses at most one chunk of (ledgered) calls.
CHUNK = 100
MAX_SAMPLE = 100_000
# How deep the teacher looks for a mined negative.
MINE_DEPTH = 100
TEACHER_SHARE = 0.3
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def synthesis_generator_defaults() -> dict:
    """The generator endpoint: stage 1's settings from the environment (a cheap model),
    with room for a passage-length answer."""
    return stage_settings_from_env(1).with_changes(max_tokens=1024).as_dict()


def _field_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, detail={"field": field})


def _generator_settings(data: dict) -> StageSettings:
    try:
        stage = StageSettings.from_dict({**synthesis_generator_defaults(), **data})
    except (TypeError, ValueError) as error:
        raise _field_error(f"generator settings: {error}", "generator") from None
    if not stage.model.strip():
        raise _field_error("the generator needs a model name", "model")
    if not stage.base_url.startswith(("http://", "https://")):
        raise _field_error(
            "the generator's base URL must start with http:// or https://", "base_url"
        )
    if not _ENV_NAME.match(stage.api_key_env or ""):
        # Guards against a key typed where its variable's name belongs: it would be stored.
        raise _field_error(
            "name the environment variable that holds the API key (e.g. OPENAI_API_KEY), "
            "never the key itself",
            "api_key_env",
        )
    try:
        for price in (stage.price_in_per_m, stage.price_out_per_m):
            if Decimal(price) < 0:
                raise ValueError
    except (ArithmeticError, ValueError):
        raise _field_error("prices must be decimal numbers >= 0", "price_in_per_m") from None
    if stage.concurrency < 1 or stage.max_tokens < 1:
        raise _field_error("concurrency and max tokens must be at least 1", "concurrency")
    return stage


def synthesis_run_create(
    *,
    dataset: Dataset,
    sample_size: int = 100,
    seed: int = 0,
    generator: dict | None = None,
    negative_mode: str = SynthesisNegativeMode.GENERATE,
    teacher_model: str = "",
    top_k: int = 3,
    negative_max_ratio: float = 0.95,
    budget_usd: Decimal | str | None = None,
    user=None,
    enqueue: bool = True,
) -> SynthesisRun:
    """Record a synthesis run (validated) and, with ``enqueue``, run it on a worker once this
    transaction commits. ``generator`` overrides the default endpoint settings (see
    ``curation.llm.stages.StageSettings``); the API key stays in the environment."""
    stage = _generator_settings(generator or {})
    if negative_mode not in SynthesisNegativeMode.values:
        raise _field_error(
            f"negative mode must be one of {', '.join(SynthesisNegativeMode.values)}",
            "negative_mode",
        )
    if not 1 <= sample_size <= MAX_SAMPLE:
        raise _field_error(f"sample size must be between 1 and {MAX_SAMPLE:,}", "sample_size")
    if seed < 0:
        raise _field_error("the seed must be a whole number >= 0", "seed")
    if top_k < 1:
        raise _field_error("top k must be at least 1", "top_k")
    if not 0 < negative_max_ratio <= 1.5:
        raise _field_error("the negative ratio must be in (0, 1.5]", "negative_max_ratio")
    budget_usd = Decimal(str(budget_usd)) if budget_usd not in (None, "") else None
    if budget_usd is not None and budget_usd <= 0:
        raise _field_error("the budget must be more than $0", "budget_usd")
    teacher_model = (teacher_model or "").strip() or default_model_name()
    with transaction.atomic():
        run = SynthesisRun.objects.create(
            dataset=dataset,
            sample_size=sample_size,
            seed=seed,
            generator=stage.as_dict(),
            negative_mode=negative_mode,
            teacher_model=teacher_model[:500],
            top_k=top_k,
            negative_max_ratio=negative_max_ratio,
            budget_usd=budget_usd,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            job_enqueue(job=run)
    return run


def synthesis_run_execute(*, run_id: int, echo: Callable[..., None] | None = None) -> None:
    """Worker side. Failures and cancellation are recorded on the row; running it again
    after a crash pays nothing for the calls already in the ledger and writes nothing twice."""
    run = SynthesisRun.objects.select_related("dataset", "dataset__corpus").get(pk=run_id)

    def work(progress) -> JobOutcome:
        stats = dataset_triplets_synthesize(run=run, progress=progress)
        reasons = stats.pop("failure_reasons")
        return JobOutcome(
            stats=stats,
            message=f"{stats['triplets_kept']:,} of {stats['passages_sampled']:,} sampled "
            f"passages became triplets",
            items_failed=stats["failed_calls"],
            items_succeeded=stats["paid_calls"] + stats["cached_calls"],
            failure_reasons=reasons,
        )

    job_run(job=run, work=work, echo=echo)


class _Generator:
    """The run's LLM calls through the ledger: cached answers are free; paid ones are stored
    (with their cost, added to the run) the moment they arrive."""

    def __init__(self, run: SynthesisRun, stage: StageSettings, pool: CallPool):
        self.run = run
        self.stage = stage
        self.pool = pool
        self.params = stage.request_params()
        self.stats: Counter = Counter()
        self.failure_reasons: Counter = Counter()
        self.cost = Decimal(0)

    def complete(self, prompts: list[Prompt], *, attempt: int = 1) -> list[LLMCall | CallFailed]:
        """The calls for ``prompts``, from the ledger or paid now. ``attempt`` 2 is the one
        retry of an unusable answer: twice the output room, and its own ledger key."""
        params = self.params if attempt == 1 else self.stage.request_params(attempt=attempt)
        key_params = params if attempt == 1 else {**params, "attempt": attempt}
        keys = [
            call_key(base_url=self.stage.base_url, model=self.stage.model,
                     messages=p.messages, params=key_params)
            for p in prompts
        ]  # fmt: skip
        cached = {c.key: c for c in LLMCall.objects.filter(key__in=set(keys))}
        results: list[LLMCall | CallFailed | None] = [cached.get(k) for k in keys]
        self.stats["cached_calls"] += sum(1 for r in results if r is not None)
        futures = {
            self.pool.submit(messages=prompts[i].messages, params=params): i
            for i, r in enumerate(results)
            if r is None
        }
        answered: list[tuple[int, object]] = []
        fatal: CallFailed | None = None
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            try:
                answered.append((i, future.result()))
            except CallFailed as error:
                results[i] = error
                self.stats["failed_calls"] += 1
                self.failure_reasons[error.message[:160]] += 1
                fatal = fatal or (error if error.fatal else None)
        if answered:
            for (i, _), call in zip(
                answered, self._ledger_write(answered, keys, prompts, key_params), strict=True
            ):
                results[i] = call
        if fatal is not None:
            raise ApplicationError(
                f"the generator ({self.stage.model} at {self.stage.base_url}) refused: "
                f"{fatal.message}",
                detail={"field": "generator"},
            )
        return results

    def _ledger_write(self, answered, keys, prompts, params) -> list[LLMCall]:
        rows = []
        for i, outcome in answered:
            rows.append(
                LLMCall(
                    key=keys[i],
                    base_url=self.stage.base_url,
                    model=self.stage.model,
                    request={
                        "messages": prompts[i].messages,
                        "params": params,
                        "purpose": f"synthesis:{self.run.pk}:{prompts[i].version}",
                    },
                    response_text=outcome.text,
                    finish_reason=outcome.finish_reason,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    cost_usd=call_cost(
                        input_tokens=outcome.input_tokens,
                        output_tokens=outcome.output_tokens,
                        stage=self.stage,
                    ),
                    latency_ms=outcome.latency_ms,
                    attempts=outcome.attempts,
                )
            )
        paid = sum((row.cost_usd for row in rows), Decimal(0))
        with transaction.atomic():
            LLMCall.objects.bulk_create(rows, ignore_conflicts=True)
            SynthesisRun.objects.filter(pk=self.run.pk).update(cost_usd=F("cost_usd") + paid)
        self.cost += paid
        self.stats["paid_calls"] += len(rows)
        self.stats["input_tokens"] += sum(r.input_tokens for r in rows)
        self.stats["output_tokens"] += sum(r.output_tokens for r in rows)
        # Another run may have stored the same key a moment earlier: use the stored row.
        stored = {c.key: c for c in LLMCall.objects.filter(key__in=[r.key for r in rows])}
        return [stored.get(row.key, row) for row in rows]


def dataset_triplets_synthesize(
    *, run: SynthesisRun, progress: Callable[..., None] | None = None
) -> dict:
    report = progress or no_progress
    stage = _generator_settings(run.generator)
    dataset = run.dataset
    corpus = dataset.corpus
    counts: Counter = Counter()

    # LLM-written negatives of earlier runs are corpus passages too; never anchor on them.
    ids = np.setdiff1d(
        corpus_version(corpus=corpus).passage_ids,
        corpus_generated_negative_ids(corpus=corpus),
        assume_unique=True,
    )
    if not len(ids):
        raise ApplicationError(
            f'corpus "{corpus.name}" has no passages', detail={"field": "corpus"}
        )
    rng = np.random.default_rng(run.seed)
    sample = rng.choice(ids, size=min(run.sample_size, len(ids)), replace=False).tolist()

    # The teacher: the same cached corpus embeddings mining uses.
    teacher = run.teacher_model or default_model_name()
    query_prefix, passage_prefix = default_prefixes(teacher)
    settings = EncoderSettings(
        precision=default_precision(), query_prefix=query_prefix, passage_prefix=passage_prefix
    )
    embeddings = corpus_embeddings_get(
        corpus=corpus,
        model=teacher,
        settings=settings,
        progress=lambda f, m="", force=False: report(f * TEACHER_SHARE, m, force=force),
    )
    encoder = encoder_get(teacher, settings)
    index = build_index(np.asarray(embeddings.matrix))
    base = TEACHER_SHARE if embeddings.built else 0.05
    report(base, f"writing queries for {len(sample):,} passages", force=True)

    api_key = os.environ.get(stage.api_key_env, "")

    def factory():
        return JudgeClient(
            base_url=stage.base_url, api_key=api_key, model=stage.model,
            concurrency=stage.concurrency, rpm=stage.rpm, timeout_s=stage.timeout_s,
            max_attempts=stage.max_attempts, backoff_base_s=stage.backoff_base_s,
        )  # fmt: skip

    with CallPool(factory) as pool:
        generator = _Generator(run, stage, pool)
        calls_per_passage = 2 if run.negative_mode == SynthesisNegativeMode.GENERATE else 1
        for start in range(0, len(sample), CHUNK):
            chunk = sample[start : start + CHUNK]
            if _over_budget(run, generator, calls=len(chunk) * calls_per_passage):
                counts["budget_reached"] = 1
                counts["passages_not_reached"] = len(sample) - start
                report(
                    base + (1 - base) * start / len(sample),
                    f"budget reached: ${run.cost_usd:.4f} of ${run.budget_usd} spent; "
                    f"stopped before {len(sample) - start:,} passages",
                    force=True,
                )
                break
            _chunk_synthesize(
                run=run,
                chunk=chunk,
                generator=generator,
                encoder=encoder,
                embeddings=embeddings,
                index=index,
                query_prefix=query_prefix,
                passage_prefix=passage_prefix,
                counts=counts,
            )
            done = start + len(chunk)
            report(
                base + (1 - base) * done / len(sample),
                f"{done:,} of {len(sample):,} passages, {counts['triplets_kept']:,} triplets "
                f"kept, ${generator.cost:.4f} spent",
            )

    run.refresh_from_db(fields=["cost_usd"])
    return {
        "passages_sampled": len(sample),
        "queries_generated": counts["queries_generated"],
        "negatives_generated": counts["negatives_generated"],
        "negatives_mined": counts["negatives_mined"],
        "unusable_answers": counts["unusable_answers"],
        "recovered_on_retry": counts["recovered_on_retry"],
        "budget_reached": bool(counts["budget_reached"]),
        "passages_not_reached": counts["passages_not_reached"],
        "dropped_positive_not_in_top_k": counts["dropped_positive_not_in_top_k"],
        "dropped_negative_too_close": counts["dropped_negative_too_close"],
        "dropped_no_negative_found": counts["dropped_no_negative_found"],
        "triplets_kept": counts["triplets_kept"],
        "queries_added": counts["queries_added"],
        "passages_added": counts["passages_added"],
        "paid_calls": generator.stats["paid_calls"],
        "cached_calls": generator.stats["cached_calls"],
        "failed_calls": generator.stats["failed_calls"],
        "failure_reasons": generator.failure_reasons.most_common(5),
        "input_tokens": generator.stats["input_tokens"],
        "output_tokens": generator.stats["output_tokens"],
        "cost_usd": str(run.cost_usd),
        "teacher": encoder.identity.key,
        "embedding_cache": embeddings.key,
    }


def _over_budget(run: SynthesisRun, generator: _Generator, *, calls: int) -> bool:
    """Whether the next chunk, at the average paid price per call so far, would take the
    run past its budget (spent counts earlier attempts of a resumed run too). Before any
    call was paid there is no price to project with, so only "already spent" counts."""
    if run.budget_usd is None:
        return False
    run.refresh_from_db(fields=["cost_usd"])
    paid = generator.stats["paid_calls"]
    projected = generator.cost / paid * calls if paid else Decimal(0)
    return run.cost_usd + projected > run.budget_usd


def _answers(
    generator: _Generator, prompts: list[Prompt], field: str, counts: Counter
) -> list[str | None]:
    """The generated texts for ``prompts`` (None where there is none). An unusable answer
    (unparseable, empty, or truncated at max_tokens) is recorded and retried once, never
    read as text; a failed call is not retried here (the client already retried it)."""
    texts: list[str | None] = []
    retry: list[int] = []
    for i, call in enumerate(generator.complete(prompts)):
        texts.append(None)
        if isinstance(call, CallFailed):
            continue
        parsed = generated_parse(call.response_text, field=field, finish_reason=call.finish_reason)
        if parsed.ok:
            texts[i] = parsed.text
        else:
            counts["unusable_answers"] += 1
            retry.append(i)
            logger.info(
                "synthesis: unusable %s answer (%s), call %s; retrying",
                field, parsed.error, call.key,
            )  # fmt: skip
    if retry:
        again = generator.complete([prompts[i] for i in retry], attempt=2)
        for i, call in zip(retry, again, strict=True):
            if isinstance(call, CallFailed):
                continue
            parsed = generated_parse(
                call.response_text, field=field, finish_reason=call.finish_reason
            )
            if parsed.ok:
                texts[i] = parsed.text
                counts["recovered_on_retry"] += 1
    return texts


def _chunk_synthesize(
    *,
    run: SynthesisRun,
    chunk: list[int],
    generator: _Generator,
    encoder,
    embeddings,
    index,
    query_prefix: str,
    passage_prefix: str,
    counts: Counter,
) -> None:
    json_mode = generator.stage.json_mode
    passages = passages_by_ids(passage_ids=chunk)
    chunk = [pk for pk in chunk if pk in passages]
    positives = [passage_text(passages[pk][1], passages[pk][2]) for pk in chunk]

    queries = _answers(
        generator,
        [query_prompt_build(passage=p, json_mode=json_mode) for p in positives],
        "query",
        counts,
    )
    alive = [i for i, q in enumerate(queries) if q]
    counts["queries_generated"] += len(alive)
    if not alive:
        return
    generate = run.negative_mode == SynthesisNegativeMode.GENERATE
    negatives: dict[int, str] = {}
    if generate:
        prompts = [
            negative_prompt_build(query=queries[i], passage=positives[i], json_mode=json_mode)
            for i in alive
        ]
        for i, text in zip(alive, _answers(generator, prompts, "passage", counts), strict=True):
            if text:
                negatives[i] = text
        counts["negatives_generated"] += len(negatives)
        alive = [i for i in alive if i in negatives]
        if not alive:
            return

    # Teacher scores. A sampled passage is in the cached corpus unless it was added since.
    positive_rows = embeddings.rows_of([chunk[i] for i in alive])
    alive = [i for i, row in zip(alive, positive_rows.tolist(), strict=True) if row >= 0]
    positive_rows = positive_rows[positive_rows >= 0]
    if not alive:
        return
    query_vectors = encoder.encode_queries([queries[i] for i in alive], prefix=query_prefix)
    positive_scores = np.einsum(
        "ij,ij->i", np.asarray(embeddings.matrix[np.maximum(positive_rows, 0)]), query_vectors
    )
    depth = run.top_k + 1 if generate else max(run.top_k + 1, MINE_DEPTH + 1)
    scores, indices = search(index, query_vectors, k=depth)
    mined: dict[int, tuple[int, float]] = {}
    negative_scores: dict[int, float] = {}
    if generate:
        vectors = encoder.encode_passages([negatives[i] for i in alive], prefix=passage_prefix)
        for j, i in enumerate(alive):
            negative_scores[i] = float(vectors[j] @ query_vectors[j])
    else:
        picked = select_negatives(
            scores=scores,
            indices=indices,
            positives=[[int(r)] for r in positive_rows],
            positive_scores=[np.array([s]) for s in positive_scores],
            config=MiningConfig(
                range_max=MINE_DEPTH,
                num_negatives=1,
                relative_margin=1 - run.negative_max_ratio,
            ),
        )
        for j, i in enumerate(alive):
            if picked[j]:
                row, score = picked[j][0].doc_index, picked[j][0].score
                mined[i] = (int(embeddings.passage_ids[row]), score)
                negative_scores[i] = score
        counts["negatives_mined"] += len(mined)

    kept: list[tuple[int, float, float]] = []  # (position in chunk, positive, negative score)
    for j, i in enumerate(alive):
        top = indices[j][: run.top_k + 1]
        others = [float(s) for s, r in zip(scores[j][: run.top_k + 1], top, strict=True)
                  if r != positive_rows[j] and r >= 0]  # fmt: skip
        drop = teacher_verdict(
            positive_score=float(positive_scores[j]),
            other_scores=others,
            negative_score=negative_scores.get(i),
            negative_in_ranking=generate,
            top_k=run.top_k,
            negative_max_ratio=run.negative_max_ratio,
        )
        if drop:
            counts[f"dropped_{drop}"] += 1
        else:
            kept.append((i, float(positive_scores[j]), negative_scores[i]))
    if not kept:
        return
    _triplets_write(
        run=run,
        kept=kept,
        chunk=chunk,
        passages=passages,
        queries=queries,
        generated=negatives,
        mined=mined,
        counts=counts,
    )


def _triplets_write(*, run, kept, chunk, passages, queries, generated, mined, counts) -> None:
    """Survivors in one transaction: generated negatives as ``h:<hash>`` passages of the
    corpus, ``syn:<hash>`` queries, their positive and negative candidates; every INSERT
    skips what exists, and the parent counters grow by exactly what was inserted."""
    dataset = run.dataset
    corpus_id = dataset.corpus_id
    with transaction.atomic():
        new_passages = {text_id(generated[i]): generated[i] for i, _, _ in kept if i in generated}
        added = rows_insert_ignoring_conflicts(
            table=Passage._meta.db_table,
            columns=["corpus_id", "doc_id", "title", "text", "text_hash"],
            rows=[(corpus_id, d, "", t, text_hash("", t)) for d, t in new_passages.items()],
            conflict=["corpus_id", "doc_id"],
            returning=["id"],
        )
        if added:
            Corpus.objects.filter(pk=corpus_id).update(
                passage_count=F("passage_count") + len(added)
            )
        counts["passages_added"] += len(added)
        passage_pk = dict(
            Passage.objects.filter(corpus_id=corpus_id, doc_id__in=list(new_passages)).values_list(
                "doc_id", "id"
            )
        )
        query_rows = {
            synthetic_query_id(passage_doc_id=passages[chunk[i]][0], query=queries[i]): i
            for i, _, _ in kept
        }
        added_queries = rows_insert_ignoring_conflicts(
            table=Query._meta.db_table,
            columns=["dataset_id", "query_id", "text"],
            rows=[(dataset.pk, qid, queries[i]) for qid, i in query_rows.items()],
            conflict=["dataset_id", "query_id"],
            returning=["id"],
        )
        counts["queries_added"] += len(added_queries)
        query_pk = dict(
            Query.objects.filter(dataset=dataset, query_id__in=list(query_rows)).values_list(
                "query_id", "id"
            )
        )
        scores = {i: (positive, negative) for i, positive, negative in kept}
        candidates = []
        for qid, i in query_rows.items():
            positive_score, negative_score = scores[i]
            negative_pk = mined[i][0] if i in mined else passage_pk[text_id(generated[i])]
            candidates += [
                (query_pk[qid], chunk[i], CandidateRole.POSITIVE, CandidateOrigin.GENERATED,
                 None, positive_score),
                (query_pk[qid], negative_pk, CandidateRole.NEGATIVE, CandidateOrigin.GENERATED,
                 1, negative_score),
            ]  # fmt: skip
        inserted = rows_insert_ignoring_conflicts(
            table=Candidate._meta.db_table,
            columns=["query_id", "passage_id", "role", "origin", "rank", "teacher_score"],
            rows=candidates,
            conflict=["query_id", "passage_id"],
            returning=["role"],
        )
        roles = Counter(role for (role,) in inserted)
        Dataset.objects.filter(pk=dataset.pk).update(
            query_count=F("query_count") + len(added_queries),
            positive_count=F("positive_count") + roles[CandidateRole.POSITIVE],
            negative_count=F("negative_count") + roles[CandidateRole.NEGATIVE],
        )
    counts["triplets_kept"] += len(kept)
