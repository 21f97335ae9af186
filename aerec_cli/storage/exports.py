"""Tables written to files: CSV, JSON Lines or Parquet, chosen by the file name's extension.

Each file is written under a temporary name and renamed into place (atomic.atomic_open), as
an export: into a folder that exists already, with the permissions the user's umask gives.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic

EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


STDOUT = "-"  # -o -: CSV on standard output, for a pipe


def file_format(path: str | Path) -> str:
    """csv, jsonl or parquet from ``path``'s extension (``-``: csv on stdout); anything else
    is an error."""
    if str(path) == STDOUT:
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        shown = f"'{suffix}'" if suffix else "no extension"
        raise AerecError(
            f"cannot write {path}: {shown} is not a known file type; "
            "end the name in .csv, .jsonl or .parquet"
        )
    if EXTENSIONS[suffix] == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise AerecError(
                "writing .parquet needs pyarrow: pip install pyarrow (or use .csv or .jsonl)"
            ) from exc
    return EXTENSIONS[suffix]


def write_columns(path: str | Path, columns: dict[str, list]) -> int:
    """Write equal-length columns as rows to ``path`` (``-``: CSV on stdout); returns the
    number of rows."""
    names = list(columns)
    n_rows = len(columns[names[0]]) if names else 0
    if str(path) == STDOUT:
        sys.stdout.write(_csv_text(names, columns))
        sys.stdout.flush()
        return n_rows
    path = Path(path).expanduser()
    kind = file_format(path)
    try:
        if kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({name: columns[name] for name in names})
            with atomic.atomic_open(path, "wb", export=True) as handle:
                pq.write_table(table, handle)
        elif kind == "csv":
            atomic.write_text(path, _csv_text(names, columns), export=True)
        else:
            lines = (
                json.dumps(dict(zip(names, values)), ensure_ascii=False)
                for values in zip(*(columns[name] for name in names))
            )
            atomic.write_text(path, "".join(line + "\n" for line in lines), export=True)
    except OSError as exc:
        raise AerecError(f"cannot write {path} ({exc.strerror or exc})") from exc
    return n_rows


def _csv_text(names: list[str], columns: dict[str, list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(zip(*(columns[name] for name in names)))
    return buffer.getvalue()
