"""What the CLI prints: the two consoles (results to stdout, the rest to stderr), tables,
JSON and CSV. Commands print through this module's ``out`` and ``err`` (tests swap them)."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum

import typer
from rich.console import Console
from rich.table import Table

# Piped output gets a wide console so tables are not cut at 80 columns.
# Neither markup nor emoji codes: what is printed is data, so a title such as "[REC] (2007)"
# or "Dr. :smile:" (or a path with brackets) comes out as it is.
_PLAIN = {"highlight": False, "markup": False, "emoji": False}
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200, **_PLAIN)
err = Console(stderr=True, **_PLAIN)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class ListFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))


def table(title: str | None, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(
            col,
            justify="left"
            if col
            in {
                "title",
                "genres",
                "run",
                "dataset",
                "kind",
                "name",
                "item",
                "path",
                "format",
                "orientation",
                "method",
                "because",
            }
            else "right",
        )
    for row in rows:
        table.add_row(*[str(v) for v in row])
    return table


def echo_csv(fields: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


# Options many commands share, declared once (Typer reads them as parameter defaults).
RUN_OPTION = typer.Option(None, "--run", help="Run name \\[default: the latest].")
DATA_OPTION = typer.Option(None, "--data", help="Dataset name \\[default: the latest].")
TABLE_OR_JSON = typer.Option(OutputFormat.table, "--format", help="table or json.")
TABLE_JSON_OR_CSV = typer.Option(ListFormat.table, "--format", help="table, json or csv.")
