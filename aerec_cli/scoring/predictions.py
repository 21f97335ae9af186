"""Predicted stars for given (user, item) pairs of a trained run: ``aerec predict``.

The pairs go through :meth:`Scorer.predict`, the numpy scorer every command shares, so a pair
gets exactly the stars ``recommend`` lists and ``evaluate`` scores (the bias baseline for a
user or item without training ratings, clipped to the rating scale). No torch, no pandas.

When the pairs come with ratings, their RMSE and MAE are reported as well: over a dataset's
own test split that is ``evaluate``'s RMSE, computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aerec_cli.data import small_files
from aerec_cli.errors import AerecError
from aerec_cli.scoring.scorer import Scorer, open_run

PAIRS_SPEC = [
    small_files.USER,
    small_files.ITEM,
    small_files.Column("rating", small_files.RATING_ALIASES, number=True, optional=True),
]


@dataclass
class PredictedPair:
    user: str
    item: str
    title: str
    predicted: float
    rating: float | None = None  # the given rating, if any

    def to_dict(self) -> dict:
        entry = {"user": self.user, "item": self.item, "title": self.title}
        entry["predicted"] = self.predicted
        if self.rating is not None:
            entry["rating"] = self.rating
        return entry


@dataclass
class Predictions:
    """The pairs scored, in the given order, and what was left out."""

    run: str
    dataset: str
    pairs: list[PredictedPair]
    skipped: int = 0  # pairs with an unknown user or item id (skip_unknown)
    unknown_users: list[str] = field(default_factory=list)  # distinct, in order of appearance
    unknown_items: list[str] = field(default_factory=list)
    rmse: float | None = None  # over the pairs with a given rating; None if there are none
    mae: float | None = None
    n_rated: int = 0

    def to_dict(self) -> dict:
        """``{"run", "pairs": [...], "skipped"[, "rmse", "mae"]}``: what --format json prints."""
        result = {
            "run": self.run,
            "pairs": [p.to_dict() for p in self.pairs],
            "skipped": self.skipped,
        }
        if self.rmse is not None:
            result["rmse"], result["mae"] = self.rmse, self.mae
        return result

    def columns(self) -> dict[str, list]:
        """Columns user, item, title, predicted[, rating] for exports.write_columns."""
        columns: dict[str, list] = {
            "user": [p.user for p in self.pairs],
            "item": [p.item for p in self.pairs],
            "title": [p.title for p in self.pairs],
            "predicted": [p.predicted for p in self.pairs],
        }
        if self.n_rated:
            columns["rating"] = [p.rating for p in self.pairs]
        return columns

    def to_frame(self):
        """The pairs as a pandas DataFrame: user, item, title, predicted[, rating]."""
        import pandas as pd

        return pd.DataFrame(self.columns())


def read_pairs_file(path: str | Path) -> list[tuple]:
    """(user, item) or (user, item, rating) rows of a CSV ``user,item[,rating]``.

    The header is optional (``userId,movieId,rating`` works); ',', tab or ';' separate the
    fields. An empty file is an error: there is nothing to predict.
    """
    read = small_files.read_columns(
        path,
        PAIRS_SPEC,
        label="pairs file",
        meaning="a raw user id, a raw item id and optionally a number of stars",
    )
    if not read.rows:
        raise AerecError(
            f"pairs file {read.path} holds no pairs; write one user,item[,rating] per line"
        )
    return read.rows


def predict_pairs(
    home: Path,
    pairs: Iterable[Sequence],
    *,
    run: str | None = None,
    skip_unknown: bool = False,
    note: Callable[[str], None] | None = None,
) -> Predictions:
    """Predicted stars of run ``run`` (default: the latest) for (user, item[, rating]) pairs
    of raw ids, in the given order.

    An unknown user or item id is an error, or with ``skip_unknown`` the pair is left out and
    counted. A given rating must lie in the dataset's rating scale; RMSE and MAE are over the
    pairs that have one.
    """
    pairs = list(pairs)
    served = open_run(home, run, note)
    served.require_stars("predict stars")
    known = _known_pairs(served, pairs, skip_unknown)
    predicted = served.predict(np.array(known.users, dtype=np.int64), np.array(known.items))
    result = Predictions(
        served.run.name,
        served.dataset,
        [],
        skipped=len(pairs) - len(known.users),
        unknown_users=list(known.unknown_users),
        unknown_items=list(known.unknown_items),
    )
    info = served.items
    for k, (user, item, stars) in enumerate(zip(known.users, known.items, known.ratings)):
        result.pairs.append(
            PredictedPair(
                served.user_ids[user],
                info.ids[item],
                info.title(item),
                round(float(predicted[k]), 4),
                stars,
            )
        )
    rated = np.array([r is not None for r in known.ratings], dtype=bool)
    if rated.any():
        actual = np.array([r for r in known.ratings if r is not None], dtype=np.float64)
        error = predicted[rated] - actual
        # Rounded as evaluate rounds its report, so the two can be compared digit by digit.
        result.rmse = round(float(np.sqrt(np.mean(error**2))), 6)
        result.mae = round(float(np.mean(np.abs(error))), 6)
        result.n_rated = int(rated.sum())
    return result


SKIP_HINT = "to skip pairs with unknown ids instead, pass --skip-unknown"


@dataclass
class _Known:
    """The pairs whose ids the dataset knows, as indices, and the unknown ids seen."""

    users: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    ratings: list[float | None] = field(default_factory=list)
    # dicts as ordered sets: each id once, in order of appearance
    unknown_users: dict[str, None] = field(default_factory=dict)
    unknown_items: dict[str, None] = field(default_factory=dict)


def _known_pairs(served: Scorer, pairs: list[Sequence], skip_unknown: bool) -> _Known:
    known = _Known()
    user_of: dict[str, int | None] = {}  # one lookup (and one error) per distinct user
    for position, pair in enumerate(pairs, 1):
        user_id, item_id, stars = _parse_pair(served, pair, position)
        if user_id not in user_of:
            user_of[user_id] = _user_index(served, user_id, skip_unknown)
        user, item = user_of[user_id], served.item_index(item_id)
        if item is None and not skip_unknown:
            raise AerecError(f"{served.unknown_item(item_id).message}; {SKIP_HINT}")
        if user is None:
            known.unknown_users[user_id] = None
        if item is None:
            known.unknown_items[item_id] = None
        if user is not None and item is not None:
            known.users.append(user)
            known.items.append(item)
            known.ratings.append(stars)
    return known


def _parse_pair(served: Scorer, pair: Sequence, position: int) -> tuple[str, str, float | None]:
    """(user id, item id, rating or None) of one pair, the rating checked against the scale."""
    if isinstance(pair, (str, bytes)) or len(pair) not in (2, 3):
        raise AerecError(f"pair {position} is {pair!r}; give (user, item) or (user, item, rating)")
    user_id, item_id = str(pair[0]).strip(), str(pair[1]).strip()
    if len(pair) == 2 or pair[2] is None:
        return user_id, item_id, None
    stars = small_files.number(str(pair[2]))
    low, high = served.scale
    if stars is None:
        raise AerecError(f"rating {pair[2]!r} of user {user_id} for item {item_id} is not a number")
    if not low <= stars <= high:
        raise AerecError(
            f"rating {stars:g} of user {user_id} for item {item_id} is outside the rating scale "
            f"{low:g}-{high:g} of dataset {served.dataset}"
        )
    return user_id, item_id, stars


def _user_index(served: Scorer, user_id: str, skip_unknown: bool) -> int | None:
    try:
        return served.user_index(user_id)
    except AerecError as exc:
        if skip_unknown:
            return None
        raise AerecError(f"{exc.message}; {SKIP_HINT}") from exc
