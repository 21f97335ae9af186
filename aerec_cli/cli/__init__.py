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


# Commands that read a run and print, for which start-up and exit are most of the time.
SERVING_COMMANDS = ("recommend", "predict", "similar")


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    command = command_asked_for(sys.argv[1:])
    try:
        (app if command is None else _only(command))()
    except SystemExit as done:
        if command not in SERVING_COMMANDS:
            raise
        _leave_now(done.code)


def command_asked_for(args: list[str]) -> str | None:
    """The command ``args`` name, when they name exactly one and ask for no help before it
    (else None: click then says what is wrong, or lists every command)."""
    names = {_name(info) for info in app.registered_commands}
    named = [at for at, arg in enumerate(args) if arg in names]
    if len({args[at] for at in named}) != 1 or {"-h", "--help"} & set(args[: named[0]]):
        return None
    return args[named[0]]


def _only(command: str):
    """The app with just ``command``: Typer builds every command's click object, reading each
    option's signature, on every call, which is a twentieth of a `recommend`."""
    only = copy.copy(app)
    only.registered_commands = [info for info in app.registered_commands if _name(info) == command]
    return only


def _name(info) -> str:
    """A registered command's name, as Typer derives it."""
    from typer.main import get_command_name

    return info.name or get_command_name(info.callback.__name__)


def _leave_now(code) -> None:
    """Exit without the interpreter's teardown, which frees every object of numpy and of the
    run's arrays one by one (about 50 ms of a 0.4 s list). A serving command's output is
    written by then (files atomically, and closed) and it holds nothing to release."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`| head`): the reader has what it wanted
            pass
    os._exit(code or 0)
