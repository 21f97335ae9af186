"""A folder whose two files must belong together: what the kill -9 tests write and check.

Kept free of heavy imports: writer child processes import it and must start fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def write_version(folder: Path, version: int, size: int = 1 << 16) -> None:
    payload = bytes([version % 251]) * size
    (folder / "data.bin").write_bytes(payload)
    meta = {"version": version, "sha256": hashlib.sha256(payload).hexdigest()}
    (folder / "version.json").write_text(json.dumps(meta))


def read_version(folder: Path) -> int:
    """The version a folder holds, checking that its two files belong together."""
    meta = json.loads((folder / "version.json").read_text())
    assert hashlib.sha256((folder / "data.bin").read_bytes()).hexdigest() == meta["sha256"]
    return meta["version"]
