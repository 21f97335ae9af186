"""Train/test splits of a ratings frame: random, temporal (per user), or predefined."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
