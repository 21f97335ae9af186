"""The lock that keeps two aerec processes from writing the same dataset or run at once.

``filelock.FileLock`` is an flock(2) lock on Unix: the kernel drops it when its holder dies,
even by kill -9, so a crash never leaves a stale lock that would refuse every later write.
(``SoftFileLock``, where the lock file's existence is the lock, would; do not switch to it.)
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic


@contextlib.contextmanager
def name_lock(folder: Path, name: str, busy: str, *, wait: float = 0) -> Iterator[None]:
    """Hold ``FOLDER/.NAME.lock`` while NAME is written there.

    A second process is refused with ``busy`` (an AerecError) rather than left waiting behind
    the first: at once, or after ``wait`` seconds (for a write that is over in moments). Once
    the lock is ours, what an interrupted write of NAME left beside it is swept: no one else
    can be writing it now. The lock file stays (only :func:`sweep_unheld` removes one, and
    :func:`_acquire` makes that safe).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = _acquire(folder / f".{name}.lock", busy, wait)
    try:
        atomic.sweep_leftovers(folder / name)
        yield
    finally:
        lock.release()


def _acquire(path: Path, busy: str, wait: float):
    """A held lock on the file that ``path`` names now.

    :func:`sweep_unheld` removes lock files no one holds. A process that opened the file just
    before that, and locked it just after, would hold a lock on a file no longer named: it
    tries again on the one there now, so two holders never lock two different files.
    """
    # Here, not at the top: commands that only read a run (recommend) start faster without it.
    import filelock

    while True:
        lock = filelock.FileLock(path, timeout=wait)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise AerecError(busy) from None
        if _still_named(path, lock):
            return lock
        lock.release()


def _still_named(path: Path, lock) -> bool:
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if not isinstance(fd, int):  # this filelock keeps its handle elsewhere: cannot tell
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except OSError:
        return False


_LEFTOVER = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.(tmp|old)")


def sweep_unheld(folder: Path) -> list[str]:
    """Remove what interrupted writes left in ``folder`` (HOME/runs or HOME/datasets): temp
    and retired folders, and lock files, of every name no live process holds the lock of.
    A name whose lock is held is left alone: its writer's staging folder looks the same.
    Returns the names cleaned."""
    if not folder.is_dir():
        return []
    names = set()
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".lock"):
                names.add(path.name[1 : -len(".lock")])
            elif (match := _LEFTOVER.fullmatch(path.name)) is not None:
                names.add(match.group(1))
    cleaned = []
    for name in sorted(n for n in names if n and "/" not in n):
        # A lock held by another process refuses at once (wait 0): that name is skipped.
        with contextlib.suppress(AerecError, OSError), name_lock(folder, name, "held"):
            (folder / f".{name}.lock").unlink(missing_ok=True)
            cleaned.append(name)
    return cleaned
