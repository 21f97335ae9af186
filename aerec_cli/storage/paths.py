"""Where aerec keeps its data when no --home is given (imports nothing heavy: every command
resolves it, including the fast `recommend` path)."""

from __future__ import annotations

from pathlib import Path


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("aerec", appauthor=False))
