"""The measures of a run on a test split: rating error (RMSE, MAE) and top-k ranking
(precision, recall, NDCG, MRR, hit rate, coverage), for any scorer that ranks every item.

For each user with at least one relevant test rating (stars >= a threshold), every item the
user did not rate in training is a candidate; the k best-scored candidates are checked against
the user's relevant test items. Catalogue coverage is the share of all items that appear in at
least one such top-k list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from aerec_cli.errors import AerecError
from aerec_cli.models.baselines import BiasBaseline
from aerec_cli.scoring.topk import top_k

DEFAULT_KS = (10, 20, 100)
DEFAULT_RELEVANT = 4.0


def default_relevant(rating_scale: tuple[float, float]) -> float:
    """The default relevance threshold: 4 stars, or the top star if the scale ends below 4."""
    low, high = rating_scale
    return DEFAULT_RELEVANT if low <= DEFAULT_RELEVANT <= high else high


# Per-user metrics (averaged over users), then the one catalogue-wide metric.
USER_METRICS = ("precision", "recall", "ndcg", "mrr", "hit_rate")
RANKING_METRICS = (*USER_METRICS, "coverage")


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))


def user_ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user precision@k, recall@k, NDCG@k, MRR@k and hit@k (binary relevance).

    ``hits[u, r]`` says whether the item at rank r + 1 of user u's list is relevant (only the
    first k columns are read; a list shorter than k counts its missing slots as misses);
    ``n_relevant[u]`` is how many relevant items user u has (at least 1).

    - precision@k = hits in the top k / k
    - recall@k = hits in the top k / n_relevant
    - NDCG@k = DCG / ideal DCG, DCG = sum of 1 / log2(rank + 1) over the hits, the ideal
      DCG putting min(k, n_relevant) hits at ranks 1, 2, ...
    - MRR@k = 1 / rank of the first hit within the top k, else 0
    - hit@k = 1 if any hit in the top k, else 0 (its mean is the hit rate)
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    hits = np.asarray(hits, dtype=bool)[:, :k]
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if np.any(n_relevant < 1):
        raise ValueError("every user needs at least one relevant item")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n_hits = hits.sum(axis=1)
    dcg = (hits * discount[: hits.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(k, n_relevant) - 1]
    first = np.argmax(hits, axis=1) if hits.shape[1] else np.zeros(len(hits), dtype=np.int64)
    return {
        "precision": n_hits / k,
        "recall": n_hits / n_relevant,
        "ndcg": dcg / ideal,
        "mrr": np.where(n_hits > 0, 1.0 / (first + 1), 0.0),
        "hit_rate": (n_hits > 0).astype(np.float64),
    }


# A ranker scores every item for a block of users: (users,) -> users x items. Higher is better.
Ranker = Callable[[np.ndarray], np.ndarray]


def popularity_ranker(train: sp.csr_matrix) -> Ranker:
    """Items ordered by their number of training ratings (the same list for everyone)."""
    counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    return lambda users: np.repeat(counts[None, :], len(users), axis=0)


def bias_ranker(baseline: BiasBaseline) -> Ranker:
    """mu + b_u + b_i: within one user, the items in order of their bias b_i."""
    return lambda users: (
        baseline.mean + baseline.user_bias[users][:, None] + baseline.item_bias[None, :]
    )


def ranking_metrics(
    rankers: dict[str, Ranker],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    relevant: float,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int | None = None,
) -> tuple[int, dict[str, dict[str, float | None]]]:
    """Top-k metrics of each ranker, over users with a test rating >= ``relevant``.

    Candidates are all items the user has not rated in training (test items included).
    Returns (number of users evaluated, {ranker: {"precision@10": ..., ...}}); the values
    are None when no user has a relevant test item.
    """
    ks = list(ks)
    n_users, n_items = train.shape
    relevant_test = test.tocsr(copy=True)
    relevant_test.data = (relevant_test.data >= relevant).astype(np.int8)
    relevant_test.eliminate_zeros()
    n_relevant = np.diff(relevant_test.indptr)
    users = np.flatnonzero(n_relevant > 0)
    depth = max(ks)
    if batch_size is None:  # about 4M scores per block
        batch_size = max(1, min(1024, 4_000_000 // max(n_items, 1)))
    sums = {name: {(m, k): 0.0 for m in USER_METRICS for k in ks} for name in rankers}
    shown = {name: {k: np.zeros(n_items, dtype=bool) for k in ks} for name in rankers}
    for start in range(0, len(users), batch_size):
        block = users[start : start + batch_size]
        rated = train[block].tocoo()
        wanted = relevant_test[block].tocoo()
        is_relevant = np.zeros((len(block), n_items), dtype=bool)
        is_relevant[wanted.row, wanted.col] = True
        for name, ranker in rankers.items():
            scores = np.array(ranker(block), dtype=np.float64)
            scores[rated.row, rated.col] = -np.inf  # training items are not candidates
            columns, valid = top_k(scores, depth)
            hits = np.take_along_axis(is_relevant, columns, axis=1) & valid
            for k in ks:
                per_user = user_ranking_metrics(hits, n_relevant[block], k)
                for metric, values in per_user.items():
                    sums[name][(metric, k)] += float(values.sum())
                shown[name][k][columns[:, :k][valid[:, :k]]] = True
    results = {}
    for name in rankers:
        values: dict[str, float | None] = {}
        for k in ks:
            for metric in USER_METRICS:
                total = sums[name][(metric, k)]
                values[f"{metric}@{k}"] = round(total / len(users), 6) if len(users) else None
            coverage = shown[name][k].mean() if len(users) and n_items else None
            values[f"coverage@{k}"] = None if coverage is None else round(float(coverage), 6)
        results[name] = values
    return int(len(users)), results


MAX_K = 1_000_000


def check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(dict.fromkeys(int(k) for k in ks))
    if not ks:
        raise AerecError("--k needs at least one cut-off, e.g. --k 10 or --k 10,20")
    for k in ks:
        if k < 1:
            raise AerecError(f"--k must be at least 1, not {k}")
        if k > MAX_K:  # the log discounts are an array of k numbers
            raise AerecError(f"--k must be at most {MAX_K}, not {k}")
    return ks
