"""The lines of a ratings file, checked before pandas parses them, a block at a time.

pandas' reading of lines with too many or too few fields changes between its versions (one
warns and drops the extra field, another takes the first line's width as the norm, another
fails), and its line numbers skip the lines it drops. So each line is checked here, with numpy
over whole blocks, and only well-formed lines reach pandas:

- blank lines (nothing but spaces, tabs or '\\r') are dropped, as every pandas drops them;
- a line whose number of fields is not the file's is malformed: dropped, counted and its
  number kept for the error (a line holding a '"' is left to pandas: its quoting decides);
- the number of every line passed on is kept until its chunk is parsed, so a rating found
  bad later is still reported by its line in the file.

The file's width is the layout's (MovieLens: 4), or for a generic file the most common width
among the first block's lines, so one bad first line does not make every other line bad.
"""

from __future__ import annotations

import numpy as np

from aerec_cli.errors import AerecError

# No ratings line is anywhere near this long (ids are at most table.MAX_ID_CHARS): a longer
# one means this is not a ratings file, and it is not held in memory while waiting for '\n'.
MAX_LINE_BYTES = 1 << 16
_NEWLINE, _QUOTE = 10, 34
_WHITESPACE = (32, 9, 13)


class LineCheck:
    """Filters the bytes of one pass over a file; see the module doc."""

    def __init__(self, name: str, sep: str, width: int | None, header: bool):
        self.name = name
        # Fields are counted where the separator is one byte (not a whitespace run).
        self.sep = sep.encode()[0] if len(sep.encode()) == 1 else None
        self.width = width
        self.header = header  # the first non-blank line is a header: never checked
        self.lines = 0  # lines of the file read so far
        self.malformed = 0
        self.first_malformed: list[int] = []  # numbers of the first five
        self._pending = b""  # a line not yet ended
        self._kept: list[np.ndarray] = []  # line numbers of the lines passed on, not released
        self._base = 0  # index (among the lines passed on) of the first kept number

    def feed(self, block: bytes, final: bool = False) -> bytes:
        """The well-formed lines of ``block`` (whole lines; a partial last line waits for
        the next block, or ends the file when ``final``)."""
        data = self._pending + block
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
        cut = int(ends[-1]) + 1 if len(ends) else 0
        if final and cut < len(data):
            ends = np.append(ends, len(data))
            cut = len(data)
        self._pending = data[cut:]
        if len(self._pending) > MAX_LINE_BYTES:
            self._too_long(self.lines + len(ends) + 1)
        if not len(ends):
            return b""
        return self._filter(data[:cut], ends)

    def _too_long(self, line: int):
        raise AerecError(
            f"{self.name}: line {line} is longer than {MAX_LINE_BYTES:,} bytes; this is not a "
            "ratings file"
        )

    def _filter(self, data: bytes, ends: np.ndarray) -> bytes:
        raw = np.frombuffer(data, dtype=np.uint8)
        starts = np.concatenate(([0], ends[:-1] + 1))
        long = np.flatnonzero(ends - starts > MAX_LINE_BYTES)
        if len(long):
            self._too_long(self.lines + 1 + int(long[0]))
        blank = self._count(~np.isin(raw, self._whitespace()), starts, ends) == 0
        keep = ~blank
        if self.sep is not None:
            fields = self._count(raw == self.sep, starts, ends) + 1
            checked = keep & (self._count(raw == _QUOTE, starts, ends) == 0)
            if self.header and keep.any():  # the header line is not a rating
                checked[np.flatnonzero(keep)[0]] = False
                self.header = False
            if self.width is None and checked.any():
                self.width = int(np.bincount(fields[checked]).argmax())
            bad = checked & (fields != self.width)
            if bad.any():
                numbers = self.lines + 1 + np.flatnonzero(bad)
                self.malformed += len(numbers)
                self.first_malformed += numbers[: 5 - len(self.first_malformed)].tolist()
                keep &= ~bad
        elif self.header and keep.any():
            self.header = False
        self._kept.append(self.lines + 1 + np.flatnonzero(keep))
        self.lines += len(ends)
        if keep.all():
            return data
        lengths = np.diff(np.append(starts, len(data)))
        return raw[np.repeat(keep, lengths)].tobytes()

    def _whitespace(self) -> list[int]:
        return [b for b in _WHITESPACE if b != self.sep]

    @staticmethod
    def _count(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """How many bytes of each line [start, end) ``mask`` flags."""
        total = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        return total[ends] - total[starts]

    def line_numbers(self, rows: np.ndarray) -> np.ndarray:
        """The line in the file of each line passed on (0-based index among them)."""
        rows = np.asarray(rows, dtype=np.int64) - self._base
        if not self._kept:
            return np.full(len(rows), -1, dtype=np.int64)
        kept = np.concatenate(self._kept)
        known = (rows >= 0) & (rows < len(kept))
        return np.where(known, kept[np.clip(rows, 0, len(kept) - 1)], -1)

    def release(self, upto: int) -> None:
        """Forget the numbers of the lines before index ``upto`` (their chunk is parsed)."""
        while self._kept and self._base + len(self._kept[0]) <= upto:
            self._base += len(self._kept.pop(0))
