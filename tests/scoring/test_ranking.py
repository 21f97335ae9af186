"""Runs that rank (the default): the ranker's lists, on a fixture with planted tastes
(``planted``, see conftest.py and fixtures.write_planted).

Users 1-20 like items 1-15 and dislike 16-30; users 21-40 the other way round. Each user rates
mostly items of the side they like. Item 99 appears only in the test file, so no model learnt
anything about it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aerec_cli.models import ease, ranking
from aerec_cli.scoring import scorer
from aerec_cli.storage import dataset_store
from tests import fixtures
from tests.helpers import ok, run_cli

SIDES = fixtures.PLANTED_SIDES


def rec(home, *args) -> dict:
    return ok(run_cli(home, "recommend", *args, "--format", "json")).json()


def test_soft_ease_with_its_own_inputs_as_targets_is_ease():
    rng = np.random.default_rng(1)
    train = sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))
    expected = ease.weights(ease.gram(ease.binary(train)), 7.0)
    np.testing.assert_allclose(ease.soft_weights(train, train, 7.0), expected, atol=1e-4)


def test_target_weights_follow_the_stars():
    weights = ranking.target_weights(np.array([1, 2, 3, 4, 5, 4.5]), 5.0)
    np.testing.assert_allclose(weights, [0.1, 0.2, 0.4, 1, 1, 1])


def test_a_default_run_ranks_and_a_rating_run_does_not(planted):
    assert scorer.open_run(planted, "both").ranks
    assert not scorer.open_run(planted, "stars").ranks
    # A run without a ranker lists by predicted stars whatever the order asked for.
    assert rec(planted, "--user", "3", "--run", "stars") == rec(
        planted, "--user", "3", "--run", "stars", "--order", "stars"
    )


@pytest.mark.parametrize("run", ["both", "ranks"])
def test_numpy_ranking_scores_equal_the_torch_ranker(planted, run):
    served = scorer.open_run(planted, run)
    model, weights = served.run.load_ranker(torch.device("cpu"))
    train = dataset_store.load(planted, served.dataset).train
    from aerec_cli.models.ranker import inputs

    x = torch.from_numpy(inputs(train, 5.0).toarray())
    with torch.no_grad():
        first = x @ model.table + model.bias
        log_p = torch.log_softmax(model.output(torch.tanh(first)), dim=1).numpy()
    binary = (train.toarray() > 0).astype(np.float32)
    expected = ranking.combine(log_p, binary @ weights)
    got = served.rank_block(np.arange(served.n_users))
    seen = served.item_seen
    np.testing.assert_allclose(got[:, seen], expected[:, seen], atol=1e-4)
    assert np.isneginf(got[:, ~seen]).all()


def test_the_ranker_orders_the_default_list_and_stars_are_shown(planted):
    served = scorer.open_run(planted, "both")
    user = served.user_index("3")
    result = rec(planted, "--user", "3", "--run", "both", "--top", "5")
    index = {iid: k for k, iid in enumerate(served.items.ids)}
    ranks = served.rank_block(np.array([user]))[0]
    listed = [ranks[index[e["item"]]] for e in result["items"]]
    assert listed == sorted(listed, reverse=True)
    stars = served.user_scores(user)
    for entry in result["items"]:
        assert entry["score"] == pytest.approx(stars[index[entry["item"]]], abs=1e-4)


# Every run and order that can make a list (a ranking-only run has no stars to order by).
LISTS = [("both", "rank"), ("both", "stars"), ("stars", "rank"), ("stars", "stars")]


@pytest.mark.parametrize(("run", "order"), [*LISTS, ("ranks", "rank")])
def test_items_without_training_ratings_are_never_recommended(planted, tmp_path, run, order):
    path = tmp_path / "all.csv"
    args = ["--all-users", "--top", "40", "-o", path, "--run", run, "--order", order]
    ok(run_cli(planted, "recommend", *args))
    assert "99" not in {row.split(",")[2] for row in path.read_text().splitlines()[1:]}
    rated = ["--rate", "1=5", "--rate", "2=5"]
    new_user = rec(planted, *rated, "--top", "40", "--order", order, "--run", run)
    assert "99" not in {e["item"] for e in new_user["items"]}


@pytest.mark.parametrize("run", ["both", "ranks"])
def test_new_users_with_opposite_tastes_get_their_own_side(planted, run):
    side_a = rec(planted, *[f"--rate={i}=5" for i in (1, 2, 3, 4)], "--top", "5", "--run", run)
    side_b = rec(planted, *[f"--rate={i}=5" for i in (16, 17, 18, 19)], "--top", "5", "--run", run)
    listed_a = {int(e["item"]) for e in side_a["items"]}
    listed_b = {int(e["item"]) for e in side_b["items"]}
    assert side_a["method"] == side_b["method"] == "model"
    assert len(listed_a & set(SIDES["a"])) >= 4, listed_a
    assert len(listed_b & set(SIDES["b"])) >= 4, listed_b
    assert not listed_a & listed_b


def test_evaluate_reports_a_ranking_runs_lists_by_stars_as_the_rating_run_would(planted):
    """`--objective rating` trains the same autoencoder as the default run, so the default
    run's lists by stars ("model_by_stars") are the rating run's lists (bench.py relies on
    this), and its stars are the same."""
    both = ok(run_cli(planted, "evaluate", "--run", "both", "--format", "json")).json()
    stars = ok(run_cli(planted, "evaluate", "--run", "stars", "--format", "json")).json()
    assert "model_by_stars" not in stars["ranking"]
    assert both["rmse"] == stars["rmse"]
    assert both["ranking"]["model_by_stars"] == stars["ranking"]["model"]
    assert both["ranking"]["model"] != stars["ranking"]["model"]
    table = ok(run_cli(planted, "evaluate", "--run", "both")).stdout
    assert "denoising, by stars" in table
