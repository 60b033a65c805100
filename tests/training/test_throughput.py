"""What a run reports of its throughput: the real tokens it trained on, the model FLOPs they
cost and the MFU against a GPU's peak (training.core.throughput)."""

import pytest

from training.core.config import TrainConfig
from training.core.loop import train
from training.core.throughput import ModelShape, _table_peak, model_shape, training_flops

from . import minilm_path, tiny_model, toy_rows


def test_training_flops_count_weights_and_attention():
    shape = ModelShape(parameters=100, layers=2, hidden=8)
    # 6 FLOPs per parameter and token when the weights train, 4 when they are frozen
    # (LoRA); attention 12 x layers x hidden per squared position, either way.
    assert training_flops(shape, tokens=10, squared_lengths=50, full=True) == 6000 + 9600
    assert training_flops(shape, tokens=10, squared_lengths=50, full=False) == 4000 + 9600


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA L4", 121),
        ("NVIDIA L40S", 362),
        ("NVIDIA L40", None),  # not an L4
        ("Tesla V100-SXM2-16GB", None),  # no bf16
    ],
)
def test_a_gpus_peak_is_found_by_the_words_of_its_name(name, tflops):
    assert _table_peak(name) == (tflops * 1e12 if tflops else None)


def test_minilms_shape_leaves_out_its_embedding_tables():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    shape = model_shape(model)
    assert (shape.layers, shape.hidden) == (6, 384)
    embeddings = model.transformers_model.embeddings
    tables = sum(
        m.weight.numel()
        for m in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        )
    )
    assert shape.parameters == sum(p.numel() for p in model.parameters()) - tables


def test_a_run_counts_the_real_tokens_it_trained_on_and_its_mfu(tmp_path, monkeypatch):
    """One epoch of 24 rows (3 steps of 8) trains on every row once, so its token count is
    that of every text tokenized on its own, each within its column's max length."""
    from transformers import AutoTokenizer

    base = tiny_model(tmp_path / "tiny")
    rows = toy_rows(24, negatives=1)
    config = TrainConfig.from_dict(
        {"base_model": base, "num_negatives": 1, "batch_size": 8, "max_steps": 3,
         "query_max_length": 12, "passage_max_length": 16, "logging_steps": 1,
         "save_steps": 0, "lora_target_modules": ["query"], "query_prefix": "",
         "passage_prefix": ""}
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(base)
    expected = 0
    for position, (name, texts) in enumerate(rows.columns.items()):
        limit = 12 if position == 0 else 16
        encoded = tokenizer(texts, truncation=True, max_length=limit)
        expected += sum(len(ids) for ids in encoded["input_ids"])
        assert name  # every column is text the model reads
    monkeypatch.setenv("SIEVE_TRAIN_PEAK_TFLOPS", "0.0001")  # a CPU's worth: 100 GFLOP/s

    metrics = train(config=config, rows=rows, output_dir=tmp_path / "run", device="cpu").metrics
    assert metrics["samples_trained"] == 24
    assert metrics["tokens_trained"] == expected
    assert metrics["peak_tflops"] == pytest.approx(0.0001)
    assert metrics["model_tflops_per_s"] > 0
    assert metrics["mfu"] == pytest.approx(metrics["model_tflops_per_s"] / 0.0001, rel=0.01)

    monkeypatch.delenv("SIEVE_TRAIN_PEAK_TFLOPS")
    metrics = train(config=config, rows=rows, output_dir=tmp_path / "again", device="cpu").metrics
    assert "mfu" not in metrics and "peak_tflops" not in metrics  # no known peak on a CPU
    assert metrics["model_tflops_per_s"] > 0
