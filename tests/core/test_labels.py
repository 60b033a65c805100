"""Stored names as pages show them (core/labels.py); the API and CSV keep the stored ones."""

import pytest

from core.labels import name_label, verdict_label


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("user:ann2", "ann2"),
        ("llm:gpt-4o-mini:stage1", "gpt-4o-mini · stage 1"),
        ("llm:llama3:8b:stage2", "llama3:8b · stage 2"),  # a model name with a colon
        ("teacher:all-minilm-l6-v2:margin", "teacher margin · all-minilm-l6-v2"),
        ("approval:3", "approval #3"),
        ("cascade:5", "cascade run #5"),
        ("mining:7", "mining run #7"),
        ("cascade_final", "cascade's final verdict"),
        ("majority", "human majority"),
        ("human", "human"),  # already words
        ("user:", "user:"),  # no name after the prefix: shown as stored rather than empty
        ("unknown:4", "unknown:4"),
        ("", ""),
        (None, ""),
    ],
)
def test_stored_names_read_as_words(stored, shown):
    assert name_label(stored) == shown


def test_verdicts_read_as_words():
    assert verdict_label("not_relevant") == "not relevant"
    assert verdict_label("partly_relevant") == "partly relevant"
    assert verdict_label("relevant") == "relevant"
    assert verdict_label(None) == ""
