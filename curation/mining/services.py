"""Hard-negative mining runs: encode the corpus (cached) and the dataset's queries, search,
select positive-aware negatives, write them as ``origin=mined`` candidates, and write the
teacher margin as a stage-0 machine judgment. Flow, resume and scale: ``curation/mining/mining.md``.

    corpus embeddings (cache or encode) ─► index ─► per chunk of queries, in id order:
    encode ─► search ─► select ─► ONE transaction: INSERT … ON CONFLICT DO NOTHING,
    negative_count += inserted, teacher judgments not yet written ─► progress / cancel
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run, no_progress
from core.ml.encoder import EncoderSettings, default_prefixes, encoder_get

from ..bulk import rows_insert_ignoring_conflicts
from ..embeddings import corpus_embeddings_get, default_model_name, default_precision
from ..models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Dataset,
    Judgment,
    MiningRun,
    MiningSampling,
    Query,
    RaterKind,
    Verdict,
)
from .core import (
    MiningConfig,
    build_index,
    retrieval_depth,
    search,
    select_negatives,
)
from .selectors import dataset_queries_stream, query_candidates_for

logger = logging.getLogger(__name__)

# Queries per chunk: one encode call, one search, one transaction. Also bounds the SQL
# parameters of a chunk's lookups (SQLite allows 32,766).
QUERY_CHUNK = 1000
# Share of the progress bar for encoding the corpus when it is not cached.
ENCODE_SHARE = 0.7
TEACHER_PROMPT_VERSION = "margin-v1"


def _field_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, detail={"field": field})


def mining_config_from(run: MiningRun) -> MiningConfig:
    return MiningConfig(
        range_min=run.range_min,
        range_max=run.range_max,
        num_negatives=run.num_negatives,
        absolute_margin=run.absolute_margin,
        relative_margin=run.relative_margin,
        max_score=run.max_score,
        min_score=run.min_score,
        sampling=run.sampling,
        seed=run.seed,
    )


def mining_run_create(
    *,
    dataset: Dataset,
    model_name: str = "",
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    approximate: bool = False,
    range_min: int = 0,
    range_max: int = 100,
    num_negatives: int = 15,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    sampling: str = MiningSampling.TOP,
    seed: int = 0,
    teacher_flag_ratio: float | None = 0.95,
    user=None,
    enqueue: bool = True,
) -> MiningRun:
    """Record a mining run (validated) and, with ``enqueue``, run it on a worker once this
    transaction commits. ``model_name`` defaults to the configured embedding model; prefixes
    left as None take the model family's known ones (E5: ``query: `` / ``passage: ``)."""
    model_name = (model_name or "").strip() or default_model_name()
    known_query, known_passage = default_prefixes(model_name)
    run = MiningRun(
        dataset=dataset,
        model_name=model_name,
        query_prefix=known_query if query_prefix is None else query_prefix,
        passage_prefix=known_passage if passage_prefix is None else passage_prefix,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        approximate=approximate,
        range_min=range_min,
        range_max=range_max,
        num_negatives=num_negatives,
        absolute_margin=absolute_margin,
        relative_margin=relative_margin,
        max_score=max_score,
        min_score=min_score,
        sampling=sampling,
        seed=seed,
        teacher_flag_ratio=teacher_flag_ratio,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    _validate(run)
    with transaction.atomic():
        run.save()
        if enqueue:
            job_enqueue(job=run)
    return run


def _validate(run: MiningRun) -> None:
    if len(run.model_name) > 500:
        raise _field_error("the model name is too long (500 characters at most)", "model_name")
    try:
        mining_config_from(run)
    except ValueError as error:
        field = (
            "sampling"
            if "sampling" in str(error)
            else ("num_negatives" if "num_negatives" in str(error) else "range_max")
        )
        raise _field_error(str(error), field) from None
    if run.batch_size < 1:
        raise _field_error("batch size must be at least 1", "batch_size")
    if run.max_seq_length is not None and run.max_seq_length < 1:
        raise _field_error("max sequence length must be at least 1", "max_seq_length")
    if run.seed < 0:
        raise _field_error("the seed must be a whole number >= 0", "seed")
    for name in ("absolute_margin", "relative_margin"):
        value = getattr(run, name)
        if value is not None and value < 0:
            raise _field_error(f"{name.replace('_', ' ')} must be >= 0", name)
    if run.relative_margin is not None and run.relative_margin >= 1:
        raise _field_error(
            "relative margin must be below 1 (0.05 = the 95% rule)", "relative_margin"
        )
    if run.teacher_flag_ratio is not None and run.teacher_flag_ratio <= 0:
        raise _field_error("the teacher flag ratio must be above 0", "teacher_flag_ratio")


# --- execution --------------------------------------------------------------------------


def mining_run_execute(*, run_id: int, echo: Callable[..., None] | None = None) -> None:
    """Worker side. Failures and cancellation are recorded on the row. Running it again —
    a redelivered task after a crash — redoes only what is missing: the corpus embeddings
    come from the cache, candidates and judgments already written are skipped."""
    run = MiningRun.objects.select_related("dataset", "dataset__corpus").get(pk=run_id)

    def work(progress) -> JobOutcome:
        result = dataset_negatives_mine(run=run, progress=progress)
        return JobOutcome(
            stats=result,
            message=f"{result['negatives_added']:,} negatives added to "
            f"{result['queries_with_new_negatives']:,} queries",
        )

    job_run(job=run, work=work, echo=echo)


@dataclass
class _Teacher:
    rater: str
    model_name: str
    prompt_version: str
    ratio: float
    source_run: str


def dataset_negatives_mine(*, run: MiningRun, progress: Callable[..., None] | None = None) -> dict:
    """Mine ``run.dataset`` with ``run``'s settings; returns the run's stats."""
    report = progress or no_progress
    dataset = run.dataset
    config = mining_config_from(run)
    timings: dict[str, float] = {}

    started = time.monotonic()
    precision = default_precision()
    settings = EncoderSettings(
        max_seq_length=run.max_seq_length,
        batch_size=run.batch_size,
        precision=precision,
        query_prefix=run.query_prefix,
        passage_prefix=run.passage_prefix,
    )
    # Importing torch and loading the model takes seconds to a minute on a CPU: say so.
    report(0.0, "loading the embedding model", force=True)
    encoder = encoder_get(run.model_name, settings)
    encode_before = encoder.encode_seconds
    embeddings = corpus_embeddings_get(
        corpus=dataset.corpus,
        model=run.model_name,
        settings=settings,
        progress=lambda f, m="", force=False: report(f * ENCODE_SHARE, m, force=force),
    )
    timings["corpus_seconds"] = time.monotonic() - started
    timings["passage_encode_seconds"] = encoder.encode_seconds - encode_before
    identity = encoder.identity
    teacher = None
    if run.teacher_flag_ratio is not None:
        teacher = _Teacher(
            rater=f"teacher:{identity.short_name}:margin",
            model_name=f"{identity.short_name}@{identity.revision[:12]}"[:200],
            prompt_version=f"{TEACHER_PROMPT_VERSION}:ratio={run.teacher_flag_ratio:g}"[:64],
            ratio=float(run.teacher_flag_ratio),
            source_run=f"mining:{run.pk}",
        )

    base = ENCODE_SHARE if embeddings.built else 0.05
    report(base, f"building the search index over {len(embeddings):,} passages", force=True)
    started = time.monotonic()
    index = build_index(np.asarray(embeddings.matrix), approximate=run.approximate)
    timings["index_seconds"] = time.monotonic() - started
    matrix = embeddings.matrix

    total = Query.objects.filter(dataset=dataset).count()
    counts = defaultdict(int)
    report(base, f"mining {total:,} queries", force=True)
    timings["query_encode_seconds"] = timings["search_seconds"] = timings["write_seconds"] = 0.0
    done = 0
    for chunk in dataset_queries_stream(dataset=dataset, batch_size=QUERY_CHUNK):
        # Each phase of a chunk says so as it starts (force: a phase that began within the
        # reporter's interval of the last write would otherwise show the previous text).
        fraction = base + (1 - base) * done / max(total, done + len(chunk))
        which = f"queries {done + 1:,}–{done + len(chunk):,} of {total:,}"
        positives_by_query: dict[int, list[int]] = defaultdict(list)
        for _, query_pk, passage_pk, _ in query_candidates_for(
            query_ids=[pk for pk, _ in chunk], role=CandidateRole.POSITIVE
        ):
            positives_by_query[query_pk].append(passage_pk)
        # Without a positive there is no triplet to train on and no margin to respect; a
        # positive newer than the cached corpus has no row (the next run's cache has it).
        positive_rows: dict[int, np.ndarray] = {}
        for pk, _ in chunk:
            rows = embeddings.rows_of(positives_by_query.get(pk, []))
            if (rows >= 0).any():
                positive_rows[pk] = rows[rows >= 0]
        anchored = [(pk, text) for pk, text in chunk if pk in positive_rows]
        query_pks = [pk for pk, _ in anchored]
        counts["queries_with_positives"] += len(anchored)

        report(fraction, f"encoding {which}", force=True)
        t0 = time.monotonic()
        query_vectors = encoder.encode_queries(
            [text for _, text in anchored], prefix=run.query_prefix, batch_size=run.batch_size
        )
        timings["query_encode_seconds"] += time.monotonic() - t0

        report(fraction, f"searching the corpus for {which}", force=True)
        t0 = time.monotonic()
        positive_scores = [
            np.asarray(matrix[positive_rows[pk]]) @ query_vectors[i]
            for i, pk in enumerate(query_pks)
        ]
        rows_to_insert = []
        if anchored:
            depth = retrieval_depth(
                config, max_positives=max(len(rows) for rows in positive_rows.values())
            )
            scores, indices = search(index, query_vectors, k=depth)
            mined = select_negatives(
                scores=scores,
                indices=indices,
                positives=[positive_rows[pk].tolist() for pk in query_pks],
                positive_scores=positive_scores,
                config=config,
                query_seeds=query_pks,
            )
            rows_to_insert = [
                (pk, int(embeddings.passage_ids[n.doc_index]), n.rank, n.score)
                for pk, negatives in zip(query_pks, mined, strict=True)
                for n in negatives
            ]
        timings["search_seconds"] += time.monotonic() - t0

        report(fraction, f"writing the negatives and judgments of {which}", force=True)
        t0 = time.monotonic()
        counts["negatives_selected"] += len(rows_to_insert)
        with transaction.atomic():
            inserted = mined_candidates_insert(rows=rows_to_insert)
            counts["negatives_added"] += len(inserted)
            counts["queries_with_new_negatives"] += len({q for q, _ in inserted})
            if inserted:
                Dataset.objects.filter(pk=dataset.pk).update(
                    negative_count=F("negative_count") + len(inserted)
                )
            if teacher is not None and query_pks:
                written, flagged = _teacher_judge(
                    teacher=teacher,
                    query_pks=query_pks,
                    query_vectors=query_vectors,
                    positive_scores=positive_scores,
                    embeddings=embeddings,
                )
                counts["teacher_judgments"] += written
                counts["teacher_flagged_relevant"] += flagged
        timings["write_seconds"] += time.monotonic() - t0
        done += len(chunk)
        report(
            base + (1 - base) * done / max(total, done),
            f"mined {done:,} of {total:,} queries, {counts['negatives_added']:,} negatives added",
        )

    return {
        "queries": done,
        "queries_with_positives": counts["queries_with_positives"],
        "negatives_selected": counts["negatives_selected"],
        "negatives_added": counts["negatives_added"],
        "negatives_already_present": counts["negatives_selected"] - counts["negatives_added"],
        "queries_with_new_negatives": counts["queries_with_new_negatives"],
        "teacher_rater": teacher.rater if teacher else "",
        "teacher_judgments": counts["teacher_judgments"],
        "teacher_flagged_relevant": counts["teacher_flagged_relevant"],
        "corpus_passages": len(embeddings),
        "corpus_encoded": embeddings.built,
        "passages_encoded": embeddings.encoded,
        "embedding_cache": embeddings.key,
        "model": identity.key,
        "precision": encoder.precision,
        **{name: round(value, 2) for name, value in timings.items()},
    }


def mined_candidates_insert(*, rows: list[tuple[int, int, int, float]]) -> list[tuple[int, int]]:
    """INSERT (query, passage, rank, score) as mined negatives; a pair already present keeps
    its row (ON CONFLICT DO NOTHING). Returns the (query, passage) pairs actually inserted."""
    return rows_insert_ignoring_conflicts(
        table=Candidate._meta.db_table,
        columns=["query_id", "passage_id", "role", "origin", "rank", "teacher_score"],
        rows=[
            (q, p, CandidateRole.NEGATIVE, CandidateOrigin.MINED, rank, float(score))
            for q, p, rank, score in rows
        ],
        conflict=["query_id", "passage_id"],
        returning=["query_id", "passage_id"],
    )


def _teacher_judge(
    *,
    teacher: _Teacher,
    query_pks: list[int],
    query_vectors: np.ndarray,
    positive_scores: list[np.ndarray],
    embeddings,
) -> tuple[int, int]:
    """The stage-0 judge: for each of ``query_pks`` (queries with a positive, in the order of
    ``query_vectors`` and ``positive_scores``), each negative (any origin) is ``relevant``
    when its teacher score reaches ``ratio`` x the lowest positive's score.
    Skips candidates this teacher (same model revision and ratio) already judged, so a
    resumed or repeated run adds nothing twice. Returns (judgments written, flagged)."""
    position = {pk: i for i, pk in enumerate(query_pks)}
    judged = set(
        Judgment.objects.filter(
            candidate__query_id__in=query_pks,
            rater=teacher.rater,
            model_name=teacher.model_name,
            prompt_version=teacher.prompt_version,
        ).values_list("candidate_id", flat=True)
    )
    negatives = [
        row
        for row in query_candidates_for(query_ids=query_pks, role=CandidateRole.NEGATIVE)
        if row[0] not in judged
    ]
    if not negatives:
        return 0, 0
    rows = embeddings.rows_of([passage_pk for _, _, passage_pk, _ in negatives])
    # A passage newer than the cached corpus has no score to judge by.
    keep = rows >= 0
    negatives = [row for row, ok in zip(negatives, keep, strict=True) if ok]
    if not negatives:
        return 0, 0
    which = np.array([position[query_pk] for _, query_pk, _, _ in negatives])
    vectors = np.asarray(embeddings.matrix[rows[keep]])
    scores = np.einsum("ij,ij->i", vectors, query_vectors[which])
    references = np.array([float(np.min(positive_scores[i])) for i in which])
    relevant = scores >= teacher.ratio * references
    judgments = [
        Judgment(
            candidate_id=candidate_pk,
            rater=teacher.rater,
            rater_kind=RaterKind.MACHINE,
            verdict=Verdict.RELEVANT if is_relevant else Verdict.NOT_RELEVANT,
            rationale=(
                f"teacher score {score:.4f} vs lowest positive {reference:.4f}; "
                f"flagged at >= {teacher.ratio:g} x positive ({teacher.ratio * reference:.4f})"
            ),
            model_name=teacher.model_name,
            prompt_version=teacher.prompt_version,
            source_run=teacher.source_run,
        )
        for (candidate_pk, _, _, _), score, reference, is_relevant in zip(
            negatives, scores.tolist(), references.tolist(), relevant.tolist(), strict=True
        )
    ]
    Judgment.objects.bulk_create(judgments, batch_size=2_000)
    return len(judgments), int(relevant.sum())
