"""Decoder embedders (E5-mistral, Qwen-based) on a tiny randomly initialised Qwen2 built
here: last-token pooling, the instruction before queries, LoRA on attention and MLP,
gradient checkpointing, and an adapter that reloads onto the same last-token model."""

import numpy as np

from tests.support.environment import missing
from training.core.artifacts import load_trained_model
from training.core.config import TrainConfig
from training.core.loop import train
from training.core.model import DECODER_LORA_TARGETS, load_sentence_transformer

from . import tiny_model, toy_rows

TEXTS = ["what is known of topic 3 about proteins?", "topic 5: a passage"]


def test_a_decoder_gets_last_token_pooling_and_its_instruction(tmp_path):
    folder = tiny_model(tmp_path / "tiny-qwen", "qwen2")
    model = load_sentence_transformer(folder, device="cpu")
    assert model[1].pooling_mode == "lasttoken" and model.encode(TEXTS).shape == (2, 32)
    assert load_sentence_transformer(folder, device="cpu", pooling="mean")[1].pooling_mode == "mean"
    config = TrainConfig(base_model=folder, instruction="Given a claim, find evidence").resolved()
    assert config.query_prefix == "Instruct: Given a claim, find evidence\nQuery: "
    assert config.passage_prefix == ""
    explicit = TrainConfig(base_model=folder, instruction="x", query_prefix="q: ").resolved()
    assert explicit.query_prefix == "q: "


def test_lora_on_attention_and_mlp_with_checkpointing_reloads_exactly(tmp_path):
    folder = tiny_model(tmp_path / "tiny-qwen", "qwen2")
    config = TrainConfig.from_dict(
        {"base_model": folder, "num_negatives": 1, "batch_size": 8, "max_steps": 2,
         "query_max_length": 16, "passage_max_length": 24, "learning_rate": 1e-3,
         "logging_steps": 1, "save_steps": 0, "gradient_checkpointing": True,
         "instruction": "Given a question, retrieve the passage that answers it"}
    ).resolved()  # fmt: skip
    result = train(
        config=config, rows=toy_rows(16), output_dir=tmp_path / "run", device="cpu", processes=1
    )
    model = result.model
    assert model[1].pooling_mode == "lasttoken"
    assert model.transformers_model.is_gradient_checkpointing
    # r=8 on q/k/v/o (32→32, 32→16 for k/v with 2 of 4 heads' width) and gate/up/down.
    shapes = {"q_proj": (32, 32), "k_proj": (32, 16), "v_proj": (32, 16), "o_proj": (32, 32),
              "gate_proj": (32, 64), "up_proj": (32, 64), "down_proj": (64, 32)}  # fmt: skip
    assert set(shapes) == set(DECODER_LORA_TARGETS)
    per_layer = sum(8 * (n_in + n_out) for n_in, n_out in shapes.values())
    assert result.metrics["trainable_params"] == 2 * per_layer

    reloaded = load_trained_model(folder, result.artifact_path, "adapter", device="cpu")
    assert reloaded[1].pooling_mode == "lasttoken"
    np.testing.assert_allclose(reloaded.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def test_last_token_pooling_reads_the_end_of_text_token_e5_mistral_appends(tmp_path):
    """A decoder whose tokenizer does not end texts with its end-of-text token gets it
    appended (E5-mistral's rule), after truncation too; the trained adapter reloads onto a
    base built the same way."""
    from transformers import AutoTokenizer

    folder = tiny_model(tmp_path / "tiny-qwen", "qwen2")
    tokenizer = AutoTokenizer.from_pretrained(folder)  # Qwen's, with <|endoftext|>
    eos_id = tokenizer.eos_token_id
    assert eos_id is not None and tokenizer("a text")["input_ids"][-1] != eos_id

    model = load_sentence_transformer(folder, device="cpu")
    features = model.tokenize(["a short text", "a much longer text " * 40])
    lengths = features["attention_mask"].sum(dim=1)
    last = [int(features["input_ids"][row, lengths[row] - 1]) for row in range(2)]
    assert last == [eos_id, eos_id]
    assert int(lengths[1]) == model.max_seq_length  # truncated, the token still last

    from training.core.model import tokenizer_append_eos

    assert not tokenizer_append_eos(model.tokenizer)  # already there: nothing to do


def test_a_base_decoder_is_evaluated_as_it_is_trained(tmp_path):
    """Evaluation loads a plain decoder checkpoint as training builds it (last-token pooling
    on the appended end-of-text token), not with sentence-transformers' mean-pooling default;
    its embedding-cache identity says so, so vectors cached under mean pooling never come
    back. A plain encoder and a sentence-transformers model keep their own pooling."""
    from core.ml.encoder import EncoderSettings
    from evaluation.core import ModelSource, model_cache_identity, model_load

    from . import minilm_path

    decoder = tiny_model(tmp_path / "tiny-qwen", "qwen2")
    loaded = model_load(ModelSource(model=decoder), settings=EncoderSettings(device="cpu"))
    assert loaded.model[1].pooling_mode == "lasttoken"
    trained_as = load_sentence_transformer(decoder, device="cpu")
    np.testing.assert_allclose(loaded.model.encode(TEXTS), trained_as.encode(TEXTS), atol=1e-6)
    mean = load_sentence_transformer(decoder, device="cpu", pooling="mean")
    assert not np.allclose(loaded.model.encode(TEXTS), mean.encode(TEXTS), atol=1e-3)
    assert loaded.identity["pooling"] == "lasttoken"

    encoder = tiny_model(tmp_path / "tiny-bert", "bert")
    identity, _, _ = model_cache_identity(ModelSource(model=encoder))
    assert "pooling" not in identity
    settings = EncoderSettings(device="cpu")
    assert model_load(ModelSource(model=encoder), settings=settings).model[1].pooling_mode == "mean"
    minilm = model_load(ModelSource(model=minilm_path()), settings=settings)
    assert minilm.model[1].pooling_mode == "mean" and "pooling" not in minilm.identity


def test_qlora_trains_an_adapter_on_a_4_bit_base_that_reloads_exactly(tmp_path):
    """QLoRA on CPU (bitsandbytes runs NF4 there too): the base's projections are 4-bit
    layers and frozen, only the adapter trains (as many parameters as plain LoRA), the saved
    adapter on a base loaded in 4-bit again encodes exactly as the trained model, and the
    merged model is base (full precision) + adapter."""
    import torch

    from training.core.model import build_model, parameter_counts, qlora_base_kwargs

    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # the GPU kit's machine, say; requirements-dev.txt installs it
        missing("bitsandbytes is not installed")

    folder = tiny_model(tmp_path / "tiny-qwen", "qwen2", width=64)
    config = TrainConfig.from_dict(
        {"base_model": folder, "num_negatives": 1, "batch_size": 8, "max_steps": 2,
         "query_max_length": 16, "passage_max_length": 24, "learning_rate": 1e-3,
         "logging_steps": 1, "save_steps": 0, "quantize_4bit": True, "merge_adapter": True}
    ).resolved()  # fmt: skip
    result = train(
        config=config, rows=toy_rows(16), output_dir=tmp_path / "run", device="cpu", processes=1
    )
    model = result.model
    four_bit = [m for m in model.transformers_model.modules() if isinstance(m, Linear4bit)]
    assert len(four_bit) == 2 * len(DECODER_LORA_TARGETS)  # every projection of both layers
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    plain = build_model(TrainConfig(base_model=folder).resolved(), device="cpu")
    assert result.metrics["trainable_params"] == parameter_counts(plain)[0]  # as plain LoRA
    assert result.metrics["base_weights"] == "nf4" and np.isfinite(result.metrics["train_loss"])
    assert result.artifact_kind == "merged"

    adapter = tmp_path / "run" / "adapter"
    again = load_trained_model(
        folder, adapter, "adapter", device="cpu", model_kwargs=qlora_base_kwargs(config, "cpu")
    )
    with torch.no_grad():
        np.testing.assert_allclose(again.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
    merged = load_trained_model(folder, result.artifact_path, "merged", device="cpu")
    assert not any(isinstance(m, Linear4bit) for m in merged.modules())
    full_base = load_trained_model(folder, adapter, "adapter", device="cpu")
    np.testing.assert_allclose(merged.encode(TEXTS), full_base.encode(TEXTS), atol=1e-5)


def test_a_4_bit_base_is_for_lora_and_needs_bitsandbytes(tmp_path, monkeypatch):
    import sys

    import pytest

    from training.core.config import ConfigError
    from training.core.model import build_model

    with pytest.raises(ConfigError, match="choose method lora") as refused:
        TrainConfig.from_dict({"method": "full", "quantize_4bit": True})
    assert refused.value.field == "quantize_4bit"
    config = TrainConfig.from_dict({"base_model": "unused", "quantize_4bit": True})
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what a worker without it has
    with pytest.raises(ConfigError, match="needs bitsandbytes on the gpu workers") as missing:
        build_model(config, device="cpu")
    assert missing.value.field == "quantize_4bit"
