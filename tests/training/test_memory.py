"""The memory a run needs is estimated before anything is allocated (training/memory.py): a run
that cannot fit is refused with the figure and what is available."""

from __future__ import annotations

import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models import kinds
from aerec_cli.models.batches import oriented
from aerec_cli.storage import dataset_store
from aerec_cli.training import memory, session
from aerec_cli.training.config import TrainConfig
from tests.helpers import assert_clean_error, ok, run_cli

GB = 10**9


def no_runs(home) -> bool:
    return not (home / "runs").exists() or not list((home / "runs").glob("[!.]*"))


@pytest.mark.parametrize("kind", list(kinds.KINDS))
def test_the_parameter_count_is_the_networks(kind):
    hidden = [12, 6] if kinds.KINDS[kind].hidden.deep else [12]
    model = session.build_for(TrainConfig(kind=kind, hidden=hidden), 30)
    assert memory.parameters([30, *hidden]) == sum(p.numel() for p in model.parameters())


def test_a_network_no_machine_holds_is_refused_before_allocating(ingested_home):
    result = run_cli(ingested_home, "train", "--hidden", "1000000000", "--epochs", "1")
    assert_clean_error(result, "this run needs about", "TB of memory", "is available")
    assert "--hidden (now 1000000000)" in result.stderr
    assert no_runs(ingested_home)


def test_refused_with_the_figure_and_the_memory_available(ingested_home, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 8 * GB)
    args = ["--kind", "sparse", "--hidden", "2000000", "--epochs", "1"]
    message = assert_clean_error(run_cli(ingested_home, "train", *args), "8.0 GB is available")
    assert "GB of memory" in message and "the weights, their gradients and Adam's state" in message
    assert no_runs(ingested_home)


def test_the_estimate_is_the_line_between_training_and_refusing(ingested_home, monkeypatch):
    dataset = dataset_store.load(ingested_home)
    config = TrainConfig(hidden=[8], epochs=1, objective="rating")
    parts = memory.needs(config, oriented(dataset.train, "item"), n_items=40)
    total = sum(size for _, size, _ in parts)
    args = ["-q", "train", "--hidden", "8", "--epochs", "1", "--objective", "rating"]
    monkeypatch.setattr(memory, "available", lambda: total - 1)
    assert_clean_error(run_cli(ingested_home, *args), "is available")
    monkeypatch.setattr(memory, "available", lambda: total)
    ok(run_cli(ingested_home, *args))


def test_the_ranker_counts_when_the_run_trains_one(ingested_home):
    train = oriented(dataset_store.load(ingested_home).train, "item")
    both = memory.needs(TrainConfig(hidden=[8]), train, n_items=40)
    rating = memory.needs(TrainConfig(hidden=[8], objective="rating"), train, n_items=40)
    assert {what for what, _, _ in both} - {what for what, _, _ in rating} == {
        "the ranker's network",
        "the ranker's EASE",
    }


def test_an_ensemble_counts_its_members_and_their_mean(ingested_home):
    train = oriented(dataset_store.load(ingested_home).train, "item")
    single = dict(p[:2] for p in memory.needs(TrainConfig(hidden=[8]), train, n_items=40))
    trio = dict(p[:2] for p in memory.needs(TrainConfig(hidden=[8], ensemble=3), train, n_items=40))
    p = memory.parameters([train.shape[1], 8])
    assert trio.pop("the ensemble's members and their mean") == 5 * p * memory.FLOAT
    assert trio["saving the run"] == 3 * single["saving the run"]
    assert trio["the serving file"] > single["the serving file"]


def test_a_gpu_run_is_checked_against_the_gpus_free_memory(ingested_home, monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (GB, 80 * GB))
    train = dataset_store.load(ingested_home).train
    config = TrainConfig(kind="sparse", hidden=[10_000_000])
    with pytest.raises(AerecError, match="of memory on cuda:0 .* 1.0 GB is available"):
        memory.check_fits(config, train, torch.device("cuda", 0))


def test_without_a_reading_of_memory_nothing_is_refused(ingested_home, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: None)
    train = dataset_store.load(ingested_home).train
    memory.check_fits(TrainConfig(hidden=[10**9]), train, torch.device("cpu"))
