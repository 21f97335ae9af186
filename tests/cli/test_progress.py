"""Training progress on stderr (cli/progress.py): bars whose totals follow early stopping and
the run's own settings, and plain lines when stderr is not a terminal."""

from __future__ import annotations

import io
import re

import pytest
import torch
from rich.console import Console

from aerec_cli.cli.progress import EVERY_EPOCHS, EpochProgress, Plan
from aerec_cli.errors import AerecError
from aerec_cli.storage import dataset_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import ok, run_cli


def train_row(epoch: int, rmse: float) -> dict:
    return {
        "phase": "train",
        "layer": "",
        "epoch": epoch,
        "train_loss": 1.0,
        "val_rmse": rmse,
        "seconds": 0.01,
    }


def feed(progress: EpochProgress, last: int, best_at: int) -> None:
    """Epochs 1..last whose validation RMSE is lowest at ``best_at``."""
    with progress:
        for epoch in range(1, last + 1):
            progress.update(train_row(epoch, 1.0 + abs(epoch - best_at) / 100))


def test_plain_lines_when_stderr_is_not_a_terminal():
    text = io.StringIO()
    progress = EpochProgress(Console(file=text, force_terminal=False, width=60))
    progress.plan(Plan(epochs=200, patience=10))
    feed(progress, last=25, best_at=15)  # early stopping ends it at 15 + 10
    lines = text.getvalue().splitlines()
    epochs = [int(re.match(r"train epoch (\d+)/", line).group(1)) for line in lines]
    assert epochs == [1, 1 + EVERY_EPOCHS, 1 + 2 * EVERY_EPOCHS, 25]
    assert lines[-1] == "train epoch 25/25: loss 1.0000, val RMSE 1.1000, best 1.0000 at epoch 15"
    middle = lines[1]  # every field on one line, however narrow the console
    assert middle.startswith("train epoch 11/") and "val RMSE 1.0400" in middle
    assert "best 1.0400 at epoch 11" in middle and re.search(r"at most \d+:\d\d:\d\d left", middle)


def test_the_bar_total_follows_early_stopping_and_ends_whole():
    progress = EpochProgress(Console(file=io.StringIO(), force_terminal=True))
    progress.plan(Plan(epochs=200, patience=10))
    with progress:
        for epoch in range(1, 6):
            progress.update(train_row(epoch, 1.0 - epoch / 100))  # better every epoch
        (task,) = progress.progress.tasks
        assert (task.completed, task.total) == (5, 15)  # best 5 + patience 10, not 200
        for epoch in range(6, 12):
            progress.update(train_row(epoch, 2.0))
    assert (task.completed, task.total) == (11, 11)  # stopped early: the bar is whole


def test_an_interrupted_phase_is_not_shown_whole():
    progress = EpochProgress(Console(file=io.StringIO(), force_terminal=True))
    progress.plan(Plan(epochs=200, patience=50))
    with pytest.raises(KeyboardInterrupt), progress:
        progress.update(train_row(1, 1.0))
        raise KeyboardInterrupt
    assert progress.progress.tasks[0].total == 51


@pytest.fixture
def sample_home(tmp_path):
    home = tmp_path / "home"
    dataset_store.ingest("sample", home)
    return home


def test_resume_shows_the_runs_own_epochs_and_best(sample_home):
    torch.set_num_threads(1)
    config = TrainConfig(hidden=[8], epochs=300, patience=300, objective="rating")
    seen = []
    with pytest.raises(AerecError):
        session.train_run(
            sample_home,
            config,
            torch.device("cpu"),
            run="long",
            on_epoch=lambda row: seen.append(row["epoch"]),
            stop=lambda: len(seen) >= 3,
        )
    result = ok(run_cli(sample_home, "train", "--resume", "long", "--epochs", "5"))
    lines = [line for line in result.stderr.splitlines() if line.startswith("train epoch")]
    assert lines[0].startswith("train epoch 4/300:")  # not the default 200, nor --epochs 5
    assert re.match(r"train epoch 300/300: .*best \S+ at epoch \d+$", lines[-1])


def test_cli_training_logs_plain_lines_to_a_pipe(sample_home):
    args = ["train", "--kind", "stacked", "--hidden", "8,4", "--pretrain-epochs", "2"]
    result = ok(run_cli(sample_home, *args, "--epochs", "3", "--objective", "rating"))
    lines = result.stderr.splitlines()
    assert "pretrain layer 1 epoch 1/2: loss" in "\n".join(lines)
    assert any(line.startswith("pretrain layer 2 epoch 2/2: loss") for line in lines)
    assert lines[-1].startswith("train epoch 3/3: loss")
    assert not any("━" in line for line in lines)  # no bars in a log
