"""--ensemble N: N networks trained in turn and served as one network outputting their mean."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models.autoencoders import build_model, ensemble_of
from aerec_cli.scoring.network import Network
from aerec_cli.storage import dataset_store, run_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import assert_clean_error, ok, run_cli

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ensemble-home")
    dataset_store.ingest("sample", home)
    return home


@pytest.mark.parametrize(
    ("kind", "hidden", "options"),
    [
        ("basic", [6], {}),
        ("denoising", [5], {"corruption": 0.3}),
        ("stacked", [6, 3], {}),
        ("deep", [5, 4, 2], {}),
    ],
)
def test_the_merged_network_outputs_the_members_mean(kind, hidden, options):
    torch.manual_seed(0)
    members = [
        build_model({"kind": kind, "n_inputs": 9, "hidden": hidden, **options}) for _ in "abc"
    ]
    merged = ensemble_of(members)
    x = torch.rand(4, 9) * 5
    with torch.no_grad():
        mean = torch.stack([member.eval()(x) for member in members]).mean(0)
        assert torch.allclose(merged(x), mean, atol=1e-5)
    # Saved and loaded as any run's network: its spec names one member's sizes and the count.
    spec = merged.spec()
    assert spec["hidden"] == hidden and spec["members"] == 3
    again = build_model(spec)
    again.load_state_dict(merged.state_dict())
    net, rows = Network.from_model(again), sp.csr_matrix(x.numpy())
    scored = net.output(net.from_first(net.first(rows.indptr, rows.indices, rows.data))[1])
    assert np.allclose(scored, mean.numpy(), atol=1e-4)


def test_an_undercomplete_kind_stays_valid_when_its_members_together_are_wider_than_the_input():
    members = [build_model({"kind": "basic", "n_inputs": 9, "hidden": [6]}) for _ in range(3)]
    assert ensemble_of(members).spec() == {
        "kind": "basic",
        "n_inputs": 9,
        "hidden": [6],
        "members": 3,
    }
    with pytest.raises(ValueError, match="members"):
        build_model({"kind": "basic", "n_inputs": 9, "hidden": [6], "members": 0})


def test_the_first_member_is_the_plain_run_and_the_mean_errs_less_than_its_members(home):
    torch.set_num_threads(1)
    config = dict(hidden=[24], epochs=40, patience=40, lr=0.01, objective="rating")
    single, _ = session.train_run(home, TrainConfig(**config), CPU, run="single")
    trio, result = session.train_run(home, TrainConfig(**config, ensemble=3), CPU, run="trio")
    members = trio.metrics["members"]
    assert len(members) == 3
    # The first member is the plain run: same seed, same validation slice, same epochs.
    assert members[0]["val_rmse"] == single.metrics["val_rmse"]
    assert trio.metrics["epochs_run"] == sum(m["epochs_run"] for m in members)
    # The mean's squared error is at most the members' mean squared error (Jensen).
    assert trio.metrics["val_rmse"] ** 2 < np.mean([m["val_rmse"] ** 2 for m in members])
    assert [row["member"] for row in trio.history()] == sorted(
        row["member"] for row in trio.history()
    )
    assert trio.config["model"]["members"] == 3 and trio.config["train"]["ensemble"] == 3
    assert result.best_val_rmse == pytest.approx(trio.metrics["val_rmse"], abs=1e-6)
    # The first k members' mean: the first member alone, ..., the whole ensemble.
    curve = trio.metrics["val_rmse_by_members"]
    assert curve[0] == members[0]["val_rmse"] and curve[-1] == trio.metrics["val_rmse"]
    assert len(curve) == 3


@pytest.mark.parametrize("member", [1, 2])
def test_an_interrupted_ensemble_resumes_exactly(home, member):
    torch.set_num_threads(1)
    config = TrainConfig(hidden=[16], epochs=6, patience=6, objective="rating", ensemble=3)
    whole, _ = session.train_run(home, config, CPU, run=f"ens-whole-{member}")
    seen = []
    on_epoch = lambda row: seen.append((row.get("member"), row["epoch"]))  # noqa: E731
    name = f"ens-cut-{member}"
    with pytest.raises(AerecError) as stopped:
        session.train_run(
            home, config, CPU, run=name, on_epoch=on_epoch, stop=lambda: seen[-1] == (member, 2)
        )
    assert f"member {member} of 3" in stopped.value.message
    cut = run_store.load_run(home, name)
    # The saved network: the finished members and the one in training.
    assert cut.metrics["status"] == "interrupted"
    assert cut.config["model"].get("members", 1) == member
    resumed, _ = session.resume_run(home, name, CPU)
    assert resumed.metrics["val_rmse"] == whole.metrics["val_rmse"]
    assert [r["train_loss"] for r in resumed.history()] == [
        r["train_loss"] for r in whole.history()
    ]


def test_the_cli_trains_evaluates_and_serves_an_ensemble(home):
    trained = ok(
        run_cli(
            home,
            "train",
            "--ensemble",
            "2",
            "--epochs",
            "3",
            "--objective",
            "rating",
            "--run",
            "cli-ens",
        )
    )
    assert "for 2 networks' mean" in trained.stdout
    report = ok(run_cli(home, "evaluate", "--run", "cli-ens", "--format", "json")).json()
    assert report["rmse"] == run_store.load_run(home, "cli-ens").metrics["test"]["rmse"]
    listing = ok(run_cli(home, "recommend", "--run", "cli-ens", "--user", "42"))
    assert "top 10 for user 42" in listing.stdout


@pytest.mark.parametrize("value", ["0", "21", "x"])
def test_an_ensemble_out_of_range_is_a_clear_error(home, value):
    assert_clean_error(run_cli(home, "train", "--ensemble", value), "--ensemble")


def test_with_own_slices_each_member_holds_out_its_own_and_sides_pair_up(home):
    train = dataset_store.load(home).train
    config = TrainConfig(hidden=[8], ensemble=3, val_slices="own", orientation="both")

    def stars(member):
        side = "item" if member < 3 else "user"
        config_k = dataclasses.replace(config, orientation=side)
        return session.Trainer(train, config_k, CPU, (1.0, 5.0), member=member).validation[2]

    plain = session.Trainer(train, TrainConfig(hidden=[8]), CPU, (1.0, 5.0)).validation[2]
    assert np.array_equal(stars(0), plain)  # the first member's slice is the run's
    assert not np.array_equal(stars(1), stars(0))
    # User member k + 3 holds out item member k's ratings, listed in the same order.
    assert np.array_equal(stars(4), stars(1))


def test_own_slices_report_each_networks_error_and_resume_exactly(home):
    torch.set_num_threads(1)
    config = TrainConfig(hidden=[16], epochs=6, patience=6, objective="rating", ensemble=3)
    own = dataclasses.replace(config, val_slices="own")
    shared, _ = session.train_run(home, config, CPU, run="slices-shared")
    whole, _ = session.train_run(home, own, CPU, run="slices-own")
    members = whole.metrics["members"]
    assert members[0] == {
        **shared.metrics["members"][0],
        "train_seconds": members[0]["train_seconds"],
    }
    # No slice is unseen by the whole: the figure is each member's on its own slice, pooled.
    pooled = np.sqrt(np.mean([m["val_rmse"] ** 2 for m in members]))
    assert whole.metrics["val_rmse"] == pytest.approx(pooled, abs=2e-3)
    assert "val_rmse_by_members" not in whole.metrics
    seen = []
    on_epoch = lambda row: seen.append((row.get("member"), row["epoch"]))  # noqa: E731
    with pytest.raises(AerecError):
        session.train_run(
            home, own, CPU, run="slices-cut", on_epoch=on_epoch, stop=lambda: seen[-1] == (2, 3)
        )
    resumed, _ = session.resume_run(home, "slices-cut", CPU)
    assert resumed.metrics["val_rmse"] == whole.metrics["val_rmse"]


def test_unknown_val_slices_are_a_clear_error(home):
    assert_clean_error(run_cli(home, "train", "--val-slices", "some"), "shared or own")


def test_an_ensemble_stopped_in_its_first_pretraining_is_saved_and_resumes(home):
    torch.set_num_threads(1)
    config = TrainConfig(
        kind="stacked",
        hidden=[8, 4],
        epochs=3,
        objective="rating",
        ensemble=2,
        options={"pretrain_epochs": 2},
    )
    whole, _ = session.train_run(home, config, CPU, run="pre-whole")
    seen = []
    with pytest.raises(AerecError):
        session.train_run(
            home, config, CPU, run="pre-cut", on_epoch=seen.append, stop=lambda: len(seen) == 1
        )
    assert seen[0]["phase"] == "pretrain"
    assert run_store.load_run(home, "pre-cut").metrics["status"] == "interrupted"
    resumed, _ = session.resume_run(home, "pre-cut", CPU)
    assert resumed.metrics["val_rmse"] == whole.metrics["val_rmse"]
