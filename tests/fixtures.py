"""Tiny, deterministic MovieLens-format fixtures, written by the tests themselves.

Each writer lays out one MovieLens family (ml-100k, ml-1m, ml-10m, ml-latest / ml-25m) or a
generic ratings file, and returns a :class:`Fixture` that says what the files hold, so the
tests can check what ``aerec ingest`` stored against what was written.

The ratings come from a small planted low-rank taste model, so an autoencoder has something to
learn even on 30 users x 40 items.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

N_USERS, N_ITEMS, N_RATINGS = 30, 40, 400

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip

# Titles that exercise encodings and CSV quoting.
LATIN1_TITLE = "Café au lait (1993)"
CSV_COMMA_TITLE = "American President, The (1995)"
CSV_QUOTE_TITLE = 'Dr. "Strange" Love, or: How I Learned (1964)'
UTF8_TITLE = "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"


@dataclass
class Fixture:
    """A written source and what it holds (after duplicate removal)."""

    path: Path
    ratings: pd.DataFrame  # user, item (str), rating (float), timestamp (int)
    items: pd.DataFrame  # item (str), title, genres
    split_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (train, test)

    @property
    def n_users(self) -> int:
        return self.ratings["user"].nunique()

    @property
    def n_items(self) -> int:
        return self.ratings["item"].nunique()

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    def title(self, item: str) -> str:
        return self.items.set_index("item").loc[str(item), "title"]


def synthetic_ratings(
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    n_ratings: int = N_RATINGS,
    half_stars: bool = False,
    seed: int = 7,
    item_offset: int = 0,
) -> pd.DataFrame:
    """user, item (str ids), rating, timestamp; every user and item has ratings."""
    rng = np.random.default_rng(seed)
    taste_u = rng.normal(size=(n_users, 2))
    taste_i = rng.normal(size=(n_items, 2))
    score = 3.2 + 1.6 * np.tanh(taste_u @ taste_i.T) + rng.normal(0, 0.3, (n_users, n_items))
    if half_stars:
        stars = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    else:
        stars = np.clip(np.rint(score), 1, 5)
    per_user = np.full(n_users, n_ratings // n_users)
    per_user[: n_ratings - per_user.sum()] += 1
    while True:  # draw until every item is rated at least once (deterministic for a seed)
        chosen = [rng.choice(n_items, size=k, replace=False) for k in per_user]
        if len(np.unique(np.concatenate(chosen))) == n_items:
            break
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate(chosen)
    stamps = 880_000_000 + np.sort(rng.choice(50_000_000, size=len(users), replace=False))
    stamps = rng.permutation(stamps)
    return pd.DataFrame(
        {
            "user": (users + 1).astype(str),
            "item": (items + 1 + item_offset).astype(str),
            "rating": stars[users, items].astype(float),
            "timestamp": stamps.astype(np.int64),
        }
    )


def _titles(item_ids: list[str], specials: dict[int, str]) -> list[str]:
    return [specials.get(k, f"Movie {iid} ({1950 + k % 50})") for k, iid in enumerate(item_ids)]


def _items(item_ids: list[str], titles: list[str], genres: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"item": item_ids, "title": titles, "genres": genres})


def _item_ids(ratings: pd.DataFrame) -> list[str]:
    return sorted(ratings["item"].unique(), key=int)


def _star(value: float) -> str:
    return f"{value:g}" if value % 1 else str(int(value))


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def _rating_lines(ratings: pd.DataFrame, sep: str) -> str:
    return "".join(
        f"{r.user}{sep}{r.item}{sep}{_star(r.rating)}{sep}{r.timestamp}\n"
        for r in ratings.itertuples(index=False)
    )


# --- ml-100k -----------------------------------------------------------------------------


def write_ml100k(root: Path, seed: int = 7) -> Fixture:
    """``root/ml-100k/`` with u.data, u.item (latin-1), u.user, u.genre, u1 and ua splits."""
    folder = root / "ml-100k"
    ratings = synthetic_ratings(seed=seed)
    _write(folder / "u.data", _rating_lines(ratings, "\t"))
    item_ids = _item_ids(ratings)
    titles = _titles(item_ids, {2: LATIN1_TITLE})
    lines, genres = [], []
    for k, (iid, title) in enumerate(zip(item_ids, titles, strict=True)):
        flags = ["0"] * len(ML100K_GENRES)
        on = sorted({1 + k % 18, 1 + (k * 7) % 18})
        for g in on:
            flags[g] = "1"
        genres.append("|".join(ML100K_GENRES[g] for g in on))
        url = f"http://us.imdb.com/M/title-exact?Movie%20{iid}"
        lines.append(f"{iid}|{title}|01-Jan-1995||{url}|{'|'.join(flags)}\n")
    _write(folder / "u.item", "".join(lines), "latin-1")
    users = [
        f"{u}|{20 + u % 40}|{'MF'[u % 2]}|student|{10000 + u}\n" for u in range(1, N_USERS + 1)
    ]
    _write(folder / "u.user", "".join(users))
    _write(folder / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)))
    _write(folder / "README", "Tiny ml-100k-shaped fixture written by the aerec tests.\n")

    rng = np.random.default_rng(seed + 1)
    in_u1_test = np.zeros(len(ratings), dtype=bool)
    in_u1_test[rng.permutation(len(ratings))[: len(ratings) // 5]] = True
    in_ua_test = np.zeros(len(ratings), dtype=bool)
    for _, group in ratings.groupby("user"):
        in_ua_test[rng.choice(group.index.to_numpy(), size=3, replace=False)] = True
    for split, mask in (("u1", in_u1_test), ("ua", in_ua_test)):
        _write(folder / f"{split}.base", _rating_lines(ratings[~mask], "\t"))
        _write(folder / f"{split}.test", _rating_lines(ratings[mask], "\t"))
    items = _items(item_ids, titles, genres)
    sizes = {
        "u1": (int((~in_u1_test).sum()), int(in_u1_test.sum())),
        "ua": (int((~in_ua_test).sum()), int(in_ua_test.sum())),
    }
    return Fixture(folder, ratings, items, sizes)


# --- ml-1m and ml-10m ('::' layouts) -----------------------------------------------------


def write_ml1m(root: Path, seed: int = 11) -> Fixture:
    """``root/ml-1m/`` with ratings.dat, movies.dat and users.dat (latin-1, '::')."""
    folder = root / "ml-1m"
    ratings = synthetic_ratings(seed=seed)
    _write(folder / "ratings.dat", _rating_lines(ratings, "::"))
    item_ids = _item_ids(ratings)
    titles = _titles(item_ids, {1: LATIN1_TITLE})
    genres = ["Comedy|Drama" if int(i) % 2 else "Action" for i in item_ids]
    movies = "".join(f"{i}::{t}::{g}\n" for i, t, g in zip(item_ids, titles, genres, strict=True))
    _write(folder / "movies.dat", movies, "latin-1")
    users = "".join(f"{u}::{'MF'[u % 2]}::25::4::{10000 + u}\n" for u in range(1, N_USERS + 1))
    _write(folder / "users.dat", users, "latin-1")
    _write(folder / "README", "Tiny ml-1m-shaped fixture written by the aerec tests.\n")
    return Fixture(folder, ratings, _items(item_ids, titles, genres))


def write_ml10m(root: Path, seed: int = 13) -> Fixture:
    """``root/ml-10M100K/`` with ratings.dat (half stars), movies.dat (UTF-8), no users.dat."""
    folder = root / "ml-10M100K"
    ratings = synthetic_ratings(half_stars=True, seed=seed)
    _write(folder / "ratings.dat", _rating_lines(ratings, "::"))
    item_ids = _item_ids(ratings)
    titles = _titles(item_ids, {0: UTF8_TITLE})
    genres = ["Drama|Romance" if int(i) % 3 else "(no genres listed)" for i in item_ids]
    movies = "".join(f"{i}::{t}::{g}\n" for i, t, g in zip(item_ids, titles, genres, strict=True))
    _write(folder / "movies.dat", movies)
    _write(folder / "tags.dat", "1::1::funny::1139045764\n")
    return Fixture(folder, ratings, _items(item_ids, titles, genres))


# --- ml-latest-small, ml-25m (CSV with header) -------------------------------------------


def write_ml_latest(root: Path, name: str = "ml-latest-small", seed: int = 17) -> Fixture:
    """``root/NAME/`` with ratings.csv (header, half stars) and movies.csv (quoted titles)."""
    folder = root / name
    # Sparse, non-contiguous movie ids as in the real files.
    ratings = synthetic_ratings(half_stars=True, seed=seed, item_offset=1000)
    body = io.StringIO()
    body.write("userId,movieId,rating,timestamp\n")
    body.write(_rating_lines(ratings, ","))
    _write(folder / "ratings.csv", body.getvalue())
    item_ids = _item_ids(ratings)
    titles = _titles(item_ids, {0: CSV_COMMA_TITLE, 1: CSV_QUOTE_TITLE, 2: UTF8_TITLE})
    genres = ["Comedy|Drama|Romance" if int(i) % 2 else "Sci-Fi" for i in item_ids]
    movies = io.StringIO()
    writer = csv.writer(movies, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    writer.writerows(zip(item_ids, titles, genres, strict=True))
    _write(folder / "movies.csv", movies.getvalue())
    _write(
        folder / "links.csv", "movieId,imdbId,tmdbId\n" + "".join(f"{i},1,1\n" for i in item_ids)
    )
    _write(folder / "tags.csv", "userId,movieId,tag,timestamp\n1,1001,funny,1139045764\n")
    return Fixture(folder, ratings, _items(item_ids, titles, genres))


# --- generic ratings files ---------------------------------------------------------------


def write_generic(
    path: Path,
    ratings: pd.DataFrame,
    sep: str = ",",
    header: list[str] | None = None,
    order: tuple[str, ...] = ("user", "item", "rating", "timestamp"),
) -> Path:
    """A plain ratings file with the columns in ``order`` and an optional header line."""
    lines = [sep.join(header) + "\n"] if header else []
    for row in ratings.itertuples(index=False):
        values = {"user": row.user, "item": row.item, "rating": _star(row.rating),
                  "timestamp": row.timestamp}  # fmt: skip
        lines.append(sep.join(str(values[c]) for c in order) + "\n")
    _write(path, "".join(lines))
    return path


# --- planted tastes, for top-N lists ------------------------------------------------------

# Users 1-20 like items 1-15 and dislike 16-30; users 21-40 the other way round.
PLANTED_SIDES = {"a": range(1, 16), "b": range(16, 31)}
# Item 99 is rated only in the test file, so no model learns anything about it.
PLANTED_TEST = "user,item,rating\n1,99,5\n2,1,4\n30,20,5\n"


def planted_ratings(seed: int = 0) -> str:
    """A train file where each user rates mostly items of the side they like (4-5 stars),
    and a few of the other side (1-2 stars)."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,rating"]
    for user in range(1, 41):
        liked, disliked = ("a", "b") if user <= 20 else ("b", "a")
        for item in rng.choice(list(PLANTED_SIDES[liked]), size=9, replace=False):
            lines.append(f"{user},{item},{rng.choice([4, 5])}")
        for item in rng.choice(list(PLANTED_SIDES[disliked]), size=3, replace=False):
            lines.append(f"{user},{item},{rng.choice([1, 2])}")
    return "\n".join(lines) + "\n"


def write_planted(root: Path) -> tuple[Path, Path]:
    """(train.csv, test.csv) of the planted tastes, for ``aerec ingest TRAIN --test TEST``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text(planted_ratings())
    (root / "test.csv").write_text(PLANTED_TEST)
    return root / "train.csv", root / "test.csv"


# --- archives ----------------------------------------------------------------------------


def zip_folder(folder: Path, target: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Zip ``folder`` as GroupLens does: members under ``folder.name/``, with a dir entry."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression) as archive:
        archive.writestr(f"{folder.name}/", "")
        for member in sorted(folder.rglob("*")):
            if member.is_file():
                archive.write(member, f"{folder.name}/{member.relative_to(folder).as_posix()}")
    return target
