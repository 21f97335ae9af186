"""evaluate beside a trainer of the same run: it scores the version it read, and recording its
metrics never undoes a newer state (run_store.Run.update_metrics)."""

from __future__ import annotations

import torch

from aerec_cli.evaluation import evaluator
from aerec_cli.storage import run_store
from aerec_cli.training import session
from tests.helpers import assert_clean_error, ok, run_cli

CPU = torch.device("cpu")


def during_evaluation(monkeypatch, action):
    """Run ``action`` once evaluate has read the run, before it records its metrics."""
    build = evaluator._Reference.build

    def build_then_act(*args, **kwargs):
        action()
        return build(*args, **kwargs)

    monkeypatch.setattr(evaluator._Reference, "build", build_then_act)


def test_evaluate_during_a_resume_leaves_the_finished_run_as_the_resume_saved_it(
    interrupted, monkeypatch
):
    home = interrupted
    during_evaluation(monkeypatch, lambda: session.resume_run(home, "cut", CPU))
    result = ok(run_cli(home, "evaluate", "--run", "cut", "--format", "json"))
    assert "changed while it was evaluated" in result.stderr
    finished = run_store.load_run(home, "cut").metrics
    assert finished["status"] == "finished" and finished["epochs_run"] == 6
    assert "test" not in finished  # the old version's numbers are not the new weights'
    # And the finished run is what it says: nothing left to resume, evaluate records.
    assert_clean_error(run_cli(home, "train", "--resume", "cut"), "it is finished")
    monkeypatch.undo()
    ok(run_cli(home, "evaluate", "--run", "cut"))
    assert "test" in run_store.load_run(home, "cut").metrics


def test_evaluate_while_the_run_is_being_trained_records_nothing(interrupted, monkeypatch):
    home = interrupted
    before = (home / "runs" / "cut" / run_store.METRICS).read_bytes()
    monkeypatch.setattr(run_store, "METRICS_WAIT", 0)
    with run_store.run_lock(home, "cut"):  # what `train --resume cut` holds while it trains
        result = ok(run_cli(home, "evaluate", "--run", "cut"))
    assert "is being trained; its metrics were not updated" in result.stderr
    assert (home / "runs" / "cut" / run_store.METRICS).read_bytes() == before
    assert run_store.load_run(home, "cut").metrics["status"] == "interrupted"
    ok(run_cli(home, "train", "--resume", "cut"))  # still resumable


def test_recording_merges_into_the_metrics_on_disk(interrupted):
    home = interrupted
    first, second = run_store.load_run(home, "cut"), run_store.load_run(home, "cut")
    assert first.update_metrics(test={"rmse": 1.0}) is None
    assert second.update_metrics(note="kept") is None  # read before the first write
    metrics = run_store.load_run(home, "cut").metrics
    assert metrics["test"] == {"rmse": 1.0} and metrics["note"] == "kept"
    assert metrics["status"] == "interrupted" and metrics["epochs_run"] == 2
