"""Readers for MovieLens layouts (zip, folder or single file) and generic rating CSV/TSV.

Every reader returns a :class:`RatingsTable`: a ratings frame with string ids, an items frame
with titles and genres, the detected format and its rating scale. Nothing is ever extracted
to disk: zip members are read in memory, so a hostile archive cannot write anywhere.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

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

_COLUMN_ALIASES = {
    "user": ["user", "user_id", "userid", "uid", "u"],
    "item": ["item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid", "i"],
    "rating": ["rating", "ratings", "stars", "score", "r"],
    "timestamp": ["timestamp", "time", "ts", "date", "datetime"],
}


@dataclass
class RatingsTable:
    """Ratings read from a source, before they are split and stored."""

    ratings: pd.DataFrame  # user (str), item (str), rating (float32), timestamp (int64, may be -1)
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
            except (zipfile.BadZipFile, OSError) as exc:
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

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                info = self._zip.getinfo(name)
                if info.file_size > MAX_MEMBER_BYTES:
                    raise AerecError(
                        f"{self.path}: member {name} declares {info.file_size:,} bytes, more than "
                        "any MovieLens file; refusing to read it"
                    )
                with self._zip.open(info) as member:
                    data = member.read(MAX_MEMBER_BYTES + 1)
                if len(data) > MAX_MEMBER_BYTES:
                    raise AerecError(f"{self.path}: member {name} is larger than it declares")
                return data
            target = self.path if self.path.is_file() else self.path / name
            return target.read_bytes()
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise AerecError(
                f"cannot read {name} from {self.path} ({exc}); the file is corrupt or "
                "truncated: download it again"
            ) from exc

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
    if (name := files.find("ratings.csv")) and _has_movielens_header(files.read(name)):
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
    ratings = _parse_ratings(files.read(name), "\t", name, skip_bad, False, n_fields=4)
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
                parts.append(
                    _parse_ratings(files.read(member), "\t", member, skip_bad, False, n_fields=4)
                )
            return parts[0], parts[1]

        return load

    splits = {s: predefined(s) for s in PREDEFINED_SPLITS_100K if files.find(f"{s}.base")}
    table = RatingsTable(ratings, items, "ml-100k", (1.0, 5.0), predefined_splits=splits)
    return _finish(table)


def _read_dat_layout(files: SourceFiles, name: str, skip_bad: bool) -> RatingsTable:
    """ml-1m and ml-10m: '::'-separated ratings.dat and movies.dat."""
    ratings = _parse_ratings(files.read(name), "::", name, skip_bad, False, n_fields=4)
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
    ratings = _parse_ratings(files.read(name), ",", name, skip_bad, True, n_fields=4)
    items = pd.DataFrame(columns=["item", "title", "genres"])
    if movie_file := files.find("movies.csv"):
        frame = pd.read_csv(
            io.StringIO(_decode(files.read(movie_file), "utf-8")), dtype=str, keep_default_na=False
        )
        items = pd.DataFrame(
            {"item": frame["movieId"], "title": frame["title"], "genres": frame["genres"]}
        )
    folder = files.folder_of(name).lower()
    fmt = folder if re.fullmatch(r"ml-(20m|25m|32m|latest|latest-small)", folder) else "ml-latest"
    return _finish(RatingsTable(ratings, items, fmt, (0.5, 5.0)))


def _has_movielens_header(data: bytes) -> bool:
    return data[:64].lower().startswith(b"userid,movieid,rating")


# --- generic CSV/TSV ---------------------------------------------------------------------


def _read_generic(
    files: SourceFiles, name: str, columns: str | None, sep: str | None, skip_bad: bool
) -> RatingsTable:
    data = files.read(name)
    if not data.strip():
        raise AerecError(f"{name} is empty; it holds no ratings")
    first_line = data[:4096].split(b"\n", 1)[0].decode("utf-8", errors="replace")
    sep = _unescape(sep) if sep else _sniff_separator(first_line)
    fields = first_line.split(sep)
    has_header = len(fields) >= 3 and not _is_number(fields[2].strip().strip('"'))
    positions = _column_positions(fields if has_header else None, columns)
    ratings = _parse_ratings(data, sep, name, skip_bad, has_header, positions)
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


def _parse_ratings(
    data: bytes,
    sep: str,
    name: str,
    skip_bad: bool,
    has_header: bool,
    positions: list[int] | None = None,
    n_fields: int | None = None,
) -> pd.DataFrame:
    """Parse rating lines fast (C engine) into user, item, rating, timestamp.

    ``n_fields``: how many fields a line of this layout has; lines with more are malformed
    (the C parser only notices extra fields after the first line sets the width).
    """
    if not data.strip():
        raise AerecError(f"{name} is empty; it holds no ratings")
    if sep == "::":
        # pandas falls back to a slow Python parser for multi-char separators; a byte
        # replace keeps the C parser (ratings files hold no tabs).
        data, sep = data.replace(b"::", b"\t"), "\t"
    positions = positions or [0, 1, 2, 3]
    try:
        with warnings.catch_warnings():
            # index_col=False: lines wider than the header must not shift the columns (pandas
            # would silently take the first field as an index); it warns that it drops the rest.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                sep=sep,
                header=0 if has_header else None,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                engine="c" if sep != r"\s+" else "python",
                on_bad_lines="skip" if skip_bad else "error",
                skip_blank_lines=True,
                encoding="utf-8",
                encoding_errors="replace",
            )
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f" at line {line.group(1)}" if line else ""
        raise AerecError(
            f"{name}: malformed line{where} ({_short(exc)}); fix it or pass --skip-bad-lines"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise AerecError(f"{name}: cannot parse ({_short(exc)})") from exc
    if frame.shape[1] <= max(positions[:3]):
        raise AerecError(
            f"{name}: lines have {frame.shape[1]} field(s), need user, item and rating; "
            "check --sep and --columns"
        )
    out = pd.DataFrame(
        {
            "user": frame.iloc[:, positions[0]].str.strip(),
            "item": frame.iloc[:, positions[1]].str.strip(),
            "rating": pd.to_numeric(frame.iloc[:, positions[2]], errors="coerce"),
        }
    )
    if len(positions) > 3 and frame.shape[1] > positions[3]:
        stamps = pd.to_numeric(frame.iloc[:, positions[3]], errors="coerce")
        out["timestamp"] = stamps.fillna(-1).astype(np.int64)
    else:
        out["timestamp"] = np.int64(-1)
    bad = (
        out["rating"].isna().to_numpy()
        | (out["user"] == "").to_numpy()
        | (out["item"] == "").to_numpy()
    )
    if n_fields is not None and frame.shape[1] > n_fields:
        # Fields past the layout's last are padded with "" on well-formed lines.
        bad |= (frame.iloc[:, n_fields:] != "").to_numpy().any(axis=1)
    if bad.any():
        line_numbers = (np.flatnonzero(bad)[:5] + 1 + int(has_header)).tolist()
        if not skip_bad:
            raise AerecError(
                f"{name}: {int(bad.sum())} malformed line(s) (a missing id, a non-numeric "
                f"rating or extra fields), first at line(s) {', '.join(map(str, line_numbers))}; "
                "fix them or pass --skip-bad-lines"
            )
        out = out[~bad]
    if out.empty:
        raise AerecError(f"{name} holds no usable ratings")
    out["rating"] = out["rating"].astype(np.float32)
    return out.reset_index(drop=True)


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
    table.ratings = _drop_duplicates(ratings, table.warnings)
    items = table.items.astype({"item": str}).drop_duplicates("item", keep="last")
    table.items = items.reset_index(drop=True)
    return table


def _drop_duplicates(ratings: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    duplicated = ratings.duplicated(["user", "item"], keep=False)
    if not duplicated.any():
        return ratings
    kept = ratings.sort_values("timestamp", kind="stable").drop_duplicates(
        ["user", "item"], keep="last"
    )
    warnings.append(
        f"{len(ratings) - len(kept)} duplicate (user, item) rating(s) dropped, keeping the latest"
    )
    return kept.sort_index().reset_index(drop=True)


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
