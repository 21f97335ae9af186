# ruff: noqa: I001  (the command modules are imported in the order `aerec --help` lists them)
"""The `aerec` command line: parses options, calls the library, prints. No work happens here.

Results go to stdout; progress, warnings and errors go to stderr. A problem the user can fix
(AerecError, or a bad option) is one line on stderr and a non-zero exit, never a traceback.
One module per command group; each registers its commands on the one Typer ``app``.
"""

import copy
import os
import sys

# Imported in the order `aerec --help` lists the commands.
from aerec_cli.cli import data, train, evaluate, score, manage  # noqa: F401  (registers them)
from aerec_cli.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    only_the_command_asked_for(sys.argv[1:])()


def only_the_command_asked_for(args: list[str]):
    """The app with just the command that ``args`` name, when they name exactly one (and ask
    for no help before it): Typer builds every command's click object, reading each option's
    signature, on every call, which is a twentieth of a `recommend`. Else the whole app."""
    from typer.main import get_command_name

    commands = {
        info.name or get_command_name(info.callback.__name__): info
        for info in app.registered_commands
    }
    named = [at for at, arg in enumerate(args) if arg in commands]
    if len({args[at] for at in named}) != 1 or {"-h", "--help"} & set(args[: named[0]]):
        return app
    only = copy.copy(app)
    only.registered_commands = [commands[args[named[0]]]]
    return only
