"""The lock that keeps two aerec processes from writing the same dataset or run at once.

``filelock.FileLock`` is an flock(2) lock on Unix: the kernel drops it when its holder dies,
even by kill -9, so a crash never leaves a stale lock that would refuse every later write.
(``SoftFileLock``, where the lock file's existence is the lock, would; do not switch to it.)
"""

from __future__ import annotations

import contextlib
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
    can be writing it now. The lock file itself stays: removing it while another process has
    it open would let two holders lock two different files.
    """
    # Here, not at the top: commands that only read a run (recommend) start faster without it.
    import filelock

    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / f".{name}.lock", timeout=wait)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise AerecError(busy) from None
    try:
        atomic.sweep_leftovers(folder / name)
        yield
    finally:
        lock.release()
