"""`aerec ingest TRAIN --test TEST`: a split the user brings, stored as the dataset's split."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from aerec_cli.errors import AerecError
from aerec_cli.storage import dataset_store
from tests import fixtures
from tests.helpers import TINY, assert_clean_error, ok, run_cli, stored_items, stored_ratings


def split_frame(ratings: pd.DataFrame, test_share: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(ratings)) < test_share
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def same_pairs(stored: pd.DataFrame, written: pd.DataFrame) -> None:
    key = ["user", "item"]
    left = stored[[*key, "rating"]].sort_values(key).reset_index(drop=True)
    right = written[[*key, "rating"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def ingest(home, *args):
    return run_cli(home, "ingest", *args)


def test_generic_csv_pair(home, tmp_path):
    train, test = split_frame(fixtures.synthetic_ratings(seed=3))
    header = ["user", "item", "rating", "timestamp"]
    train_path = fixtures.write_generic(tmp_path / "train.csv", train, ",", header)
    test_path = fixtures.write_generic(tmp_path / "test.tsv", test, "\t")  # any layout
    result = ok(ingest(home, train_path, "--test", test_path, "--format", "json"))
    summary = result.json()
    assert summary["name"] == "train" and summary["format"] == "csv"
    assert (summary["train"], summary["test"]) == (len(train), len(test))
    stored_train, stored_test = stored_ratings(summary["path"])
    same_pairs(stored_train, train)
    same_pairs(stored_test, test)
    meta = json.loads((home / "datasets" / "train" / "meta.json").read_text())
    assert meta["split"]["method"] == "given"
    assert meta["split"]["test_source"] == str(test_path)
    assert meta["split"]["test_unseen"] == 0
    table = ok(ingest(home, train_path, "--test", test_path, "--name", "t2"))
    assert "given (test: " in table.stdout


def test_movielens_layout_pair(home, sources, tmp_path):
    """TRAIN: an ml-1m folder (titles from its movies.dat); TEST: a lone ratings.dat."""
    train_dir = tmp_path / "train" / "ml-1m"
    shutil.copytree(sources.ml1m.path, train_dir)
    lines = (train_dir / "ratings.dat").read_text().splitlines(keepends=True)
    (train_dir / "ratings.dat").write_text("".join(lines[:300]))
    test_file = tmp_path / "test" / "ml-1m" / "ratings.dat"
    test_file.parent.mkdir(parents=True)
    test_file.write_text("".join(lines[300:]))
    summary = ok(ingest(home, train_dir, "--test", test_file, "--format", "json")).json()
    assert summary["format"] == "ml-1m" and summary["rating_scale"] == [1.0, 5.0]
    assert (summary["train"], summary["test"], summary["ratings"]) == (300, 100, 400)
    items = stored_items(summary["path"]).set_index("item")
    assert items.loc["2", "title"] == fixtures.LATIN1_TITLE
    assert items["title"].ne("").all()  # every item has its title, from TRAIN's movies.dat


def test_unseen_test_ids_are_kept_counted_and_evaluated(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=5)
    train, test = split_frame(ratings)
    extra = pd.DataFrame(
        {"user": ["900", "900", "3"], "item": ["1", "2", "950"], "rating": [4.0, 2.0, 5.0],
         "timestamp": [1, 2, 3]}
    )  # fmt: skip
    test = pd.concat([test, extra], ignore_index=True)
    train_path = fixtures.write_generic(tmp_path / "train.csv", train)
    test_path = fixtures.write_generic(tmp_path / "test.csv", test)
    result = ok(ingest(home, train_path, "--test", test_path, "--name", "d", "--format", "json"))
    assert "3 test rating(s) of users or items not in the train source" in result.stderr
    assert "bias baseline" in result.stderr
    summary = result.json()
    assert summary["users"] == 31 and summary["items"] == 41  # user 900 and item 950 kept
    assert summary["test"] == len(test)
    meta = json.loads((home / "datasets" / "d" / "meta.json").read_text())
    assert meta["split"]["test_unseen"] == 3
    ok(run_cli(home, "-q", "train", *TINY, "--run", "r"))
    report = ok(run_cli(home, "evaluate", "--format", "json")).json()
    assert report["n_test"] == len(test) and report["n_fallback"] >= 3
    assert np.isfinite(report["rmse"])
    # predict scores the unseen ones too (by the bias baseline), like evaluate.
    pairs = tmp_path / "pairs.csv"
    test[["user", "item", "rating"]].to_csv(pairs, index=False)
    predicted = ok(run_cli(home, "predict", "--pairs", pairs, "--format", "json")).json()
    assert predicted["rmse"] == pytest.approx(report["rmse"], abs=1e-6)


def test_pairs_in_both_files_warn(home, tmp_path):
    train, test = split_frame(fixtures.synthetic_ratings(seed=3))
    test = pd.concat([test, train.iloc[:2]], ignore_index=True)
    train_path = fixtures.write_generic(tmp_path / "train.csv", train)
    test_path = fixtures.write_generic(tmp_path / "test.csv", test)
    result = ok(ingest(home, train_path, "--test", test_path))
    assert "2 (user, item) pair(s) are in both train and test" in result.stderr


def test_from_python(home, tmp_path):
    train, test = split_frame(fixtures.synthetic_ratings(seed=3))
    train_path = fixtures.write_generic(tmp_path / "train.csv", train)
    test_path = fixtures.write_generic(tmp_path / "test.csv", test)
    dataset, warnings = dataset_store.ingest(str(train_path), home, test=test_path)
    assert dataset.meta["split"]["method"] == "given" and warnings == []
    assert (dataset.train.nnz, dataset.test.nnz) == (len(train), len(test))
    with pytest.raises(AerecError, match="--split"):
        dataset_store.ingest(str(train_path), home, name="x", split="random", test=test_path)


# --- bad input -------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path):
    train, test = split_frame(fixtures.synthetic_ratings(seed=3))
    (tmp_path / "empty.csv").write_text("")
    return (
        fixtures.write_generic(tmp_path / "train.csv", train),
        fixtures.write_generic(tmp_path / "test.csv", test),
    )


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--test", "nowhere.csv"], ["nowhere.csv", "does not exist", "--test"]),
        (["--test", "TEST", "--split", "temporal"], ["--split", "--test"]),
        (["--test", "TEST", "--test-fraction", "0.3"], ["--test-fraction", "--test"]),
        (["--test", "TEST", "--split", "random"], ["--split"]),
        (["--test", "empty.csv"], ["test source", "empty.csv", "empty"]),
    ],
)
def test_bad_given_split(home, tmp_path, monkeypatch, pair, extra, fragments):
    monkeypatch.chdir(tmp_path)
    train, test = pair
    args = [str(test) if a == "TEST" else a for a in extra]
    assert_clean_error(ingest(home, train, *args), *fragments)
    stored = (home / "datasets").iterdir() if (home / "datasets").exists() else []
    assert not [p for p in stored if not p.name.startswith(".")]
