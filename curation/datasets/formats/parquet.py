"""Parquet files, read a batch of rows at a time (how the Hugging Face hub serves most
datasets). Pure Python: no Django; pyarrow is imported only when a parquet file is opened.
Errors say ``row`` where the text formats say ``line``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import FormatError, Where


class ParquetRows:
    """The rows of one parquet file as ``(where, {column: value})``, with progress."""

    def __init__(self, path: Path, name: str, *, batch_size: int = 4096):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.name = name
        self._batch_size = batch_size
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise FormatError(f"not a readable parquet file ({error})", file=name) from None
        self.schema = self._file.schema_arrow
        self.names = list(self.schema.names)
        self.rows_total = self._file.metadata.num_rows
        self.rows_done = 0

    def fraction(self) -> float:
        return self.rows_done / self.rows_total if self.rows_total else 1.0

    def records(self, columns: list[str]) -> Iterator[tuple[Where, dict]]:
        import pyarrow as pa

        try:
            for batch in self._file.iter_batches(batch_size=self._batch_size, columns=columns):
                try:
                    rows = batch.to_pylist()
                except UnicodeDecodeError:
                    raise self._not_utf8(batch) from None
                for offset, values in enumerate(rows):
                    yield Where(self.name, self.rows_done + offset + 1), values
                self.rows_done += batch.num_rows
        # A damaged page fails in pyarrow's reader as an ArrowException or, when its header
        # cannot be decoded, as a plain OSError ("Couldn't deserialize thrift").
        except (pa.ArrowException, OSError) as error:
            raise FormatError(
                f"the parquet data is damaged ({error})",
                file=self.name,
                line=self.rows_done + 1,
                unit="row",
            ) from None

    def _not_utf8(self, batch) -> FormatError:
        """The first row and column of ``batch`` whose text is not UTF-8 (parquet writers
        need not check it; pyarrow finds out only when it makes Python strings)."""
        for offset in range(batch.num_rows):
            for name in batch.schema.names:
                try:
                    batch.column(name).slice(offset, 1).to_pylist()
                except UnicodeDecodeError:
                    return FormatError(
                        "the text is not valid UTF-8",
                        file=self.name,
                        line=self.rows_done + offset + 1,
                        field=name,
                        unit="row",
                    )
        return FormatError(
            "the text is not valid UTF-8", file=self.name, line=self.rows_done + 1, unit="row"
        )


def parquet_columns(path: Path, name: str) -> list[str]:
    """The column names of a parquet file (its schema; no row is read)."""
    return ParquetRows(path, name).names
