"""What a run trains through: the samples, real tokens and model FLOPs of its batches
(``BatchMeter``, fed by the trainer's steps), and the model FLOPs utilisation (MFU, the
PaLM paper's measure: achieved model FLOPs per second over the device's peak). Pure: no
Django; torch is imported inside the functions.

FLOPs count the real tokens only (padding is work the GPU does for nothing, so it lowers
MFU), without recomputation (gradient checkpointing's second forward pass is not model
work). Per token, a weight matrix costs 2 FLOPs per parameter forward, 2 backward for the
input's gradient and, when the weights train, 2 more for theirs: 6 per parameter for a full
fine-tune, 4 for LoRA (the frozen base's weights get no gradient; the adapter's own are a
fraction of a percent). Attention's two products cost 4 × hidden FLOPs per pair of
positions in a layer forward, 8 backward, whatever trains.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .model import BATCH_COUNTS

# Dense bf16 tensor-core peaks per GPU, in TFLOP/s (NVIDIA's data sheets, without sparsity).
# Matched in this order against torch.cuda.get_device_name(); SIEVE_TRAIN_PEAK_TFLOPS
# gives the peak of a GPU not listed (or of fp32 training, which this table does not cover).
PEAK_BF16_TFLOPS = (
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


@dataclass(frozen=True)
class ModelShape:
    parameters: int  # without the embedding tables (lookups, not products)
    layers: int
    hidden: int


def model_shape(model) -> ModelShape | None:
    """The shape of a sentence-transformers model's transformer, or None when it has none
    that says its layers and width."""
    transformers_model = getattr(model, "transformers_model", None)
    config = getattr(transformers_model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    hidden = getattr(config, "hidden_size", None)
    if not (layers and hidden and hasattr(transformers_model, "num_parameters")):
        return None
    # Counts a 4-bit base's packed weights as the parameters they hold (QLoRA).
    parameters = transformers_model.num_parameters(exclude_embeddings=True)
    return ModelShape(parameters=parameters, layers=layers, hidden=hidden)


def training_flops(shape: ModelShape, *, tokens: int, squared_lengths: int, full: bool) -> float:
    """Model FLOPs of training on sequences holding ``tokens`` real tokens in all, whose
    lengths' squares sum to ``squared_lengths``."""
    per_parameter = 6 if full else 4
    return (
        per_parameter * shape.parameters * tokens
        + 12 * shape.layers * shape.hidden * squared_lengths
    )


def peak_flops(device: str, *, bf16: bool) -> float | None:
    """One device's peak FLOP/s for this run's precision, when known."""
    override = os.environ.get("SIEVE_TRAIN_PEAK_TFLOPS", "").strip()
    if override:
        return float(override) * 1e12
    if not (bf16 and device.startswith("cuda")):
        return None
    import torch

    return _table_peak(torch.cuda.get_device_name(device))


def _table_peak(device_name: str) -> float | None:
    """ "NVIDIA H100 80GB HBM3" → the H100's peak; the markers are whole words of the name
    ("L4" is not an "L40S")."""
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", device_name) if w]
    for marker, tflops in PEAK_BF16_TFLOPS:
        wanted = marker.lower().split()
        if any(words[i : i + len(wanted)] == wanted for i in range(len(words))):
            return tflops * 1e12
    return None


class BatchMeter:
    """Samples and real tokens of the batches trained on in this process, from the counts
    each batch carries (``model.BATCH_COUNTS``): the collator may run in a loader worker's
    process, whose own counters this process never sees."""

    def __init__(self, *, shape: ModelShape | None = None, full: bool = False):
        self.samples = 0
        self.tokens = 0
        self.squared_lengths = 0
        self.shape = shape  # None: no FLOPs (a reranker's loss tokenizes; no counts)
        self.full = full

    def add(self, inputs: dict) -> None:
        samples, tokens, squares = inputs.pop(BATCH_COUNTS, (0, 0, 0))
        self.samples += samples
        self.tokens += tokens
        self.squared_lengths += squares

    def flops(self) -> float:
        """The model FLOPs of the batches counted so far (``throughput.training_flops``)."""
        if self.shape is None or not self.tokens:
            return 0.0
        return training_flops(self.shape, tokens=self.tokens,
                              squared_lengths=self.squared_lengths, full=self.full)  # fmt: skip


def counting_trainer(trainer_class: type, meter: BatchMeter) -> type:
    """``trainer_class`` whose every training step first hands its batch's counts to
    ``meter`` (and takes them out of the batch, which the loss then sees as the library
    built it)."""

    class CountingTrainer(trainer_class):
        def training_step(self, model, inputs, num_items_in_batch=None):
            meter.add(inputs)
            return super().training_step(model, inputs, num_items_in_batch)

    CountingTrainer.__name__ = CountingTrainer.__qualname__ = trainer_class.__name__
    return CountingTrainer
