"""Every CSV the project serves is written through here, so that no cell a user typed (a run
name, a dataset name, a model name) reaches a spreadsheet as a live formula. Pure: no Django
(the agreement report's CSV rows, a pure core, use it too)."""

import csv
from collections.abc import Iterable

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"): such a cell is written with a leading apostrophe, which shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """One cell: empty for None, floats with 6 decimals, any other text neutralised."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return str(value)  # numbers, negative ones included, stay numbers
    text = str(value)
    if text[:1] in FORMULA_STARTS:
        text = "'" + text
    return text


def csv_write(stream, rows: Iterable[Iterable]) -> None:
    """Write ``rows`` to ``stream`` (a file, or an HttpResponse) with every cell through
    ``csv_cell``."""
    csv.writer(stream).writerows([csv_cell(value) for value in row] for row in rows)
