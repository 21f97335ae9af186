"""Helpers for the tests: run the CLI in-process, check clean errors, read a stored dataset."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import scipy.sparse as sp
from typer.testing import CliRunner

from aerec_cli.cli import app

# Paths, from this file (tests/helpers.py), so that test modules at any depth agree.
REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "aerec_cli"
SHARED_DATA = REPO.parent / "shared" / "data"

# Training settings for the tests: one definition each.
# TINY: tiny and fast, but with a learning rate high enough that the scores spread out (the
# shared trained home, see conftest.py, and every test that checks what a model predicts).
TINY = ["--epochs", "5", "--hidden", "8", "--lr", "0.05", "--weight-decay", "0.1"]
# TINIEST: for tests that only need a run to exist (errors, damaged files, option parsing).
TINIEST = ["--epochs", "2", "--hidden", "4"]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    def json(self):
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"exit code {self.exit_code}, exception {self.exception!r}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def copy_home(template: Path, parent: Path) -> Path:
    """``parent/home``: a copy of a template home (file times kept), for a test or module
    that must not change the template."""
    home = parent / "home"
    shutil.copytree(template, home)
    return home


def run_cli(
    home: Path | None, *args, env: dict[str, str] | None = None, threads: int | None = 1
) -> CliResult:
    """``aerec [--home HOME] [--threads N] ARGS...`` in-process; stdout and stderr kept apart.

    ``--threads 1`` by default: the fixtures' matrices are tiny, and torch's intra-op threads
    slow training down many times over when another process keeps a core busy. A later
    ``--threads`` in ``args`` wins; ``threads=None`` leaves the option out.
    """
    argv = ["--home", str(home)] if home is not None else []
    argv += ["--threads", str(threads)] if threads is not None else []
    result = CliRunner().invoke(app, argv + [str(a) for a in args], env=env)
    return CliResult(result.exit_code, result.stdout, result.stderr, result.exception)


def ok(result: CliResult) -> CliResult:
    """Assert a command succeeded, showing its output if not."""
    assert result.exit_code == 0, str(result)
    assert result.exception is None, str(result)
    return result


def assert_clean_error(result: CliResult, *fragments: str) -> str:
    """A non-zero exit with exactly one ``error:`` line (the last on stderr), no traceback.

    Returns that line. Each fragment must occur in it (case-insensitive).
    """
    assert result.exit_code != 0, str(result)
    # An unexpected exception would surface as a traceback outside the test runner.
    assert isinstance(result.exception, SystemExit), str(result)
    assert "Traceback" not in result.stderr + result.stdout, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, str(result)
    assert lines[-1] == errors[0], str(result)
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


# --- reading what a dataset stored ---------------------------------------------------------


def stored_ratings(dataset_path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of a stored dataset as frames of raw user, item and rating."""
    folder = Path(dataset_path)
    users = pd.read_csv(folder / "users.csv", dtype=str, keep_default_na=False)["user"]
    items = pd.read_csv(folder / "items.csv", dtype=str, keep_default_na=False)["item"]
    frames = []
    for part in ("train", "test"):
        coo = sp.load_npz(folder / f"{part}.npz").tocoo()
        frames.append(
            pd.DataFrame(
                {
                    "user": users.to_numpy()[coo.row],
                    "item": items.to_numpy()[coo.col],
                    "rating": coo.data.astype(float),
                }
            )
        )
    return frames[0], frames[1]


def stored_items(dataset_path: Path | str) -> pd.DataFrame:
    return pd.read_csv(Path(dataset_path) / "items.csv", dtype=str, keep_default_na=False)


HEAVY_IMPORTS_PROBE = (
    "import sys\n"
    "from aerec_cli import cli\n"
    "sys.argv = ['aerec', *sys.argv[1:]]\n"
    # The app main() runs; main() itself leaves serving commands with os._exit, before this
    # probe could look.
    "try:\n    cli.app()\n"
    "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
    "heavy = sorted(m for m in ('torch', 'pandas') if m in sys.modules)\n"
    "print('heavy:', heavy, file=sys.stderr)\n"
)


def heavy_imports(args: list[str], cwd: Path) -> str:
    """Run ``aerec ARGS`` in a fresh interpreter (it must succeed); returns its stderr, whose
    last line says which of torch and pandas the command imported ("heavy: []": neither)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", HEAVY_IMPORTS_PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def read_exported(path: Path, text_columns: tuple[str, ...] = ("user", "item")) -> pd.DataFrame:
    """A table aerec wrote to .csv, .parquet or .jsonl; ids (and ``text_columns``) as text."""
    import json

    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={name: str for name in text_columns})
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
