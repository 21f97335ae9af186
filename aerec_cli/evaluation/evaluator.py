"""Test-split accuracy of a run, side by side with baselines fitted on the same train split.

Two views of the same test split:

- rating accuracy: RMSE and MAE of the predicted stars of every test rating;
- top-k ranking: for each user with at least one relevant test rating (stars >= a threshold),
  every item the user did not rate in training is a candidate; the k best-scored candidates are
  checked against the user's relevant test items (precision, recall, NDCG, MRR, hit rate), and
  catalogue coverage is the share of all items that appear in at least one such top-k list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models.baselines import BiasBaseline, GlobalMean
from aerec_cli.scoring.torch_inference import Scorer
from aerec_cli.storage import dataset_store, run_store

DEFAULT_KS = (10,)
DEFAULT_RELEVANT = 4.0
# Per-user metrics (averaged over users), then the one catalogue-wide metric.
USER_METRICS = ("precision", "recall", "ndcg", "mrr", "hit_rate")
RANKING_METRICS = (*USER_METRICS, "coverage")


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))


# --- ranking metrics -----------------------------------------------------------------------


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


def check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(dict.fromkeys(int(k) for k in ks))
    if not ks:
        raise AerecError("--k needs at least one cut-off, e.g. --k 10 or --k 10,20")
    for k in ks:
        if k < 1:
            raise AerecError(f"--k must be at least 1, not {k}")
    return ks


def check_relevant(relevant: float | None, dataset: dataset_store.Dataset) -> float:
    """The relevance threshold; by default 4 stars (the top star if the scale ends below 4)."""
    low, high = dataset.rating_scale
    if relevant is None:
        return DEFAULT_RELEVANT if low <= DEFAULT_RELEVANT <= high else high
    if not (np.isfinite(relevant) and low <= relevant <= high):
        raise AerecError(
            f"--relevant must be within the rating scale of dataset {dataset.name} "
            f"({low:g}-{high:g}), not {relevant:g}"
        )
    return float(relevant)


# --- loading and evaluating runs -----------------------------------------------------------


@dataclass
class Loaded:
    """A run with its dataset and a scorer ready: what evaluate and recommend both need."""

    run: run_store.Run
    dataset: dataset_store.Dataset
    scorer: Scorer


def load_for_scoring(
    home: Path,
    run_name: str | None,
    device: torch.device,
    dataset: dataset_store.Dataset | None = None,
) -> Loaded:
    """Load a run, its dataset (or reuse ``dataset`` when it is the run's) and a scorer."""
    run = run_store.load_run(home, run_name)
    if dataset is None or dataset.name != run.dataset:
        dataset = dataset_store.load(home, run.dataset)
    if run.config.get("dataset_meta_sha256") != dataset.meta_hash:
        raise AerecError(
            f"dataset {dataset.name} was re-ingested after run {run.name} was trained on it; "
            f"train again: aerec train --data {dataset.name}"
        )
    model = run.load_model(device)
    expected = dataset.train.shape[1 if run.config["orientation"] == "user" else 0]
    if model.n_inputs != expected:
        raise AerecError(f"run {run.name} does not fit dataset {dataset.name}; train again")
    scorer = Scorer(model, dataset.train, run.config["orientation"], dataset.rating_scale, device)
    return Loaded(run, dataset, scorer)


@dataclass
class _Reference:
    """What every run on one dataset is compared with: computed once per dataset."""

    dataset: dataset_store.Dataset
    relevant: float
    ks: list[int]
    rating: dict[str, dict[str, float]] = field(default_factory=dict)
    n_users: int = 0
    ranking: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def build(
        cls, dataset: dataset_store.Dataset, relevant: float | None, ks: list[int]
    ) -> _Reference:
        relevant = check_relevant(relevant, dataset)
        test = dataset.test.tocoo()
        if test.nnz == 0:
            raise AerecError(
                f"dataset {dataset.name} has an empty test split; ingest it with a split"
            )
        users, items, actual = test.row, test.col, test.data.astype(np.float64)
        low, high = dataset.rating_scale
        bias = BiasBaseline.fit(dataset.train)
        ref = cls(dataset, relevant, ks)
        for name, baseline in (("global_mean", GlobalMean.fit(dataset.train)), ("bias", bias)):
            guess = np.clip(baseline.predict(users, items), low, high)
            ref.rating[name] = {
                "rmse": round(rmse(guess, actual), 6),
                "mae": round(mae(guess, actual), 6),
            }
        rankers = {"popularity": popularity_ranker(dataset.train), "bias": bias_ranker(bias)}
        ref.n_users, ref.ranking = ranking_metrics(
            rankers, dataset.train, dataset.test, relevant, ks
        )
        return ref


def _evaluate_loaded(loaded: Loaded, ref: _Reference) -> dict:
    dataset, scorer = loaded.dataset, loaded.scorer
    test = dataset.test.tocoo()
    users, items, actual = test.row, test.col, test.data.astype(np.float64)
    predicted = scorer.predict(users, items)
    # Rank by the raw (unclipped) scores: clipping would tie every item predicted above the
    # top star, and the raw order is the only sensible way to break those ties.
    _, model_ranking = ranking_metrics(
        {"model": lambda block: scorer.block_scores(block, clip=False)},
        dataset.train,
        dataset.test,
        ref.relevant,
        ref.ks,
    )
    relevant = ref.relevant
    report = {
        "run": loaded.run.name,
        "dataset": dataset.name,
        "kind": loaded.run.config["kind"],
        "orientation": loaded.run.config["orientation"],
        "rmse": round(rmse(predicted, actual), 6),
        "mae": round(mae(predicted, actual), 6),
        "n_test": int(test.nnz),
        "n_fallback": int((~(scorer.user_seen[users] & scorer.item_seen[items])).sum()),
        "baselines": {name: dict(scores) for name, scores in ref.rating.items()},
        "ranking": {
            "k": list(ref.ks),
            "relevant": int(relevant) if float(relevant).is_integer() else relevant,
            "n_users": ref.n_users,
            "model": model_ranking["model"],
            "baselines": {name: dict(values) for name, values in ref.ranking.items()},
        },
    }
    loaded.run.update_metrics(test=report)
    return report


def evaluate_run(
    home: Path,
    run_name: str | None,
    device: torch.device,
    ks: Sequence[int] = DEFAULT_KS,
    relevant: float | None = None,
) -> dict:
    """Rating and ranking metrics on the saved test split, plus baselines.

    Records them in the run's metrics (``metrics.json``, under "test").
    """
    ks = check_ks(ks)
    loaded = load_for_scoring(home, run_name, device)
    return _evaluate_loaded(loaded, _Reference.build(loaded.dataset, relevant, ks))


def evaluate_runs(
    home: Path,
    run_names: Sequence[str],
    device: torch.device,
    ks: Sequence[int] = DEFAULT_KS,
    relevant: float | None = None,
    skip_broken: bool = False,
    on_run: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[str]]:
    """Evaluate several runs; runs on one dataset share its load and its baselines.

    Every name is checked before any work starts. With ``skip_broken``, a run that cannot
    be evaluated (its dataset deleted or re-ingested, its weights damaged) is left out and
    its problem returned; otherwise the first such problem stops everything.
    Returns (reports in the given order, problems).
    """
    ks = check_ks(ks)
    runs = [run_store.load_run(home, name) for name in dict.fromkeys(run_names)]
    references: dict[str, _Reference] = {}
    reports, problems = [], []
    for run in runs:
        if on_run:
            on_run(run.name)
        try:
            ref = references.get(run.dataset)
            loaded = load_for_scoring(home, run.name, device, ref.dataset if ref else None)
            if ref is None:
                ref = references[run.dataset] = _Reference.build(loaded.dataset, relevant, ks)
            reports.append(_evaluate_loaded(loaded, ref))
        except AerecError as exc:
            if not skip_broken:
                raise
            problems.append(f"run {run.name}: {exc.message}")
    return reports, problems
