"""Digests checked once, not on every read: what keeps `aerec recommend` fast.

Reading and hashing a run's weights and serving file (about 100 MB on ML-1M) took longer than
the rest of a top-10 answer. So once a file's digest has matched, its identity is noted in
``.verified.json`` in its folder: inode, size, modification and change times (ns). A file
whose identity is unchanged is not read again. Any write, rename or copy over it changes the
change time, which no user call can set back, so an edited or replaced file is hashed again;
only damage below the file system (a bit flipped on disk) would go unnoticed until the file
is read in full again by training or a rebuild.

Noting is best effort: a read-only folder simply means every open hashes again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from aerec_cli.storage import atomic

STAMP = ".verified.json"


def identity(path: Path) -> list[int]:
    info = os.stat(path)
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _stamps(folder: Path) -> dict:
    try:
        stamps = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def unchanged(path: Path, digest: str) -> bool:
    """Whether ``path`` is, byte for byte, the file whose digest was last found to be
    ``digest`` (so hashing it again would give ``digest``)."""
    noted = _stamps(path.parent).get(path.name)
    try:
        return noted == {"identity": identity(path), "sha256": digest}
    except OSError:
        return False


def note(path: Path, digest: str) -> None:
    """Record that ``path`` was just hashed to ``digest``."""
    with contextlib.suppress(OSError):
        stamps = _stamps(path.parent)
        stamps[path.name] = {"identity": identity(path), "sha256": digest}
        atomic.write_json(path.parent / STAMP, stamps)
