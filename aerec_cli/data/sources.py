"""Read access to a source's files (a zip, a folder or a single file), a block at a time.

Nothing is ever extracted to disk: zip members are streamed, so a hostile archive cannot write
anywhere, and a member is refused or stopped once it declares or inflates past any MovieLens
file (a zip bomb). Text in UTF-16/32 is read as UTF-8 (:mod:`textcodec`).
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from aerec_cli.data import textcodec
from aerec_cli.data.lines import LineCheck
from aerec_cli.errors import AerecError

# A member this large is not a MovieLens file (ML-32M's ratings.csv is about 0.9 GB).
MAX_MEMBER_BYTES = 4 * 1024**3
# Bytes read from a file or zip member at a time. Tests set it small to exercise the block
# boundaries.
READ_BLOCK = 1 << 22


class SourceFiles:
    """Uniform read access to the files of a zip, a folder or a single file."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(
                str(p.relative_to(path).as_posix())
                for p in path.rglob("*")
                if p.is_file() and len(p.relative_to(path).parts) <= 4
            )
        elif zipfile.is_zipfile(path):
            try:
                self._zip = zipfile.ZipFile(path)
            # ValueError: a member name that is not the UTF-8 its flag says it is.
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                raise AerecError(
                    f"{path} is not a readable zip ({exc}); download it again"
                ) from exc
            self.names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        elif path.suffix.lower() == ".zip":
            raise AerecError(
                f"{path} is named .zip but is not a zip archive (corrupt or truncated download?); "
                "download it again"
            )
        else:
            self.names = [path.name]

    def find(self, basename: str) -> str | None:
        """The shallowest member called ``basename`` (case-insensitive), if any."""
        hits = [n for n in self.names if PurePosixPath(n).name.lower() == basename.lower()]
        return min(hits, key=lambda n: (n.count("/"), n)) if hits else None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A binary stream of member ``name``; read errors become an AerecError."""
        try:
            if self._zip is not None:
                info = self._zip.getinfo(name)
                if info.file_size > MAX_MEMBER_BYTES:
                    raise AerecError(
                        f"{self.path}: member {name} declares {info.file_size:,} bytes, more than "
                        "any MovieLens file; refusing to read it"
                    )
                try:
                    member = self._zip.open(info)
                except (NotImplementedError, RuntimeError, ValueError) as exc:
                    # An unknown method, encryption, or a local header that contradicts the
                    # directory (a name flagged UTF-8 that is not: UnicodeDecodeError).
                    raise self.read_error(name, exc) from exc
                with member:
                    yield textcodec.utf8_stream(member)  # UTF-16/32 text read as UTF-8
            else:
                with open(self.path if self.path.is_file() else self.path / name, "rb") as handle:
                    yield textcodec.utf8_stream(handle)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise self.read_error(name, exc) from exc

    def read_error(self, name: str, exc: Exception) -> AerecError:
        return AerecError(
            f"cannot read {name} from {self.path} ({exc}); the file is corrupt or "
            "truncated: download it again"
        )

    @property
    def limit(self) -> int | None:
        """Most bytes a member may hold (zip members only: a zip bomb guard)."""
        return MAX_MEMBER_BYTES if self._zip is not None else None

    def read(self, name: str) -> bytes:
        """The whole member (for the small files: titles, genres)."""
        with self.open(name) as handle:
            return MemberStream(handle, self, name).read()

    def head(self, name: str, size: int) -> bytes:
        """The first ``size`` bytes of a member (or all of it, if shorter)."""
        with self.open(name) as handle:
            return handle.read(size)

    @property
    def is_single_file(self) -> bool:
        """The source is one plain file (not a zip, not a folder)."""
        return self._zip is None and self.path.is_file()

    def folder_of(self, name: str) -> str:
        """The folder a member sits in: it names the MovieLens release (ml-1m, ml-25m...)."""
        parent = PurePosixPath(name).parent.name
        if parent:
            return parent
        if self.is_single_file:
            # A lone ratings file: the folder it lies in (e.g. .../ml-1m/ratings.dat).
            return self.path.resolve().parent.name
        return self.path.name if self.path.is_dir() else self.path.stem


class MemberStream(io.RawIOBase):
    """The bytes of a member as pandas reads them, a block at a time.

    Enforces the zip bomb guard, turns the '::' separator into a tab on the fly (pandas'
    C parser takes single-character separators only), notes whether the data holds anything
    but whitespace, and optionally watches for integer ids that a number would not keep.
    """

    def __init__(
        self,
        raw: IO[bytes],
        files: SourceFiles,
        name: str,
        colons: bool = False,
        watch: re.Pattern[bytes] | None = None,
        lines: LineCheck | None = None,
    ):
        super().__init__()
        self._raw, self._files, self._name = raw, files, name
        self._colons, self._watch = colons, watch
        self.lines = lines  # checks each line before it is passed on (lines.py)
        self._buffer, self._pos = b"", 0
        self._carry = b""  # trailing ':'s held back until the next block
        # The end of the last block, so a watched pattern may straddle two; a newline first,
        # so the first field of the file counts as a field start.
        self._tail = b"\n"
        self._done = False
        self.size = 0
        self.has_content = False  # anything but whitespace seen
        self.watched = False  # the watch pattern matched

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer[self._pos :]]
            self._buffer, self._pos = b"", 0
            while not self._done:  # a block may be empty (all ':'s held back)
                parts.append(self._next_block())
            return b"".join(parts)
        while self._pos >= len(self._buffer):
            if self._done:
                return b""
            self._buffer, self._pos = self._next_block(), 0
        out = self._buffer[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next_block(self) -> bytes:
        if self._done:
            return b""
        block = self._raw.read(READ_BLOCK)
        if not block:
            self._done = True
            block, self._carry = self._carry, b""
            block = block.replace(b"::", b"\t") if self._colons else block
            return self._passed_on(block, final=True)
        self.size += len(block)
        limit = self._files.limit
        if limit is not None and self.size > limit:
            raise AerecError(f"{self._files.path}: member {self._name} is larger than it declares")
        if not self.has_content and block.strip():
            self.has_content = True
        if self._colons:
            block = self._carry + block
            kept = len(block.rstrip(b":"))
            block, self._carry = block[:kept].replace(b"::", b"\t"), block[kept:]
        return self._passed_on(block, final=False)

    def _passed_on(self, block: bytes, final: bool) -> bytes:
        """What of ``block`` the reader gets: its well-formed lines (when lines are checked),
        watched for ids a number would not keep."""
        if self.lines is not None:
            block = self.lines.feed(block, final)
        if self._watch is not None and not self.watched and block:
            seen = self._tail + block
            self.watched = self._watch.search(seen) is not None
            self._tail = seen[-16:]
        return block


def is_blank(files: SourceFiles, name: str) -> bool:
    """Member ``name`` holds nothing but whitespace (read to its first other byte)."""
    with files.open(name) as handle:
        stream = MemberStream(handle, files, name)
        while stream.read(READ_BLOCK) and not stream.has_content:
            pass
        return not stream.has_content
