"""Picking the best-scored items: the one top-k used by every list aerec makes and scores."""

from __future__ import annotations

import numpy as np

from aerec_cli.errors import AerecError


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``k`` highest scores, best first.

    Ties go to the lower column, so the result is deterministic. A score of -inf marks a
    column that is not a candidate: it may fill a slot when a row has fewer than ``k``
    candidates, and ``valid`` is False there. Returns (columns, valid), both rows x min(k, n).
    """
    scores = np.asarray(scores)
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        empty = np.empty((n_rows, 0), dtype=np.int64)
        return empty, empty.astype(bool)
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # the k-th best score per row
    above = scores > kth
    equal = scores == kth
    need = k - above.sum(axis=1, keepdims=True)  # how many ties at the k-th score make it
    chosen = above | (equal & (np.cumsum(equal, axis=1) <= need))
    columns = np.nonzero(chosen)[1].reshape(n_rows, k)  # ascending column order per row
    picked = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")  # stable: lower column first on ties
    columns = np.take_along_axis(columns, order, axis=1)
    valid = np.take_along_axis(picked, order, axis=1) > -np.inf
    return columns, valid


def best_items(scores: np.ndarray, exclude, n: int) -> np.ndarray:
    """Indices of one row's ``n`` best scores, best first, skipping ``exclude`` and -inf."""
    row = np.array(scores, dtype=np.float64)
    row[np.asarray(exclude, dtype=np.int64)] = -np.inf
    columns, valid = top_k(row[None, :], n)
    return columns[0][valid[0]]


def check_top(top: int) -> None:
    if top < 1:
        raise AerecError(f"--top must be at least 1, not {top}")
