"""Rerankers: a cross-encoder fine-tuned on the same rows as an embedder (RLHN fine-tunes both
on its relabelled data). Pure: no Django; sentence-transformers is imported inside.

A cross-encoder reads a query and a passage together and gives one score; it re-orders the
top results of a first-stage embedding model (``evaluation``: top-100, nDCG@10). Training
uses sentence-transformers' ``CrossEncoderTrainer`` with its ``MultipleNegativesRankingLoss``:
for each query, a softmax over the scores of its positive, its k hard negatives from the
snapshot and a few passages of other rows of the batch — the same rows (anchor, positive,
negative_1..k), batches, checkpoints, progress and cancel as an embedder's run
(``loop.run_training``). Always a full fine-tune: the classification head is new (a
bi-encoder such as MiniLM as base gets one, initialised at random), and every weight moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig

# Passages of other rows scored against each query, beside its own positive and negatives.
IN_BATCH_NEGATIVES = 4


@dataclass
class RerankerParts:
    model: object  # a CrossEncoder
    trainer_class: type
    loss: object
    collator: object


def build_reranker(config: TrainConfig, *, device: str):
    """The base as a cross-encoder with one output (a score); the tokenizer's length covers a
    query and a passage read together, within the model's positions."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(config.base_model, num_labels=1, device=device)
    limit = getattr(model.config, "max_position_embeddings", None) or 512
    model.max_seq_length = min(config.query_max_length + config.passage_max_length, limit)
    return model


def reranker_parts(config: TrainConfig, *, device: str) -> RerankerParts:
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    model = build_reranker(config, device=device)
    return RerankerParts(
        model=model,
        trainer_class=CrossEncoderTrainer,
        loss=MultipleNegativesRankingLoss(model, num_negatives=IN_BATCH_NEGATIVES),
        collator=counting_collator(model),
    )


def reranker_arguments(**kwargs):
    """``loop.training_arguments``'s settings as a cross-encoder's arguments."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(**kwargs)


def counting_collator(model):
    """sentence-transformers' cross-encoder collator; each batch carries its samples under
    ``BATCH_COUNTS`` for the throughput figures. It passes texts through (the loss tokenizes
    them), so tokens are not counted."""
    from sentence_transformers.cross_encoder.data_collator import CrossEncoderDataCollator

    from .model import BATCH_COUNTS

    @dataclass
    class CountingCollator(CrossEncoderDataCollator):
        def __call__(self, features):
            batch = super().__call__(features)
            batch[BATCH_COUNTS] = (len(features), 0, 0)
            return batch

    return CountingCollator(preprocess_fn=model.preprocess)


def load_reranker(artifact_path: str | Path, *, device: str | None = None, max_length=None):
    """A trained reranker (or any cross-encoder: a hub id or folder), ready to score."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(artifact_path), device=device)
    if max_length:
        model.max_seq_length = max_length
    return model
