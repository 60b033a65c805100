"""Synthetic triplets: sample passages of the dataset's corpus (seeded), have an LLM write a
query for each, then a hard negative (``generate``) or mine one with the teacher (``mine``);
the teacher filter drops triplets whose positive does not rank in the top k for its own
query and negatives scoring above ``negative_max_ratio`` x the positive. Survivors become a
``syn:<hash>`` query with an ``origin=generated`` positive and negative. Flow, resume and
costs: ``curation/synthesis/synthesis.md``.

    sample ─► per chunk: query calls ─► (negative calls) ─► teacher scores ─► filter
           ─► ONE transaction: passages, queries, candidates (ON CONFLICT DO NOTHING), counts

Calls go through the ``LLMCall`` ledger: an answer already there (same endpoint, model,
messages, parameters) is reused, so a resumed or repeated run pays nothing twice.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import numpy as np
from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run, no_progress
from core.ml.encoder import EncoderSettings, default_prefixes, encoder_get

from ..datasets.corpus import corpus_generated_negative_ids, corpus_version
from ..embeddings import corpus_embeddings_get, default_model_name, default_precision
from ..llm.engine import CallPool, stage_client_factory
from ..llm.stages import StageSettings, stage_settings_from_env
from ..mining.core import build_index
from ..models import Dataset, SynthesisNegativeMode, SynthesisRun
from .generator import Generator
from .triplets import chunk_synthesize

logger = logging.getLogger(__name__)

# Passages per chunk: the calls of a chunk run concurrently, then its survivors are written
# in one transaction; a cancel or a crash loses at most one chunk of (ledgered) calls.
CHUNK = 100
MAX_SAMPLE = 100_000
TEACHER_SHARE = 0.3
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def synthesis_generator_defaults() -> dict:
    """The generator endpoint: stage 1's settings from the environment (a cheap model),
    with room for a passage-length answer."""
    return stage_settings_from_env(1).with_changes(max_tokens=1024).as_dict()


def _field_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, detail={"field": field})


def synthesis_generator_stage(data: dict) -> StageSettings:
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
    stage = synthesis_generator_stage(generator or {})
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


def dataset_triplets_synthesize(
    *, run: SynthesisRun, progress: Callable[..., None] | None = None
) -> dict:
    report = progress or no_progress
    stage = synthesis_generator_stage(run.generator)
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

    with CallPool(stage_client_factory(stage)) as pool:
        generator = Generator(run, stage, pool)
        calls_per_passage = 2 if run.negative_mode == SynthesisNegativeMode.GENERATE else 1
        for start in range(0, len(sample), CHUNK):
            chunk = sample[start : start + CHUNK]
            if _over_budget(run, generator, calls=len(chunk) * calls_per_passage):
                counts["budget_reached"] = 1
                counts["passages_not_reached"] = len(sample) - start
                report(
                    base + (1 - base) * start / len(sample),
                    f"budget reached: ${run.cost_usd:.4f} of ${run.budget_usd:.4f} spent; "
                    f"stopped before {len(sample) - start:,} passages",
                    force=True,
                )
                break
            chunk_synthesize(
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


def _over_budget(run: SynthesisRun, generator: Generator, *, calls: int) -> bool:
    """Whether the next chunk, at the average paid price per call so far, would take the
    run past its budget (spent counts earlier attempts of a resumed run too). Before any
    call was paid there is no price to project with, so only "already spent" counts."""
    if run.budget_usd is None:
        return False
    run.refresh_from_db(fields=["cost_usd"])
    paid = generator.stats["paid_calls"]
    projected = generator.cost / paid * calls if paid else Decimal(0)
    return run.cost_usd + projected > run.budget_usd
