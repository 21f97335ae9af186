"""Where aerec keeps its data, and the names it keeps there (imports nothing heavy: every
command resolves them, including the fast `recommend` path).

Every dataset or run name that reaches the disk, given by the user (``--name``, ``--data``,
``--run``, ``--runs``, ``--resume``) or read back from a stored file (a run's dataset), goes
through :func:`check_name`: a name is one plain folder name, so it never leaves its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aerec_cli.errors import AerecError

# The longest names: a run's default name is its dataset's, its kind and a time stamp, and
# the temp names beside a folder (``.NAME.XXXXXXXX.tmp``) must stay under the usual 255-byte
# limit of a file name. Checked up front, so a long --run never fails after training.
MAX_NAME = {"dataset": 100, "run": 150}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# What each kind of folder is called in errors, and how to make a new one.
_WHAT = {"datasets": "dataset", "runs": "run"}


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("aerec", appauthor=False))


def check_name(name: object, what: str) -> str:
    """``name`` if it can name a ``what`` ("dataset" or "run") folder, else an AerecError.

    Letters, digits, '.', '_' and '-', not starting with '.' or '-': no '/', no '..', no
    hidden or temp names, so ``HOME/datasets/NAME`` is always a child of ``HOME/datasets``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AerecError(
            f"{what} name {name!r} may hold only letters, digits, '.', '_' and '-', and must "
            "start with a letter or digit"
        )
    limit = MAX_NAME[what]
    if len(name) > limit:
        raise AerecError(
            f"{what} name {name[:40]}... is {len(name)} characters long; the most is {limit}: "
            "pick a shorter name"
        )
    return name


def shortened(name: str, room: int) -> str:
    """``name`` cut to at most ``room`` characters (at least one), without a trailing '.', '-'
    or '_' (a name derived from a long one, e.g. a run's default name from its dataset's)."""
    return name[: max(1, room)].rstrip(".-_") or name[0]


def store_folder(home: Path, kind: str) -> Path:
    """``HOME/datasets`` or ``HOME/runs`` (``kind``), checked for reading: the home and the
    folder may be missing (nothing stored yet), but neither may be a file."""
    _check_home(home)
    folder = home / kind
    if folder.exists() and not folder.is_dir():
        raise AerecError(
            f"{folder} is a file, but aerec keeps its {_WHAT.get(kind, kind)}s in a folder "
            "there; move the file away, or pick another home with --home or AEREC_HOME"
        )
    return folder


def writable_folder(home: Path, kind: str) -> Path:
    """``HOME/KIND``, created if missing, once it is known aerec can write there: checked
    before a long ingest or training rather than failing at its end."""
    folder = store_folder(home, kind)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _home_error(home, f"cannot create {folder} ({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _home_error(home, f"cannot write in {folder} (permission denied)")
    return folder


def _check_home(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise _home_error(home, f"the home {home} is a file, not a folder")
    for parent in home.parents:  # a file above the home: nothing can be created under it
        if parent.exists():
            if not parent.is_dir():
                raise _home_error(home, f"{parent} (above the home {home}) is a file")
            break


def _home_error(home: Path, problem: str) -> AerecError:
    return AerecError(
        f"{problem}; aerec keeps datasets and runs in its home folder: pick a writable one "
        "with --home DIR or AEREC_HOME=DIR"
    )
