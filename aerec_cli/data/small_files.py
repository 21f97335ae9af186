"""The one reader of the small CSV files a user hands to a command: ``recommend
--ratings-file`` (item,rating) and ``predict --pairs`` (user,item[,rating]).

Such a file is typed by hand or exported from a spreadsheet, so the reader is forgiving about
form and strict about content:

- the header is optional; when present, its names pick the columns (``movieId``, ``stars``...);
- ',' , tab or ';' separate the fields (the first line tells which);
- blank lines and lines starting with '#' are skipped; a UTF-8 byte-order mark is dropped;
- every other line must hold the columns, or the error names the file, the line and what was
  expected.

It reads the whole file into memory (no pandas, so the commands that use it stay fast to
start), hence the size bound: a larger file is a job for ``aerec ingest``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aerec_cli.errors import AerecError

# 64 MiB is about 4M lines of user,item,rating: an ML-25M-sized test split fits. Lines are
# bounded too: each becomes a Python object, and 64 MiB of newlines would be 64M of them.
MAX_BYTES = 64 * 1024**2
MAX_LINES = 5_000_000
SEPARATORS = (",", "\t", ";")

USER_ALIASES = ("user", "userid", "user_id", "uid", "u")
ITEM_ALIASES = ("item", "itemid", "item_id", "movie", "movieid", "movie_id", "iid", "i", "id")
RATING_ALIASES = ("rating", "ratings", "stars", "score", "r")


@dataclass(frozen=True)
class Column:
    """One column a file may hold: its name, the header names that mean it, its kind."""

    name: str
    aliases: tuple[str, ...]
    number: bool = False  # a finite number (else a non-empty id, kept as text)
    optional: bool = False  # may be absent from the whole file (never from single lines)


USER = Column("user", USER_ALIASES)
ITEM = Column("item", ITEM_ALIASES)
RATING = Column("rating", RATING_ALIASES, number=True)


@dataclass
class ColumnsFile:
    """What a file held: ``rows[k]`` has one value per name in ``columns``, read at line
    ``lines[k]`` (1-based, so errors found later can still name the line)."""

    path: Path
    columns: list[str]
    rows: list[tuple]
    lines: list[int]

    def has(self, name: str) -> bool:
        return name in self.columns


def number(text: str) -> float | None:
    """``text`` as a finite float, else None (nan and inf are not ratings)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_columns(
    path: str | Path,
    spec: Sequence[Column],
    *,
    label: str,
    meaning: str,
    max_bytes: int = MAX_BYTES,
) -> ColumnsFile:
    """The rows of a small CSV with the columns of ``spec`` (header optional).

    ``label`` names the file in errors ("ratings file"); ``meaning`` says in words what a line
    holds ("a raw item id and a number of stars"). An empty file (or a header alone) gives no
    rows; the caller decides whether that is an error.
    """
    path = Path(path).expanduser()
    text = _read_text(path, label, max_bytes)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return ColumnsFile(path, [c.name for c in spec if not c.optional], [], [])
    first_number, first = lines[0]
    delimiter = next((d for d in SEPARATORS if d in first), ",")
    fields = [f.strip() for f in next(csv.reader([first], delimiter=delimiter))]
    layout = _header_layout(spec, fields)
    width = len(fields)  # every line holds as many fields as the first
    if layout is not None:
        lines = lines[1:]
        if len(set(layout.values())) < len(layout):
            raise AerecError(
                f"{label} {path} line {first_number}: cannot tell the "
                f"{_words([c.name for c in spec])} columns from the header {first.strip()!r}; "
                f"use {','.join(c.name for c in spec)}"
            )
    else:
        # No header: the columns in spec order; optional ones (last) are present if the first
        # line is wide enough for them.
        layout = {c.name: k for k, c in enumerate(spec) if not c.optional or k < width}
        if width > len(spec):
            layout = {}  # too wide: the first line is reported below
    expected = _expected(spec, delimiter)
    required = [c.name for c in spec if not c.optional]
    if not all(name in layout for name in required) or max(layout.values(), default=0) >= width:
        raise _bad_line(label, path, first_number, first, expected, meaning)
    wanted = [c for c in spec if c.name in layout]
    rows, numbers = [], []
    for line_number, line in lines:
        values = [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]
        row = _row(values, wanted, layout, width)
        if row is None:
            raise _bad_line(label, path, line_number, line, expected, meaning)
        rows.append(row)
        numbers.append(line_number)
    return ColumnsFile(path, [c.name for c in wanted], rows, numbers)


def _header_layout(spec: Sequence[Column], fields: list[str]) -> dict[str, int] | None:
    """Column positions from a header line, or None when ``fields`` is a line of data.

    The line is a header if a field is one of the columns' names, or if a number column's
    field (at its place in a file without a header) is not a number. A required column the
    header does not name keeps its place in spec order (``foo,stars`` reads as item,rating);
    an optional one is present only if named.
    """
    names = [f.lower() for f in fields]
    named = any(name in c.aliases for c in spec for name in names)
    not_numbers = any(
        c.number and not c.optional and k < len(fields) and number(fields[k]) is None
        for k, c in enumerate(spec)
    )
    if not (named or not_numbers):
        return None
    layout = {}
    for k, column in enumerate(spec):
        # By the aliases' order, so a plain ``id`` column does not win over ``item``.
        position = next((names.index(a) for a in column.aliases if a in names), None)
        if position is None and not column.optional:
            position = k
        if position is not None:
            layout[column.name] = position
    return layout


def _row(
    values: list[str], wanted: list[Column], layout: dict[str, int], width: int
) -> tuple | None:
    """One line's values in ``wanted`` order, or None if the line is malformed."""
    if len(values) != width:
        return None
    row = []
    for column in wanted:
        text = values[layout[column.name]]
        if column.number:
            value = number(text)
            if value is None:
                return None
            row.append(value)
        elif not text:
            return None
        else:
            row.append(text)
    return tuple(row)


def _read_text(path: Path, label: str, max_bytes: int) -> str:
    """The file's text, read up to the bounds: a device (/dev/zero), a pipe or a file that
    grows while read has no size to check first, so no more than ``max_bytes`` is read."""
    too_big = (
        f"{label} {path} holds more than the {max_bytes / 1024**2:,.0f} MiB or "
        f"{MAX_LINES:,} lines a small file may hold; split it into smaller files, or ingest "
        "it as a dataset with: aerec ingest"
    )
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes or data.count(b"\n") > MAX_LINES:
            raise AerecError(too_big)
        return data.decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise AerecError(f"{label} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise AerecError(f"{label} {path} is a folder, not a CSV file") from exc
    except UnicodeDecodeError as exc:
        raise AerecError(f"{label} {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise AerecError(f"cannot read {label} {path} ({exc.strerror or exc})") from exc


def _expected(spec: Sequence[Column], delimiter: str) -> str:
    """``item,rating`` or ``user,item[,rating]``, with the file's own separator."""
    text = ""
    for k, column in enumerate(spec):
        part = (delimiter if k else "") + column.name
        text += f"[{part}]" if column.optional else part
    return text


def _words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _bad_line(
    label: str, path: Path, line_number: int, line: str, expected: str, meaning: str
) -> AerecError:
    return AerecError(
        f"{label} {path} line {line_number}: expected {expected} ({meaning}), got {line.strip()!r}"
    )
