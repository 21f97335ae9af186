"""The names users give datasets (--name) and runs (--run): one rule for both, checked before
any work starts, so that a name that cannot be stored is refused up front rather than after
hours of training."""

from __future__ import annotations

import re

from aerec_cli.errors import AerecError

PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# File systems allow 255 bytes per name (ext4, XFS, btrfs, APFS; names here are ASCII). The
# stores derive longer names from NAME beside its folder: the lock (locks.name_lock) and the
# staged and retired folders of a write (atomic.staged_folder: mkdtemp adds 8 characters).
FILE_NAME_LIMIT = 255
DERIVED = (".{}.lock", ".{}.xxxxxxxx.tmp", ".{}.xxxxxxxx.old")
MAX_LENGTH = FILE_NAME_LIMIT - max(len(form.format("")) for form in DERIVED)


def check_name(name: str, what: str, flag: str) -> str:
    """``name`` if it can name a ``what`` ("run", "dataset") on disk; else AerecError."""
    if not isinstance(name, str) or not PATTERN.fullmatch(name):
        raise AerecError(f"{what} name {name!r} may hold only letters, digits, '.', '_', '-'")
    if len(name) > MAX_LENGTH:
        raise AerecError(
            f"{what} name {name[:20]}... is {len(name)} characters long; the most is "
            f"{MAX_LENGTH} (the files stored beside it need the rest of the file system's "
            f"{FILE_NAME_LIMIT}): pick a shorter {flag}"
        )
    return name


def shortened(name: str, room: int) -> str:
    """``name`` cut to at most ``room`` characters (at least one), without a trailing '.' or
    '-' (a name derived from a long one, e.g. a run's default name from its dataset's)."""
    return name[: max(1, room)].rstrip(".-_") or name[0]
