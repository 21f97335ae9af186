"""Write an ML-25M-shaped synthetic MovieLens dataset (for scale tests of `aerec ingest`).

    python benchmarks/make_ml25m.py --out DIR [--scale F] [--seed N]

writes ``DIR/ml-25m-synthetic/ratings.csv`` and ``movies.csv`` in the ML-25M layout. At the
default ``--scale 1`` it has the real file's shape: 162,541 users, 59,047 movies (sparse ids up
to 209,171) and exactly 25,000,095 ratings (691 MB; about a minute to write).

- Half stars 0.5-5.0, as in ML-25M: whole stars before 2003-02-18 (when MovieLens added half
  stars) and for users who never use halves, so whole stars dominate (4.0 is the mode).
- Users are long-tailed: every user has at least 20 ratings; the median is about 70 and the
  heaviest users rate tens of thousands of movies. Movie popularity is long-tailed: a
  Zipf-like head (the top movie has about 110,000 ratings), a median near 15, and a third of
  the movies with 5 ratings or fewer; every movie has at least one.
- Each (user, movie) pair occurs once. Each user's rows are written in increasing timestamp
  order; the timestamps lie in 1995-01-09 .. 2019-11-21 (the real file sorts a user's rows by
  movieId instead).
- Ratings carry learnable structure: stars = clip(round(mu + b_user + b_item + u.v + noise)),
  with a rank-10 taste model, so training on the file means something.

``--scale F`` scales the users and ratings by F and the movie catalogue by sqrt(F), so each
user's count distribution (and the minimum of 20) stays the same even at tiny scales. The
output depends only on ``--scale`` and ``--seed``. Users are generated and written a chunk at
a time, so memory stays modest (about 0.6 GB peak at full scale).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_USERS, N_ITEMS, N_RATINGS, MAX_MOVIE_ID = 162_541, 59_047, 25_000_095, 209_171
MIN_PER_USER = 20
RANK = 10
FIRST_TS, LAST_TS = 789_652_009, 1_574_327_703  # 1995-01-09 .. 2019-11-21 (as in ML-25M)
HALF_STARS_FROM = 1_045_526_400  # 2003-02-18: MovieLens's switch to half stars
USERS_PER_CHUNK = 8_000
MIN_SCALE = 1e-4
# Users rating more than this many movies are sampled by Gumbel top-k over the whole catalogue;
# lighter users by draws with replacement, de-duplicated.
HEAVY_USER = 1_000
GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip
WORDS = [
    "Night", "River", "Summer", "Ghost", "Silent", "Red", "Last", "City", "Love", "Road",
    "Winter", "Dark", "Star", "Lost", "Secret", "Iron", "Golden", "Wild", "Broken", "Glass",
]  # fmt: skip
STARS = np.array([f"{k / 2:.1f}" for k in range(11)], dtype=object)  # "0.0" .. "5.0"


def shape_for(scale: float) -> tuple[int, int, int, int]:
    """(users, items, ratings, largest movie id) at ``scale``."""
    if scale == 1:
        return N_USERS, N_ITEMS, N_RATINGS, MAX_MOVIE_ID
    users = max(1, round(N_USERS * scale))
    items = max(MIN_PER_USER * 4, round(N_ITEMS * math.sqrt(scale)))
    ratings = max(users * MIN_PER_USER, round(N_RATINGS * scale))
    return users, items, ratings, max(items + 2, round(MAX_MOVIE_ID * math.sqrt(scale)))


def _user_counts(rng: np.random.Generator, n_users: int, n_items: int, total: int) -> np.ndarray:
    """Ratings per user: 20 + a lognormal tail, capped, summing exactly to ``total``."""
    cap = max(MIN_PER_USER, min(int(0.545 * n_items), 32_202))
    if total > cap * n_users:
        raise SystemExit(f"cannot fit {total:,} ratings: {n_users:,} users x at most {cap:,}")
    extra = rng.lognormal(np.log(51), 1.4, n_users)
    budget = total - MIN_PER_USER * n_users
    room = cap - MIN_PER_USER
    for _ in range(100):  # scale the tail to the budget; users at the cap give way to the rest
        capped = extra >= room
        free = budget - room * capped.sum()
        extra = np.where(capped, room, extra * free / extra[~capped].sum())
        if extra.max() <= room + 1e-9:
            break
    counts = np.floor(extra).astype(np.int64)
    short = budget - counts.sum()  # hand out the rounding remainder one by one
    order = np.argsort(-(extra - counts), kind="stable")
    order = order[counts[order] < room]
    counts[order[:short]] += 1
    counts += MIN_PER_USER
    assert counts.sum() == total and counts.min() >= MIN_PER_USER and counts.max() <= cap
    return counts


def _choose_items(
    rng: np.random.Generator,
    counts: np.ndarray,
    log_p: np.ndarray,
    cdf: np.ndarray,
    forced: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """For each user, ``counts[u]`` distinct items drawn by popularity, in time order.

    ``forced`` (user, item) pairs are always chosen: they give every movie a rating. Returns
    (user index within the chunk, item index), grouped by user. The order is that of sampling
    without replacement, so popular movies tend to come first; forced ones fall anywhere.
    """
    n_items = len(log_p)
    forced_users, forced_items = forced
    users_out, items_out = [], []
    light = counts <= HEAVY_USER
    want = np.where(light, counts, 0)
    in_light = light[forced_users]
    users, items = forced_users[in_light], forced_items[in_light]
    for _ in range(1000):
        need = want - np.bincount(users, minlength=len(want))
        lacking = np.flatnonzero(need > 0)
        if not len(lacking):
            break
        draws = need[lacking] + need[lacking] // 4 + 4
        new_users = np.repeat(lacking, draws)
        new_items = np.searchsorted(cdf, rng.random(len(new_users)), side="right")
        users = np.concatenate([users, new_users])
        items = np.concatenate([items, np.minimum(new_items, n_items - 1)])
        # Keep each user's first draw of an item, then their first `want` distinct items.
        order = np.lexsort((np.arange(len(users)), items, users))
        key_u, key_i = users[order], items[order]
        first = np.r_[True, (key_u[1:] != key_u[:-1]) | (key_i[1:] != key_i[:-1])]
        kept = order[first]
        kept = kept[np.lexsort((kept, users[kept]))]  # by user, then draw order
        users, items = users[kept], items[kept]
        starts = np.r_[0, np.cumsum(np.bincount(users, minlength=len(want)))[:-1]]
        keep = np.arange(len(users)) - starts[users] < want[users]
        users, items = users[keep], items[keep]
    users_out.append(users)
    items_out.append(items)
    heavy = np.flatnonzero(~light)
    for start in range(0, len(heavy), 32):  # Gumbel top-k: sampling without replacement
        batch = heavy[start : start + 32]
        keys = log_p[None, :] + rng.gumbel(size=(len(batch), n_items))
        for row, user in enumerate(batch):
            keys[row, forced_items[forced_users == user]] = np.inf
            top = np.argpartition(-keys[row], counts[user] - 1)[: counts[user]]
            users_out.append(np.full(len(top), user))
            items_out.append(top[np.argsort(-keys[row, top], kind="stable")])
    users, items = np.concatenate(users_out), np.concatenate(items_out)
    order = np.argsort(users, kind="stable")  # group by user, keeping each user's draw order
    users, items = users[order], items[order]
    # Time order: draw rank, except that forced items take a random place.
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    when = (np.arange(len(users)) - starts[users]).astype(np.float64)
    is_forced = np.isin(users * n_items + items, forced_users * n_items + forced_items)
    when[is_forced] = rng.random(int(is_forced.sum())) * counts[users[is_forced]]
    order = np.lexsort((when, users))
    return users[order], items[order]


def _timestamps(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Strictly increasing times per user: sessions seconds apart, breaks of days to months."""
    n = int(counts.sum())
    gaps = np.where(
        rng.random(n) < 0.97,
        1 + rng.exponential(25.0, n),
        3600 + rng.exponential(40 * 86400.0, n),
    ).astype(np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    gaps[starts] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts], counts)
    window = LAST_TS - FIRST_TS
    span = elapsed[starts + counts - 1]
    squeeze = np.maximum(1.0, span / (0.9 * window))  # a very long history is compressed
    rank = np.arange(n) - np.repeat(starts, counts)
    # Adding the rank keeps the times strictly increasing after compression.
    elapsed = (elapsed / np.repeat(squeeze, counts)).astype(np.int64) + rank
    span = elapsed[starts + counts - 1]
    # More users joined in later years: start times lean towards the end of the window.
    first = FIRST_TS + (rng.random(len(counts)) ** 0.7 * (window - span)).astype(np.int64)
    return np.repeat(first, counts) + elapsed


def generate(out: Path, scale: float = 1.0, seed: int = 0, log=None) -> Path:
    """Write ``out/ml-25m-synthetic/{ratings,movies}.csv``; returns the folder."""
    n_users, n_items, n_ratings, max_id = shape_for(scale)
    rng = np.random.default_rng(seed)
    folder = Path(out) / "ml-25m-synthetic"
    folder.mkdir(parents=True, exist_ok=True)

    # Movies: sparse ids, popularity, biases and taste vectors.
    movie_ids = np.sort(rng.choice(np.arange(1, max_id + 1), size=n_items, replace=False))
    # Lognormal popularity with a softened head: Zipf-like at the top (tens of thousands of
    # ratings), a long tail of movies rated a handful of times.
    z = rng.normal(0, 1, n_items)
    z = np.where(z > 2.4, 2.4 + (z - 2.4) * 0.5, z)
    weight = np.exp(3.0 * (z - z.max()))
    popularity = weight / weight.sum()
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    log_p = np.log(popularity)
    item_taste = rng.normal(0, 1, (n_items, RANK)) / RANK**0.25
    # Popular films are rated a little higher, as in the real data.
    item_bias = rng.normal(0, 0.42, n_items) + 0.12 * z
    item_bias -= (popularity * item_bias).sum()  # about zero on average over the ratings
    _write_movies(folder / "movies.csv", rng, movie_ids, item_taste)

    counts = _user_counts(rng, n_users, n_items, n_ratings)
    # Every movie gets at least one rating: from a user drawn in proportion to their count.
    owner = np.minimum(
        np.searchsorted(np.cumsum(counts) / counts.sum(), rng.random(n_items), side="right"),
        n_users - 1,
    )
    seen = np.zeros(n_items, dtype=bool)
    path = folder / "ratings.csv"
    written = 0
    with open(path, "w", encoding="ascii", newline="") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        for chunk, first in enumerate(range(0, n_users, USERS_PER_CHUNK)):
            crng = np.random.default_rng([seed, chunk])
            n = counts[first : first + USERS_PER_CHUNK]
            mine = (owner >= first) & (owner < first + len(n))
            forced = (owner[mine] - first, np.flatnonzero(mine))
            frame, items = _chunk(
                crng, first, n, movie_ids, log_p, cdf, forced, item_taste, item_bias
            )
            seen[items] = True
            frame.to_csv(handle, header=False, index=False, lineterminator="\n")
            written += len(frame)
            if log:
                log(f"{first + len(n):,}/{n_users:,} users, {written:,} ratings")
    assert written == n_ratings, (written, n_ratings)
    assert seen.all(), "some movies got no rating"
    return folder


def _chunk(rng, first_user, counts, movie_ids, log_p, cdf, forced, item_taste, item_bias):
    users, items = _choose_items(rng, counts, log_p, cdf, forced)
    n_users = len(counts)
    user_taste = rng.normal(0, 1, (n_users, RANK)) / RANK**0.25
    user_bias = rng.normal(0, 0.38, n_users)
    uses_halves = rng.random(n_users) < 0.8
    score = 3.63 + user_bias[users] + item_bias[items]
    score += 0.6 * np.einsum("ij,ij->i", user_taste[users], item_taste[items])
    score += rng.normal(0, 0.65, len(users))
    stamps = _timestamps(rng, counts)
    halves = uses_halves[users] & (stamps >= HALF_STARS_FROM)
    twice = np.where(halves, np.clip(np.rint(score * 2), 1, 10), 2 * np.clip(np.rint(score), 1, 5))
    frame = pd.DataFrame(
        {
            "userId": users + first_user + 1,
            "movieId": movie_ids[items],
            "rating": STARS[twice.astype(np.int64)],
            "timestamp": stamps,
        }
    )
    return frame, items


def _write_movies(path: Path, rng, movie_ids: np.ndarray, item_taste: np.ndarray) -> None:
    """movieId,title,genres; some titles hold commas ("Red River, The (1994)") and get quoted."""
    n = len(movie_ids)
    years = np.clip(1915 + (movie_ids / movie_ids.max() * 104).astype(int), 1915, 2019)
    first, second = rng.integers(0, len(WORDS), n), rng.integers(0, len(WORDS), n)
    style = rng.random(n)
    titles = []
    for k in range(n):
        words = f"{WORDS[first[k]]} {WORDS[second[k]]} {movie_ids[k]}"
        if style[k] < 0.08:
            words = f"{words}, The"
        elif style[k] < 0.11:
            words = f'{words}: "Part {1 + k % 3}"'
        titles.append(f"{words} ({years[k]})")
    top = np.argsort(-item_taste[:, : len(GENRES)], axis=1)
    n_genres = rng.integers(1, 4, n)
    genres = ["|".join(sorted(GENRES[g] for g in top[k, : n_genres[k]])) for k in range(n)]
    frame = pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genres})
    frame.to_csv(path, index=False, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not MIN_SCALE <= args.scale <= 1:
        parser.error(f"--scale must be between {MIN_SCALE:g} and 1")
    start = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    folder = generate(args.out, args.scale, args.seed, log)
    size = (folder / "ratings.csv").stat().st_size
    print(
        f"wrote {folder} (ratings.csv {size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
