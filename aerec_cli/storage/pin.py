"""The pinned run (`aerec use RUN`): ``HOME/default.json``, the run that commands use when
``--run`` is not given, in place of the latest one.

Kept apart from run_store's loading so that both it (which reads the pin) and storage/manage
(which writes it) can import it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, paths

PIN = "default.json"


def pinned_run(home: Path) -> str | None:
    """The name of the pinned run, or None (the latest run is the default)."""
    paths.store_folder(home, "runs")  # a home that is no folder is that error, not the pin's
    path = home / PIN
    try:
        data = json.loads(path.read_bytes())
        return paths.check_name(data["run"], "run")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AerecError) as exc:
        raise AerecError(
            f"{path}, which pins the default run, is damaged ({exc}); unpin with "
            "aerec use --latest, or pin a run again with aerec use RUN"
        ) from exc


def write_pin(home: Path, name: str) -> None:
    atomic.write_json(paths.writable_folder(home, "runs").parent / PIN, {"run": name})


def clear_pin(home: Path) -> str | None:
    """Unpin; returns the run that was pinned (None if none was, or the pin was unreadable)."""
    try:
        was = pinned_run(home)
    except AerecError:
        was = None
    with contextlib.suppress(FileNotFoundError):
        (home / PIN).unlink()
        atomic.fsync_dir(home)
    return was
