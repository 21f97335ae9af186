"""Names of datasets and runs: one rule (storage/paths.check_name), checked up front, so that
every name derived from them on disk (locks, staged and retired folders, a run's default name)
fits the file system."""

from __future__ import annotations

import pytest

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, dataset_store, locks, paths, run_store
from tests.helpers import TINIEST, assert_clean_error, ok, run_cli

LONGEST = "n" * paths.MAX_NAME["run"]
TOO_LONG = "n" * (paths.MAX_NAME["run"] + 1)
LONGEST_DATASET = "n" * paths.MAX_NAME["dataset"]


@pytest.mark.parametrize(
    "check, what",
    [(run_store.check_run_name, "run"), (dataset_store.check_dataset_name, "dataset")],
)
def test_one_length_limit_for_runs_and_one_for_datasets(check, what):
    longest = "n" * paths.MAX_NAME[what]
    assert check(longest) == longest
    for name in (longest + "n", "n" * 255, "n" * 4000):
        with pytest.raises(AerecError, match=f"the most is {paths.MAX_NAME[what]}"):
            check(name)


def test_every_name_derived_from_the_longest_name_can_be_created(tmp_path):
    # The lock, then a staged folder swapped in, then a replacement that retires the old one.
    with locks.name_lock(tmp_path, LONGEST, "busy"):
        for replace in (False, True):
            with atomic.staged_folder(tmp_path / LONGEST, replace=replace) as folder:
                atomic.write_text(folder / "x.txt", "x")
    assert (tmp_path / LONGEST / "x.txt").read_text() == "x"


def test_too_long_run_name_is_refused_before_training(ingested_home):
    result = run_cli(ingested_home, "-q", "train", *TINIEST, "--run", TOO_LONG)
    assert_clean_error(result, "run name", f"the most is {paths.MAX_NAME['run']}")
    assert not (ingested_home / "runs").exists() or not list((ingested_home / "runs").glob("n*"))


def test_the_longest_run_name_trains_evaluates_and_resumes(ingested_home):
    ok(run_cli(ingested_home, "-q", "train", *TINIEST, "--objective", "rating", "--run", LONGEST))
    assert run_store.load_run(ingested_home, LONGEST).metrics["status"] == "finished"
    ok(run_cli(ingested_home, "evaluate", "--run", LONGEST))


def test_too_long_dataset_name_is_refused_before_reading(home):
    too_long = LONGEST_DATASET + "n"
    result = run_cli(home, "-q", "ingest", "/nonexistent/source.csv", "--name", too_long)
    assert_clean_error(result, "dataset name", f"the most is {paths.MAX_NAME['dataset']}")
    assert not (home / "datasets").exists()


def test_a_run_of_the_longest_dataset_name_gets_a_default_name_that_fits(home):
    ok(run_cli(home, "-q", "ingest", "sample", "--name", LONGEST_DATASET))
    result = ok(run_cli(home, "train", *TINIEST, "--objective", "rating"))
    (saved,) = run_store.list_runs(home)
    assert len(saved.name) <= paths.MAX_NAME["run"] and saved.name.startswith("nnn")
    assert "-denoising-" in saved.name and saved.dataset == LONGEST_DATASET
    assert f"run {saved.name}:" in result.stdout
