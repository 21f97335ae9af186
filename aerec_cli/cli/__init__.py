# ruff: noqa: I001  (the command modules are imported in the order `aerec --help` lists them)
"""The `aerec` command line: parses options, calls the library, prints. No work happens here.

Results go to stdout; progress, warnings and errors go to stderr. A problem the user can fix
(AerecError, or a bad option) is one line on stderr and a non-zero exit, never a traceback.
One module per command group; each registers its commands on the one Typer ``app``.
"""

import os

# Imported in the order `aerec --help` lists the commands.
from aerec_cli.cli import data, train, evaluate, score, manage  # noqa: F401  (registers them)
from aerec_cli.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
