"""Read a list-wise judge's answer into a verdict. Pure: no Django, no network.

The judge numbers the hard negatives ``Doc (1)`` … ``Doc (n)`` and ends with a verdict that
names those that answer the query as well as the positive (``better``) and those that are
relevant but worse (``worse``). Two answer formats are read:

* tagged (RLHN's): ``<verdict><better> … [Doc (3), Doc (7)] </better><worse> … </worse></verdict>``
* JSON (JSON mode): ``{"reasoning": "...", "better": [3, 7], "worse": []}``

Formatting drift is tolerated (``Doc(3)``, ``Doc 3``, ``[3, 7]``, ``None``, missing closing
tags, code fences around JSON). What is never done is reading an answer we could not parse as
"no false negatives": RLHN's published pipeline did exactly that, and those queries silently
kept their false negatives. Such answers come back with ``status`` UNPARSEABLE or TRUNCATED so
the caller records them and retries.
"""

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum


class ParseStatus(StrEnum):
    OK = "ok"
    UNPARSEABLE = "unparseable"
    TRUNCATED = "truncated"  # the endpoint stopped at its token limit (finish_reason=length)


@dataclass(frozen=True)
class ParsedVerdict:
    status: ParseStatus
    better: tuple[int, ...] = ()  # 1-based indices into the numbered negatives
    worse: tuple[int, ...] = ()
    reasoning: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is ParseStatus.OK

    def flagged(self, tags: frozenset[str] = frozenset({"better", "worse"})) -> tuple[int, ...]:
        """Indices carrying any of ``tags``, sorted; what forwards a query or counts as a
        false negative is the caller's setting."""
        found: set[int] = set()
        if "better" in tags:
            found.update(self.better)
        if "worse" in tags:
            found.update(self.worse)
        return tuple(sorted(found))


@dataclass
class _Lists:
    better: list[int] = field(default_factory=list)
    worse: list[int] = field(default_factory=list)
    reasoning: str | None = None


_VERDICT_RE = re.compile(r"<\s*verdict\s*>(?P<body>.*?)(?:<\s*/\s*verdict\s*>|\Z)", re.S | re.I)
_TAG_RE = {
    name: re.compile(
        rf"<\s*{name}\s*>(?P<body>.*?)(?:<\s*/\s*{name}\s*>|(?=<\s*\w+\s*>)|\Z)", re.S | re.I
    )
    for name in ("better", "worse")
}
_DOC_RE = re.compile(r"\bdoc(?:ument)?\s*\(?\s*#?(\d+)\s*\)?", re.I)
_LIST_RE = re.compile(r"\[(?P<items>[^\[\]]*)\]")
_NONE_RE = re.compile(r"^\W*(none|no documents?|n/?a|empty|nothing)?\W*$", re.I)
_FENCE_RE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


def verdict_parse(
    text: str | None, *, n_negatives: int, finish_reason: str | None = "stop"
) -> ParsedVerdict:
    """Parse one judge answer about ``n_negatives`` numbered negatives."""
    if finish_reason == "length":
        return ParsedVerdict(ParseStatus.TRUNCATED, error="the answer was cut at the token limit")
    if not text or not text.strip():
        return ParsedVerdict(ParseStatus.UNPARSEABLE, error="empty answer")

    lists = _parse_json(text)
    if lists is None:
        lists = _parse_tagged(text)
    if isinstance(lists, str):
        return ParsedVerdict(ParseStatus.UNPARSEABLE, error=lists, reasoning=text)

    for name, indices in (("better", lists.better), ("worse", lists.worse)):
        bad = [i for i in indices if not 1 <= i <= n_negatives]
        if bad:
            return ParsedVerdict(
                ParseStatus.UNPARSEABLE,
                error=f"{name} names Doc {bad} but only Doc 1..{n_negatives} exist",
                reasoning=text,
            )
    better = tuple(sorted(set(lists.better)))
    # A document named in both lists counts as better: the stronger claim wins.
    worse = tuple(sorted(set(lists.worse) - set(better)))
    reasoning = lists.reasoning if lists.reasoning is not None else _reasoning(text)
    return ParsedVerdict(ParseStatus.OK, better=better, worse=worse, reasoning=reasoning)


def _parse_json(text: str) -> "_Lists | str | None":
    """None when the text is not JSON at all; an error string when it is JSON of the wrong
    shape."""
    stripped = _FENCE_RE.sub("", text.strip())
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return "JSON answer is not an object"
    reasoning = data.get("reasoning", data.get("thinking", ""))
    lists = _Lists(reasoning=reasoning if isinstance(reasoning, str) else json.dumps(reasoning))
    missing = [k for k in ("better", "worse") if k not in data]
    if len(missing) == 2:
        return 'JSON answer has neither "better" nor "worse"'
    for key in ("better", "worse"):
        value = data.get(key) or []
        if not isinstance(value, list):
            return f'JSON field "{key}" is not a list'
        for item in value:
            index = _as_index(item)
            if index is None:
                return f'JSON field "{key}" holds {item!r}, not a document number'
            getattr(lists, key).append(index)
    return lists


def _as_index(item) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, str):
        match = _DOC_RE.search(item) or re.fullmatch(r"\s*(\d+)\s*", item)
        return int(match.group(1)) if match else None
    return None


def _parse_tagged(text: str) -> "_Lists | str":
    verdicts = list(_VERDICT_RE.finditer(text))
    # The reasoning mentions many Doc (k); only the (last) verdict section counts. Without a
    # verdict wrapper, fall back to the last <better>/<worse> tags in the answer.
    scope = verdicts[-1].group("body") if verdicts else text
    lists = _Lists()
    found_any = False
    for name in ("better", "worse"):
        matches = list(_TAG_RE[name].finditer(scope))
        if not matches:
            continue
        found_any = True
        body = matches[-1].group("body")
        indices = _indices_in(body)
        if indices is None:
            return f"could not read the document list in <{name}>: {body.strip()[:80]!r}"
        getattr(lists, name).extend(indices)
    if not found_any:
        return "no <verdict> with <better>/<worse> lists and no JSON verdict in the answer"
    return lists


def _indices_in(body: str) -> list[int] | None:
    """Numbers of the documents a verdict list names; None when it names something we
    cannot read (so the answer is retried, not taken as empty)."""
    # Drop the label ("Preferred over ground truth:") and keep what follows.
    list_match = _LIST_RE.search(body)
    inner = list_match.group("items") if list_match else body.split(":", 1)[-1]
    docs = [int(m) for m in _DOC_RE.findall(inner)]
    if docs:
        return docs
    if re.fullmatch(r"[\s\d,;]*", inner) and re.search(r"\d", inner):
        return [int(n) for n in re.findall(r"\d+", inner)]
    if _NONE_RE.match(inner.strip().strip(",.")):
        return []
    return None


def _reasoning(text: str) -> str:
    """The judge's reasoning without the verdict section (kept on each judgment)."""
    cut = _VERDICT_RE.search(text)
    return (text[: cut.start()] if cut else text).strip()


_PARAGRAPH_RE = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*]\s*)?\bdoc(?:ument)?\s*\(?\s*#?\d)", re.I)


def rationale_for(reasoning: str, index: int, *, limit: int = 2000) -> str:
    """The part of the judge's reasoning about ``Doc (index)``: the paragraphs (or lines that
    start a new document) naming it. Each judgment keeps only its own part; the whole answer
    stays in the ``LLMCall`` ledger. Empty when the reasoning never names it."""
    if not reasoning:
        return ""
    wanted = str(index)
    parts = [
        part.strip()
        for part in _PARAGRAPH_RE.split(reasoning)
        if any(number == wanted for number in _DOC_RE.findall(part))
    ]
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rationales_by_doc(reasoning: str, n_negatives: int, *, limit: int = 2000) -> dict[int, str]:
    """``rationale_for`` for every Doc (1..n) at once: the reasoning is split once, not once
    per document (a verdict names up to 25 of them)."""
    found: dict[int, list[str]] = {}
    if reasoning:
        for part in _PARAGRAPH_RE.split(reasoning):
            numbers = {int(n) for n in _DOC_RE.findall(part)}
            if numbers:
                part = part.strip()
                for number in numbers:
                    if 1 <= number <= n_negatives:
                        found.setdefault(number, []).append(part)
    result = {}
    for number, parts in found.items():
        text = "\n\n".join(parts)
        result[number] = text if len(text) <= limit else text[: limit - 1] + "…"
    return result
