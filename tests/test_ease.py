"""EASE: the closed form against an independent computation, lambda chosen on the train split
only, the skip above MAX_ITEMS, and how `evaluate` reports it (JSON keys, table rows)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from aerec_cli.errors import AerecError
from aerec_cli.evaluation import ease_baseline, evaluator
from aerec_cli.models import ease
from aerec_cli.storage import dataset_store
from tests.helpers import copy_home, ok, run_cli

TINY = ["--epochs", "3", "--hidden", "8", "--lr", "0.05"]
METRICS = ("precision", "recall", "ndcg", "mrr", "hit_rate", "coverage")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ingested_template):
    """A home with dataset ml1m and two runs on it, r and s (the latest). Read-only."""
    home = copy_home(ingested_template, tmp_path_factory.mktemp("trained-ease"))
    for run in ("r", "s"):
        ok(run_cli(home, "-q", "--device", "cpu", "train", *TINY, "--run", run))
    return home


# --- the model -----------------------------------------------------------------------------


def small_train() -> sp.csr_matrix:
    """5 users x 4 items, stars 1-5 (EASE reads only which entries exist)."""
    stars = np.array(
        [[5, 3, 0, 1], [4, 0, 0, 1], [1, 1, 0, 5], [0, 0, 5, 4], [2, 0, 4, 0]], dtype=float
    )
    return sp.csr_matrix(stars)


def test_weights_equal_one_ridge_regression_per_item():
    # EASE's closed form solves, for each item j, a ridge regression of X[:, j] on the other
    # items' columns (B_jj = 0 is the constraint). Solve those regressions one by one.
    train, lam = small_train(), 2.0
    x = (train.toarray() > 0).astype(float)
    n_items = x.shape[1]
    expected = np.zeros((n_items, n_items))
    for j in range(n_items):
        others = [i for i in range(n_items) if i != j]
        a = x[:, others]
        expected[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
    model = ease.Ease.fit(train, lam)
    assert model.weights.dtype == np.float32 and model.weights.flags.c_contiguous
    assert np.diag(model.weights).tolist() == [0.0] * n_items
    assert model.weights == pytest.approx(expected, abs=1e-5)
    users = np.array([3, 0])
    assert model.scores(users) == pytest.approx(x[users] @ expected, abs=1e-5)


def test_weights_match_the_inverse_formula_across_blocks(monkeypatch):
    # Blocks of 3 rows/columns: the blocked Gram and the in-place mirror cross block edges.
    monkeypatch.setattr(ease, "_BLOCK", 3)
    rng = np.random.default_rng(0)
    train = sp.random(40, 11, density=0.3, random_state=rng, format="csr")
    x = (train.toarray() != 0).astype(float)
    assert ease.gram(ease.binary(train)) == pytest.approx(x.T @ x)
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(11))
    expected = np.eye(11) - p / np.diag(p)  # column j divided by P_jj
    assert ease.Ease.fit(train, 7.0).weights == pytest.approx(expected, abs=1e-5)


def test_bad_lambda_and_too_many_items(monkeypatch):
    with pytest.raises(AerecError, match="positive"):
        ease.Ease.fit(small_train(), 0.0)
    monkeypatch.setattr(ease, "MAX_ITEMS", 3)
    with pytest.raises(AerecError, match="at most 3 items"):
        ease.Ease.fit(small_train(), 1.0)


# --- choosing lambda -----------------------------------------------------------------------


def test_climb_walks_to_the_peak_without_fitting_the_whole_grid():
    tried = []

    def score(lam):
        tried.append(lam)
        return -abs(np.log(lam / 1000.0))  # best at 1000

    grid = (50, 100, 200, 500, 1000, 2000, 5000)
    scores = ease_baseline.climb(score, grid)
    assert ease_baseline.best_lambda(scores) == 1000
    assert sorted(tried) == [200, 500, 1000, 2000]  # from 500 outwards, each lambda once
    assert list(scores) == sorted(scores)


def test_best_lambda_ties_and_no_relevant_rating():
    assert ease_baseline.best_lambda({100.0: 0.3, 200.0: 0.3, 500.0: 0.1}) == 100.0
    assert ease_baseline.best_lambda({500.0: None}) == ease_baseline.DEFAULT_LAMBDA
    # No relevant rating anywhere: the climb stops at the middle of the grid and its neighbours.
    assert ease_baseline.climb(lambda lam: None, (5, 4, 3, 2, 1)) == dict.fromkeys([2.0, 3, 4])


def test_lambda_is_chosen_on_the_train_split_only(trained, monkeypatch):
    dataset = dataset_store.load(trained, "ml1m")
    seen = []
    real = ease_baseline.ranking_metrics

    def spy(rankers, train, test, *args, **kwargs):
        seen.append((train, test))
        return real(rankers, train, test, *args, **kwargs)

    monkeypatch.setattr(ease_baseline, "ranking_metrics", spy)
    first = evaluator._Reference.build(dataset, None, [10])
    assert seen, "the lambda search scored nothing"
    whole = set(zip(*dataset.train.nonzero(), strict=True))
    for fit, validation in seen:  # fit and validation parts are disjoint pieces of train
        fit_entries = set(zip(*fit.nonzero(), strict=True))
        held = set(zip(*validation.nonzero(), strict=True))
        assert held and held <= whole and fit_entries <= whole and not held & fit_entries

    # Another test split (every test rating moved to another item) changes the test
    # metrics, never the lambda or its validation scores.
    test = dataset.test.tocoo()
    shifted = sp.csr_matrix(
        (test.data, (test.row, (test.col + 7) % test.shape[1])), shape=test.shape
    )
    second = evaluator._Reference.build(dataclasses.replace(dataset, test=shifted), None, [10])
    assert second.ease == first.ease
    assert second.ranking["ease"] != first.ranking["ease"]


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_json_has_ease_and_every_metric_at_every_k(trained):
    report = ok(run_cli(trained, "evaluate", "--format", "json")).json()
    ranking = report["ranking"]
    assert ranking["k"] == [10, 20, 100]
    assert set(ranking["baselines"]) == {"popularity", "bias", "ease"}
    every = {f"{m}@{k}" for k in (10, 20, 100) for m in METRICS}
    for values in (ranking["model"], *ranking["baselines"].values()):
        assert set(values) == every
    assert ranking["ease_skipped"] is None
    assert ranking["ease_lambda"] in ease_baseline.LAMBDAS
    tried = [entry["lambda"] for entry in ranking["ease_validation"]]
    assert ranking["ease_lambda"] in tried and tried == sorted(tried)
    assert all(set(entry) == {"lambda", "ndcg@10"} for entry in ranking["ease_validation"])


def header_of(out: str, first: str) -> list[str]:
    """The cells of the table header whose first column is ``first``."""
    headers = [[cell.strip() for cell in line.split("┃")] for line in out.splitlines()]
    return next(cells for cells in headers if cells[0] == first and len(cells) > 3)


COMPACT = ["P@10", "R@10", "NDCG@10", "MRR@10", "HR@10", "cov@10", "R@20", "NDCG@100"]


def test_evaluate_table_rows_and_compact_columns(trained):
    out = ok(run_cli(trained, "evaluate")).stdout
    assert header_of(out, "model")[1:] == COMPACT
    report = ok(run_cli(trained, "evaluate", "--format", "json")).json()
    ranking = report["ranking"]
    rows = [line.strip() for line in out.splitlines() if "│" in line]
    labels = [row.split("│")[0].strip() for row in rows[-5:]]
    lam = f"{ranking['ease_lambda']:g}"
    expected = ["denoising (item)", "denoising, by stars", "popularity", "bias baseline"]
    assert labels == [*expected, f"EASE (λ={lam})"]
    cells = [cell.strip() for cell in rows[-1].split("│")[1:]]
    ease_values = ranking["baselines"]["ease"]
    keys = ["precision@10", "recall@10", "ndcg@10", "mrr@10", "hit_rate@10", "coverage@10"]
    assert cells == [f"{ease_values[key]:.4f}" for key in keys + ["recall@20", "ndcg@100"]]
    assert f"EASE's λ={lam}: the best NDCG@10 on a 10% validation slice" in out


def test_evaluate_with_k_shows_every_metric_at_each_k(trained):
    out = ok(run_cli(trained, "evaluate", "--k", "5,20")).stdout
    expected = [f"{label}@{k}" for k in (5, 20) for label in ("P", "R", "NDCG", "MRR", "HR", "cov")]
    assert header_of(out, "model")[1:] == expected


def test_runs_compare_adds_recall_20_and_ndcg_100(trained):
    out = ok(run_cli(trained, "runs", "--compare")).stdout
    assert header_of(out, "run")[5:] == COMPACT
    out = ok(run_cli(trained, "runs", "--compare", "--k", "5")).stdout
    assert header_of(out, "run")[5:] == ["P@5", "R@5", "NDCG@5", "MRR@5", "HR@5", "cov@5"]


def test_ease_is_skipped_above_the_item_limit(trained, monkeypatch):
    monkeypatch.setattr(ease, "MAX_ITEMS", 5)
    n_items = dataset_store.load(trained, "ml1m").train.shape[1]
    report = ok(run_cli(trained, "evaluate", "--format", "json")).json()
    ranking = report["ranking"]
    assert ranking["baselines"]["ease"] is None and ranking["ease_lambda"] is None
    assert ranking["ease_skipped"].startswith(f"{n_items:,} items")
    assert "the limit is 5" in ranking["ease_skipped"]
    out = ok(run_cli(trained, "evaluate")).stdout
    assert f"EASE skipped: {n_items:,} items (its item x item inverse needs about" in out
    assert not any(line.strip().startswith("EASE (") for line in out.splitlines())


def test_runs_share_one_ease_fit(trained, monkeypatch):
    calls = []
    real = ease_baseline.fit_baseline
    monkeypatch.setattr(
        ease_baseline, "fit_baseline", lambda *a, **kw: calls.append(a) or real(*a, **kw)
    )
    reports = ok(run_cli(trained, "evaluate", "--runs", "r,s", "--format", "json")).json()
    assert len(calls) == 1
    assert reports[0]["ranking"]["ease_lambda"] == reports[1]["ranking"]["ease_lambda"]
    assert reports[0]["ranking"]["baselines"] == reports[1]["ranking"]["baselines"]
