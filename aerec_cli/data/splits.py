"""Train/test splits of a ratings frame: random, temporal (per user), predefined, or given
(the user brings the test split as a second source). Also the seeded validation slice held
out of a train split (training's early stopping, EASE's lambda in evaluate): torch-free, so
evaluation holds out the way training does without importing torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aerec_cli.data import readers
from aerec_cli.errors import AerecError

SPLIT_METHODS = ["random", "temporal"]


def test_mask(ratings: pd.DataFrame, method: str, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the ratings that go to the test split."""
    if not 0.0 < test_fraction < 1.0:
        raise AerecError(
            f"--test-fraction must be between 0 and 1 (exclusive), not {test_fraction}"
        )
    if method == "random":
        rng = np.random.default_rng(seed)
        mask = np.zeros(len(ratings), dtype=bool)
        mask[rng.permutation(len(ratings))[: int(round(test_fraction * len(ratings)))]] = True
        return mask
    if method == "temporal":
        return _temporal_mask(ratings, test_fraction)
    raise AerecError(f"unknown split {method!r}; choose random, temporal or a predefined one")


def _temporal_mask(ratings: pd.DataFrame, test_fraction: float) -> np.ndarray:
    """Each user's latest ratings (by timestamp) go to test; every user keeps one to train."""
    if (ratings["timestamp"] < 0).all():
        raise AerecError("--split temporal needs timestamps, and this source has none")
    users = _user_codes(ratings["user"])
    order = _user_time_order(users, ratings["timestamp"].to_numpy())
    users = users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_test = np.minimum(np.floor(counts * test_fraction + 0.5), counts - 1).astype(int)
    is_test_sorted = rank >= np.repeat(counts - n_test, counts)
    mask = np.zeros(len(ratings), dtype=bool)
    mask[order] = is_test_sorted
    return mask


def _user_codes(users: pd.Series) -> np.ndarray:
    """Small non-negative integers, equal where the user ids are (no strings compared)."""
    codes, _ = pd.factorize(users)
    return codes.astype(np.int64)


def _user_time_order(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row order by user, then timestamp, then position (a stable sort)."""
    if len(stamps):
        low, high = int(stamps.min()), int(stamps.max())
        span = high - low + 1
        if (int(users.max()) + 1) * span < 2**62:  # one int64 key: faster than lexsort
            return np.argsort(users * span + (stamps - low), kind="stable")
    return np.lexsort((stamps, users))


# --- a split the user brings: train and test in two sources ------------------------------


def check_given(test: str | Path, split: str | None, test_fraction: float | None) -> Path:
    """The test source of a given split, checked before anything is read."""
    if split is not None or test_fraction is not None:
        given = " and ".join(
            flag
            for flag, value in (("--split", split), ("--test-fraction", test_fraction))
            if value is not None
        )
        raise AerecError(
            f"--test gives the test split itself, so {given} cannot be used with it; "
            "leave out one or the other"
        )
    path = Path(test).expanduser()
    if not path.exists():
        raise AerecError(
            f"test source {path} does not exist; --test takes the test split's ratings file "
            "(or a zip or folder holding it)"
        )
    return path


def combine_given(
    train: readers.RatingsTable, test: readers.RatingsTable, test_source: Path
) -> tuple[readers.RatingsTable, pd.DataFrame, np.ndarray, dict]:
    """(table, ratings, is_test mask, split info) of a train and a test source stored as one
    dataset; the ids are those of both, so a test user or item unseen in train keeps its row
    or column (empty in train: evaluate scores it by the bias baseline, and counts it)."""
    ratings = readers.concat_ratings([train.ratings, test.ratings])
    is_test = np.arange(len(ratings)) >= len(train.ratings)
    train_part, test_part = ratings[~is_test], ratings[is_test]
    unseen = ~test_part["user"].isin(train_part["user"]) | ~test_part["item"].isin(
        train_part["item"]
    )
    n_unseen = int(unseen.sum())
    # Titles and genres from the train source; the test source's fill the items it lacks.
    frames = [f for f in (train.items, test.items) if len(f)] or [train.items]
    items = pd.concat(frames, ignore_index=True).drop_duplicates("item", keep="first")
    scale = (
        min(train.rating_scale[0], test.rating_scale[0]),
        max(train.rating_scale[1], test.rating_scale[1]),
    )
    warnings = train.warnings + [f"test source: {w}" for w in test.warnings]
    if n_unseen:
        warnings.append(
            f"{n_unseen:,} test rating(s) of users or items not in the train source; they are "
            "predicted by the bias baseline"
        )
    table = readers.RatingsTable(
        ratings, items, train.format, scale, warnings, scale_from=train.scale_from
    )
    info = {"method": "given", "test_source": str(test_source), "test_unseen": n_unseen}
    return table, ratings, is_test, info


# --- a validation slice of a train split -------------------------------------------------


def hold_out(matrix: sp.csr_matrix, fraction: float, seed: int):
    """Split a CSR matrix's entries into (fit matrix, validation rows, cols, values): each
    entry goes to validation with probability ``fraction``, drawn from ``seed``."""
    coo = matrix.tocoo()
    rng = np.random.default_rng(seed)
    is_val = rng.random(coo.nnz) < fraction
    fit = sp.csr_matrix(
        (coo.data[~is_val], (coo.row[~is_val], coo.col[~is_val])), shape=matrix.shape
    )
    return fit, coo.row[is_val], coo.col[is_val], coo.data[is_val]
