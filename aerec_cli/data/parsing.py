"""Rating lines parsed a chunk at a time by pandas' C parser, straight from the stream.

Numeric columns are read as numbers: integer ids stay int64 all the way to the store, which
turns only the distinct ids into strings. Ids that are not plain integers (``u17``, ``007``)
are kept as the exact text, as is everything in a file whose ids cannot all be read as numbers
without changing them.
"""

from __future__ import annotations

import contextlib
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aerec_cli.data.lines import LineCheck
from aerec_cli.data.sources import MemberStream, SourceFiles
from aerec_cli.data.table import MAX_ID_CHARS, concat_ratings, is_text
from aerec_cli.errors import AerecError

# Lines parsed per chunk: bounds the parser's working memory on a large file (ML-25M: 13
# chunks). Tests set it small to exercise the chunk boundaries.
CHUNK_ROWS = 2_000_000
_MAX_ID_DIGITS = 18  # canonical integer ids up to this many digits fit in int64


def parse_ratings(
    files: SourceFiles,
    name: str,
    sep: str,
    skip_bad: bool,
    has_header: bool,
    positions: list[int] | None = None,
    n_fields: int | None = None,
    watch_ids: bool = False,
    *,
    scale: Scale | None = None,
) -> pd.DataFrame:
    """Parse the rating lines of member ``name`` into user, item, rating, timestamp.

    ``n_fields``: how many fields a line of this layout has; other lines are malformed
    (lines.py; a generic file's width is read from the file). ``watch_ids``: ids may be
    written in ways that reading them as numbers would change (generic files); if the bytes
    show any, the file is read again with every field as text. ``scale``: ratings outside it
    are refused with their line numbers, even with ``skip_bad`` (they are not malformed: the
    file or the scale is wrong).
    """
    positions = positions or [0, 1, 2, 3]
    options = (skip_bad, has_header, positions, n_fields, scale)
    parsed = _parse_pass(files, name, sep, *options, watch_ids)
    if parsed is None:  # ids that a number would not keep exactly: read them as text
        parsed = _parse_pass(files, name, sep, *options, None)
    return parsed


@dataclass(frozen=True)
class Scale:
    """The ratings a file may hold, ``low <= rating <= high``: ``label`` says in errors what
    a rating beyond it is ("outside the ml-1m scale 1-5"), ``hint`` what to do about it."""

    low: float
    high: float
    label: str
    hint: str = "check the file"


def _parse_pass(
    files: SourceFiles,
    name: str,
    sep: str,
    skip_bad: bool,
    has_header: bool,
    positions: list[int],
    n_fields: int | None,
    scale: Scale | None,
    watch_ids: bool | None,
) -> pd.DataFrame | None:
    """One pass over the file. ``watch_ids`` None: every field as text (the exact path);
    else numbers as numbers, and None back where that cannot keep the ids exactly."""
    as_text = watch_ids is None or sep == r"\s+"
    colons = sep == "::"
    if colons:
        # pandas falls back to a slow Python parser for multi-char separators; the stream
        # turns '::' into a tab to keep the C parser (ratings files hold no tabs).
        sep = "\t"
    watch = _id_watch(sep) if watch_ids and not as_text else None
    parts: list[dict[str, np.ndarray]] = []
    check = LineCheck(name, sep, n_fields, has_header)
    malformed = _MalformedLines(check, header_lines=int(has_header))
    refused = _Refusals(scale)
    with files.open(name) as handle:
        stream = MemberStream(handle, files, name, colons, watch, lines=check)
        try:
            with _csv_chunks(stream, sep, has_header, as_text, skip_bad) as chunks:
                for frame in chunks:
                    if stream.watched:
                        return None
                    chunk, bad = _chunk_ratings(frame, name, positions, n_fields)
                    if chunk is None:
                        return None
                    refused.check(chunk, bad, malformed.next_row, check)
                    chunk = malformed.drop(chunk, bad)
                    # Past a malformed line (and no --skip-bad-lines) the rest of the file is
                    # only read to count them all for the error.
                    if not malformed.count or skip_bad:
                        parts.append(chunk if as_text else _compact_ids(chunk))
            if stream.watched:
                return None
        # pandas' EmptyDataError and ParserError are ValueErrors, as is UnicodeDecodeError.
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError) as exc:
            raise _parse_error(exc, files, name, stream) from exc
    refused.raise_any(name)
    _check_parsed(name, stream, malformed, skip_bad, parts)
    return _assemble(parts)


@contextlib.contextmanager
def _csv_chunks(
    stream: MemberStream, sep: str, has_header: bool, as_text: bool, skip_bad: bool
) -> Iterator[Iterator[pd.DataFrame]]:
    """pandas' reader of ``stream``, CHUNK_ROWS lines per frame."""
    python = sep == r"\s+"
    with warnings.catch_warnings():
        # index_col=False: lines wider than the header must not shift the columns (pandas
        # would silently take the first field as an index); it warns that it drops the rest.
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        reader = pd.read_csv(
            stream,
            sep=sep,
            header=0 if has_header else None,
            index_col=False,
            dtype=str if as_text else None,
            keep_default_na=False,
            na_filter=False,
            engine="python" if python else "c",
            on_bad_lines="skip" if skip_bad else "error",
            skip_blank_lines=True,
            encoding="utf-8",
            encoding_errors="replace",
            chunksize=CHUNK_ROWS,
            **({} if python else {"low_memory": False}),
        )
        with reader:
            yield reader


@dataclass
class _MalformedLines:
    """Lines that hold no rating: those the line check dropped (a wrong number of fields),
    and rows of a parsed chunk found bad (a missing id, a rating that is not a number):
    counted, the first few numbered by their line in the file, and dropped from a chunk."""

    check: LineCheck
    header_lines: int  # lines passed on before the first rating line
    rows_seen: int = 0
    flagged: int = 0
    first_flagged: list[int] = field(default_factory=list)

    @property
    def next_row(self) -> int:
        """Index among the lines passed on of the next chunk's first row."""
        return self.rows_seen + self.header_lines

    @property
    def count(self) -> int:
        return self.flagged + self.check.malformed

    @property
    def first(self) -> list[int]:
        return sorted(self.first_flagged + self.check.first_malformed)[:5]

    def drop(self, chunk: dict[str, np.ndarray], bad: np.ndarray) -> dict[str, np.ndarray]:
        """``chunk`` (the next lines of the file) without the rows that ``bad`` flags."""
        if bad.any():
            self.flagged += int(bad.sum())
            numbers = self.check.line_numbers(np.flatnonzero(bad)[:5] + self.next_row)
            self.first_flagged = sorted(self.first_flagged + numbers.tolist())[:5]
            chunk = {key: values[~bad] for key, values in chunk.items()}
        self.rows_seen += len(bad)  # one flag per line of the chunk
        self.check.release(self.next_row)
        return chunk


@dataclass
class _Refused:
    """Values that no option lets through: counted, the first few numbered by line."""

    what: str  # "rating(s) outside the ml-1m scale 1-5"
    hint: str
    count: int = 0
    lines: list[int] = field(default_factory=list)
    first: str = ""

    def add(self, flags: np.ndarray, values: np.ndarray, start: int, check: LineCheck) -> None:
        if flags.any():
            rows = np.flatnonzero(flags)
            if not self.count:
                value = values[rows[0]]
                self.first = f"{value:g}" if isinstance(value, float) else f"{str(value)[:40]}..."
            self.count += len(rows)
            numbers = check.line_numbers(rows[:5] + start).tolist()
            self.lines = sorted(self.lines + numbers)[:5]

    def error(self, name: str) -> AerecError:
        lines = ", ".join(map(str, self.lines))
        return AerecError(
            f"{name}: {self.count} {self.what} at line(s) {lines} (first: {self.first}); "
            f"{self.hint}"
        )


class _Refusals:
    """Ratings off the file's scale and ids too long to keep: refused, by line."""

    def __init__(self, scale: Scale | None):
        self.scale = scale
        self.outside = _Refused(f"rating(s) {scale.label}", scale.hint) if scale else None
        self.long_ids = _Refused(
            f"id(s) longer than {MAX_ID_CHARS} characters",
            "an id is a short name or number; check --sep and --columns, or the file",
        )

    def check(self, chunk: dict, bad: np.ndarray, start: int, check: LineCheck) -> None:
        fine = ~bad
        if self.outside is not None:
            values = chunk["rating"]
            off = fine & ((values < self.scale.low) | (values > self.scale.high))
            self.outside.add(off, values.astype(np.float64), start, check)
        for column in ("user", "item"):
            ids = chunk[column]
            if ids.dtype != np.int64:
                lengths = pd.Series(ids, dtype=object).str.len().to_numpy()
                self.long_ids.add(fine & (lengths > MAX_ID_CHARS), ids, start, check)

    def raise_any(self, name: str) -> None:
        for refused in (self.outside, self.long_ids):
            if refused is not None and refused.count:
                raise refused.error(name)


def _parse_error(exc: Exception, files: SourceFiles, name: str, stream: MemberStream) -> AerecError:
    """What the user is told when parsing ``name`` failed with ``exc``."""
    parser_errors = (pd.errors.EmptyDataError, pd.errors.ParserError)
    if isinstance(exc, parser_errors) and not stream.has_content:
        return AerecError(f"{name} is empty; it holds no ratings")
    if isinstance(exc, pd.errors.EmptyDataError):
        return AerecError(f"{name} holds no usable ratings")
    if isinstance(exc, pd.errors.ParserError):
        line = re.search(r"line (\d+)", str(exc))
        where = f" at line {_line_in_file(stream, int(line.group(1)))}" if line else ""
        return AerecError(
            f"{name}: malformed line{where} ({_short(exc)}); fix it or pass --skip-bad-lines"
        )
    if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error)):
        return files.read_error(name, exc)
    return AerecError(f"{name}: cannot parse ({_short(exc)})")


def _line_in_file(stream: MemberStream, line: int) -> int:
    """The line of the file that pandas calls ``line`` (it counts only the lines the line
    check passed on)."""
    number = int(stream.lines.line_numbers(np.array([line - 1]))[0]) if stream.lines else -1
    return number if number > 0 else line


def _check_parsed(
    name: str,
    stream: MemberStream,
    malformed: _MalformedLines,
    skip_bad: bool,
    parts: list[dict[str, np.ndarray]],
) -> None:
    """A whole pass read ratings: the file was not empty, and (unless skipped) not malformed."""
    if not stream.has_content:
        raise AerecError(f"{name} is empty; it holds no ratings")
    if malformed.count and not skip_bad:
        raise AerecError(
            f"{name}: {malformed.count} malformed line(s) (a missing id, a non-numeric "
            f"rating or extra fields), first at line(s) {', '.join(map(str, malformed.first))}; "
            "fix them or pass --skip-bad-lines"
        )
    if not sum(len(part["rating"]) for part in parts):
        raise AerecError(f"{name} holds no usable ratings")


def _id_watch(sep: str) -> re.Pattern[bytes]:
    """Fields an integer parse would change: '+7', '007', '-0' (perhaps quoted or spaced)."""
    start = re.escape(sep.encode())
    return re.compile(rb"(?:\n|" + start + rb')[ \t"]*(?:\+|-?0[0-9]|-0(?![0-9]))')


def _chunk_ratings(
    frame: pd.DataFrame, name: str, positions: list[int], n_fields: int | None
) -> tuple[dict[str, np.ndarray] | None, np.ndarray]:
    """user, item, rating, timestamp arrays of one parsed chunk, and which rows are malformed.

    None if an id column came out as something other than integers or text (a float, say):
    its text is lost, so the file must be read again as text.
    """
    if frame.shape[1] <= max(positions[:3]):
        raise AerecError(
            f"{name}: lines have {frame.shape[1]} field(s), need user, item and rating; "
            "check --sep and --columns"
        )
    user = _ids(frame.iloc[:, positions[0]])
    item = _ids(frame.iloc[:, positions[1]])
    if user is None or item is None:
        return None, np.empty(0, dtype=bool)
    rating = _numbers(frame.iloc[:, positions[2]])
    if len(positions) > 3 and frame.shape[1] > positions[3]:
        stamps = _numbers(frame.iloc[:, positions[3]])
        if stamps.dtype == np.int64:
            stamps = stamps.to_numpy()
        else:  # missing or unreadable (NaN, inf) -> -1
            stamps = stamps.to_numpy(np.float64, na_value=np.nan)
            stamps = np.where(np.isfinite(stamps), stamps, -1).astype(np.int64)
    else:
        stamps = np.full(len(frame), -1, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 overflows float32
        values = rating.to_numpy(np.float32, na_value=np.nan)
    bad = ~np.isfinite(values)  # not a number, inf, or beyond float32: not a rating
    for ids in (user, item):
        if ids.dtype != np.int64:
            bad |= (ids == "").to_numpy()
    if n_fields is not None and frame.shape[1] > n_fields:
        # Fields past the layout's last are padded with "" on well-formed lines; a column
        # that parsed as numbers has a value on every line.
        for k in range(n_fields, frame.shape[1]):
            extra = frame.iloc[:, k]
            bad |= (extra != "").to_numpy() if is_text(extra) else True
    out = {
        "user": user.to_numpy(),
        "item": item.to_numpy(),
        "rating": values,
        "timestamp": stamps,
    }
    return out, bad


def _ids(column: pd.Series) -> pd.Series | None:
    """An id column as int64 (parsed as integers) or stripped text; None if neither."""
    if column.dtype == np.int64:
        return column
    if is_text(column):
        return column.astype(str).str.strip()
    return None


def _numbers(column: pd.Series) -> pd.Series:
    """A rating or timestamp column as numbers, NaN where a field is not one."""
    if column.dtype == bool:  # 'True'/'False' are not numbers
        return pd.Series(np.nan, index=column.index)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column
    return pd.to_numeric(column, errors="coerce")


def _compact_ids(chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Text ids of a chunk that are all plain integers become int64 again.

    A chunk holding a malformed line comes out as text; once that line is gone, its other
    ids should not force the whole file onto the slow text path.
    """
    for column in ("user", "item"):
        ids = chunk[column]
        if ids.dtype != np.int64 and len(ids):
            text = pd.Series(ids, dtype=str)
            if text.str.fullmatch(rf"-?[1-9][0-9]{{0,{_MAX_ID_DIGITS - 1}}}|0").all():
                chunk[column] = text.astype(np.int64).to_numpy()
    return chunk


def _assemble(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One ratings frame from the chunks' arrays, copying each value once.

    With integer ids, user, item and timestamp are written straight into the one int64 block
    the frame keeps them in (pandas would otherwise concatenate, then copy again to
    consolidate: three copies of 25M rows instead of one). Chunks are freed as they are copied.
    """
    if not all(part["user"].dtype == np.int64 and part["item"].dtype == np.int64 for part in parts):
        frames = [pd.DataFrame(part) for part in parts]
        parts.clear()
        return concat_ratings(frames)
    n = sum(len(part["rating"]) for part in parts)
    block = np.empty((3, n), dtype=np.int64)  # rows: user, item, timestamp
    rating = np.empty(n, dtype=np.float32)
    start = 0
    while parts:
        part = parts.pop(0)
        stop = start + len(part["rating"])
        block[0, start:stop], block[1, start:stop] = part["user"], part["item"]
        block[2, start:stop], rating[start:stop] = part["timestamp"], part["rating"]
        start = stop
    frame = pd.DataFrame(block.T, columns=["user", "item", "timestamp"], copy=False)
    frame.insert(2, "rating", rating)
    return frame


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
