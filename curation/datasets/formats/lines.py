"""The strict line reader every text format reads through, and what the one-file jsonl
readers (BGE, Tevatron) share. Pure Python: no Django."""

from __future__ import annotations

import contextlib
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from .base import DEFAULT_PASSAGE_CACHE, FormatError
from .sources import (
    Counted,
    Expansion,
    FileSource,
    LimitExceeded,
    ReadLimits,
    disk_file,
    size_text,
)

_BUFFER = io.DEFAULT_BUFFER_SIZE
# Excel's "CSV UTF-8" and some editors start a UTF-8 file with a byte-order mark.
_BOM = b"\xef\xbb\xbf"


class LineFile:
    """Reads a text file line by line as strict UTF-8 (a leading byte-order mark dropped),
    transparently gunzipping ``.gz``; never holds more than ``limits.max_line_bytes`` of one
    line, counts decompressed bytes against ``limits``, and knows how far through the file
    (in the bytes ``source.open()`` gives) it is."""

    def __init__(
        self,
        source: FileSource | Path,
        name: str | None = None,
        *,
        limits: ReadLimits | None = None,
    ):
        if not isinstance(source, FileSource):
            source = disk_file(source, name or Path(source).name)
        self.source = source
        self.name = name or source.name
        self.size = source.size
        self.limits = limits or ReadLimits()
        self._read = 0
        self._finished = False

    def position(self) -> int:
        return self.size if self._finished else min(self._read, self.size)

    def _open(self, stack: contextlib.ExitStack):
        expansion = self.source.expansion
        gzipped = self.name.endswith(".gz")

        def advance(count: int) -> None:
            self._read += count
            if expansion is not None and not gzipped:
                expansion.add(count)

        stream = stack.enter_context(
            io.BufferedReader(Counted(self.source.open(), advance), buffer_size=_BUFFER)
        )
        if gzipped:
            # Inside an archive, the gunzipped bytes count against the whole archive.
            counter = expansion or Expansion(compressed_size=self.size, limits=self.limits)
            unzipped = stack.enter_context(gzip.GzipFile(fileobj=stream))
            stream = stack.enter_context(
                io.BufferedReader(Counted(unzipped, counter.add), buffer_size=_BUFFER)
            )
        return stream

    def lines(self) -> Iterator[tuple[int, str]]:
        """Yields ``(line number, text)``; raises FormatError on a byte that is not UTF-8, a
        line over the limit, too much decompressed data and a damaged compressed stream."""
        limit = self.limits.max_line_bytes
        with contextlib.ExitStack() as stack:
            number = 0
            try:
                stream = self._open(stack)
            except OSError as error:
                raise FormatError(f"cannot open the file ({error})", file=self.name) from None
            while True:
                try:
                    data = stream.readline(limit + 1)
                except LimitExceeded as error:
                    raise FormatError(error.problem, file=self.name, line=number + 1) from None
                except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
                    kind = "gzip" if self.name.endswith(".gz") else "compressed"
                    raise FormatError(
                        f"the {kind} data is damaged or truncated ({error})",
                        file=self.name,
                        line=number + 1,
                    ) from None
                if not data:
                    break
                number += 1
                if len(data) > limit and not data.endswith(b"\n"):
                    raise FormatError(
                        f"the line is longer than {size_text(limit)}, the longest an import "
                        "reads (SIEVE_IMPORT_MAX_LINE_BYTES); is this one record per line?",
                        file=self.name,
                        line=number,
                    )
                if number == 1 and data.startswith(_BOM):
                    data = data[len(_BOM) :]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise FormatError(
                        f"byte {error.start + 1} of the line is not valid UTF-8 "
                        f"({data[error.start : error.start + 1]!r}); save the file as UTF-8",
                        file=self.name,
                        line=number,
                    ) from None
                yield number, text
            self._finished = True


class JsonlFileReader:
    """What the one-file jsonl readers (BGE, Tevatron) share: the file, its name in errors,
    the passage cache, the notes for the import, and progress through the file."""

    ids_from_text = False
    candidates_need_lookup = False
    queries_need_candidates = False

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        passage_cache: int | None = None,
        limits: ReadLimits | None = None,
    ):
        self._file = LineFile(path, name or Path(path).name, limits=limits)
        self.files = [self._file.name]
        self._cache = passage_cache or DEFAULT_PASSAGE_CACHE
        self.notes: dict = {}

    def fraction(self) -> float:
        return self._file.position() / self._file.size if self._file.size else 1.0
