"""Readers for MovieLens layouts (zip, folder or single file) and generic rating CSV/TSV.

Every reader returns a :class:`RatingsTable`: a ratings frame, an items frame with titles and
genres, the detected format and its rating scale. Nothing is ever extracted to disk: zip
members are streamed, so a hostile archive cannot write anywhere.

Ratings files are parsed a chunk of lines at a time by pandas' C parser, straight from the
stream, with numeric columns read as numbers: integer ids stay int64 all the way to the store,
which turns only the distinct ids into strings. Ids that are not plain integers (``u17``,
``007``) are kept as the exact text, as is everything in a file whose ids cannot all be read as
numbers without changing them.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
import pandas as pd

from aerec_cli.data import textcodec
from aerec_cli.errors import AerecError

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
PREDEFINED_SPLITS_100K = ["u1", "u2", "u3", "u4", "u5", "ua", "ub"]
RATING_COLUMNS = ["user", "item", "rating", "timestamp"]
# A lone member of a zip or folder is read as a generic ratings file only if named like one.
GENERIC_SUFFIXES = {".csv", ".tsv", ".txt", ".dat", ".data", ".tab"}
# A member this large is not a MovieLens file (ML-32M's ratings.csv is about 0.9 GB).
MAX_MEMBER_BYTES = 4 * 1024**3
# Lines parsed per chunk: bounds the parser's working memory on a large file (ML-25M: 13
# chunks). Tests set it small to exercise the chunk boundaries.
CHUNK_ROWS = 2_000_000
# Bytes read from a file or zip member at a time.
READ_BLOCK = 1 << 22
_MAX_ID_DIGITS = 18  # canonical integer ids up to this many digits fit in int64

_COLUMN_ALIASES = {
    "user": ["user", "user_id", "userid", "uid", "u"],
    "item": ["item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid", "i"],
    "rating": ["rating", "ratings", "stars", "score", "r"],
    "timestamp": ["timestamp", "time", "ts", "date", "datetime"],
}


@dataclass
class RatingsTable:
    """Ratings read from a source, before they are split and stored."""

    # user, item: int64 (every id a plain integer) or str; rating float32; timestamp int64
    # (-1 where the source has none).
    ratings: pd.DataFrame
    items: pd.DataFrame  # item (str), title (str), genres (str, '|'-separated)
    format: str
    rating_scale: tuple[float, float]
    warnings: list[str] = field(default_factory=list)
    # Named train/test splits shipped with the data (ml-100k's u1..u5, ua, ub).
    predefined_splits: dict[str, Callable[[], tuple[pd.DataFrame, pd.DataFrame]]] = field(
        default_factory=dict
    )


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
                except (NotImplementedError, RuntimeError) as exc:  # unknown method, encrypted
                    raise self.read_error(name, exc) from exc
                except UnicodeDecodeError as exc:  # local header's name is not the UTF-8 it claims
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
            return _Stream(handle, self, name).read()

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


def read_source(
    path: str | Path,
    columns: str | None = None,
    sep: str | None = None,
    skip_bad_lines: bool = False,
) -> RatingsTable:
    """Detect the layout of ``path`` and read its ratings, titles and genres."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AerecError(f"{path} does not exist; give a MovieLens zip, folder or ratings file")
    files = SourceFiles(path)
    if columns or sep:
        if len(files.names) != 1:
            raise AerecError("--columns/--sep apply to a single ratings file, not a zip or folder")
        return _read_generic(files, files.names[0], columns, sep, skip_bad_lines)
    if name := files.find("u.data"):
        return _read_ml100k(files, name, skip_bad_lines)
    if name := files.find("ratings.dat"):
        return _read_dat_layout(files, name, skip_bad_lines)
    if (name := files.find("ratings.csv")) and _has_movielens_header(files.head(name, 64)):
        return _read_csv_layout(files, name, skip_bad_lines)
    if len(files.names) == 1 and (
        files.is_single_file or PurePosixPath(files.names[0]).suffix.lower() in GENERIC_SUFFIXES
    ):
        return _read_generic(files, files.names[0], None, None, skip_bad_lines)
    raise AerecError(
        f"no ratings found in {path}: expected u.data (ml-100k), ratings.dat (ml-1m, ml-10m) "
        "or ratings.csv (ml-20m and later); for another layout pass the ratings file itself"
    )


# --- MovieLens layouts -------------------------------------------------------------------


def _read_ml100k(files: SourceFiles, name: str, skip_bad: bool) -> RatingsTable:
    ratings = _parse_ratings(files, name, "\t", skip_bad, False, n_fields=4)
    items = pd.DataFrame(columns=["item", "title", "genres"])
    if item_file := files.find("u.item"):
        raw = _decode(files.read(item_file), "latin-1")
        frame = pd.read_csv(
            io.StringIO(raw), sep="|", header=None, dtype=str, quoting=3, keep_default_na=False
        )
        flags = frame.iloc[:, 5 : 5 + len(ML100K_GENRES)].to_numpy() == "1"
        genres = ["|".join(g for g, on in zip(ML100K_GENRES, row) if on) for row in flags]
        items = pd.DataFrame({"item": frame[0], "title": frame[1], "genres": genres})

    def predefined(split: str) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
        def load() -> tuple[pd.DataFrame, pd.DataFrame]:
            parts = []
            for suffix in ("base", "test"):
                member = files.find(f"{split}.{suffix}")
                if member is None:
                    raise AerecError(
                        f"split {split} needs {split}.{suffix}, absent from the source"
                    )
                parts.append(_parse_ratings(files, member, "\t", skip_bad, False, n_fields=4))
            return parts[0], parts[1]

        return load

    splits = {s: predefined(s) for s in PREDEFINED_SPLITS_100K if files.find(f"{s}.base")}
    table = RatingsTable(ratings, items, "ml-100k", (1.0, 5.0), predefined_splits=splits)
    return _finish(table)


def _read_dat_layout(files: SourceFiles, name: str, skip_bad: bool) -> RatingsTable:
    """ml-1m and ml-10m: '::'-separated ratings.dat and movies.dat."""
    ratings = _parse_ratings(files, name, "::", skip_bad, False, n_fields=4)
    folder = files.folder_of(name).lower()
    half_stars = bool((ratings["rating"] % 1 != 0).any())
    # ml-10m has half stars and no users.dat; a lone whole-star ratings.dat reads as ml-1m.
    no_users = files.find("users.dat") is None and not files.is_single_file
    is_10m = "10m" in folder or half_stars or no_users
    items = pd.DataFrame(columns=["item", "title", "genres"])
    if movie_file := files.find("movies.dat"):
        text = _decode(files.read(movie_file), "utf-8" if is_10m else "latin-1")
        rows = [line.split("::") for line in text.splitlines() if line.strip()]
        rows = [r for r in rows if len(r) >= 3]
        items = pd.DataFrame(
            {
                "item": [r[0] for r in rows],
                "title": ["::".join(r[1:-1]) for r in rows],
                "genres": [r[-1] for r in rows],
            }
        )
    if is_10m:
        return _finish(RatingsTable(ratings, items, "ml-10m", (0.5, 5.0)))
    return _finish(RatingsTable(ratings, items, "ml-1m", (1.0, 5.0)))


def _read_csv_layout(files: SourceFiles, name: str, skip_bad: bool) -> RatingsTable:
    """ml-20m, ml-25m, ml-32m and ml-latest(-small): CSV with a header, UTF-8."""
    ratings = _parse_ratings(files, name, ",", skip_bad, True, n_fields=4)
    items = pd.DataFrame(columns=["item", "title", "genres"])
    if movie_file := files.find("movies.csv"):
        frame = pd.read_csv(
            io.StringIO(_decode(files.read(movie_file), "utf-8")), dtype=str, keep_default_na=False
        )
        items = pd.DataFrame(
            {"item": frame["movieId"], "title": frame["title"], "genres": frame["genres"]}
        )
    folder = files.folder_of(name).lower()
    # The release names the format, also in a derived folder name (ml-25m-synthetic).
    known = re.match(r"ml-(20m|25m|32m|latest-small|latest)(?![0-9a-z])", folder)
    fmt = known.group(0) if known else "ml-latest"
    return _finish(RatingsTable(ratings, items, fmt, (0.5, 5.0)))


def _has_movielens_header(data: bytes) -> bool:
    return data[:64].lower().startswith(b"userid,movieid,rating")


# --- generic CSV/TSV ---------------------------------------------------------------------


def _read_generic(
    files: SourceFiles, name: str, columns: str | None, sep: str | None, skip_bad: bool
) -> RatingsTable:
    head = files.head(name, 4096)
    if not head.strip() and _is_blank(files, name):
        raise AerecError(f"{name} is empty; it holds no ratings")
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    sep = _unescape(sep) if sep else _sniff_separator(first_line)
    fields = first_line.split(sep)
    has_header = len(fields) >= 3 and not _is_number(fields[2].strip().strip('"'))
    positions = _column_positions(fields if has_header else None, columns)
    # Generic ids might be written in ways a number would not keep ("007"): watch for them.
    ratings = _parse_ratings(files, name, sep, skip_bad, has_header, positions, watch_ids=True)
    values = ratings["rating"]
    scale = (0.5, 5.0) if (values % 1 != 0).any() else (1.0, 5.0)
    if values.min() < scale[0] or values.max() > scale[1]:
        scale = (float(values.min()), float(values.max()))
    table = RatingsTable(ratings, pd.DataFrame(columns=["item", "title", "genres"]), "csv", scale)
    return _finish(table)


def _sniff_separator(line: str) -> str:
    for candidate in ("::", "\t", ",", ";", "|"):
        if candidate in line:
            return candidate
    if len(line.split()) >= 3:
        return r"\s+"
    raise AerecError(
        "cannot tell the separator of the ratings file; pass --sep (for example --sep ',')"
    )


def _unescape(sep: str) -> str:
    return {"\\t": "\t", "tab": "\t", "space": r"\s+"}.get(sep, sep)


def _column_positions(header: list[str] | None, columns: str | None) -> list[int]:
    """Positions of user, item, rating[, timestamp] in each line."""
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        if len(wanted) not in (3, 4):
            raise AerecError("--columns takes 3 or 4 names or positions: user,item,rating[,time]")
        if all(w.isdigit() for w in wanted):
            return [int(w) for w in wanted]
        if header is None:
            raise AerecError("--columns gives names but the file has no header; give positions")
        lowered = [h.strip().strip('"').lower() for h in header]
        missing = [w for w in wanted if w.lower() not in lowered]
        if missing:
            raise AerecError(f"column(s) {', '.join(missing)} not in the header {header}")
        return [lowered.index(w.lower()) for w in wanted]
    if header is None:
        return [0, 1, 2, 3]
    lowered = [h.strip().strip('"').lower() for h in header]
    positions = []
    for role in RATING_COLUMNS:
        hit = next((lowered.index(a) for a in _COLUMN_ALIASES[role] if a in lowered), None)
        if hit is None and role != "timestamp":
            raise AerecError(
                f"the header {header} has no {role} column; name the columns with "
                "--columns user,item,rating[,timestamp]"
            )
        if hit is not None:
            positions.append(hit)
    return positions


# --- shared parsing ----------------------------------------------------------------------


class _Stream(io.RawIOBase):
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
    ):
        super().__init__()
        self._raw, self._files, self._name = raw, files, name
        self._colons, self._watch = colons, watch
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
            return block.replace(b"::", b"\t") if self._colons else block
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
        if self._watch is not None and not self.watched:
            seen = self._tail + block
            self.watched = self._watch.search(seen) is not None
            self._tail = seen[-16:]
        return block


def _id_watch(sep: str) -> re.Pattern[bytes]:
    """Fields an integer parse would change: '+7', '007', '-0' (perhaps quoted or spaced)."""
    start = re.escape(sep.encode())
    return re.compile(rb"(?:\n|" + start + rb')[ \t"]*(?:\+|-?0[0-9]|-0(?![0-9]))')


def _is_blank(files: SourceFiles, name: str) -> bool:
    with files.open(name) as handle:
        stream = _Stream(handle, files, name)
        while stream.read(READ_BLOCK) and not stream.has_content:
            pass
        return not stream.has_content


def _parse_ratings(
    files: SourceFiles,
    name: str,
    sep: str,
    skip_bad: bool,
    has_header: bool,
    positions: list[int] | None = None,
    n_fields: int | None = None,
    watch_ids: bool = False,
) -> pd.DataFrame:
    """Parse the rating lines of member ``name`` into user, item, rating, timestamp.

    ``n_fields``: how many fields a line of this layout has; lines with more are malformed
    (the C parser only notices extra fields after the first line sets the width).
    ``watch_ids``: ids may be written in ways that reading them as numbers would change
    (generic files); if the bytes show any, the file is read again with every field as text.
    """
    positions = positions or [0, 1, 2, 3]
    parsed = _parse_pass(files, name, sep, skip_bad, has_header, positions, n_fields, watch_ids)
    if parsed is None:  # ids that a number would not keep exactly: read them as text
        parsed = _parse_pass(files, name, sep, skip_bad, has_header, positions, n_fields, None)
    return parsed


def _parse_pass(
    files: SourceFiles,
    name: str,
    sep: str,
    skip_bad: bool,
    has_header: bool,
    positions: list[int],
    n_fields: int | None,
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
    python = sep == r"\s+"
    watch = _id_watch(sep) if watch_ids and not as_text else None
    parts: list[dict[str, np.ndarray]] = []
    n_rows, n_bad, first_bad = 0, 0, []
    with files.open(name) as handle:
        stream = _Stream(handle, files, name, colons, watch)
        try:
            with warnings.catch_warnings():
                # index_col=False: lines wider than the header must not shift the columns
                # (pandas would silently take the first field as an index); it warns that it
                # drops the rest.
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
                    for frame in reader:
                        if stream.watched:
                            return None
                        chunk, bad = _chunk_ratings(frame, name, positions, n_fields, as_text)
                        if chunk is None:
                            return None
                        if bad.any():
                            n_bad += int(bad.sum())
                            rows = np.flatnonzero(bad)[: 5 - len(first_bad)]
                            first_bad += (rows + n_rows + 1 + int(has_header)).tolist()
                            chunk = {key: values[~bad] for key, values in chunk.items()}
                        n_rows += len(frame)
                        if not n_bad or skip_bad:
                            parts.append(_compact_ids(chunk) if not as_text else chunk)
                if stream.watched:
                    return None
        except pd.errors.EmptyDataError as exc:
            if not stream.has_content:
                raise AerecError(f"{name} is empty; it holds no ratings") from exc
            raise AerecError(f"{name} holds no usable ratings") from exc
        except pd.errors.ParserError as exc:
            if not stream.has_content:
                raise AerecError(f"{name} is empty; it holds no ratings") from exc
            line = re.search(r"line (\d+)", str(exc))
            where = f" at line {line.group(1)}" if line else ""
            raise AerecError(
                f"{name}: malformed line{where} ({_short(exc)}); fix it or pass --skip-bad-lines"
            ) from exc
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise files.read_error(name, exc) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise AerecError(f"{name}: cannot parse ({_short(exc)})") from exc
    if not stream.has_content:
        raise AerecError(f"{name} is empty; it holds no ratings")
    if n_bad and not skip_bad:
        raise AerecError(
            f"{name}: {n_bad} malformed line(s) (a missing id, a non-numeric "
            f"rating or extra fields), first at line(s) {', '.join(map(str, first_bad))}; "
            "fix them or pass --skip-bad-lines"
        )
    if not sum(len(part["rating"]) for part in parts):
        raise AerecError(f"{name} holds no usable ratings")
    return _assemble(parts)


def _chunk_ratings(
    frame: pd.DataFrame, name: str, positions: list[int], n_fields: int | None, as_text: bool
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
            bad |= (extra != "").to_numpy() if _is_text(extra) else True
    out = {
        "user": user.to_numpy(),
        "item": item.to_numpy(),
        "rating": values,
        "timestamp": stamps,
    }
    return out, bad


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column.dtype) or column.dtype == object


def _ids(column: pd.Series) -> pd.Series | None:
    """An id column as int64 (parsed as integers) or stripped text; None if neither."""
    if column.dtype == np.int64:
        return column
    if _is_text(column):
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


def concat_ratings(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack ratings frames; ids stay int64 only if they are int64 in every part."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return pd.DataFrame(
            {
                "user": pd.Series(dtype=np.int64),
                "item": pd.Series(dtype=np.int64),
                "rating": pd.Series(dtype=np.float32),
                "timestamp": pd.Series(dtype=np.int64),
            }
        )
    for column in ("user", "item"):
        if any(p[column].dtype != np.int64 for p in parts):
            parts = [p.astype({column: str}) if p[column].dtype == np.int64 else p for p in parts]
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    return pd.concat(parts, ignore_index=True)


def _finish(table: RatingsTable) -> RatingsTable:
    """Check the scale, drop duplicate (user, item) pairs keeping the latest, tidy items."""
    low, high = table.rating_scale
    ratings = table.ratings
    outside = (ratings["rating"] < low) | (ratings["rating"] > high)
    if outside.any():
        first = int(np.flatnonzero(outside.to_numpy())[0]) + 1
        raise AerecError(
            f"{int(outside.sum())} rating(s) outside the {table.format} scale {low:g}-{high:g} "
            f"(first at rating {first}: {ratings['rating'].iloc[first - 1]:g}); check the file"
        )
    _check_utf8_ids(ratings)
    table.ratings = _drop_duplicates(ratings, table.warnings)
    items = table.items.astype({"item": str}).drop_duplicates("item", keep="last")
    table.items = items.reset_index(drop=True)
    return table


def _check_utf8_ids(ratings: pd.DataFrame) -> None:
    """Text ids hold no U+FFFD: bytes that were not UTF-8 (latin-1, say) were replaced by it,
    and two different ids could have become one."""
    for column in ("user", "item"):
        ids = ratings[column]
        if ids.dtype == np.int64 or not _is_text(ids):
            continue
        replaced = ids.str.contains("\ufffd", regex=False).to_numpy(dtype=bool, na_value=False)
        if replaced.any():
            raise AerecError(
                f"{int(replaced.sum())} {column} id(s) hold bytes that are not UTF-8 text (first: "
                f"{ids[replaced].iloc[0]!r}); save the file as UTF-8, for example with: "
                "iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv"
            )


def _drop_duplicates(ratings: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Keep one rating per (user, item): the latest by timestamp, then the last line."""
    key = pair_key(ratings["user"], ratings["item"])
    if len(key) < 2 or bool((key[1:] > key[:-1]).all()):  # MovieLens files come sorted
        return ratings
    ordered = np.sort(key)
    if not (ordered[1:] == ordered[:-1]).any():
        return ratings
    del ordered
    # A stable sort by pair, then time: the last of each pair is the one to keep.
    order = np.lexsort((ratings["timestamp"].to_numpy(), key))
    grouped = key[order]
    kept = np.sort(order[np.r_[grouped[1:] != grouped[:-1], True]])
    warnings.append(
        f"{len(ratings) - len(kept)} duplicate (user, item) rating(s) dropped, keeping the latest"
    )
    return ratings.iloc[kept].reset_index(drop=True)


def pair_key(users: pd.Series, items: pd.Series) -> np.ndarray:
    """One int64 per row, equal exactly where the (user, item) pairs are equal."""
    if users.dtype == np.int64 and items.dtype == np.int64:
        u, i = users.to_numpy(), items.to_numpy()
        if len(u):
            u_low, u_high, i_low, i_high = int(u.min()), int(u.max()), int(i.min()), int(i.max())
            span = i_high - i_low + 1
            if (u_high - u_low + 1) * span < 2**62:
                return (u - u_low) * span + (i - i_low)
    u_codes, u_unique = pd.factorize(users)
    i_codes, i_unique = pd.factorize(items)
    return u_codes.astype(np.int64) * max(1, len(i_unique)) + i_codes


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
