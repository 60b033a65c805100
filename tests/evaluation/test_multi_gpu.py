"""Encoding in a pool of processes, one per device (two CPU processes here, standing in for
GPUs): the vectors of one process, through sentence-transformers' own encode call."""

import numpy as np

from evaluation.multi_gpu import encode_devices, encode_pool_start, encode_pool_stop

from . import minilm_path

TEXTS = [
    f"passage {i} about vitamin D and bone density, {'long ' * (i % 7)}text" for i in range(40)
]


def test_a_pool_of_two_processes_encodes_like_one():
    from sentence_transformers import SentenceTransformer

    assert encode_devices("cpu") == [] and encode_devices("cuda:1") == []
    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = 32
    alone = model.encode(TEXTS, batch_size=8)
    pool = encode_pool_start(model, ["cpu", "cpu"], precision="fp32")
    try:
        pooled = model.encode_document(TEXTS, batch_size=8, pool=pool, chunk_size=10)
    finally:
        encode_pool_stop(pool)
    np.testing.assert_allclose(pooled, alone, atol=1e-6)
