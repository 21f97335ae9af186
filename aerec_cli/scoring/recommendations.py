"""Top-N lists (`aerec recommend`): known users, new users folded in, every user, and why.

Everything here scores with numpy through the run's Scorer (scorer.py), so none of it imports
torch or pandas: `aerec recommend --user 42` starts and answers in well under a second.

How each answer is made:

- known user: the items in the order of the run's ranker (or of the predicted stars: a run
  without a ranker, or ``order="stars"``), with the model's predicted stars; the user's
  training ratings are left out unless ``include_rated``. A run trained with --objective
  ranking has no rating model: its lists show no stars, and ``order="stars"`` is an error.
- explanation (``explain``): each listed item is explained by the model its list follows. A
  list by rank (the ranker): leave-one-out on the ranker, the fall in the item's ranking score
  when one rating is dropped from the user's row. A list by stars: for a user-oriented model,
  leave-one-out on the input (the fall in the item's raw predicted stars); for an
  item-oriented model, whose item inputs do not hold the user's other ratings, the cosine
  similarity of the encoder codes of i and j (centred on the mean code) times the user's
  rating of j minus the user's mean rating. The up to three rated items that raise the item
  most are listed (none where no rating raises it).
- new user (ratings not in the data, no retraining): a user-oriented model encodes the new
  rating vector; an item-oriented model gets a new output unit, fitted by ridge regression
  (network.fold_in). With fewer than MIN_RATINGS usable ratings the list is items ranked by a
  damped mean rating (sum + m * global mean) / (count + m), m = POPULARITY_DAMPING.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from aerec_cli.data import small_files
from aerec_cli.errors import AerecError
from aerec_cli.scoring.results import Reason, Recommendations, Recommended
from aerec_cli.scoring.scorer import Scorer, open_run
from aerec_cli.scoring.topk import best_items, check_top

MIN_RATINGS = 3  # usable ratings a new user needs before the model (not popularity) ranks
POPULARITY_DAMPING = 10.0  # m in (sum + m * mean) / (count + m)
EXPLAIN_TOP = 3  # rated items listed per recommended item
USER_CHUNK = 256  # users per step of --all-users
# The order of a list: by the ranker's score (runs that rank; others fall back to stars), or by
# predicted stars (the rating autoencoder alone, as before runs learnt to rank).
ORDERS = ("rank", "stars")

# How --explain weighs a rated item, by the model the list follows: the ranker (lists by
# rank), or the rating autoencoder of each orientation (lists by stars). Each text says once
# what the number beside a reason means.
EXPLAIN_METHODS = {
    "ranker": "(+x): how much lower the item's ranking score (in standard deviations over "
    "all items) would be without that rating",
    "user": "(+x): how much lower the item's predicted stars would be without that rating",
    "item": "(+x): similarity of the two items' codes x (that rating - your mean rating)",
}


def check_order(order: str, served: Scorer | None = None) -> None:
    """``order`` is a known order and, once the run is open (``served``), one it can make."""
    if order not in ORDERS:
        raise AerecError(f"--order must be one of {', '.join(ORDERS)}, not {order!r}")
    if order == "stars" and served is not None:
        served.require_stars("order a list by predicted stars (--order stars)")


def list_order(served: Scorer, stars: np.ndarray | None, order: str, rank) -> np.ndarray:
    """What a list follows: ``rank()`` (ranking scores) where the run ranks and ``order`` asks
    for it, else the predicted ``stars``. Items without training ratings are never listed."""
    if order == "rank" and served.ranks:
        return rank()
    if stars is None:  # a run without a rating model
        check_order("stars", served)
    scores = np.array(stars, dtype=np.float64, ndmin=2)
    scores[:, ~served.item_seen] = -np.inf
    return scores.reshape(np.shape(stars))


def _entry(
    served: Scorer, index: int, scores: np.ndarray | None, rated: dict[int, float]
) -> Recommended:
    """One listed item, with its stars from ``scores`` (None: the run predicts no stars)."""
    items = served.items
    return Recommended(
        item=items.ids[index],
        title=items.title(index),
        genres=items.genres[index],
        score=None if scores is None else round(float(scores[index]), 4),
        rating=rated.get(int(index)),
    )


# --- known users ---------------------------------------------------------------------------


def recommend_for_user(
    user: str,
    home: Path,
    *,
    top: int = 10,
    run: str | None = None,
    include_rated: bool = False,
    explain: bool = False,
    order: str = "rank",
    note: Callable[[str], None] | None = None,
) -> Recommendations:
    """The user's top-N items (unrated ones unless ``include_rated``) with predicted stars,
    ordered by the ranker (or by the stars: ``order``)."""
    check_top(top)
    check_order(order)
    served = open_run(home, run, note)
    check_order(order, served)
    index = served.user_index(user)
    scores = served.user_scores(index) if served.rates else None
    cols, stars = served.user_ratings(index)
    ordering = list_order(served, scores, order, lambda: served.rank_block(np.array([index]))[0])
    best = best_items(ordering, [] if include_rated else cols, top)
    rated = {int(c): float(s) for c, s in zip(cols, stars)}
    result = Recommendations(
        run=served.run.name,
        dataset=served.dataset,
        method="model",
        items=[_entry(served, i, scores, rated) for i in best],
        user=str(user).strip(),
        include_rated=include_rated,
    )
    if explain:
        by_ranker = order == "rank" and served.ranks
        _add_explanations(served, result, best, cols, stars, by_ranker=by_ranker)
    return result


# --- new users -----------------------------------------------------------------------------


def parse_rate(text: str) -> tuple[str, float]:
    """``ITEM=STARS`` from --rate."""
    item, sep, stars = text.partition("=")
    item, stars = item.strip(), stars.strip()
    value = small_files.number(stars)
    if not sep or not item or value is None:
        raise AerecError(
            f"--rate takes ITEM=STARS with a raw item id, e.g. --rate 50=4.5, not {text!r}"
        )
    return item, value


def read_ratings_file(path: str | Path) -> list[tuple[str, float]]:
    """(item, stars) pairs from a CSV of ``item,rating`` (header optional; ',', tab or ';')."""
    read = small_files.read_columns(
        path,
        [small_files.ITEM, small_files.RATING],
        label="ratings file",
        meaning="a raw item id and a number of stars",
    )
    return [(item, stars) for item, stars in read.rows]


def recommend_for_new_user(
    ratings: Iterable[tuple[str, float]],
    home: Path,
    *,
    top: int = 10,
    run: str | None = None,
    include_rated: bool = False,
    explain: bool = False,
    order: str = "rank",
    note: Callable[[str], None] | None = None,
) -> tuple[Recommendations, list[str]]:
    """Top-N for someone not in the data, from their ratings (raw item ids). No retraining.

    Returns the result and warnings (unknown or unusable items, repeated items).
    """
    check_top(top)
    check_order(order)
    served = open_run(home, run, note)
    check_order(order, served)
    given, warnings = _known_ratings(served, list(ratings))
    cols = np.array(sorted(given), dtype=np.int64)
    stars = np.array([given[c] for c in cols], dtype=np.float64)
    usable = served.item_seen[cols] if len(cols) else np.zeros(0, dtype=bool)
    if (~usable).any():
        ids = [served.items.ids[c] for c in cols[~usable]]
        warnings.append(
            f"item(s) with no training ratings, which the model cannot use: {_some(ids)}"
        )
    n_usable = int(usable.sum())
    by_ranker = order == "rank" and served.ranks
    method, scores = _new_user_stars(served, cols[usable], stars[usable])
    if by_ranker and n_usable:
        method = "model"  # the ranker reads any number of ratings
        used = np.array([0, n_usable])
        ordering = served.rank_rows(used, cols[usable], stars[usable].astype(np.float32))[0]
    else:
        ordering = list_order(served, scores, "stars", None)
    best = best_items(ordering, [] if include_rated else cols, top)
    rated = {int(c): float(s) for c, s in zip(cols, stars)}
    result = Recommendations(
        run=served.run.name,
        dataset=served.dataset,
        method=method,
        # A run without a rating model shows no stars, not even popularity's mean ratings.
        items=[_entry(served, i, scores if served.rates else None, rated) for i in best],
        ratings_used=n_usable,
        include_rated=include_rated,
    )
    if method == "popularity":
        plural = "" if n_usable == 1 else "s"
        result.note = (
            f"damped popularity: only {n_usable} usable rating{plural}, the model needs "
            f"{1 if by_ranker else MIN_RATINGS}; items ranked by (sum of ratings + "
            f"{POPULARITY_DAMPING:g} x global mean) / (count + {POPULARITY_DAMPING:g})"
        )
    if explain and method == "model":
        _add_explanations(served, result, best, cols[usable], stars[usable], by_ranker=by_ranker)
    elif explain:
        result.explain_method = "popularity: no explanation from the model"
    return result, warnings


def _known_ratings(served: Scorer, ratings: list) -> tuple[dict[int, float], list[str]]:
    """{item index: stars} of a new user's ratings of known items, and warnings about the
    rest (unknown ids dropped; an item rated twice keeps its last rating)."""
    low, high = served.scale
    for item, stars in ratings:
        if not low <= stars <= high:
            raise AerecError(
                f"rating {stars:g} for item {item} is outside the rating scale "
                f"{low:g}-{high:g} of dataset {served.dataset}"
            )
    warnings: list[str] = []
    given: dict[int, float] = {}
    unknown: list[str] = []
    repeated: set[str] = set()
    for item, stars in ratings:
        index = served.item_index(item)
        if index is None:
            unknown.append(item)
            continue
        if index in given:
            repeated.add(item)
        given[index] = stars  # the last one wins
    if unknown:
        warnings.append(
            f"{len(unknown)} item id(s) not in dataset {served.dataset}, dropped: "
            f"{_some(unknown)} (ids are the 'item' column of {served.dataset_path / 'items.csv'})"
        )
    if repeated:
        warnings.append(f"item(s) rated more than once, the last rating kept: {_some(repeated)}")
    return given, warnings


def _new_user_stars(served: Scorer, cols: np.ndarray, stars: np.ndarray):
    """(method, predicted stars of every item) for a new user's usable ratings: the model's
    fold-in from MIN_RATINGS ratings on, damped popularity below (and for a run without a
    rating model, whose lists follow its ranker)."""
    if len(cols) >= MIN_RATINGS and served.rates:
        val_rmse = float(served.run.metrics.get("val_rmse") or 1.0)
        return "model", served.new_user_scores(cols, stars, val_rmse)
    return "popularity", popularity_scores(served)


def _some(ids: Iterable[str], limit: int = 10) -> str:
    ids = sorted(ids, key=lambda s: (len(s), s))
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def popularity_scores(served: Scorer, damping: float = POPULARITY_DAMPING) -> np.ndarray:
    """Damped mean rating of each item: (sum + m * global mean) / (count + m)."""
    mean = float(served.arrays["baseline.mean"][0])
    counts = served.arrays["item_count"].astype(np.float64)
    return (served.arrays["item_sum"] + damping * mean) / (counts + damping)


# --- explanations --------------------------------------------------------------------------


def _add_explanations(
    served: Scorer,
    result: Recommendations,
    best: np.ndarray,
    cols: np.ndarray,
    stars: np.ndarray,
    *,
    by_ranker: bool,
) -> None:
    """Explain each listed item by the model its list follows (the ranker, or the stars)."""
    by_ranker = by_ranker or not served.rates
    result.explain_method = EXPLAIN_METHODS["ranker" if by_ranker else served.orientation]
    because = explain_items(served, best, cols, stars, by_ranker=by_ranker)
    for entry, reasons in zip(result.items, because):
        entry.because = reasons


def explain_items(
    served: Scorer, targets: np.ndarray, cols: np.ndarray, stars: np.ndarray, *, by_ranker: bool
) -> list[list[Reason]]:
    """For each target item, the rated items (cols, stars) that raise its score most (up to
    EXPLAIN_TOP, largest first; none where no rating raises it)."""
    targets = np.asarray(targets, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    stars = np.asarray(stars, dtype=np.float64)
    if len(cols) == 0 or len(targets) == 0:
        return [[] for _ in targets]
    effects, extra = _effects(served, targets, cols, stars, by_ranker=by_ranker)
    items = served.items
    seen = served.item_seen
    explained = []
    for t, row in enumerate(effects):
        if not seen[targets[t]]:  # scored by the bias baseline: the ratings play no part
            explained.append([])
            continue
        order = [k for k in np.lexsort((cols, -row))[:EXPLAIN_TOP] if row[k] > 0]
        reasons = [
            Reason(
                item=items.ids[cols[k]],
                title=items.title(cols[k]),
                rating=float(stars[k]),
                effect=round(float(row[k]), 4),
                similarity=None if extra is None else round(float(extra[t, k]), 4),
            )
            for k in order
        ]
        explained.append(reasons)
    return explained


def _effects(
    served: Scorer, targets: np.ndarray, cols: np.ndarray, stars: np.ndarray, *, by_ranker: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(effect of each rated item on each target, targets x rated; the code similarities
    behind them, for an item-oriented model only), by the method EXPLAIN_METHODS names."""
    if by_ranker:  # the ranker, which reads the user's whole row
        data = stars.astype(np.float32)
        full = served.rank_rows(np.array([0, len(cols)]), cols, data)[0]
        without = served.rank_without_each(cols, data)
        return (full[targets][None, :] - without[:, targets]).T, None
    if served.orientation == "user":
        net = served.network
        z1 = net.first(np.array([0, len(cols)]), cols, stars.astype(np.float32))
        # Dropping rated item j removes its term stars[j] * W1[:, j] from the pre-activation.
        dropped = z1 - stars[:, None].astype(np.float32) * net.table[cols]
        full = net.output(net.from_first(z1)[1], targets)
        loo = net.output(net.from_first(dropped)[1], targets)
        return (full - loo).T.astype(np.float64), None
    unit = served.unit_codes()
    similarity = unit[targets] @ unit[cols].T  # targets x rated
    return similarity * (stars - stars.mean())[None, :], similarity


# --- every user ----------------------------------------------------------------------------


ALL_USERS_COLUMNS = ("user", "rank", "item", "title", "genres", "score")


def recommend_all_users(
    home: Path,
    *,
    top: int = 10,
    run: str | None = None,
    include_rated: bool = False,
    order: str = "rank",
    on_progress: Callable[[int, int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[Scorer, dict[str, list]]:
    """Top-N of every user of the run's dataset, as columns user, rank, item, title, genres, score
    (predicted stars), in the order ``order`` asks for."""
    check_top(top)
    check_order(order)
    served = open_run(home, run, note)
    check_order(order, served)
    columns: dict[str, list] = {name: [] for name in ALL_USERS_COLUMNS}
    user_ids, item_ids = served.user_ids, served.items.ids
    titles = [served.items.title(i) for i in range(served.n_items)]
    genres = served.items.genres
    indptr = served.arrays["train.indptr"]
    indices = served.arrays["train.indices"]
    n_users = served.n_users
    served.prepare_all_users()
    for start in range(0, n_users, USER_CHUNK):
        users = np.arange(start, min(start + USER_CHUNK, n_users))
        scores = served.block_scores(users) if served.rates else None
        ordering = list_order(served, scores, order, lambda users=users: served.rank_block(users))
        for row, user in enumerate(users):
            rated = [] if include_rated else indices[indptr[user] : indptr[user + 1]]
            best = best_items(ordering[row], rated, top)
            uid = user_ids[user]
            columns["user"].extend([uid] * len(best))
            columns["rank"].extend(range(1, len(best) + 1))
            columns["item"].extend(item_ids[i] for i in best)
            columns["title"].extend(titles[i] for i in best)
            columns["genres"].extend(genres[i] for i in best)
            if scores is None:  # a run without a rating model: no stars to show
                columns["score"].extend([None] * len(best))
            else:
                columns["score"].extend(np.round(scores[row, best], 4).tolist())
        if on_progress is not None:
            on_progress(int(users[-1]) + 1, n_users)
    return served, columns
