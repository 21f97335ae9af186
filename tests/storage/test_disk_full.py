"""A full disk (ENOSPC from the atomic writer): every command says what failed, that what was
stored is intact, and what to do; a finished training that cannot be saved keeps a resumable
state where one fits."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, run_store
from aerec_cli.training import session
from tests.helpers import TINIEST, assert_clean_error, ok, run_cli

CPU = torch.device("cpu")
RATING = [*TINIEST, "--objective", "rating"]


def fill_disk(monkeypatch, *names: str) -> None:
    """The atomic writer fails with ENOSPC, for files of these names only if any are given."""
    real = atomic.atomic_open

    @contextlib.contextmanager
    def full(path, *args, **kwargs):
        if not names or Path(path).name in names:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        with real(path, *args, **kwargs) as handle:
            yield handle

    monkeypatch.setattr(atomic, "atomic_open", full)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temp names included) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.glob(".*") if not p.name.endswith(".lock")]


# --- ingest -----------------------------------------------------------------------------


def test_ingest_on_a_full_disk_stores_nothing(home, monkeypatch):
    fill_disk(monkeypatch)
    result = run_cli(home, "ingest", "sample")
    assert_clean_error(result, "could not be stored", "no space left", "unchanged", "free some")
    assert not (home / "datasets" / "sample").exists()
    assert no_leftovers(home / "datasets")


def test_ingest_force_on_a_full_disk_keeps_the_earlier_version(ingested_home, monkeypatch):
    before = snapshot(ingested_home / "datasets")
    fill_disk(monkeypatch, "items.csv")  # part way through the new version
    result = run_cli(ingested_home, "ingest", "sample", "--name", "ml1m", "--force")
    assert_clean_error(result, "no space left", "dataset ml1m keeps its earlier version")
    assert snapshot(ingested_home / "datasets") == before


# --- train and resume ---------------------------------------------------------------------


def test_train_on_a_full_disk_says_nothing_was_saved(ingested_home, monkeypatch):
    fill_disk(monkeypatch)
    result = run_cli(ingested_home, "train", *RATING, "--run", "r")
    assert_clean_error(result, "run r could not be saved", "no space left", "nothing was saved")
    assert not (ingested_home / "runs" / "r").exists()
    assert no_leftovers(ingested_home / "runs")


def test_a_finished_run_that_cannot_be_saved_keeps_a_resumable_state(ingested_home, monkeypatch):
    fill_disk(monkeypatch, run_store.RANKER)  # the whole run does not fit, its state does
    result = run_cli(ingested_home, "train", *TINIEST, "--run", "r")
    assert_clean_error(result, "no space left", "keeps a resumable state", "--resume r")
    kept = run_store.load_run(ingested_home, "r")
    assert kept.metrics["status"] == "interrupted" and kept.metrics["epochs_run"] == 2
    monkeypatch.undo()
    ok(run_cli(ingested_home, "-q", "train", "--resume", "r"))
    finished = run_store.load_run(ingested_home, "r")
    assert finished.metrics["status"] == "finished" and finished.has_ranker
    phases = [row["phase"] for row in finished.history()]
    assert phases.count("train") == 2 and phases.index("rank") == 2  # the ranker's rows once


def test_an_unwritable_serving_file_is_a_warning_and_built_on_first_use(ingested_home, monkeypatch):
    fill_disk(monkeypatch, "serving.safetensors")
    result = ok(run_cli(ingested_home, "train", *RATING, "--run", "r"))
    assert "warning: run r is saved, but its serving file could not be written" in result.stderr
    assert run_store.load_run(ingested_home, "r").metrics["status"] == "finished"
    assert_clean_error(run_cli(ingested_home, "evaluate"), "no space left", "run is unchanged")
    monkeypatch.undo()
    ok(run_cli(ingested_home, "evaluate"))


def test_resume_on_a_full_disk_keeps_the_earlier_state(interrupted, monkeypatch):
    before = snapshot(interrupted / "runs" / "cut")
    fill_disk(monkeypatch)
    result = run_cli(interrupted, "train", "--resume", "cut")
    assert_clean_error(result, "no space left", "keeps its earlier state", "--resume cut")
    assert snapshot(interrupted / "runs" / "cut") == before
    monkeypatch.undo()
    ok(run_cli(interrupted, "-q", "train", "--resume", "cut"))
    assert run_store.load_run(interrupted, "cut").metrics["epochs_run"] == 6


def test_an_interruption_that_cannot_be_saved_says_so(interrupted, monkeypatch):
    fill_disk(monkeypatch)
    seen = []
    with pytest.raises(AerecError) as stopped:
        session.resume_run(interrupted, "cut", CPU, on_epoch=seen.append, stop=lambda: True)
    message = stopped.value.message
    assert "interrupted, and run cut could not be saved: no space left" in message
    assert "keeps its earlier state" in message and stopped.value.exit_code == 130
    assert run_store.load_run(interrupted, "cut").metrics["epochs_run"] == 2


# --- evaluate and exports -------------------------------------------------------------------


def test_evaluate_on_a_full_disk_reports_and_leaves_the_run_unchanged(scratch, monkeypatch):
    before = snapshot(scratch / "runs" / "item-run")
    fill_disk(monkeypatch)
    result = ok(run_cli(scratch, "evaluate", "--run", "item-run", "--format", "json"))
    assert result.json()["run"] == "item-run"
    assert "could not be updated (no space left on the disk" in result.stderr
    assert snapshot(scratch / "runs" / "item-run") == before


def test_an_export_on_a_full_disk_is_one_clean_line(scratch, monkeypatch, tmp_path):
    fill_disk(monkeypatch)
    result = run_cli(scratch, "recommend", "--all-users", "-o", tmp_path / "all.csv")
    assert_clean_error(result, "no space left")
    assert not (tmp_path / "all.csv").exists()
