"""Anomaly detection by reconstruction error (`aerec outliers`): the whole train split goes
through the model, and the users (or items) whose training ratings it reconstructs worst come
first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.scoring.results import Outlier, Outliers
from aerec_cli.scoring.scorer import Scorer, open_run
from aerec_cli.scoring.topk import best_items, check_top

# Fewer ratings than this make a row's RMSE mostly luck: one 5-star rating of an obscure film
# is not an anomaly. Data where most rows have fewer use the median count instead.
MIN_RATINGS = 20


def default_min_ratings(counts: np.ndarray) -> int:
    """MIN_RATINGS, or the median count of the rows that have ratings where that is lower."""
    rated = counts[counts > 0]
    return max(1, min(MIN_RATINGS, int(np.median(rated)) if len(rated) else 1))


def reconstruction_errors(served: Scorer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, squared error) of every training rating, reconstructed from the whole
    train split as input and clipped to the rating scale."""
    indptr = served.arrays["train.indptr"]
    indices = served.arrays["train.indices"].astype(np.int64)
    data = served.arrays["train.data"].astype(np.float64)
    users = np.repeat(np.arange(served.n_users), np.diff(indptr))
    served.prepare_all_users()
    predicted = np.clip(served.raw_pairs(users, indices), *served.scale)
    return users, indices, (predicted - data) ** 2


def find_outliers(
    home: Path,
    *,
    top: int = 10,
    by: str | None = None,
    run: str | None = None,
    min_ratings: int | None = None,
    note: Callable[[str], None] | None = None,
) -> Outliers:
    """The users (or items) whose training ratings the model reconstructs worst (RMSE), among
    those with at least ``min_ratings`` (default: :func:`default_min_ratings`)."""
    check_top(top)
    if min_ratings is not None and min_ratings < 1:
        raise AerecError(f"--min-ratings must be at least 1, not {min_ratings}")
    served = open_run(home, run, note)
    served.require_stars("find outliers by reconstruction error")
    by = by or served.orientation
    if by not in ("user", "item"):
        raise AerecError(f"--by must be user or item, not {by!r}")
    users, items, error = reconstruction_errors(served)
    data = served.arrays["train.data"].astype(np.float64)
    keys, size = (users, served.n_users) if by == "user" else (items, served.n_items)
    counts = np.bincount(keys, minlength=size)
    sums = np.bincount(keys, error, minlength=size)
    means = np.bincount(keys, data, minlength=size) / np.maximum(counts, 1)
    rmse = np.sqrt(sums / np.maximum(counts, 1))
    if min_ratings is None:
        min_ratings = default_min_ratings(counts)
    eligible = counts >= min_ratings
    best = best_items(np.where(eligible, rmse, -np.inf), np.flatnonzero(~eligible), top)
    rows = [
        Outlier(
            id=served.user_ids[index] if by == "user" else served.items.ids[index],
            title=served.items.title(index) if by == "item" else None,
            ratings=int(counts[index]),
            mean_rating=round(float(means[index]), 4),
            rmse=round(float(rmse[index]), 4),
        )
        for index in best
    ]
    return Outliers(
        run=served.run.name,
        by=by,
        train_rmse=round(float(np.sqrt(error.mean())) if len(error) else 0.0, 4),
        min_ratings=min_ratings,
        rows=rows,
    )
