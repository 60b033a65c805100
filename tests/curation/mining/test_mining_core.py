"""Selection rules of hard-negative mining on small hand-made embeddings."""

import numpy as np
import pytest

from curation.mining.core import MiningConfig, build_index, search, select_negatives


def _corpus(n=50, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _mine(config, corpus, queries, positives):
    index = build_index(corpus)
    scores, indices = search(index, queries, k=config.range_max + 5)
    pos_scores = [
        np.array([float(queries[q] @ corpus[p]) for p in positives[q]]) for q in range(len(queries))
    ]
    return (
        select_negatives(
            scores=scores,
            indices=indices,
            positives=positives,
            positive_scores=pos_scores,
            config=config,
        ),
        scores,
        indices,
    )


def test_exact_search_matches_numpy_dot_product():
    corpus = _corpus()
    queries = corpus[:5] + 0.1
    scores, indices = search(build_index(corpus), queries, k=10)
    expected = queries @ corpus.T
    for q in range(5):
        assert indices[q].tolist() == np.argsort(-expected[q])[:10].tolist()
        assert np.allclose(scores[q], np.sort(expected[q])[::-1][:10], atol=1e-5)


def test_positives_never_mined_and_window_and_top():
    corpus = _corpus()
    queries = corpus[[0, 1]]  # each query's nearest passage is its positive
    positives = [[0, 3], [1]]
    mined, scores, indices = _mine(
        MiningConfig(range_min=2, range_max=10, num_negatives=4), corpus, queries, positives
    )
    for q, negatives in enumerate(mined):
        assert not {n.doc_index for n in negatives} & set(positives[q])
        assert [n.rank for n in negatives] == [3, 4, 5, 6]
        non_positive = [i for i in indices[q].tolist() if i not in positives[q]]
        assert [n.doc_index for n in negatives] == non_positive[2:6]


def test_relative_margin_is_positive_aware():
    corpus = _corpus()
    queries = corpus[[0]]
    config = MiningConfig(range_max=40, num_negatives=40, relative_margin=0.05)
    mined, _, _ = _mine(config, corpus, queries, [[0]])
    reference = float(queries[0] @ corpus[0])
    assert mined[0]
    assert all(n.score <= 0.95 * reference + 1e-6 for n in mined[0])
    absolute, _, _ = _mine(
        MiningConfig(range_max=40, num_negatives=40, absolute_margin=0.9), corpus, queries, [[0]]
    )
    assert all(n.score <= reference - 0.9 + 1e-6 for n in absolute[0])
    assert len(absolute[0]) < len(mined[0])


def test_random_sampling_is_seeded_and_inside_the_window():
    corpus = _corpus(200)
    queries = corpus[:3]
    config = MiningConfig(range_min=5, range_max=60, num_negatives=8, sampling="random", seed=11)
    first, _, _ = _mine(config, corpus, queries, [[0], [1], [2]])
    again, _, _ = _mine(config, corpus, queries, [[0], [1], [2]])
    assert first == again
    assert all(5 < n.rank <= 60 for negatives in first for n in negatives)
    top, _, _ = _mine(
        MiningConfig(range_min=5, range_max=60, num_negatives=8), corpus, queries, [[0], [1], [2]]
    )
    assert [n.rank for n in top[0]] != [n.rank for n in first[0]]


def test_approximate_index_finds_the_exact_neighbours_on_easy_data():
    corpus = _corpus(2000, 32)
    queries = corpus[:20]
    approx = build_index(corpus, approximate=True)
    approx.nprobe = approx.nlist  # probe everything: must equal exact search
    _, exact_i = search(build_index(corpus), queries, k=5)
    _, approx_i = search(approx, queries, k=5)
    assert (exact_i == approx_i).all()


def test_config_is_validated():
    with pytest.raises(ValueError):
        MiningConfig(sampling="best")
    with pytest.raises(ValueError):
        MiningConfig(range_min=10, range_max=5)


def test_per_query_seeds_make_random_samples_independent_of_batching():
    corpus = _corpus(200)
    queries = corpus[:6]
    positives = [[q] for q in range(6)]
    config = MiningConfig(range_max=60, num_negatives=5, sampling="random", seed=3)
    index = build_index(corpus)
    scores, indices = search(index, queries, k=61)
    pos_scores = [np.array([float(queries[q] @ corpus[q])]) for q in range(6)]
    seeds = [101, 102, 103, 104, 105, 106]
    whole = select_negatives(
        scores=scores,
        indices=indices,
        positives=positives,
        positive_scores=pos_scores,
        config=config,
        query_seeds=seeds,
    )
    halves = [
        select_negatives(scores=scores[s], indices=indices[s], positives=positives[s],
                         positive_scores=pos_scores[s], config=config, query_seeds=seeds[s])
        for s in (slice(0, 2), slice(2, 6))
    ]  # fmt: skip
    assert whole == halves[0] + halves[1]
    # The same query under another seed draws other negatives.
    other = select_negatives(
        scores=scores[:1],
        indices=indices[:1],
        positives=positives[:1],
        positive_scores=pos_scores[:1],
        config=config,
        query_seeds=[999],
    )
    assert other[0] != whole[0]
    with pytest.raises(ValueError):
        select_negatives(
            scores=scores,
            indices=indices,
            positives=positives,
            positive_scores=pos_scores,
            config=config,
            query_seeds=[1],
        )
