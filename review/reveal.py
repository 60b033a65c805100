"""What the machine judges said about one candidate, as the review page reveals it.

Issue 10 (item 5) found the reveal unreadable at real size: every machine judgment of the
candidate, of every run, each with a rationale that can discuss several documents of the
list-wise call, and nothing saying which document this candidate was. Now:

* the **stages of the campaign's cascade run** come first, one line each (stage, verdict,
  model) with the place this candidate had in that call's prompt (``Doc (3) of 25``, from
  the run's ``CascadeItem.candidate_ids``) and the sentences of the rationale that name that
  document; the whole paragraph is folded beneath;
* every other machine judgment (older runs, other raters such as a teacher margin) is
  folded into one ``<details>``.

A judgment's rationale is already this candidate's part of the judge's answer (the cascade
keeps the paragraphs that name its ``Doc (n)``: ``curation.cascade.verdict.rationales_by_doc``),
but such a paragraph often compares several documents ("Doc (2) and Doc (5) …"); the own line
is cut from it here.

One statement for any number of candidates (it runs on every verdict of the review page).
Without a cascade run (imported verdicts), the latest judgment of each machine rater is shown
as a stage of an unnamed run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from django.db import connection

from curation.models import Candidate, CascadeItem, Judgment, RaterKind

_STAGE_RE = re.compile(r":stage(\d+)$")
_DOC_RE = re.compile(r"\bdoc(?:ument)?\s*\(?\s*#?\s*(\d+)\s*\)?", re.I)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
OWN_LIMIT = 600


@dataclass
class MachineVerdict:
    rater: str
    verdict: str
    tag: str
    rationale: str
    model_name: str
    source_run: str = ""
    stage: int | None = None
    # This candidate's number in the stage's prompt (Doc (n) of doc_count), when known.
    doc_index: int | None = None
    doc_count: int = 0
    # The rationale's sentences about this candidate; ``rest``: the whole rationale when it
    # says more than that (folded on the page), else "".
    own: str = ""
    rest: str = ""


@dataclass
class Reveal:
    # The cascade run whose stages are shown (None: imported verdicts, no run named).
    run_id: int | None = None
    stages: list[MachineVerdict] = field(default_factory=list)
    # Every other machine judgment, latest per (rater, run): folded on the page.
    others: list[MachineVerdict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stages or self.others)


def rationale_split(rationale: str, doc_index: int | None) -> tuple[str, str]:
    """(own, rest): the sentences of ``rationale`` that name ``Doc (doc_index)``, and the
    whole rationale when it holds more than those (else ""). Without a known document
    number, or when no sentence names it, the rationale itself (cut at ``OWN_LIMIT``).
    Pure."""
    text = rationale.strip()
    if not text:
        return "", ""
    own = ""
    if doc_index is not None:
        wanted = str(doc_index)
        sentences = [s.strip() for s in _SENTENCE_RE.split(text) if s and s.strip()]
        named = [s for s in sentences if wanted in _DOC_RE.findall(s)]
        own = " ".join(named)
    if not own:
        own = text
    if len(own) > OWN_LIMIT:
        own = own[: OWN_LIMIT - 1] + "…"
    return own, ("" if own == text else text)


def _stage(rater: str) -> int | None:
    match = _STAGE_RE.search(rater)
    return int(match.group(1)) if match else None


_J, _C, _CI = (m._meta.db_table for m in (Judgment, Candidate, CascadeItem))
# The cascade item is joined only for the run's own judgments: the one of the same run,
# query and stage (unique), which numbered the candidates of that call.
_REVEAL_SQL = f"""
SELECT j.candidate_id, j.rater, j.verdict, j.tag, j.rationale, j.model_name, j.source_run,
       ci.candidate_ids
FROM {_J} j
JOIN {_C} c ON c.id = j.candidate_id
LEFT JOIN {_CI} ci ON j.source_run = %s AND ci.run_id = %s AND ci.query_id = c.query_id
                  AND j.rater LIKE ('%%:stage' || ci.stage)
WHERE j.candidate_id IN ({{ids}}) AND j.rater_kind = %s
ORDER BY j.candidate_id, j.rater, j.id DESC
"""


def _numbering(value) -> list[int]:
    if value is None:
        return []
    # PostgreSQL's jsonb comes back as text through Django's cursor, as SQLite's JSON does.
    return json.loads(value) if isinstance(value, str) else list(value)


def machine_reveals(*, candidate_ids: list[int], cascade_run_id: int | None) -> dict[int, Reveal]:
    """Each candidate's ``Reveal``: the stages of ``cascade_run_id`` (or, without a run,
    the latest judgment of each machine rater) and the other machine judgments, folded."""
    if not candidate_ids:
        return {}
    source = f"cascade:{cascade_run_id}" if cascade_run_id is not None else None
    sql = _REVEAL_SQL.format(ids=", ".join(["%s"] * len(candidate_ids)))
    with connection.cursor() as cursor:
        cursor.execute(sql, [source, cascade_run_id, *candidate_ids, RaterKind.MACHINE.value])
        rows = cursor.fetchall()
    reveals = {cid: Reveal(run_id=cascade_run_id) for cid in candidate_ids}
    seen: set[tuple[int, str, str]] = set()
    staged: set[tuple[int, str]] = set()
    for cid, rater, verdict, tag, rationale, model_name, source_run, numbering in rows:
        # Rows come newest first per rater: keep the latest per (rater, run).
        if (cid, rater, source_run) in seen:
            continue
        seen.add((cid, rater, source_run))
        verdict_row = MachineVerdict(
            rater, verdict, tag, rationale, model_name, source_run, _stage(rater)
        )
        ids = _numbering(numbering)
        if cid in ids:
            verdict_row.doc_index, verdict_row.doc_count = ids.index(cid) + 1, len(ids)
        verdict_row.own, verdict_row.rest = rationale_split(rationale, verdict_row.doc_index)
        of_run = source == source_run if source is not None else (cid, rater) not in staged
        if of_run and (cid, rater) not in staged:
            staged.add((cid, rater))
            reveals[cid].stages.append(verdict_row)
        else:
            reveals[cid].others.append(verdict_row)
    for reveal in reveals.values():
        reveal.stages.sort(key=lambda m: (m.stage is None, m.stage or 0, m.rater))
    return reveals
