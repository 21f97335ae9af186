"""TrainConfig.check: every numeric setting, the kind options included, is finite and in range
before anything is built (a value that trains nothing is refused by its own flag's name)."""

from __future__ import annotations

import math

import pytest

from aerec_cli.errors import AerecError
from aerec_cli.models import kinds
from aerec_cli.training.config import NUMBERS, TrainConfig, check_threads

NOT_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NOT_FINITE, ids=str)
@pytest.mark.parametrize("rule", [r for r in NUMBERS if r.type is float], ids=lambda r: r.flag)
def test_every_float_setting_refuses_what_is_not_finite(rule, value):
    with pytest.raises(AerecError, match=rule.flag):
        TrainConfig(**{rule.name: value}).check()


@pytest.mark.parametrize("value", NOT_FINITE, ids=str)
@pytest.mark.parametrize(
    ("kind", "option"),
    [(takers[0].name, option) for option, takers in kinds.options() if option.type is float],
    ids=lambda v: v if isinstance(v, str) else v.flag,
)
def test_every_float_kind_option_refuses_what_is_not_finite(kind, option, value):
    with pytest.raises(AerecError, match=f"{option.flag} must be a finite number"):
        TrainConfig(kind=kind, options={option.name: value}).check()


@pytest.mark.parametrize("rule", [r for r in NUMBERS if r.type is int], ids=lambda r: r.flag)
def test_every_whole_number_setting_is_bounded_on_both_sides(rule):
    for value in (rule.low - 1, 10**20):
        with pytest.raises(AerecError, match=rule.flag):
            TrainConfig(**{rule.name: value}).check()
    TrainConfig(**{rule.name: int(rule.high)}).check()  # the bounds themselves are allowed


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [("deep", "cd_steps", 10**6), ("stacked", "pretrain_epochs", 10**20)],
)
def test_whole_number_kind_options_have_an_upper_bound(kind, option, value):
    with pytest.raises(AerecError, match=option.replace("_", "-")):
        TrainConfig(kind=kind, options={option: value}).check()


def test_seed_fits_every_generator():
    for seed in (-1, 2**32, 99999999999999999999):
        with pytest.raises(AerecError, match="--seed"):
            TrainConfig(seed=seed).check()
    TrainConfig(seed=2**32 - 1).check()


@pytest.mark.parametrize("threads", [0, -1, 100000, 10**20])
def test_threads_beyond_the_cpus_are_refused(threads):
    with pytest.raises(AerecError, match="--threads must be from 1 to"):
        check_threads(threads)


def test_threads_default_and_one_are_fine():
    check_threads(None)
    check_threads(1)


@pytest.mark.parametrize(
    "busy, cpus, expected", [(0.0, 2, 2), (0.6, 2, 1), (1.0, 2, 1), (7.0, 2, 1), (1.4, 8, 7)]
)
def test_default_threads_leave_out_the_cores_busy_at_the_start(monkeypatch, busy, cpus, expected):
    """torch's threads stall each other when another process holds a core: the default
    counts only the CPUs that other work leaves idle when training begins."""
    from aerec_cli.training import device

    monkeypatch.setattr(device, "available_cpus", lambda: cpus)
    monkeypatch.setattr(device, "busy_cpus", lambda: busy)
    assert device.idle_cpus() == expected
    assert device.configure_threads(None) == expected
    assert device.configure_threads(1) == 1


def test_busy_cpus_counts_the_threads_running_now_less_its_own(monkeypatch, tmp_path):
    from aerec_cli.training import device

    readings = iter(["0.9 1.2 1.5 4/90 1\n", "0.9 1.2 1.5 3/90 1\n", "0.9 1.2 1.5 5/90 1\n"])
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            target = tmp_path / "loadavg"
            target.write_text(next(readings))
            return real_open(target, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert device.busy_cpus(samples=3, pause=0) == 2.0  # the fewest (3), less this process


def test_busy_cpus_without_proc_falls_back_to_the_load_average(monkeypatch):
    from aerec_cli.training import device

    def missing(*args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr("builtins.open", missing)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert device.busy_cpus(samples=1) == 1.5


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3"])
def test_the_python_api_checks_the_split_seed_as_the_cli_does(tmp_path, seed):
    from aerec_cli.api import Home

    with pytest.raises(AerecError, match="seed"):
        Home(tmp_path / "home").ingest("sample", seed=seed)
    assert not (tmp_path / "home" / "datasets").exists()


def test_the_default_batch_size_doubles_only_on_very_large_data():
    from aerec_cli.training.config import LARGE_DATA_RATINGS, default_batch_size

    assert default_batch_size(85_500) == default_batch_size(LARGE_DATA_RATINGS - 1) == 256
    assert default_batch_size(LARGE_DATA_RATINGS) == 512
    assert TrainConfig().batch(LARGE_DATA_RATINGS) == 512
    assert TrainConfig(batch_size=64).batch(LARGE_DATA_RATINGS) == 64  # a given size stays
    TrainConfig().check()  # None (by the data) is valid; 0 is not:
    with pytest.raises(AerecError, match="--batch-size"):
        TrainConfig(batch_size=0).check()
