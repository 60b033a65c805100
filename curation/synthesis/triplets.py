"""One chunk of a synthesis run: queries (and negatives) written by the generator, scored by
the teacher, filtered, and the survivors written in one transaction (``syn:<hash>`` queries,
``h:<hash>`` generated passages, ``origin=generated`` candidates; every INSERT skips what
exists, so a resumed run writes nothing twice)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from django.db import transaction
from django.db.models import F

from core.ml.encoder import passage_text

from ..bulk import rows_insert_ignoring_conflicts
from ..datasets.corpus import passages_by_ids
from ..datasets.formats.base import text_hash, text_id
from ..mining.core import MiningConfig, search, select_negatives
from ..models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Corpus,
    Dataset,
    Passage,
    Query,
    SynthesisNegativeMode,
    SynthesisRun,
)
from .core import negative_prompt_build, query_prompt_build, synthetic_query_id, teacher_verdict
from .generator import Generator, generated_texts

# How deep the teacher looks for a mined negative.
MINE_DEPTH = 100


def chunk_synthesize(
    *,
    run: SynthesisRun,
    chunk: list[int],
    generator: Generator,
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

    queries = generated_texts(
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
        for i, text in zip(
            alive, generated_texts(generator, prompts, "passage", counts), strict=True
        ):
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
    triplets_write(
        run=run,
        kept=kept,
        chunk=chunk,
        passages=passages,
        queries=queries,
        generated=negatives,
        mined=mined,
        counts=counts,
    )


def triplets_write(*, run, kept, chunk, passages, queries, generated, mined, counts) -> None:
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
