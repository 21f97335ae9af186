"""Stopping training (signals, divergence) keeps a usable, resumable run; runs are locked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.storage import dataset_store, run_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import assert_clean_error, ok, run_cli

CPU = torch.device("cpu")
AEREC = [sys.executable, "-m", "aerec_cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("interrupt-home")
    dataset_store.ingest("sample", home)
    return home


def _stop_after(epoch):
    seen = []

    def on_epoch(row):
        if row["phase"] == "train":
            seen.append(row["epoch"])

    return on_epoch, (lambda: bool(seen) and seen[-1] >= epoch)


@pytest.mark.parametrize("kind", ["denoising", "deep"])
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(home, kind):
    torch.set_num_threads(1)
    config = TrainConfig(
        kind=kind,
        hidden=[32, 16] if kind == "deep" else [32],
        epochs=8,
        patience=8,
        options={"pretrain_epochs": 2} if kind == "deep" else {},
    )
    whole, _ = session.train_run(home, config, CPU, run=f"{kind}-whole")

    on_epoch, stop = _stop_after(3)
    with pytest.raises(AerecError) as stopped:
        session.train_run(home, config, CPU, run=f"{kind}-cut", on_epoch=on_epoch, stop=stop)
    assert stopped.value.exit_code == 130
    assert f"aerec train --resume {kind}-cut" in stopped.value.message
    cut = run_store.load_run(home, f"{kind}-cut")
    assert cut.metrics["status"] == "interrupted" and cut.metrics["epochs_run"] == 3
    assert (cut.path / run_store.RESUME_TENSORS).is_file()

    resumed, _ = session.resume_run(home, f"{kind}-cut", CPU)
    assert resumed.metrics["status"] == "finished"
    assert not (resumed.path / run_store.RESUME_TENSORS).exists()
    assert abs(resumed.metrics["val_rmse"] - whole.metrics["val_rmse"]) < 1e-6
    assert resumed.metrics["epochs_run"] == whole.metrics["epochs_run"]
    with pytest.raises(AerecError, match="no state to resume"):
        session.resume_run(home, f"{kind}-cut", CPU)


def _stop_in_pretraining(layer, epoch):
    seen = []

    def on_epoch(row):
        seen.append((row["phase"], row.get("layer"), row["epoch"]))

    return on_epoch, (lambda: bool(seen) and seen[-1] == ("pretrain", layer, epoch))


@pytest.mark.parametrize(("kind", "layer", "epoch"), [("stacked", 1, 1), ("deep", 2, 3)])
def test_stop_in_pretraining_resumes_exactly_like_an_uninterrupted_run(home, kind, layer, epoch):
    torch.set_num_threads(1)
    config = TrainConfig(
        kind=kind,
        hidden=[16, 8],
        epochs=4,
        patience=4,
        objective="rating",
        options={"pretrain_epochs": 3},
    )
    whole, _ = session.train_run(home, config, CPU, run=f"{kind}-pre-whole")
    on_epoch, stop = _stop_in_pretraining(layer, epoch)
    name = f"{kind}-pre-cut-{layer}-{epoch}"
    with pytest.raises(AerecError) as stopped:
        session.train_run(home, config, CPU, run=name, on_epoch=on_epoch, stop=stop)
    assert stopped.value.exit_code == 130
    assert f"in pretraining, after epoch {epoch} of layer {layer}" in stopped.value.message
    assert f"aerec train --resume {name}" in stopped.value.message
    cut = run_store.load_run(home, name)
    assert cut.metrics["status"] == "interrupted" and cut.metrics["epochs_run"] == 0
    assert len(cut.history()) == 3 * (layer - 1) + epoch  # the pretraining rows so far

    resumed, _ = session.resume_run(home, name, CPU)
    assert resumed.metrics["status"] == "finished"
    assert resumed.metrics["val_rmse"] == whole.metrics["val_rmse"]
    assert resumed.metrics["epochs_run"] == whole.metrics["epochs_run"]
    assert [r["train_loss"] for r in resumed.history()] == [
        r["train_loss"] for r in whole.history()
    ]
    for key, value in whole.load_model(CPU).state_dict().items():
        assert torch.equal(value, resumed.load_model(CPU).state_dict()[key]), key


def test_sigint_in_pretraining_stops_after_the_epoch_with_a_resumable_run(home):
    process = subprocess.Popen(
        [
            *AEREC,
            "--home",
            str(home),
            "--threads",
            "1",
            "-v",
            "train",
            "--kind",
            "deep",
            "--pretrain-epochs",
            "300",  # about 10 s a layer: long enough to be stopped in, finite if not
            "--epochs",
            "2",
            "--objective",
            "rating",
            "--run",
            "sig-pre",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    for line in process.stderr:
        if "pretrain 1 epoch 2:" in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert "in pretraining" in stderr and "aerec train --resume sig-pre" in stderr
    assert "Traceback" not in stderr
    run = run_store.load_run(home, "sig-pre")
    assert run.metrics["status"] == "interrupted"
    assert (run.path / run_store.RESUME_TENSORS).is_file()


def test_a_second_ctrl_c_in_pretraining_says_interrupted(home, monkeypatch):
    from aerec_cli.training import pretraining

    calls = []
    real_epoch = pretraining._rbm_epoch

    def second_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 2:  # what stop_on_signals raises on a second Ctrl-C
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(pretraining, "_rbm_epoch", second_ctrl_c)
    result = run_cli(home, "train", "--kind", "deep", "--hidden", "8,4", "--run", "twice")
    assert result.exit_code == 130
    assert_clean_error(result, "interrupted")


def test_sigint_saves_a_resumable_run_and_resume_finishes_it(home):
    command = [
        sys.executable,
        "-m",
        "aerec_cli",
        "--home",
        str(home),
        "--threads",
        "1",
        "-v",
        "train",
        "--epochs",
        "500",
        "--patience",
        "500",
        "--hidden",
        "16",
        "--run",
        "sig",
    ]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    for line in process.stderr:
        if "train  epoch 2:" in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert "aerec train --resume sig" in stderr and "Traceback" not in stderr
    run = run_store.load_run(home, "sig")
    assert run.metrics["status"] == "interrupted"
    ok(run_cli(home, "evaluate", "--run", "sig"))  # the best weights so far are usable
    # The run's own settings apply on resume (the --epochs given here is ignored).
    resumed = ok(run_cli(home, "train", "--resume", "sig", "--epochs", "1"))
    assert "run sig" in resumed.stdout
    finished = run_store.load_run(home, "sig").metrics
    assert finished["status"] == "finished" and finished["epochs_run"] == 500


def test_divergence_keeps_the_last_good_weights(home, monkeypatch):
    real_epoch = session.Trainer._epoch

    def poisoned(self):
        loss, rmse = real_epoch(self)
        return (float("nan"), rmse) if self.epoch == 3 else (loss, rmse)

    monkeypatch.setattr(session.Trainer, "_epoch", poisoned)
    result = run_cli(home, "train", "--hidden", "16", "--epochs", "10", "--run", "nan")
    assert_clean_error(result, "diverged at epoch 4")
    assert "lower --lr" in result.stderr and "saved in run nan" in result.stderr
    run = run_store.load_run(home, "nan")
    assert run.metrics["status"] == "diverged" and run.metrics["best_epoch"] <= 3
    assert not (run.path / run_store.RESUME_TENSORS).exists()
    weights = run.load_model(CPU).state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_divergence_in_the_first_epoch_saves_nothing(home):
    result = run_cli(home, "train", "--hidden", "16", "--lr", "1e30", "--run", "boom")
    assert_clean_error(result, "diverged at epoch 1")
    assert not (home / "runs" / "boom").exists()


def test_second_trainer_of_the_same_run_is_refused(home):
    with run_store.run_lock(home, "busy"):
        result = run_cli(home, "train", "--epochs", "1", "--run", "busy")
    assert_clean_error(result, "being trained by another aerec process")
    ok(run_cli(home, "train", "--epochs", "1", "--hidden", "8", "--run", "busy"))


def test_resume_of_a_finished_or_unknown_run_is_a_clear_error(home):
    ok(run_cli(home, "train", "--epochs", "1", "--hidden", "8", "--run", "done"))
    assert_clean_error(run_cli(home, "train", "--resume", "done"), "no state to resume")
    assert_clean_error(run_cli(home, "train", "--resume", "nope"), "no run named")


def test_saved_state_round_trips_through_json_and_safetensors(home):
    dataset = dataset_store.load(home, "sample")
    config = TrainConfig(hidden=[8], epochs=2, patience=2)
    trainer = session.Trainer(dataset.train, config, CPU, dataset.rating_scale)
    trainer.fit()
    tensors, info = trainer.state()
    json.dumps(info)  # plain values only
    twin = session.Trainer(dataset.train, config, CPU, dataset.rating_scale)
    twin.restore(tensors, info)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, twin.model.state_dict()[key])
    assert np.isclose(twin.best_rmse, trainer.best_rmse)


# --- runs trained with --objective ranking: the ranker alone --------------------------------


def _stop_ranker_after(epoch):
    seen = []

    def on_epoch(row):
        if row["phase"] == "rank":
            seen.append(row["epoch"])

    return on_epoch, (lambda: bool(seen) and seen[-1] >= epoch)


def test_an_interrupted_ranking_run_keeps_its_best_ranker_and_resume_trains_it_again(home):
    torch.set_num_threads(1)
    config = TrainConfig(objective="ranking", rank_epochs=10)
    whole, _ = session.train_run(home, config, CPU, run="rank-whole")

    on_epoch, stop = _stop_ranker_after(7)
    with pytest.raises(AerecError) as stopped:
        session.train_run(home, config, CPU, run="rank-cut", on_epoch=on_epoch, stop=stop)
    assert stopped.value.exit_code == 130
    assert "aerec train --resume rank-cut trains it again" in stopped.value.message
    cut = run_store.load_run(home, "rank-cut")
    assert cut.metrics["status"] == "interrupted"
    assert cut.metrics["epochs_run"] == 7 and cut.metrics["best_epoch"] == 5  # checked at 5
    assert (cut.path / run_store.RESUME_INFO).is_file()
    assert not (cut.path / run_store.RESUME_TENSORS).exists()  # nothing to continue from
    ok(run_cli(home, "recommend", "--user", "1", "--run", "rank-cut"))  # usable as it is

    resumed = ok(run_cli(home, "train", "--resume", "rank-cut"))
    assert "training the ranker of run rank-cut again from its first epoch" in resumed.stderr
    done = run_store.load_run(home, "rank-cut")
    assert done.metrics["status"] == "finished" and done.metrics["epochs_run"] == 10
    assert not (done.path / run_store.RESUME_INFO).exists()
    assert done.metrics["val_ndcg@10"] == whole.metrics["val_ndcg@10"]
    expected = whole.load_ranker(CPU)[0].state_dict()
    for key, value in done.load_ranker(CPU)[0].state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-6), key
    assert_clean_error(run_cli(home, "train", "--resume", "rank-cut"), "no state to resume")


def test_a_ranking_run_stopped_before_its_first_check_saves_nothing(home):
    on_epoch, stop = _stop_ranker_after(2)
    config = TrainConfig(objective="ranking")
    with pytest.raises(AerecError, match="first validation check") as stopped:
        session.train_run(home, config, CPU, run="rank-early", on_epoch=on_epoch, stop=stop)
    assert stopped.value.exit_code == 130
    assert not (home / "runs" / "rank-early").exists()
