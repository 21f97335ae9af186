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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from aerec_cli.errors import AerecError


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None, *, export: bool = False
) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it replaces ``path`` in one rename.

    ``export``: a file the user asked for (``-o``), not part of the store. Its folder must
    exist already (a typo in it should not create folders), and it gets the permissions any
    new file of the user gets (the umask), not the temp file's private 0600.
    """
    path = Path(path)
    if export:
        if not path.parent.is_dir():
            raise AerecError(f"cannot write {path}: folder {path.parent} does not exist")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            if export:
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
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


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def write_bytes(path: str | Path, data: bytes, *, export: bool = False) -> None:
    with atomic_open(path, "wb", export=export) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str, *, export: bool = False) -> None:
    with atomic_open(path, "w", encoding="utf-8", export=export) as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class FolderChanged(Exception):
    """A file vanished while a folder was read: the folder was replaced meanwhile."""


def read_files(folder: Path, names: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """The bytes of ``names`` (and of those ``optional`` that exist) in ``folder``, all from
    one version of it.

    Every file is opened through one handle on the folder, not by its path, so a folder
    swapped in by :func:`staged_folder` meanwhile is not mixed in: the files all come from the
    folder as it was when the handle was taken. If that version was swapped out and files
    vanished from it (it is deleted once replaced), :class:`FolderChanged` is raised: the
    caller reads again, now the new version. FileNotFoundError: ``folder`` or a file of
    ``names`` is missing from the folder in place.
    """
    if os.open not in os.supports_dir_fd:  # no such handles here: read by path
        return _read_by_path(folder, names, optional)
    handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        found = {}
        for name in [*names, *optional]:
            try:
                fd = os.open(name, os.O_RDONLY, dir_fd=handle)
            except FileNotFoundError:
                if not _still_in_place(folder, handle):
                    raise FolderChanged(str(folder)) from None
                if name in optional:
                    continue
                raise
            with os.fdopen(fd, "rb") as stream:
                found[name] = stream.read()
        return found
    finally:
        os.close(handle)


def _still_in_place(folder: Path, handle: int) -> bool:
    """``folder`` still names the folder behind ``handle`` (it was not swapped out)."""
    try:
        now, then = os.stat(folder), os.fstat(handle)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino)


def _read_by_path(folder: Path, names: Sequence[str], optional: Sequence[str]) -> dict:
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    found = {}
    for name in [*names, *optional]:
        try:
            found[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            if name not in optional:
                raise
    return found


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


def retire_folder(folder: Path) -> None:
    """Remove ``folder`` as one atomic step: it is renamed to a temp name beside it
    (``.NAME.XXXXXXXX.tmp``), then deleted. A reader sees the whole folder or none, and a
    crash before the delete leaves a leftover that :func:`sweep_leftovers` removes, never
    half a folder under its name (nor, as with ``.old``, one that recover_folders restores).
    """
    import secrets

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_"
    token = "".join(secrets.choice(alphabet) for _ in range(8))
    retired = folder.parent / f".{folder.name}.{token}.tmp"
    os.rename(folder, retired)
    fsync_dir(folder.parent)
    shutil.rmtree(retired, ignore_errors=True)
