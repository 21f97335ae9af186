"""One damaged dataset or run (a stored JSON file of the wrong shape: ``{}``, ``[]``, wrong
types) is reported and skipped; the others keep working; a damaged *latest* one is named
rather than silently passed over for an older one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.storage import dataset_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import TINIEST, assert_clean_error, copy_home, ok, run_cli

WRONG = ["{}", "[]", "3", '"text"', "null"]
META_EDITS = [
    {"users": "30"},
    {"rating_scale": [5, 1]},
    {"rating_scale": "1-5"},
    {"split": []},
    {"histogram": []},
    {"created": 5},
    {"created_ns": "x"},
    {"format_version": None},
    {"files": {"train.npz": 1}},
]


@pytest.fixture(scope="module")
def two_template(tmp_path_factory, ingested_template, sources) -> Path:
    """Datasets ml1m, then late (the latest), and a run on each (r-late the latest)."""
    home = copy_home(ingested_template, tmp_path_factory.mktemp("two"))
    ok(run_cli(home, "-q", "ingest", sources.ml1m_zip, "--name", "late"))
    ok(run_cli(home, "-q", "train", *TINIEST, "--data", "ml1m", "--run", "r-ml1m"))
    ok(run_cli(home, "-q", "train", *TINIEST, "--data", "late", "--run", "r-late"))
    return home


@pytest.fixture
def two(tmp_path, two_template) -> Path:
    """A private copy of ``two_template``, file times kept (they order damaged entries)."""
    home = copy_home(two_template, tmp_path)
    return home


def meta_path(home: Path, name: str) -> Path:
    return home / "datasets" / name / "meta.json"


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def keep_time(path: Path, write) -> None:
    """Change a file but not its time, so the order of entries stays as it was."""
    stat = path.stat()
    write()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --- datasets ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", WRONG)
def test_a_damaged_older_dataset_is_reported_and_the_others_work(two, text):
    keep_time(meta_path(two, "ml1m"), lambda: meta_path(two, "ml1m").write_text(text))
    result = ok(run_cli(two, "datasets", "--format", "json"))
    assert [m["name"] for m in result.json()] == ["late"]
    assert "warning: dataset ml1m is damaged" in result.stderr
    assert "--force" in result.stderr
    table = ok(run_cli(two, "datasets"))
    assert "late" in table.stdout and "ml1m is damaged" in table.stderr
    ok(run_cli(two, "users"))  # the default (the latest) still works
    ok(run_cli(two, "evaluate", "--run", "r-late"))
    assert_clean_error(run_cli(two, "users", "--data", "ml1m"), "ml1m is damaged", "--force")
    assert_clean_error(run_cli(two, "evaluate", "--run", "r-ml1m"), "ml1m is damaged")


@pytest.mark.parametrize("change", META_EDITS, ids=lambda c: next(iter(c)))
def test_meta_with_a_wrong_type_is_reported(two, change):
    keep_time(meta_path(two, "ml1m"), lambda: edit_json(meta_path(two, "ml1m"), **change))
    result = ok(run_cli(two, "datasets"))
    assert "ml1m is damaged" in result.stderr and "late" in result.stdout
    with pytest.raises(AerecError, match="dataset ml1m is damaged"):
        dataset_store.load(two, "ml1m")


@pytest.mark.parametrize("text", ["{}", "[]"])
def test_a_damaged_latest_dataset_is_named_not_passed_over(two, text):
    meta_path(two, "late").write_text(text)
    for args in (["users"], ["train", *TINIEST]):
        assert_clean_error(run_cli(two, *args), "latest dataset, late, is damaged", "--data")
    ok(run_cli(two, "users", "--data", "ml1m"))  # the others still work by name
    ok(run_cli(two, "-q", "train", *TINIEST, "--data", "ml1m"))


def test_a_dataset_folder_without_meta_is_reported(two):
    (two / "datasets" / "stray").mkdir()
    (two / "datasets" / "stray" / "train.npz").write_bytes(b"")
    result = ok(run_cli(two, "datasets", "--format", "json"))
    assert "stray is damaged" in result.stderr
    assert [m["name"] for m in result.json()] == ["ml1m", "late"]


# --- runs ----------------------------------------------------------------------------------


def run_file(home: Path, run: str, name: str) -> Path:
    return home / "runs" / run / name


@pytest.mark.parametrize("filename", ["config.json", "metrics.json"])
@pytest.mark.parametrize("text", WRONG[1:])
def test_a_damaged_older_run_is_reported_and_the_others_work(two, filename, text):
    path = run_file(two, "r-ml1m", filename)
    keep_time(run_file(two, "r-ml1m", "config.json"), lambda: path.write_text(text))
    result = ok(run_cli(two, "runs", "--format", "json"))
    assert [r["run"] for r in result.json()] == ["r-late"]
    assert "warning: run r-ml1m is damaged" in result.stderr
    ok(run_cli(two, "runs"))
    ok(run_cli(two, "recommend", "--user", "1"))  # the default: the latest, intact
    assert_clean_error(run_cli(two, "evaluate", "--run", "r-ml1m"), "r-ml1m is damaged")


@pytest.mark.parametrize(
    "change",
    [{"val_rmse": "0.9"}, {"test": []}, {"test": {"rmse": "x"}}, {"epochs_run": 2.5},
     {"status": 3}],
    ids=lambda c: next(iter(c)),
)  # fmt: skip
def test_metrics_of_the_wrong_type_do_not_break_the_listing(two, change):
    path = run_file(two, "r-ml1m", "metrics.json")
    keep_time(run_file(two, "r-ml1m", "config.json"), lambda: edit_json(path, **change))
    result = ok(run_cli(two, "runs"))
    assert "r-late" in result.stdout and "r-ml1m is damaged" in result.stderr


@pytest.mark.parametrize("change", [{"kind": 3}, {"train": []}, {"created": 5}])
def test_config_of_the_wrong_type_is_damaged(two, change):
    edit_json(run_file(two, "r-ml1m", "config.json"), **change)
    assert_clean_error(run_cli(two, "evaluate", "--run", "r-ml1m"), "r-ml1m is damaged")
    assert_clean_error(run_cli(two, "train", "--resume", "r-ml1m"), "r-ml1m is damaged")


@pytest.mark.parametrize("text", ["{}", "[]"])
def test_a_damaged_latest_run_is_named_not_passed_over(two, text):
    run_file(two, "r-late", "config.json").write_text(text)
    for args in (["evaluate"], ["recommend", "--user", "1"], ["similar", "--item", "1"]):
        assert_clean_error(run_cli(two, *args), "latest run, r-late, is damaged", "--run")
    ok(run_cli(two, "recommend", "--user", "1", "--run", "r-ml1m"))
    listed = ok(run_cli(two, "runs", "--format", "json"))
    assert [r["run"] for r in listed.json()] == ["r-ml1m"]


@pytest.mark.parametrize(
    "info",
    ["{}", "[]", '{"epoch": "3", "best_epoch": 1, "best_rmse": 1.0, "seconds": 1.0, '
     '"history": [], "adam_groups": []}'],
    ids=["empty", "list", "text-epoch"],
)  # fmt: skip
def test_resume_state_of_the_wrong_type_is_a_clear_error(tmp_path, info):
    home = tmp_path / "home"
    dataset_store.ingest("sample", home)
    seen = []

    def on_epoch(row):
        seen.append(row)

    config = TrainConfig(hidden=[8], epochs=5)
    with pytest.raises(AerecError):
        session.train_run(
            home, config, torch.device("cpu"), run="cut", on_epoch=on_epoch, stop=lambda: bool(seen)
        )
    run_file(home, "cut", "resume.json").write_text(info)
    assert_clean_error(run_cli(home, "train", "--resume", "cut"), "resume state", "damaged")


def test_an_entry_whose_meta_cannot_be_read_is_dated_by_its_file(two):
    # Its own time stamp is unreadable, so a meta.json just written over counts as the
    # newest: the user is told, rather than the default quietly moving to another dataset.
    time.sleep(0.01)
    meta_path(two, "ml1m").write_text("{}")
    assert_clean_error(run_cli(two, "users"), "latest dataset, ml1m, is damaged")
