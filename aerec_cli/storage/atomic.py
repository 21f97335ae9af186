"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A reader (or a crash) therefore sees either the old file or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write(2) names no file: say which one
        raise


# Writes that fail for want of room, or of the right to write: the usual causes, each with
# what the user can do about it (see write_failure).
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_failure(exc: OSError) -> tuple[str, str]:
    """(why a write failed, what to do): for the one line that reports it. Every write here
    goes to a temp name first, so the caller can add that what was stored is intact."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _FULL:
        return f"no space left on the disk{where}", "free some space"
    if exc.errno in _DENIED:
        return f"{(exc.strerror or 'not allowed').lower()}{where}", "make that folder writable"
    return f"{exc.strerror or exc}{where}", "check the disk"


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def staged_folder(final: Path, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a temp name beside ``final``, then swap it in by rename.

    An interrupted build leaves ``final`` (old version, or nothing) untouched. Replacing an
    existing folder is one atomic exchange of the two names (:func:`exchange`), so at every
    moment, even under kill -9, ``final`` is the whole old folder or the whole new one. Where
    the system cannot exchange names, the old folder is first moved to
    ``.NAME.XXXXXXXX.old/NAME`` and the new one renamed in; a crash between the two renames
    leaves no ``final``, and :func:`recover_folders` (run by every reader) puts the old one back.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield staging
        fsync_dir(staging)
        if replace and final.exists():
            if exchange(staging, final):
                fsync_dir(final.parent)
                # ``staging`` now names the old version.
                shutil.rmtree(staging, ignore_errors=True)
                return
            retired = Path(
                tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent)
            )
            os.replace(final, retired / final.name)
            os.replace(staging, final)
            fsync_dir(final.parent)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, final)
            fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


AT_FDCWD = -100
RENAME_EXCHANGE = 2  # linux/fs.h
RENAME_SWAP = 2  # macOS stdio.h (renamex_np)
_RENAMEAT2_SYSCALL = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276}
# What a system or file system that cannot exchange names answers.
_CANNOT_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


@functools.lru_cache(maxsize=1)
def _exchange_call() -> Callable[[bytes, bytes], int] | None:
    """The C call that swaps two names atomically, or None where there is none."""
    import ctypes  # here, not at the top: `recommend` starts faster without it
    import platform

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux"):
        if hasattr(libc, "renameat2"):  # glibc 2.28+, musl 1.2.3+
            call = libc.renameat2
            int_, text = ctypes.c_int, ctypes.c_char_p
            call.argtypes = [int_, text, int_, text, ctypes.c_uint]
            call.restype = ctypes.c_int
            return lambda a, b: call(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
        number = _RENAMEAT2_SYSCALL.get(platform.machine().lower())
        if number is None or not hasattr(libc, "syscall"):
            return None
        syscall = libc.syscall
        syscall.restype = ctypes.c_long
        return lambda a, b: syscall(
            ctypes.c_long(number),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(a),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(b),
            ctypes.c_uint(RENAME_EXCHANGE),
        )
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        call = libc.renamex_np
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        call.restype = ctypes.c_int
        return lambda a, b: call(a, b, RENAME_SWAP)
    return None


def exchange(a: Path, b: Path) -> bool:
    """Swap the names of two existing paths in one atomic step.

    False (nothing changed) where the system or file system cannot: the caller falls back to
    two renames.
    """
    call = _exchange_call()
    if call is None:
        return False
    if call(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    import ctypes

    code = ctypes.get_errno()
    if code in _CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def recover_folders(root: Path) -> None:
    """Put back any folder that a replacement moved to ``.NAME.XXXXXXXX.old/NAME`` and was
    interrupted (kill -9, power loss) before the new version took its place."""
    with contextlib.suppress(OSError):
        for retired in root.glob(".*.old"):
            with contextlib.suppress(OSError):
                for child in list(retired.iterdir()):
                    target = root / child.name
                    if retired.name.startswith(f".{child.name}.") and not target.exists():
                        os.rename(child, target)
                        fsync_dir(root)


def sweep_leftovers(final: Path) -> None:
    """Remove what interrupted writes of ``final`` left beside it (temp and retired folders).

    Only for a caller that holds the lock of this name (:func:`locks.name_lock`): another
    writer's staging folder of the same name would look the same.
    """
    recover_folders(final.parent)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    with contextlib.suppress(OSError):
        for path in final.parent.iterdir():
            if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
