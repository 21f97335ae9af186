"""--orientation both: an item-oriented and a user-oriented network trained on the same
validation slice, their stars blended with a weight fitted there, served as one product."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models.autoencoders import OrientationBlend, blend_weight, build_model
from aerec_cli.scoring.scorer import open_run
from aerec_cli.storage import dataset_store, run_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import assert_clean_error, ok, run_cli

CPU = torch.device("cpu")
SMALL = dict(hidden=[16], epochs=30, patience=30, lr=0.01, objective="rating")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("blend-home")
    dataset_store.ingest("sample", home)
    torch.set_num_threads(1)
    return home


@pytest.fixture(scope="module")
def blended(home):
    """A run of both orientations, and the plain item and user runs of the same settings."""
    trained = {
        side: session.train_run(home, TrainConfig(**SMALL, orientation=side), CPU, run=side)[0]
        for side in ("item", "user", "both")
    }
    return trained


def test_the_weight_is_the_least_squares_share_within_zero_and_one():
    rng = np.random.default_rng(0)
    item, user = rng.normal(3, 1, 500), rng.normal(3, 1, 500)
    assert blend_weight(item, user, 0.3 * item + 0.7 * user) == pytest.approx(0.3)
    assert blend_weight(item, user, 2 * item - user) == 1.0  # the best share is above one
    assert blend_weight(item, user, user + (user - item)) == 0.0  # ... below zero
    assert blend_weight(item, item, user) == 1.0  # the two agree: any weight does


def test_a_blend_spec_rebuilds_and_a_bad_one_is_refused():
    item = build_model({"kind": "denoising", "n_inputs": 7, "hidden": [4]})
    user = build_model({"kind": "denoising", "n_inputs": 5, "hidden": [3]})
    spec = OrientationBlend(item, user, 0.6).spec()
    again = build_model(spec)
    assert isinstance(again, OrientationBlend) and again.spec() == spec
    for bad in ({**spec, "item_weight": 1.5}, {**spec, "item_weight": True}):
        with pytest.raises(ValueError, match="weight"):
            build_model(bad)
    with pytest.raises(ValueError, match="one network spec per orientation"):
        build_model({**spec, "user": spec})
    basic = build_model({"kind": "basic", "n_inputs": 5, "hidden": [3]}).spec()
    with pytest.raises(ValueError, match="one kind"):
        build_model({**spec, "user": basic})


def test_each_side_is_the_plain_run_of_its_orientation_and_the_blend_errs_less(blended):
    both = blended["both"]
    members = both.metrics["members"]
    # One validation slice for both orientations, and the plain runs' seeds on each side.
    assert [m["val_rmse"] for m in members] == [
        blended[side].metrics["val_rmse"] for side in ("item", "user")
    ]
    blend = both.metrics["blend"]
    assert blend["val_rmse_item"] == members[0]["val_rmse"]
    assert blend["val_rmse_user"] == members[1]["val_rmse"]
    assert 0 <= blend["item_weight"] <= 1
    assert both.metrics["val_rmse"] < min(m["val_rmse"] for m in members)
    assert both.config["orientation"] == "both"
    assert both.config["model"]["item_weight"] == pytest.approx(blend["item_weight"], abs=1e-6)


def test_the_served_stars_are_the_blend_of_the_two_networks(home, blended):
    both = blended["both"]
    served = open_run(home, both.name)
    model = both.load_model(CPU)
    train = dataset_store.load(home).train
    with torch.no_grad():
        by_item = model.item(torch.from_numpy(train.T.toarray()).float()).numpy().T
        by_user = model.user(torch.from_numpy(train.toarray()).float()).numpy()
    expected = model.item_weight * by_item + (1 - model.item_weight) * by_user
    users = np.flatnonzero(served.user_seen)[:20]
    assert np.allclose(served.raw_block(users), expected[users], atol=1e-4)
    items = np.flatnonzero(served.item_seen)[: len(users)]
    assert np.allclose(served.raw_pairs(users, items), expected[users, items], atol=1e-4)
    # Its items' codes are the item network's own (similar, embed).
    assert served.item_codes().shape[1] == model.item.hidden[0]


@pytest.mark.parametrize("member", [1, 2])
def test_an_interrupted_blend_resumes_exactly(home, blended, member):
    config = TrainConfig(**SMALL, orientation="both")
    seen = []
    on_epoch = lambda row: seen.append((row.get("member"), row["epoch"]))  # noqa: E731
    name = f"both-cut-{member}"
    with pytest.raises(AerecError) as stopped:
        session.train_run(
            home, config, CPU, run=name, on_epoch=on_epoch, stop=lambda: seen[-1] == (member, 2)
        )
    assert f"member {member} of 2" in stopped.value.message  # the item's, then the user's
    # Stopped on the item side, the saved network is the item network so far; on the user
    # side, the blend of the finished item network and the user network so far. Both serve.
    cut = run_store.load_run(home, name)
    assert ("item_weight" in cut.config["model"]) == (member == 2)
    assert open_run(home, name).predict(np.array([0]), np.array([0])).shape == (1,)
    resumed, _ = session.resume_run(home, name, CPU)
    whole = blended["both"]
    assert resumed.metrics["val_rmse"] == whole.metrics["val_rmse"]
    assert resumed.metrics["blend"] == whole.metrics["blend"]
    assert [r["train_loss"] for r in resumed.history()] == [
        r["train_loss"] for r in whole.history()
    ]


def test_the_cli_trains_evaluates_and_serves_both_orientations(home):
    trained = ok(
        run_cli(
            home,
            *("train", "--orientation", "both", "--ensemble", "2", "--epochs", "3"),
            *("--val-slices", "own", "--objective", "rating", "--run", "cli-both"),
        )
    )
    assert "for the blend of the item-based networks" in trained.stdout
    assert "each pair on its own slice" in trained.stdout
    run = run_store.load_run(home, "cli-both")
    assert len(run.metrics["members"]) == 4
    assert run.config["model"]["item"]["members"] == run.config["model"]["user"]["members"] == 2
    report = ok(run_cli(home, "evaluate", "--run", "cli-both", "--format", "json")).json()
    assert report["orientation"] == "both"
    assert report["rmse"] == run_store.load_run(home, "cli-both").metrics["test"]["rmse"]
    for command in (
        ("recommend", "--user", "42"),
        ("recommend", "--rate", "1=5", "--rate", "2=1"),
        ("similar", "--item", "1"),
    ):
        ok(run_cli(home, *command, "--run", "cli-both"))


def test_an_unknown_orientation_names_the_three(home):
    assert_clean_error(run_cli(home, "train", "--orientation", "diagonal"), "item, user or both")
