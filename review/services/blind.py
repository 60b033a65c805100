"""What an answer is in a blind campaign: the blind answer, or a revision after the reveal.

In a blind campaign the page shows the judges' verdicts on an item only once the annotator
answered it (the reveal), and offers undo right there. Undo + a new answer must not let the
annotator replace a blind answer with one that has seen the judges: the study would then
measure how well people copy the LLM. So, per person and item (``review_queue.md``, "Blind
campaigns"):

* the first answer in a blind campaign is the **blind answer**; it is the person's rating in
  the agreement report, even once undone or revised;
* every later answer is a **post-reveal revision** of it: kept as its own submission that
  points to the blind answer, shown as such to the annotator, the curators and the report,
  and it is what the queue and the item's decision work with (an item whose revision changed
  the blind verdict goes to a curator instead of being decided in bulk);
* in an open campaign (verdicts visible from the start) nothing is blind: undo and answer
  again replaces the answer, as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerKind:
    blind: bool  # the person's blind answer to the item
    revises_id: int | None  # a post-reveal revision of this blind answer


def answer_kind(
    *, campaign_blind: bool, blind_answer_id: int | None, answered_before: bool
) -> AnswerKind:
    """What a new answer is, from what the person already did on the item: their blind
    answer's id (if any) and whether they answered it before at all (undone answers too).

    Once a blind answer exists, every later answer revises it, whatever the campaign's
    ``blind`` says now (a curator may have opened the campaign since: the person still saw
    the reveal after answering blind). An answer is blind only if it is the person's very
    first on the item in a blind campaign: one who answered while the campaign was open has
    seen the verdicts already."""
    if blind_answer_id is not None:
        return AnswerKind(blind=False, revises_id=blind_answer_id)
    return AnswerKind(blind=campaign_blind and not answered_before, revises_id=None)
