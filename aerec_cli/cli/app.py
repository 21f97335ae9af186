"""The Typer application: global options, the settings every command receives, and the
error handling that turns a problem the user can fix into one line on stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.core import TyperGroup

from aerec_cli import __version__
from aerec_cli.cli import output
from aerec_cli.errors import AerecError


class AerecGroup(TyperGroup):
    """Turns AerecError and click usage errors into one line on stderr and an exit code, and
    takes the global options after the command too (`aerec train -q`)."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        args = self.globals_first(list(sys.argv[1:] if args is None else args))
        try:
            result = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except AerecError as exc:
            _fail(exc.message, exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except OSError as exc:
            from aerec_cli.storage import atomic

            if not atomic.disk_full(exc):
                raise
            # Where a command has no word of its own for it. Every store write goes to a temp
            # name first, so what was stored before is intact.
            why, remedy = atomic.write_failure(exc)
            _fail(f"{why}; what was stored before is unchanged: {remedy} and try again", 1)
        except Exception as exc:
            # Click's usage errors (vendored inside newer Typer, so matched by shape).
            if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
                raise
            if not exc.format_message():  # no-args-is-help: the help is already shown
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            _fail(f"{exc.format_message()}{hint}", exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Typer would turn it into a silent exit 130: say it, as for every other stop.
            raise AerecError("interrupted", exit_code=130) from None

    def globals_first(self, args: list[str]) -> list[str]:
        """``args`` with the global options that follow the command name moved before it, so
        that `aerec train --seed 1 -q` means `aerec --seed 1 -q train`. The command's own
        options (and their values) stay, and so does everything after `--`."""
        global_options = _option_arities(self.params)
        at = 0
        while at < len(args) and args[at].startswith("-") and args[at] not in ("-", "--"):
            at += 1 + _takes_value(args[at], global_options)
        command = self.commands.get(args[at]) if at < len(args) else None
        if command is None:  # no command, or an unknown one: click says so
            return args
        own = _option_arities(command.params)
        moved, kept, index = [], [], at + 1
        while index < len(args):
            token = args[index]
            if token == "--":
                kept += args[index:]
                break
            name = token.split("=", 1)[0]
            target = moved if name in global_options and name not in own else kept
            width = 1 + _takes_value(token, own if target is kept else global_options)
            target += args[index : index + width]
            index += width
        return args[:at] + moved + [args[at]] + kept


def _option_arities(params) -> dict[str, bool]:
    """Each option string of ``params`` -> whether it takes a value (False for flags)."""
    arities = {}
    for param in params:
        if param.param_type_name == "option":
            for flag in [*param.opts, *param.secondary_opts]:
                arities[flag] = not param.is_flag and not getattr(param, "count", False)
    return arities


def _takes_value(token: str, arities: dict[str, bool]) -> int:
    """1 when ``token`` is an option whose value is the next argument (not `--opt=value`)."""
    return int("=" not in token and arities.get(token, False))


def _fail(message: str, code: int):
    flat = " ".join(message.split())
    print(f"error: {flat}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=AerecGroup,
    help="aerec: rating prediction and top-N recommendation with autoencoders.\n\n"
    "The options below also work after the command: aerec train -q is aerec -q train.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion and --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Settings:
    home: Path
    device: str
    seed: int
    threads: int | None
    verbose: bool
    quiet: bool

    def torch_device(self):
        from aerec_cli.training.device import configure_threads, select_device

        configure_threads(self.threads)
        return select_device(self.device)

    def note(self, message: str) -> None:
        if not self.quiet:
            output.err.print(message, soft_wrap=True)  # one line, for logs and for grep


def _version(value: bool):
    if value:
        typer.echo(f"aerec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path = typer.Option(
        None,
        "--home",
        envvar="AEREC_HOME",
        help="Where datasets and runs live "
        "\\[default: the user data dir, e.g. ~/.local/share/aerec].",
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        envvar="AEREC_DEVICE",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, initialisation and shuffling."),
    threads: int = typer.Option(
        None,
        "--threads",
        help="CPU threads \\[default: the CPUs this process may use, less those busy when it "
        "starts (threads of other work running then): torch's threads stall each other on "
        "shared cores].",
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Print more detail to stderr."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print no progress to stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    from aerec_cli.storage.paths import default_home
    from aerec_cli.training.config import SEED, check_threads

    # Checked here, where they are declared, before any command reads them.
    SEED.check(seed)
    check_threads(threads)
    ctx.obj = Settings((home or default_home()).expanduser(), device, seed, threads, verbose, quiet)


def check_scoring_device(settings: Settings) -> None:
    """recommend, similar, embed and outliers score with numpy on the CPU (no torch import);
    a --device other than auto or cpu is still checked, so asking for an absent one fails."""
    if settings.device.strip().lower() not in ("auto", "cpu"):
        settings.torch_device()
