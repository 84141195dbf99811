"""CSV in and out for the accounts: decoding, the header, row numbers, and safe cells on export.

Only the file's shape is checked here (encoding, size, columns); what a cell may hold is decided by
the rules in ``opmail.rules.imports``. Rows are numbered the way a spreadsheet shows them: the header is
row 1, blank lines count, so "row 7" is line 7 in the editor the admin fixes the file with.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

IMPORT_COLUMNS = ("email", "password", "quota_mb", "display_name", "status")
REQUIRED_COLUMNS = ("email", "password")
EXPORT_COLUMNS = ("email", "display_name", "quota_mb", "status", "used_bytes", "last_sync")
MAX_BYTES = 4 * 1024 * 1024
MAX_ROWS = 10_000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): "|" starts
# a DDE call in older Excel, and some spreadsheets read the full-width forms as the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "|", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


@dataclass(frozen=True)
class CsvProblem:
    """One thing wrong with an import file: where (row and column, when known) and what."""

    row: int | None
    column: str | None
    message: str


@dataclass
class CsvTable:
    """The data rows of an import file as ``(row number, {column: cell})``, and what is wrong with
    its shape. A row with the wrong number of cells is kept (its cells matched to the columns from
    the left) so its other problems show too."""

    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[CsvProblem] = field(default_factory=list)


def read_accounts_csv(data: bytes, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES) -> CsvTable:
    """Split an uploaded file into checked-shape records; never raises for any input."""
    table = CsvTable()
    if len(data) > max_bytes:
        table.problems.append(
            CsvProblem(None, None, f"The file is larger than {max_bytes // (1024 * 1024)} MiB: split it.")
        )
        return table
    text = _decode(data, table)
    if text is None:
        return table
    _read_rows(text, max_rows, table)
    return table


def _decode(data: bytes, table: CsvTable) -> str | None:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        row = data[: error.start].count(b"\n") + 1
        table.problems.append(
            CsvProblem(row, None, "The file is not UTF-8 text: save it as \"CSV UTF-8\" and upload it again.")
        )
        return None
    if "\x00" in text:
        table.problems.append(CsvProblem(None, None, "This is not a CSV text file (it holds binary data)."))
        return None
    if not text.strip():
        table.problems.append(
            CsvProblem(None, None, f"The file is empty: the first row must name the columns ({', '.join(IMPORT_COLUMNS)}).")
        )
        return None
    return text


def _numbered(text: str, table: CsvTable) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) until the end, or until the csv module cannot read on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, cells
    except csv.Error as error:
        # e.g. a cell over the csv module's 128 KiB limit: nothing after it can be trusted.
        table.problems.append(CsvProblem(number + 1, None, f"The file cannot be read from here on ({error})."))


def _read_rows(text: str, max_rows: int, table: CsvTable) -> None:
    rows = _numbered(text, table)
    _, header = next(rows, (1, []))
    header = [name.strip().lower() for name in header]
    if not _header_ok(header, table):
        return
    for number, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or a row of empty cells a spreadsheet left behind
        if len(table.records) == max_rows:
            table.problems.append(
                CsvProblem(number, None, f"The file has more than {max_rows:,} accounts: split it.")
            )
            return
        if len(cells) > len(header):
            table.problems.append(
                CsvProblem(number, None, f"Too many columns: {_cells(cells)} for {len(header)} columns (quote a value that holds a comma).")
            )
        elif len(cells) < len(header):
            table.problems.append(
                CsvProblem(number, None, f"Too few columns: {_cells(cells)} for {len(header)} columns.")
            )
        table.records.append((number, dict(zip(header, cells, strict=False))))
    if not table.records and not table.problems:
        table.problems.append(CsvProblem(None, None, "The file has a header but no accounts."))


def _cells(cells: list[str]) -> str:
    return f"{len(cells)} cell{'' if len(cells) == 1 else 's'}"


def _unknown_column(name: str) -> str:
    if not name:
        return "A column in the first row has no name."
    if ";" in name:
        # Spreadsheets in many European locales save "CSV" with semicolons.
        return f"Unknown column {name!r}: separate the columns with commas."
    return f"Unknown column {name!r}: the columns are {', '.join(IMPORT_COLUMNS)}."


def _header_ok(header: list[str], table: CsvTable) -> bool:
    problems = [CsvProblem(1, None, _unknown_column(name)) for name in header if name not in IMPORT_COLUMNS]
    problems += [
        CsvProblem(1, name, f"The column {name} appears twice.")
        for name in IMPORT_COLUMNS
        if header.count(name) > 1
    ]
    problems += [
        CsvProblem(1, name, f"The first row must name the column {name}.")
        for name in REQUIRED_COLUMNS
        if name not in header
    ]
    table.problems += problems
    return not problems


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: ``'`` before anything it would run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]], rows_per_chunk: int = 500) -> Iterator[str]:
    """CSV text in chunks of ``rows_per_chunk`` rows, header first, every cell through ``safe_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([safe_cell(value) for value in row])
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
