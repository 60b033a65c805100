"""Freezing a dataset into a training file: policy application and format writers.

Pure code: no Django. ``curation.datasets.snapshots`` feeds it one query at a time as plain
dataclasses read from the database; here we decide what each query becomes under a policy
and how it is written. ``curation/datasets/snapshots.md`` shows the whole flow.
"""

from .policy import (
    Candidate,
    Outcome,
    Policy,
    PolicyCounts,
    PolicyResult,
    QueryData,
    policy_apply,
)
from .writers import FORMATS, SnapshotWriter, passage_text, writer_for

# Bump when the bytes written for the same data and policy change (a writer or ordering
# change), so that a manifest tells which exporter produced a file.
EXPORT_VERSION = 1

__all__ = [
    "EXPORT_VERSION",
    "FORMATS",
    "Candidate",
    "Outcome",
    "Policy",
    "PolicyCounts",
    "PolicyResult",
    "QueryData",
    "SnapshotWriter",
    "passage_text",
    "policy_apply",
    "writer_for",
]
