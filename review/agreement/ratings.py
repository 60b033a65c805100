"""The agreement report's input: who rated (``Rater``), the ratings in long format
(``Ratings``), how to cut the items (``Slicing``) and the answers changed after the reveal in
blind campaigns (``Revisions``). Pure numpy: no Django, no I/O. ``report.py`` computes the
report from them; the selectors build them from the database, a notebook from anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rater:
    key: str  # stable identifier: "user:alice", "llm:gpt-4o-mini:stage1", "majority"
    label: str  # what the page shows
    kind: str  # HUMAN, MACHINE (inputs); MAJORITY, CASCADE_FINAL (derived)
    stage: int | None = None  # machines: 0 teacher margin, 1, 2, ... LLM cascade stage


@dataclass(frozen=True)
class Slicing:
    """A way to cut the items: ``codes[i]`` indexes ``labels`` for item i (MISSING: none)."""

    dimension: str
    labels: tuple[str, ...]
    codes: np.ndarray


@dataclass(frozen=True)
class Ratings:
    n_items: int
    raters: tuple[Rater, ...]
    item: np.ndarray
    rater: np.ndarray
    code: np.ndarray  # index into VERDICTS
    order: np.ndarray  # later wins among one rater's ratings of one item
    # Epoch seconds of each rating; the week of an item is that of its latest human rating.
    time: np.ndarray | None = None
    slicings: tuple[Slicing, ...] = ()
    # Per rating: a blind answer (given before the reveal, in a blind campaign); and the
    # answers changed after the reveal (review/agreement/revisions.py).
    blind: np.ndarray | None = None
    revisions: Revisions | None = None


@dataclass(frozen=True)
class Revisions:
    """One row per (item, annotator) revised after the reveal: the annotator's blind verdict
    code and that of their latest revision (codes index the report's VERDICTS)."""

    item: np.ndarray
    rater: np.ndarray
    blind_code: np.ndarray
    code: np.ndarray
