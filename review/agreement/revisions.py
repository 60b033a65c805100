"""Answers changed after the reveal in blind campaigns, counted per annotator. Pure numpy: no
Django, no I/O.

In a blind campaign an annotator's rating is their blind answer, given before the LLM
verdicts were shown (``review/services/blind.py``); what they answered after seeing them is
a revision, kept beside it. The report counts, per annotator, how many items they revised,
how many revisions changed the verdict, and how many moved toward — or away from — the LLM:
a high "toward" count is what a study gamed by copying the reveal looks like.

"The LLM verdict" is the cascade's final verdict on the item (the highest LLM stage that
judged it), read as a false-negative flag like every comparison with a machine; the
annotator's two answers are read the same way. Toward: the revision's flag equals the LLM's
and the blind answer's did not (an "unsure" blind answer has no flag, so it did not). Away:
the other way round. Items with no LLM verdict count in neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .ratings import Revisions
from .stats import MISSING


@dataclass
class RevisionCount:
    rater: str
    blind_answers: int  # items this annotator answered blind (their ratings in the report)
    revised: int  # items they answered again after the reveal
    changed: int  # ... with another verdict than their blind one
    toward_llm: int  # ... whose false-negative flag moved to the LLM's
    away_from_llm: int  # ... whose flag moved off the LLM's


def revision_counts(
    revisions: Revisions | None,
    *,
    rater_keys: list[str],
    blind_raters: np.ndarray | None,
    llm_flag: np.ndarray,
    flag: Callable[[np.ndarray], np.ndarray],
) -> list[RevisionCount]:
    """Per rater (``rater_keys``, indexed like ``revisions.rater``): their blind answers
    among the ratings the report counts (``blind_raters``: the rater of each) and what they
    changed after the reveal. ``llm_flag``: the LLM's flag per item (MISSING where none);
    ``flag``: verdict codes → flags."""
    n = len(rater_keys)
    revised = changed = toward = away = np.zeros(n, dtype=np.int64)
    blind_answers = np.bincount(
        np.asarray(blind_raters if blind_raters is not None else [], dtype=np.int64), minlength=n
    )
    if revisions is not None and len(revisions.item):
        rater = np.asarray(revisions.rater, dtype=np.int64)
        blind_code = np.asarray(revisions.blind_code, dtype=np.int64)
        code = np.asarray(revisions.code, dtype=np.int64)
        llm = np.asarray(llm_flag, dtype=np.int64)[np.asarray(revisions.item, dtype=np.int64)]
        before, after = flag(blind_code), flag(code)
        known = llm != MISSING
        revised = np.bincount(rater, minlength=n)
        changed = np.bincount(rater, weights=blind_code != code, minlength=n)
        toward = np.bincount(rater, weights=known & (after == llm) & (before != llm), minlength=n)
        away = np.bincount(rater, weights=known & (before == llm) & (after != llm), minlength=n)
    return [
        RevisionCount(
            rater=key,
            blind_answers=int(blind_answers[i]),
            revised=int(revised[i]),
            changed=int(changed[i]),
            toward_llm=int(toward[i]),
            away_from_llm=int(away[i]),
        )
        for i, key in enumerate(rater_keys)
    ]
