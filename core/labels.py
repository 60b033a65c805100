"""Stored names as a person reads them. Judgments, decisions and evaluation runs keep
machine-readable names (``not_relevant``, ``llm:gpt-4o-mini:stage1``, ``user:ann2``,
``approval:3``); the API and CSV exports return them as stored, the HTML pages show these
labels (``core/templatetags/labels.py``). Pure: no Django."""

from __future__ import annotations

import re

_LLM_STAGE = re.compile(r"^llm:(?P<model>.+):stage(?P<stage>\d+)$")  # model names may hold ":"
_TEACHER = re.compile(r"^teacher:(?P<model>.+?)(?::margin)?$")
# "<kind>:<id>": a row that decided (approval:3) or produced (cascade:5) a verdict.
_NUMBERED = re.compile(r"^(?P<kind>[a-z_]+):(?P<id>\d+)$")
_KINDS = {"approval": "approval", "campaign": "campaign", "dataset": "dataset",
          "snapshot": "snapshot", "mining": "mining run", "cascade": "cascade run",
          "synthesis": "synthesis run"}  # fmt: skip
# Names the agreement report and the approval gate give to derived raters.
_DERIVED = {"cascade_final": "cascade's final verdict", "majority": "human majority"}


def verdict_label(verdict) -> str:
    """``not_relevant`` → ``not relevant``."""
    return str(verdict or "").replace("_", " ")


def name_label(name) -> str:
    """Who gave or decided a verdict, or which run produced it: ``user:ann2`` → ``ann2``,
    ``llm:gpt-4o-mini:stage1`` → ``gpt-4o-mini · stage 1``,
    ``teacher:all-minilm-l6-v2:margin`` → ``teacher margin · all-minilm-l6-v2``,
    ``approval:3`` → ``approval #3``, ``cascade:5`` → ``cascade run #5``; anything else as
    stored."""
    name = str(name or "")
    if name.startswith("user:") and len(name) > len("user:"):
        return name[len("user:") :]
    if match := _LLM_STAGE.match(name):
        return f"{match['model']} · stage {int(match['stage'])}"
    if match := _TEACHER.match(name):
        return f"teacher margin · {match['model']}"
    if (match := _NUMBERED.match(name)) and match["kind"] in _KINDS:
        return f"{_KINDS[match['kind']]} #{match['id']}"
    return _DERIVED.get(name, name)
