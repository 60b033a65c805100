"""Hard-negative mining, the part that needs no Django: exact or approximate inner-product
search with faiss, then positive-aware selection. Embeddings come in as float32 arrays
(already normalised when the model's similarity is cosine); the caller encodes.

Selection follows sentence-transformers' ``mine_hard_negatives`` and NV-Retriever:

* the query's positives are never candidates;
* ``range_min`` / ``range_max`` keep a window of the ranking (ranks count the retrieved
  non-positive passages, 1-based, best first) — skipping the very top avoids the passages
  most likely to be unlabelled positives;
* ``absolute_margin``: keep a negative only if ``score <= ref - absolute_margin``;
  ``relative_margin``: only if ``score <= ref * (1 - relative_margin)`` (0.05 is
  NV-Retriever's "95% of the positive" rule); ``ref`` is the query's lowest positive score;
* ``max_score`` / ``min_score`` bound the raw score;
* then ``num_negatives`` are taken, the best (``top``) or a seeded ``random`` sample.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MiningConfig:
    range_min: int = 0
    range_max: int = 100
    num_negatives: int = 15
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    sampling: str = "top"  # or "random"
    seed: int = 0

    def __post_init__(self):
        if self.sampling not in ("top", "random"):
            raise ValueError(f"sampling must be 'top' or 'random', not {self.sampling!r}")
        if not 0 <= self.range_min < self.range_max:
            raise ValueError("need 0 <= range_min < range_max")
        if self.num_negatives < 1:
            raise ValueError("num_negatives must be at least 1")


@dataclass(frozen=True)
class MinedNegative:
    doc_index: int  # row in the corpus embedding matrix
    rank: int  # 1-based among retrieved non-positive passages
    score: float


def build_index(
    corpus_embeddings: np.ndarray, *, approximate: bool = False, nlist: int | None = None
):
    """Exact ``IndexFlatIP`` by default; ``approximate`` builds an IVF-Flat index (trained on
    the corpus itself) for corpora where exact search is too slow."""
    import faiss

    vectors = np.ascontiguousarray(corpus_embeddings, dtype=np.float32)
    dim = vectors.shape[1]
    if not approximate:
        index = faiss.IndexFlatIP(dim)
    else:
        # faiss wants ~39 training points per centroid.
        nlist = nlist or max(1, min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = max(1, nlist // 8)
    index.add(vectors)
    return index


def search(index, query_embeddings: np.ndarray, *, k: int, batch_size: int = 1024):
    """Top-``k`` (scores, indices) per query, searched in batches (faiss is fastest on
    batches of about a thousand queries)."""
    queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)
    k = min(k, index.ntotal)
    scores = np.empty((len(queries), k), dtype=np.float32)
    indices = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        s, i = index.search(queries[start : start + batch_size], k)
        scores[start : start + batch_size] = s
        indices[start : start + batch_size] = i
    return scores, indices


def select_negatives(
    *,
    scores: np.ndarray,
    indices: np.ndarray,
    positives: list[list[int]],
    positive_scores: list[np.ndarray],
    config: MiningConfig,
    query_seeds: list[int] | None = None,
) -> list[list[MinedNegative]]:
    """For each query, the negatives kept by ``config`` from its retrieved list.

    ``positives[q]`` are the corpus rows of query q's positives and ``positive_scores[q]``
    their similarity to the query (used as the margin reference).

    ``query_seeds`` (e.g. the queries' database ids) give each query its own random stream,
    ``(config.seed, query_seeds[q])``: a random sample then does not depend on how the
    queries were split into batches, so a resumed run draws the same negatives."""
    if query_seeds is not None and len(query_seeds) != len(scores):
        raise ValueError("need one seed per query")
    rng = np.random.default_rng(config.seed)
    selected: list[list[MinedNegative]] = []
    for q in range(len(scores)):
        exclude = set(positives[q])
        row_scores, row_indices = scores[q], indices[q]
        keep = np.array([i not in exclude and i >= 0 for i in row_indices.tolist()], dtype=bool)
        cand_scores, cand_indices = row_scores[keep], row_indices[keep]
        ranks = np.arange(1, len(cand_scores) + 1)
        window = (ranks > config.range_min) & (ranks <= config.range_max)
        ok = window.copy()
        if len(positive_scores[q]):
            reference = float(np.min(positive_scores[q]))
            if config.absolute_margin is not None:
                ok &= cand_scores <= reference - config.absolute_margin
            if config.relative_margin is not None:
                ok &= cand_scores <= reference * (1.0 - config.relative_margin)
        if config.max_score is not None:
            ok &= cand_scores <= config.max_score
        if config.min_score is not None:
            ok &= cand_scores >= config.min_score
        chosen = np.flatnonzero(ok)
        if len(chosen) > config.num_negatives:
            if config.sampling == "top":
                chosen = chosen[: config.num_negatives]
            else:
                query_rng = (
                    rng
                    if query_seeds is None
                    else np.random.default_rng([config.seed, int(query_seeds[q])])
                )
                chosen = np.sort(query_rng.choice(chosen, size=config.num_negatives, replace=False))
        selected.append(
            [
                MinedNegative(int(cand_indices[j]), int(ranks[j]), float(cand_scores[j]))
                for j in chosen
            ]
        )
    return selected


def retrieval_depth(config: MiningConfig, *, max_positives: int) -> int:
    """How many neighbours to retrieve so that the window survives removing positives."""
    return config.range_max + max_positives
