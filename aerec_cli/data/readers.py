"""Readers for MovieLens layouts (zip, folder or single file) and generic rating CSV/TSV.

Every reader returns a :class:`RatingsTable`: a ratings frame, an items frame with titles and
genres, the detected format and its rating scale. The files are read through
:class:`SourceFiles` (:mod:`sources`), the rating lines parsed by :mod:`parsing`, and the table
checked by :func:`table.finish`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from aerec_cli.data.parsing import Scale, parse_ratings
from aerec_cli.data.sources import SourceFiles, is_blank
from aerec_cli.data.table import (
    RatingsTable,
    concat_ratings,  # noqa: F401  (re-exported: readers.concat_ratings)
    finish,
)
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

_COLUMN_ALIASES = {
    "user": ["user", "user_id", "userid", "uid", "u"],
    "item": ["item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid", "i"],
    "rating": ["rating", "ratings", "stars", "score", "r"],
    "timestamp": ["timestamp", "time", "ts", "date", "datetime"],
}


def read_source(
    path: str | Path,
    columns: str | None = None,
    sep: str | None = None,
    skip_bad_lines: bool = False,
    *,
    rating_scale: tuple[float, float] | None = None,
) -> RatingsTable:
    """Detect the layout of ``path`` and read its ratings, titles and genres.

    ``rating_scale`` (``--rating-scale``, see :func:`table.parse_scale`): the scale of the
    ratings, in place of the layout's or the one inferred from a generic file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise AerecError(f"{path} does not exist; give a MovieLens zip, folder or ratings file")
    files = SourceFiles(path)
    given = rating_scale
    if columns or sep:
        if len(files.names) != 1:
            raise AerecError("--columns/--sep apply to a single ratings file, not a zip or folder")
        return _read_generic(files, files.names[0], columns, sep, skip_bad_lines, given)
    if name := files.find("u.data"):
        return _read_ml100k(files, name, skip_bad_lines, given)
    if name := files.find("ratings.dat"):
        return _read_dat_layout(files, name, skip_bad_lines, given)
    if (name := files.find("ratings.csv")) and _has_movielens_header(files.head(name, 64)):
        return _read_csv_layout(files, name, skip_bad_lines, given)
    if len(files.names) == 1 and (
        files.is_single_file or PurePosixPath(files.names[0]).suffix.lower() in GENERIC_SUFFIXES
    ):
        return _read_generic(files, files.names[0], None, None, skip_bad_lines, given)
    raise AerecError(
        f"no ratings found in {path}: expected u.data (ml-100k), ratings.dat (ml-1m, ml-10m) "
        "or ratings.csv (ml-20m and later); for another layout pass the ratings file itself"
    )


# --- MovieLens layouts -------------------------------------------------------------------

Given = tuple[float, float] | None  # --rating-scale, when given


def _scale(given: Given, low: float, high: float, label: str) -> Scale:
    """What the ratings are checked against: ``given``, else the layout's own scale."""
    if given is not None:
        low, high = given
        return Scale(low, high, f"outside --rating-scale {low:g},{high:g}", _WIDEN)
    return Scale(low, high, label, "check the file, or pass --rating-scale LOW,HIGH")


_WIDEN = "check the file, or widen --rating-scale"


def _read_ml100k(files: SourceFiles, name: str, skip_bad: bool, given: Given) -> RatingsTable:
    scale = _scale(given, 1.0, 5.0, "outside the ml-100k scale 1-5")
    ratings = parse_ratings(files, name, "\t", skip_bad, False, n_fields=4, scale=scale)
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
                    parse_ratings(files, member, "\t", skip_bad, False, n_fields=4, scale=scale)
                )
            return parts[0], parts[1]

        return load

    splits = {s: predefined(s) for s in PREDEFINED_SPLITS_100K if files.find(f"{s}.base")}
    table = RatingsTable(
        ratings, items, "ml-100k", (scale.low, scale.high), predefined_splits=splits
    )
    return finish(table)


def _read_dat_layout(files: SourceFiles, name: str, skip_bad: bool, given: Given) -> RatingsTable:
    """ml-1m and ml-10m: '::'-separated ratings.dat and movies.dat."""
    # Which of the two it is shows in the ratings (half stars: ml-10m), after this check.
    label = "outside the ml-1m (1-5) and ml-10m (0.5-5) scales"
    scale = _scale(given, 0.5, 5.0, label)
    ratings = parse_ratings(files, name, "::", skip_bad, False, n_fields=4, scale=scale)
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
    fmt, own = ("ml-10m", (0.5, 5.0)) if is_10m else ("ml-1m", (1.0, 5.0))
    return finish(RatingsTable(ratings, items, fmt, given or own))


def _read_csv_layout(files: SourceFiles, name: str, skip_bad: bool, given: Given) -> RatingsTable:
    """ml-20m, ml-25m, ml-32m and ml-latest(-small): CSV with a header, UTF-8."""
    scale = _scale(given, 0.5, 5.0, "outside the MovieLens scale 0.5-5")
    ratings = parse_ratings(files, name, ",", skip_bad, True, n_fields=4, scale=scale)
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
    return finish(RatingsTable(ratings, items, fmt, (scale.low, scale.high)))


def _has_movielens_header(data: bytes) -> bool:
    return data[:64].lower().startswith(b"userid,movieid,rating")


# --- generic CSV/TSV ---------------------------------------------------------------------


def _read_generic(
    files: SourceFiles,
    name: str,
    columns: str | None,
    sep: str | None,
    skip_bad: bool,
    given: Given,
) -> RatingsTable:
    head = files.head(name, 4096)
    if not head.strip() and is_blank(files, name):
        raise AerecError(f"{name} is empty; it holds no ratings")
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    sep = _unescape(sep) if sep else _sniff_separator(first_line)
    fields = first_line.split(sep)
    has_header = len(fields) >= 3 and not _is_number(fields[2].strip().strip('"'))
    positions = _column_positions(fields if has_header else None, columns)

    def parse(scale: Scale) -> pd.DataFrame:
        # Generic ids might be written in ways a number would not keep ("007"): watched.
        return parse_ratings(
            files, name, sep, skip_bad, has_header, positions, watch_ids=True, scale=scale
        )

    if given is not None:
        ratings = parse(_scale(given, 0, 0, ""))
        table = RatingsTable(ratings, _NO_ITEMS.copy(), "csv", given, scale_from="given")
        return finish(table)
    ratings = parse(_POSITIVE)
    values = ratings["rating"].to_numpy()
    # The bulk by its quartiles, which a few absurd values (1e30) cannot move, however few
    # ratings there are.
    q25, q75 = (float(q) for q in np.quantile(values, [0.25, 0.75]))
    limit = q75 + 10 * max(q75 - q25, 1.0)
    if values.max() > limit:
        # Read again with the bound now known, so the error names the lines.
        label = f"far above the bulk of the ratings (half of them lie from {q25:g} to {q75:g})"
        parse(Scale(_POSITIVE.low, limit, label, _ABSURD_HINT))
    scale = (0.5, 5.0) if (values % 1 != 0).any() else (1.0, 5.0)
    if values.min() < scale[0] or values.max() > scale[1]:
        scale = (float(values.min()), float(values.max()))
    table = RatingsTable(ratings, _NO_ITEMS.copy(), "csv", scale, scale_from="ratings")
    return finish(table)


_NO_ITEMS = pd.DataFrame(columns=["item", "title", "genres"])
# 0 stands for "unrated" in the stored matrices: no rating may be 0 or below.
_POSITIVE = Scale(
    float(np.finfo(np.float32).tiny),
    float("inf"),
    "of 0 or below",
    "0 stands for 'unrated' in aerec's matrices: fix these lines, or if the file's scale "
    "reaches 0, shift it above 0 and pass --rating-scale LOW,HIGH",
)
_ABSURD_HINT = "fix these lines, or if they are real ratings pass --rating-scale LOW,HIGH"


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
