"""What every reader shares: the plain rows it yields, the error it raises, ids and hashes,
and the checks every reader applies to ids and texts. Pure Python (no Django) so readers
run in a notebook or a test.

A reader yields three kinds of rows, in any interleaving:

* ``PassageRow(doc_id, title, text, text_hash, where, field)``
* ``QueryRow(query_id, text, where, field)``
* ``CandidateRow(query_id, doc_id, role, rank, teacher_score, where)``

``where`` names the file and 1-based line (row, for parquet) the row came from, so a
problem found later, in the database, can still be reported where the user can fix it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import NamedTuple

from core.ml.beir import error_message, json_record
from core.ml.beir import json_type_name as type_name

POSITIVE = "positive"
NEGATIVE = "negative"

# Passage.doc_id and Query.query_id are varchar(200).
MAX_ID_LENGTH = 200

# How many recently emitted passage keys a reader remembers so that a passage repeated in
# nearby records (hard negatives shared between queries) is staged once. Bounded: memory
# does not grow with the file; a repeat it has forgotten is merged by the database.
DEFAULT_PASSAGE_CACHE = 100_000


class Where(NamedTuple):
    file: str
    line: int


class PassageRow(NamedTuple):
    doc_id: str
    title: str
    text: str
    text_hash: str
    where: Where
    field: str


class QueryRow(NamedTuple):
    query_id: str
    text: str
    where: Where
    field: str


class CandidateRow(NamedTuple):
    query_id: str
    doc_id: str
    role: str
    rank: int | None
    teacher_score: float | None
    where: Where


class FormatError(Exception):
    """A problem in the input, with where it is: ``file line 17, field "neg": ...``."""

    def __init__(
        self,
        problem: str,
        *,
        file: str,
        line: int | None = None,
        field: str | None = None,
        unit: str = "line",
    ):
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        self.unit = unit
        super().__init__(self.message)

    @classmethod
    def at(
        cls, problem: str, where: Where, field: str | None = None, unit: str = "line"
    ) -> FormatError:
        """The error of a value read at ``where``."""
        return cls(problem, file=where.file, line=where.line, field=field, unit=unit)

    @property
    def message(self) -> str:
        return error_message(
            self.problem, file=self.file, line=self.line, field=self.field, unit=self.unit
        )

    @property
    def detail(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field}


def text_hash(title: str, text: str) -> str:
    """Passage.text_hash: blake2b-128 of ``title + "\\n" + text``, hex."""
    return hashlib.blake2b(f"{title}\n{text}".encode(), digest_size=16).hexdigest()


def text_id(text: str) -> str:
    """The id of a passage or query in a format without ids: ``h:`` + blake2b-128 of the
    text, so the same text gets the same id in every file and every import."""
    return "h:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def check_text(value, *, where: Where, field: str, unit: str = "line") -> str:
    """A string PostgreSQL can store: no NUL character and no lone surrogate (which JSON's
    ``\\ud800`` escapes can produce)."""
    if type(value) is not str:
        raise _not_a_string(value, where, field, unit)
    if "\x00" in value:
        raise FormatError.at(
            "contains a NUL character (\\u0000), which cannot be stored", where, field, unit
        )
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise FormatError.at(
            f"contains an invalid unicode escape (lone surrogate at character {error.start + 1})",
            where,
            field,
            unit,
        ) from None
    return value


def check_not_empty(value: str, *, where: Where, field: str, unit: str = "line") -> str:
    """A query or training passage with text: an empty one (or only spaces) teaches nothing,
    and in the formats without ids every empty text would be one and the same passage."""
    if not value or value.isspace():
        raise FormatError.at("the text is empty", where, field, unit)
    return value


def _not_a_string(value, where: Where, field: str, unit: str) -> FormatError:
    return FormatError.at(f"expected a string, got {type_name(value)}", where, field, unit)


def check_id(value, *, where: Where, field: str, unit: str = "line") -> str:
    """A source id: a non-empty string (or an integer, which some dumps use) of at most
    MAX_ID_LENGTH characters."""
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        raise FormatError.at(f"expected an id (string), got {type_name(value)}", where, field, unit)
    if not value.strip():
        raise FormatError.at("the id is empty", where, field, unit)
    if len(value) > MAX_ID_LENGTH:
        raise FormatError.at(
            f"the id is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed",
            where,
            field,
            unit,
        )
    return check_text(value, where=where, field=field, unit=unit)


class RecentKeys:
    """Remembers roughly the last ``capacity`` to ``2 * capacity`` keys it was asked about.

    Two generations of sets: cheaper than an LRU and just as good for spotting repeats
    that sit close together in a file.
    """

    def __init__(self, capacity: int = DEFAULT_PASSAGE_CACHE):
        self.capacity = max(1, capacity)
        self._new: set = set()
        self._old: set = set()

    def seen(self, key) -> bool:
        """True when ``key`` was seen recently; remembers it either way."""
        if key in self._new:
            return True
        hit = key in self._old
        self._new.add(key)
        if len(self._new) >= self.capacity:
            self._old = self._new
            self._new = set()
        return hit


def json_object(text: str, where: Where) -> dict:
    return json_record(text, file=where.file, line=where.line, error=FormatError)


def jsonl_records(lines) -> Iterator[tuple[Where, dict]]:
    """Each non-blank line of a jsonl file as ``(where, object)``; raises the empty-file
    error at the end when there was none."""
    records = 0
    for number, text in lines.lines():
        if text.isspace():
            continue
        where = Where(lines.name, number)
        records += 1
        yield where, json_object(text, where)
    if records == 0:
        raise empty_file_error(lines.name)


def empty_file_error(name: str) -> FormatError:
    return FormatError("the file is empty (no records)", file=name)


_blake2b = hashlib.blake2b


def text_passage(
    value, *, where: Where, field: str, recent: RecentKeys, unit: str = "line"
) -> tuple[str, PassageRow | None]:
    """For formats without ids (BGE, sentence-transformers): the passage's ``h:`` id and its
    row, or None for the row when the same text was emitted recently.

    Hashes the text's bytes once for the id and once, only for a new passage, for
    ``text_hash`` (title is empty, so it is the hash of ``"\\n" + text``).
    """
    if type(value) is not str:
        raise _not_a_string(value, where, field, unit)
    try:
        data = value.encode()
    except UnicodeEncodeError:
        check_text(value, where=where, field=field, unit=unit)
        raise
    if not value or value.isspace():
        check_not_empty(value, where=where, field=field, unit=unit)
    doc_id = "h:" + _blake2b(data, digest_size=16).hexdigest()
    if recent.seen(doc_id):
        return doc_id, None
    if "\x00" in value:
        check_text(value, where=where, field=field, unit=unit)
    row = PassageRow(
        doc_id, "", value, _blake2b(b"\n" + data, digest_size=16).hexdigest(), where, field
    )
    return doc_id, row


def missing_field(where: Where, field: str, unit: str = "line") -> FormatError:
    return FormatError.at("the field is missing", where, field, unit)


class OptionError(ValueError):
    """An import option that does not fit the data (a split that is not there, ...)."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.message = message
        self.field = field
