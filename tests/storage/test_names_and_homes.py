"""Names given by the user never leave their folder, and a home aerec cannot use is one clear
error.

Every dataset or run name (``--name``, ``--data``, ``--run``, ``--runs``, ``--resume``, and
a run's dataset as its config.json records it) is one plain folder name: a path such as
``../../other/runs/r`` is refused before anything is read or written. A home that is a file,
holds a file where ``runs/`` or ``datasets/`` should be, or cannot be written is refused with
what to do, not a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from aerec_cli.errors import AerecError
from aerec_cli.storage import dataset_store, paths, run_store
from tests.helpers import TINIEST, assert_clean_error, copy_home, ok, run_cli

ESCAPES = ["../../other/runs/r", "../x", "/tmp/x", "a/b", ".hidden", "..", "-x", "a b", "r\n"]


@pytest.fixture
def homes(tmp_path, trained_template) -> tuple[Path, Path]:
    """(home, other): two trained homes side by side, tmp/home and tmp/other."""
    here, other = tmp_path / "home", tmp_path / "other"
    shutil.copytree(trained_template, here)
    shutil.copytree(trained_template, other)
    return here, other


# --- names (item 4) ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ESCAPES)
def test_check_name_refuses_anything_but_one_plain_name(name):
    for what in ("dataset", "run"):
        with pytest.raises(AerecError, match=f"{what} name"):
            paths.check_name(name, what)


def test_a_run_in_another_home_cannot_be_named(homes):
    home, other = homes
    escape = "../../other/runs/item-run"
    for args in (
        ["train", "--resume", escape],
        ["evaluate", "--run", escape],
        ["evaluate", "--runs", f"user-run,{escape}"],
        ["recommend", "--user", "1", "--run", escape],
        ["similar", "--item", "1", "--run", escape],
        ["plot", escape, "-o", str(home / "x.png")],
    ):
        assert_clean_error(run_cli(home, *args), "run name")
    assert sorted(p.name for p in (other / "runs").iterdir() if not p.name.startswith(".")) == [
        "item-run",
        "user-run",
    ]


def test_a_dataset_in_another_home_cannot_be_named(homes, sources):
    home, _ = homes
    escape = "../../other/datasets/ml1m"
    assert_clean_error(run_cli(home, "train", *TINIEST, "--data", escape), "dataset name")
    assert_clean_error(run_cli(home, "users", "--data", escape), "dataset name")
    assert_clean_error(run_cli(home, "ingest", sources.ml1m_zip, "--name", escape), "dataset name")
    with pytest.raises(AerecError, match="dataset name"):
        dataset_store.load(home, escape)


def test_a_new_run_cannot_be_written_elsewhere(homes):
    home, other = homes
    result = run_cli(home, "train", *TINIEST, "--run", "../../other/runs/new")
    assert_clean_error(result, "run name")
    assert not (other / "runs" / "new").exists()
    with pytest.raises(AerecError, match="run name"):
        run_store.run_lock(home, "../x").__enter__()


def test_a_config_pointing_at_another_dataset_folder_is_damaged(homes):
    home, _ = homes
    path = home / "runs" / "item-run" / "config.json"
    config = json.loads(path.read_text())
    config["dataset"] = "../../other/datasets/ml1m"
    path.write_text(json.dumps(config))
    assert_clean_error(run_cli(home, "evaluate", "--run", "item-run"), "item-run is damaged")
    assert_clean_error(run_cli(home, "train", "--resume", "item-run"), "item-run is damaged")


def test_a_name_too_long_for_the_disk_is_refused_before_training(ingested_home, sources):
    long = "r" * 151
    assert_clean_error(run_cli(ingested_home, "train", *TINIEST, "--run", long), "the most is 150")
    assert not (ingested_home / "runs").exists() or not any((ingested_home / "runs").iterdir())
    name = "d" * 101
    assert_clean_error(
        run_cli(ingested_home, "ingest", sources.ml1m_zip, "--name", name), "the most is 100"
    )
    ok(run_cli(ingested_home, "-q", "train", *TINIEST, "--run", "r" * 150))


def test_a_derived_dataset_name_is_a_valid_name(home, sources, tmp_path):
    source = tmp_path / ("_" + "x" * 150 + ".csv")
    shutil.copy(sources.ml1m.path / "ratings.dat", source)
    summary = ok(run_cli(home, "-q", "ingest", source, "--format", "json")).json()
    assert summary["name"] == "x" * 99


# --- the home (item 15) --------------------------------------------------------------------

COMMANDS = [
    ["datasets"],
    ["runs"],
    ["users"],
    ["train", *TINIEST],
    ["evaluate"],
    ["recommend", "--user", "1"],
]


def test_a_home_that_is_a_file(tmp_path, sources):
    home = tmp_path / "home"
    home.write_text("not a folder")
    for args in [*COMMANDS, ["ingest", sources.ml1m_zip]]:
        assert_clean_error(run_cli(home, *args), "is a file", "--home")
    env = {"AEREC_HOME": str(home)}
    assert_clean_error(run_cli(None, "datasets", env=env), "is a file", "AEREC_HOME")
    assert home.read_text() == "not a folder"


def test_a_home_below_a_file(tmp_path, sources):
    home = tmp_path / "file" / "home"
    home.parent.write_text("")
    assert_clean_error(run_cli(home, "ingest", sources.ml1m_zip), "is a file", "--home")
    assert_clean_error(run_cli(home, "datasets"), "is a file")


@pytest.mark.parametrize("folder", ["datasets", "runs"])
def test_a_file_where_a_store_folder_should_be(tmp_path, trained_template, sources, folder):
    home = copy_home(trained_template, tmp_path)
    shutil.rmtree(home / folder)
    (home / folder).write_text("")
    commands = [*COMMANDS, ["ingest", sources.ml1m_zip, "--name", "x"]]
    if folder == "runs":  # commands that never touch runs/ still work
        commands = [c for c in commands if c[0] not in ("datasets", "users", "ingest")]
    else:
        commands = [c for c in commands if c[0] != "runs"]
    for args in commands:
        assert_clean_error(run_cli(home, *args), f"{home / folder} is a file")


def test_an_unwritable_home(ingested_home, sources, monkeypatch):
    # Root may write anywhere, so the permission check itself is made to fail.
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real(path, mode, **kw)
    )
    assert_clean_error(
        run_cli(ingested_home, "ingest", sources.ml1m_zip, "--name", "x"), "cannot write", "--home"
    )
    assert_clean_error(run_cli(ingested_home, "train", *TINIEST), "cannot write", "--home")
    ok(run_cli(ingested_home, "datasets"))  # reading still works
