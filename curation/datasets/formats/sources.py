"""Where a reader's bytes come from, and the limits every read obeys. Pure Python: no Django.

A reader reads a ``FileSource``: a file on disk, or a member of a ``.zip`` archive read as a
stream straight out of the archive (nothing is extracted to disk). A BEIR dataset is a
``Folder``: a folder on disk or a folder inside a ``.zip``.

Hostile inputs are bounded by ``ReadLimits`` (the importer fills them from settings):

* ``max_line_bytes``: a line is read with ``readline(limit)``, so one endless line never sits
  in memory whole;
* ``max_uncompressed_bytes`` and ``max_compression_ratio``: every byte that comes out of a
  decompressor (a ``.zip`` member, a ``.gz`` file) is counted against the input it came from
  (the ratio only once ``ratio_checked_above_bytes`` came out); a ``.zip`` whose directory
  already declares too much is refused before a byte is read.

A limit that is hit raises ``LimitExceeded``; the line reader turns it into a ``FormatError``
naming the file and the line it was reading.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import FormatError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int = 8 * MIB
    max_uncompressed_bytes: int = 50 * 1024 * MIB
    max_compression_ratio: float = 100.0
    # Small files of repeated lines (test data, a few identical rows) compress far more than
    # real data does; below this, the ratio is not a sign of a bomb.
    ratio_checked_above_bytes: int = 100 * MIB


class LimitExceeded(Exception):
    """A limit of ``ReadLimits`` hit while reading; the problem, without file or line."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def size_text(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Expansion:
    """The bytes decompressed so far out of one compressed input of ``compressed_size`` bytes
    (a ``.zip`` archive, all its members together, or one ``.gz`` file)."""

    def __init__(self, *, compressed_size: int, limits: ReadLimits):
        self.compressed_size = max(1, compressed_size)
        self.limits = limits
        self.total = 0

    def add(self, count: int) -> None:
        self.total += count
        limits = self.limits
        if self.total > limits.max_uncompressed_bytes:
            raise LimitExceeded(
                f"the data unpacks to more than {size_text(limits.max_uncompressed_bytes)}, "
                "the most an import may unpack (SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES)"
            )
        if (
            self.total > limits.ratio_checked_above_bytes
            and self.total > limits.max_compression_ratio * self.compressed_size
        ):
            raise LimitExceeded(
                f"the data unpacks to more than {limits.max_compression_ratio:g} times its "
                f"compressed size of {size_text(self.compressed_size)} "
                "(SIEVE_IMPORT_MAX_COMPRESSION_RATIO); real training data compresses far "
                "less, so this looks like a decompression bomb"
            )


class Counted(io.RawIOBase):
    """A read-only stream that calls ``on_read(count)`` with each chunk's size."""

    def __init__(self, stream, on_read: Callable[[int], None]):
        self._stream = stream
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._stream.readinto(buffer)
        if count:
            self._on_read(count)
        return count

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


@dataclass
class FileSource:
    """One file a reader reads. ``size``: its bytes as read from ``open()`` (progress is
    measured in them); ``expansion``: what its bytes are counted against when ``open()``
    already decompresses them (an archive member)."""

    name: str
    size: int
    open: Callable[[], io.IOBase]
    expansion: Expansion | None = None


def disk_file(path: Path, name: str) -> FileSource:
    path = Path(path)
    return FileSource(name=name, size=os.path.getsize(path), open=lambda: open(path, "rb"))


class DiskFolder:
    """A folder on disk, as a ``Folder``."""

    def __init__(self, path: Path, label: str):
        self.path = Path(path)
        self.label = label

    def file(self, relative: str) -> FileSource | None:
        path = self.path / relative
        return disk_file(path, relative) if path.is_file() else None

    def names_in(self, relative: str) -> list[str]:
        folder = self.path / relative
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if path.is_file())

    def check_declared(self, relatives: list[str]) -> None:
        """Nothing to check: a folder on disk is already unpacked."""


class ZipFolder:
    """A folder inside a ``.zip`` archive, as a ``Folder``: members are read as streams out
    of the archive, their decompressed bytes counted against the whole archive."""

    def __init__(self, archive: Path, *, label: str, prefix: str, infos: dict, limits: ReadLimits):
        self.archive = Path(archive)
        self.label = label
        self.prefix = prefix
        self._infos = infos  # member name → ZipInfo, files only
        self.limits = limits
        self.expansion = Expansion(compressed_size=os.path.getsize(archive), limits=limits)

    def file(self, relative: str) -> FileSource | None:
        info = self._infos.get(self.prefix + relative)
        if info is None:
            return None
        return FileSource(
            name=relative,
            size=info.file_size,
            open=lambda: self._open(info),
            expansion=self.expansion,
        )

    def names_in(self, relative: str) -> list[str]:
        start = self.prefix + relative.rstrip("/") + "/"
        return sorted(
            name[len(start) :]
            for name in self._infos
            if name.startswith(start) and "/" not in name[len(start) :]
        )

    def check_declared(self, relatives: list[str]) -> None:
        """Refuse at once, before a byte is read, what the archive's directory says is too
        big: the sizes it declares are the most ``zipfile`` will decompress."""
        declared = [(self._infos[self.prefix + r].file_size, r) for r in relatives]
        total = sum(size for size, _ in declared)
        largest, member = max(declared)
        limits = self.limits
        if total > limits.max_uncompressed_bytes:
            raise FormatError(
                f"{member} unpacks to {size_text(largest)} ({size_text(total)} with the other "
                f"files read); an import may unpack at most "
                f"{size_text(limits.max_uncompressed_bytes)} "
                "(SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES)",
                file=self.label,
            )
        if (
            total > limits.ratio_checked_above_bytes
            and total > limits.max_compression_ratio * self.expansion.compressed_size
        ):
            raise FormatError(
                f"the files read unpack to {size_text(total)}, more than "
                f"{limits.max_compression_ratio:g} times the archive's "
                f"{size_text(self.expansion.compressed_size)} "
                "(SIEVE_IMPORT_MAX_COMPRESSION_RATIO); this looks like a decompression bomb",
                file=self.label,
            )

    def _open(self, info: zipfile.ZipInfo):
        archive = zipfile.ZipFile(self.archive)
        try:
            # The member keeps the archive's file open after the ZipFile is closed.
            return archive.open(info)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as error:
            raise FormatError(
                f"cannot read {info.filename} from the archive ({error})", file=self.label
            ) from None
        finally:
            archive.close()


def zip_beir_folder(archive: Path, *, label: str, limits: ReadLimits, is_beir) -> ZipFolder:
    """The first folder inside the ``.zip`` that ``is_beir(folder)`` accepts (the archive's
    root first, then its folders in name order; macOS's ``__MACOSX`` is ignored)."""
    try:
        with zipfile.ZipFile(archive) as packed:
            infos = {
                info.filename: info
                for info in packed.infolist()
                if not info.is_dir() and not info.filename.startswith("__MACOSX/")
            }
    except (zipfile.BadZipFile, OSError) as error:
        raise FormatError(f"not a readable .zip file ({error})", file=label) from None
    prefixes = {""}
    for name in infos:
        parts = name.split("/")[:-1]
        prefixes.update("/".join(parts[: depth + 1]) + "/" for depth in range(len(parts)))
    for prefix in sorted(prefixes):
        folder = ZipFolder(archive, label=label, prefix=prefix, infos=infos, limits=limits)
        if is_beir(folder):
            return folder
    raise FormatError(
        "the .zip holds no BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)",
        file=label,
    )
