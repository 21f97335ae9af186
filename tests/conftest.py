"""Shared fixtures: the MovieLens-format sources (built once per session) and aerec homes.

Homes are built once per session as read-only templates (``ingested_template``,
``trained_template``) and handed out as private copies: per test (``ingested_home``,
``scratch``) or per module (``trained``), since evaluate writes into a run's metrics.json.

The CLI helpers (run_cli, ok, assert_clean_error) and the training settings (TINY, TINIEST)
live in tests/helpers.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import fixtures
from tests.helpers import TINY, copy_home, ok, run_cli

# --- fixtures ------------------------------------------------------------------------------


@dataclass
class Sources:
    """Every fixture layout, written once per session (read-only for tests)."""

    root: Path
    ml100k: fixtures.Fixture
    ml100k_zip: Path
    ml1m: fixtures.Fixture
    ml1m_zip: Path
    ml10m: fixtures.Fixture
    ml10m_zip: Path
    latest_small: fixtures.Fixture
    latest_small_zip: Path
    ml25m: fixtures.Fixture
    ml25m_zip: Path


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> Sources:
    root = tmp_path_factory.mktemp("sources")
    folders, zips = root / "folders", root / "zips"
    ml100k = fixtures.write_ml100k(folders)
    ml1m = fixtures.write_ml1m(folders)
    ml10m = fixtures.write_ml10m(folders)
    latest = fixtures.write_ml_latest(folders, "ml-latest-small")
    ml25m = fixtures.write_ml_latest(folders, "ml-25m", seed=19)
    return Sources(
        root,
        ml100k,
        fixtures.zip_folder(ml100k.path, zips / "ml-100k.zip"),
        ml1m,
        fixtures.zip_folder(ml1m.path, zips / "ml-1m.zip"),
        ml10m,
        fixtures.zip_folder(ml10m.path, zips / "ml-10m.zip"),
        latest,
        fixtures.zip_folder(latest.path, zips / "ml-latest-small.zip"),
        ml25m,
        fixtures.zip_folder(ml25m.path, zips / "ml-25m.zip"),
    )


@pytest.fixture(autouse=True)
def _no_real_home(tmp_path, monkeypatch):
    """A command that forgets --home still lands in a temp folder, never the user's data dir."""
    monkeypatch.setenv("AEREC_HOME", str(tmp_path / "env-default-home"))
    monkeypatch.delenv("AEREC_DEVICE", raising=False)


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty aerec home for one test."""
    return tmp_path / "home"


@pytest.fixture(scope="session")
def ingested_template(tmp_path_factory, sources) -> Path:
    """A home holding the ml-1m fixture as dataset ``ml1m`` (copied, never used directly)."""
    template = tmp_path_factory.mktemp("ingested") / "home"
    ok(run_cli(template, "-q", "ingest", sources.ml1m_zip, "--name", "ml1m"))
    return template


@pytest.fixture
def ingested_home(tmp_path, ingested_template) -> Path:
    """A private copy of a home with one small dataset (``ml1m``) ingested."""
    target = copy_home(ingested_template, tmp_path)
    return target


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory, ingested_template) -> Path:
    """Dataset ml1m with runs item-run, then user-run (the latest), trained with TINY once.

    Never used directly: tests get a copy (``trained``, ``scratch``)."""
    template = copy_home(ingested_template, tmp_path_factory.mktemp("trained"))
    train = ["-q", "--device", "cpu", "train", *TINY]
    ok(run_cli(template, *train, "--run", "item-run"))
    ok(run_cli(template, *train, "--orientation", "user", "--run", "user-run"))
    return template


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_template) -> Path:
    """The module's own copy of the trained home (dataset ml1m: 30 users x 40 items; runs
    item-run, then user-run). Tests may evaluate and recommend here, but must not train or
    ingest (use ``ingested_home``) or change files (use ``scratch``)."""
    home = copy_home(trained_template, tmp_path_factory.mktemp("trained-copy"))
    return home


@pytest.fixture
def scratch(tmp_path, trained_template) -> Path:
    """A private copy of the trained home for one test that changes it."""
    home = copy_home(trained_template, tmp_path)
    return home


@pytest.fixture(scope="session")
def planted_template(tmp_path_factory) -> Path:
    """The planted tastes (fixtures.write_planted: item 99 only in the test split) with three
    runs, one per objective: both (the default), stars (rating) and ranks (ranking), the first
    two trained with TINY. Never used directly: tests get a copy (``planted``)."""
    root = tmp_path_factory.mktemp("planted")
    train, test = fixtures.write_planted(root)
    home = root / "home"
    ok(run_cli(home, "-q", "ingest", train, "--test", test))
    ok(run_cli(home, "-q", "train", *TINY, "--run", "both"))
    ok(run_cli(home, "-q", "train", *TINY, "--objective", "rating", "--run", "stars"))
    ok(run_cli(home, "-q", "train", "--objective", "ranking", "--run", "ranks"))
    return home


@pytest.fixture(scope="module")
def planted(tmp_path_factory, planted_template) -> Path:
    """The module's own copy of the planted home (runs both, stars and ranks)."""
    home = copy_home(planted_template, tmp_path_factory.mktemp("planted-copy"))
    return home


@pytest.fixture
def interrupted(ingested_home) -> Path:
    """A home with run "cut": interrupted after epoch 2 of 6, resumable."""
    import torch

    from aerec_cli.errors import AerecError
    from aerec_cli.training import session
    from aerec_cli.training.config import TrainConfig

    torch.set_num_threads(1)
    config = TrainConfig(hidden=[4], epochs=6, patience=6, objective="rating")
    seen: list[dict] = []
    with pytest.raises(AerecError):
        session.train_run(
            ingested_home,
            config,
            torch.device("cpu"),
            run="cut",
            on_epoch=seen.append,
            stop=lambda: len(seen) >= 2,
        )
    return ingested_home
