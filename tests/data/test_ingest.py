"""`aerec ingest`, `aerec datasets` and `aerec users` on every supported layout."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests import fixtures
from tests.helpers import ok, run_cli, stored_items, stored_ratings

# (Sources attribute of the fixture, attribute of its zip, format, rating scale)
LAYOUTS = [
    ("ml100k", "ml100k_zip", "ml-100k", [1.0, 5.0]),
    ("ml1m", "ml1m_zip", "ml-1m", [1.0, 5.0]),
    ("ml10m", "ml10m_zip", "ml-10m", [0.5, 5.0]),
    ("latest_small", "latest_small_zip", "ml-latest-small", [0.5, 5.0]),
    ("ml25m", "ml25m_zip", "ml-25m", [0.5, 5.0]),
]
LAYOUT_IDS = [layout[2] for layout in LAYOUTS]


def ingest_json(home, source, *extra):
    return ok(run_cli(home, "-q", "ingest", source, "--format", "json", *extra)).json()


def assert_same_ratings(summary: dict, fixture: fixtures.Fixture) -> None:
    """What the dataset stored (train + test) is exactly what the fixture wrote."""
    train, test = stored_ratings(summary["path"])
    both = pd.concat([train, test]).sort_values(["user", "item"]).reset_index(drop=True)
    expected = (
        fixture.ratings[["user", "item", "rating"]]
        .sort_values(["user", "item"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(both, expected, check_dtype=False)


def assert_same_items(summary: dict, fixture: fixtures.Fixture) -> None:
    stored = stored_items(summary["path"]).sort_values("item").reset_index(drop=True)
    expected = fixture.items.sort_values("item").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[["item", "title", "genres"]], expected)


# --- each layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(("attr", "zip_attr", "fmt", "scale"), LAYOUTS, ids=LAYOUT_IDS)
def test_ingest_zip_of_each_layout(home, sources, attr, zip_attr, fmt, scale):
    fixture = getattr(sources, attr)
    summary = ingest_json(home, getattr(sources, zip_attr), "--name", "d")
    assert summary["name"] == "d"
    assert summary["format"] == fmt
    assert summary["rating_scale"] == scale
    assert (summary["users"], summary["items"], summary["ratings"]) == (30, 40, 400)
    assert summary["train"] + summary["test"] == 400
    assert_same_ratings(summary, fixture)
    assert_same_items(summary, fixture)


@pytest.mark.parametrize(("attr", "zip_attr", "fmt", "scale"), LAYOUTS, ids=LAYOUT_IDS)
def test_ingest_folder_of_each_layout(home, sources, attr, zip_attr, fmt, scale):
    fixture = getattr(sources, attr)
    summary = ingest_json(home, fixture.path)
    assert summary["name"] == fixture.path.name
    assert summary["format"] == fmt
    assert summary["rating_scale"] == scale
    assert (summary["users"], summary["items"], summary["ratings"]) == (30, 40, 400)
    assert_same_ratings(summary, fixture)
    assert_same_items(summary, fixture)


def test_zip_name_defaults_to_the_archive_name(home, sources):
    assert ingest_json(home, sources.ml1m_zip)["name"] == "ml-1m"
    assert ingest_json(home, sources.ml100k_zip)["name"] == "ml-100k"


def test_non_ascii_titles_survive(home, sources):
    cases = [
        (sources.ml100k_zip, "3", fixtures.LATIN1_TITLE),  # latin-1 u.item
        (sources.ml1m_zip, "2", fixtures.LATIN1_TITLE),  # latin-1 movies.dat
        (sources.ml10m_zip, "1", fixtures.UTF8_TITLE),  # UTF-8 movies.dat
        (sources.latest_small_zip, "1001", fixtures.CSV_COMMA_TITLE),  # quoted, with a comma
        (sources.latest_small_zip, "1002", fixtures.CSV_QUOTE_TITLE),  # doubled quotes
        (sources.latest_small_zip, "1003", fixtures.UTF8_TITLE),
    ]
    for k, (source, item, title) in enumerate(cases):
        summary = ingest_json(home, source, "--name", f"d{k}")
        items = stored_items(summary["path"]).set_index("item")
        assert items.loc[item, "title"] == title


def test_ml100k_genres_come_from_the_flags(home, sources):
    summary = ingest_json(home, sources.ml100k_zip)
    items = stored_items(summary["path"]).set_index("item")
    assert items.loc["1", "genres"] == "Action"
    assert items.loc["2", "genres"] == "Adventure|Drama"
    assert set("|".join(items["genres"]).split("|")) <= set(fixtures.ML100K_GENRES)


def test_ingest_table_output(home, sources):
    result = ok(run_cli(home, "ingest", sources.ml1m_zip))
    for text in ("ml-1m", "users", "30", "items", "40", "ratings", "400", "360 / 40", "1-5"):
        assert text in result.stdout
    assert "ratings by stars" in result.stdout
    assert "reading" in result.stderr  # progress goes to stderr, results to stdout


# --- single ratings files --------------------------------------------------------------


def test_single_ml1m_ratings_file(home, sources):
    summary = ingest_json(home, sources.ml1m.path / "ratings.dat")
    assert summary["name"] == "ml-1m"  # a file called ratings.dat is named by its folder
    assert summary["format"] == "ml-1m"
    assert summary["rating_scale"] == [1.0, 5.0]
    assert (summary["users"], summary["items"], summary["ratings"]) == (30, 40, 400)
    assert_same_ratings(summary, sources.ml1m)
    # No movies.dat beside it was read: the titles are empty.
    assert (stored_items(summary["path"])["title"] == "").all()


def test_single_ml10m_ratings_file(home, sources):
    summary = ingest_json(home, sources.ml10m.path / "ratings.dat")
    assert summary["format"] == "ml-10m"
    assert summary["rating_scale"] == [0.5, 5.0]
    assert_same_ratings(summary, sources.ml10m)


def test_single_ml100k_u_data_file(home, sources):
    summary = ingest_json(home, sources.ml100k.path / "u.data")
    assert summary["name"] == "ml-100k"
    assert summary["format"] == "ml-100k"
    assert_same_ratings(summary, sources.ml100k)


def test_single_movielens_ratings_csv(home, sources):
    summary = ingest_json(home, sources.latest_small.path / "ratings.csv")
    assert summary["format"] == "ml-latest-small"
    assert summary["rating_scale"] == [0.5, 5.0]
    assert_same_ratings(summary, sources.latest_small)


# --- generic CSV / TSV -----------------------------------------------------------------


def test_generic_csv_with_header(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "mine.csv", ratings, ",", ["user", "item", "rating", "timestamp"]
    )
    summary = ingest_json(home, path)
    assert summary["name"] == "mine"
    assert summary["format"] == "csv"
    assert summary["rating_scale"] == [1.0, 5.0]
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_csv_without_header(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "plain.csv", ratings, ",")
    summary = ingest_json(home, path)
    assert (summary["users"], summary["items"], summary["ratings"]) == (30, 40, 400)
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_half_stars_without_timestamps(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3, half_stars=True)
    path = fixtures.write_generic(
        tmp_path / "half.csv", ratings, ",", ["user", "item", "rating"], ("user", "item", "rating")
    )
    summary = ingest_json(home, path)
    assert summary["rating_scale"] == [0.5, 5.0]
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_lines_wider_than_the_header(home, tmp_path):
    # An unnamed trailing field must not shift the named columns.
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "wide.csv", ratings, ",", ["user", "item", "rating"])
    summary = ingest_json(home, path)
    assert (summary["users"], summary["items"], summary["ratings"]) == (30, 40, 400)
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_columns_by_name(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "odd.txt", ratings, ";", ["uid", "mid", "stars", "when"]
    )
    # 'mid' is no known item column name: without --columns the header is not enough.
    result = run_cli(home, "-q", "ingest", path)
    assert result.exit_code != 0
    assert "--columns" in result.stderr
    summary = ingest_json(home, path, "--columns", "uid,mid,stars,when")
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_columns_by_position_and_tab_separator(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "swapped.tsv", ratings, "\t", order=("item", "user", "rating", "timestamp")
    )
    summary = ingest_json(home, path, "--sep", "\\t", "--columns", "1,0,2,3")
    assert (summary["users"], summary["items"]) == (30, 40)
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_generic_unusual_separator_needs_sep(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "hash.txt", ratings, "#")
    result = run_cli(home, "-q", "ingest", path)
    assert result.exit_code != 0
    assert "--sep" in result.stderr
    summary = ingest_json(home, path, "--sep", "#")
    assert_same_ratings(summary, fixtures.Fixture(path, ratings, pd.DataFrame()))


def test_zip_holding_one_generic_ratings_file(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    plain = fixtures.write_generic(tmp_path / "mine" / "stars.csv", ratings, ",")
    archive = fixtures.zip_folder(plain.parent, tmp_path / "mine.zip")
    summary = ingest_json(home, archive)
    assert summary["name"] == "mine"
    assert summary["format"] == "csv"
    assert_same_ratings(summary, fixtures.Fixture(archive, ratings, pd.DataFrame()))


def test_duplicate_pairs_keep_the_latest_and_warn(home, tmp_path):
    lines = [
        "user,item,rating,timestamp",
        "1,1,5,2000",  # the latest rating of (1, 1), though not the last line
        "1,2,3,1000",
        "2,1,4,1000",
        "2,2,2,1000",
        "3,1,1,1000",
        "3,2,5,1000",
        "1,1,2,1000",
    ]
    path = tmp_path / "dupes.csv"
    path.write_text("\n".join(lines) + "\n")
    result = ok(run_cli(home, "ingest", path, "--format", "json", "--test-fraction", "0.2"))
    summary = result.json()
    assert summary["ratings"] == 6
    assert "warning:" in result.stderr and "duplicate" in result.stderr
    train, test = stored_ratings(summary["path"])
    both = pd.concat([train, test]).set_index(["user", "item"])["rating"]
    assert both[("1", "1")] == 5.0


# --- splits ------------------------------------------------------------------------------


def test_random_split_default_and_test_fraction(home, sources):
    default = ingest_json(home, sources.ml1m_zip, "--name", "a")
    assert (default["train"], default["test"]) == (360, 40)
    quarter = ingest_json(home, sources.ml1m_zip, "--name", "b", "--test-fraction", "0.25")
    assert (quarter["train"], quarter["test"]) == (300, 100)
    meta = json.loads((home / "datasets" / "b" / "meta.json").read_text())
    assert meta["split"] == {"method": "random", "test_fraction": 0.25, "seed": 0}


def test_random_split_follows_the_seed(home, sources):
    first = ingest_json(home, sources.ml1m_zip, "--name", "a")
    again = ingest_json(home, sources.ml1m_zip, "--name", "b")
    seeded = run_cli(home, "-q", "--seed", "5", "ingest", sources.ml1m_zip, "--name", "c")
    ok(seeded)
    other = {"path": home / "datasets" / "c"}
    tests = [stored_ratings(s["path"])[1] for s in (first, again, other)]
    pairs = [sorted(zip(t["user"], t["item"], strict=True)) for t in tests]
    assert pairs[0] == pairs[1]
    assert pairs[0] != pairs[2]


def test_temporal_split_holds_out_each_users_latest(home, sources):
    fixture = sources.ml1m
    summary = ingest_json(home, sources.ml1m_zip, "--split", "temporal", "--test-fraction", "0.2")
    counts = fixture.ratings.groupby("user").size()
    expected_test = sum(min(int(c * 0.2 + 0.5), c - 1) for c in counts)
    assert summary["test"] == expected_test
    assert summary["train"] == 400 - expected_test
    train, test = stored_ratings(summary["path"])
    stamps = fixture.ratings.set_index(["user", "item"])["timestamp"]
    for user in counts.index:
        train_times = [stamps[(user, i)] for i in train.loc[train["user"] == user, "item"]]
        test_times = [stamps[(user, i)] for i in test.loc[test["user"] == user, "item"]]
        assert train_times, f"user {user} kept no training rating"
        assert not test_times or max(train_times) < min(test_times)


@pytest.mark.parametrize("split", ["u1", "ua"])
def test_ml100k_predefined_splits(home, sources, split):
    summary = ingest_json(home, sources.ml100k_zip, "--split", split)
    assert (summary["train"], summary["test"]) == sources.ml100k.split_sizes[split]
    assert summary["ratings"] == 400
    # The test split is exactly the uN.test file.
    _, test = stored_ratings(summary["path"])
    lines = (sources.ml100k.path / f"{split}.test").read_text().splitlines()
    expected = sorted((u, i) for u, i, *_ in (line.split("\t") for line in lines))
    assert sorted(zip(test["user"], test["item"], strict=True)) == expected
    meta = json.loads((home / "datasets" / "ml-100k" / "meta.json").read_text())
    assert meta["split"]["method"] == split


def test_ml100k_predefined_split_from_a_folder(home, sources):
    summary = ingest_json(home, sources.ml100k.path, "--split", "u1")
    assert (summary["train"], summary["test"]) == sources.ml100k.split_sizes["u1"]


# --- names and overwriting -------------------------------------------------------------


def test_name_option(home, sources):
    summary = ingest_json(home, sources.ml10m_zip, "--name", "ten.m_v2")
    assert summary["name"] == "ten.m_v2"
    assert (home / "datasets" / "ten.m_v2" / "meta.json").is_file()


def test_refuses_to_overwrite_without_force(home, sources):
    ingest_json(home, sources.ml1m_zip, "--name", "d")
    meta_path = home / "datasets" / "d" / "meta.json"
    before = meta_path.read_bytes()
    result = run_cli(home, "-q", "ingest", sources.ml10m_zip, "--name", "d")
    assert result.exit_code != 0
    assert "--force" in result.stderr
    assert meta_path.read_bytes() == before  # the old dataset is intact
    listed = ok(run_cli(home, "datasets", "--format", "json")).json()
    assert [(m["name"], m["format"]) for m in listed] == [("d", "ml-1m")]
    ok(run_cli(home, "users", "--data", "d"))

    replaced = ingest_json(home, sources.ml10m_zip, "--name", "d", "--force")
    assert replaced["format"] == "ml-10m"
    listed = ok(run_cli(home, "datasets", "--format", "json")).json()
    assert [(m["name"], m["format"]) for m in listed] == [("d", "ml-10m")]
    # No leftovers (the lock file stays: removing a flock file would race with its users).
    assert not [p for p in (home / "datasets").iterdir() if p.name not in ("d", ".d.lock")]


# --- datasets and users ------------------------------------------------------------------


def test_datasets_lists_in_ingest_order(home, sources):
    empty = ok(run_cli(home, "datasets", "--format", "json"))
    assert empty.json() == []
    assert "no datasets" in ok(run_cli(home, "datasets")).stderr
    ingest_json(home, sources.ml1m_zip, "--name", "zzz")
    ingest_json(home, sources.ml100k_zip, "--name", "aaa")
    listed = ok(run_cli(home, "datasets", "--format", "json")).json()
    assert [m["name"] for m in listed] == ["zzz", "aaa"]
    assert [m["ratings"] for m in listed] == [400, 400]
    table = ok(run_cli(home, "datasets")).stdout
    assert "zzz" in table and "aaa" in table and "ml-100k" in table


def test_users_lists_ids_and_training_counts(ingested_home):
    result = ok(run_cli(ingested_home, "users", "--limit", "0"))
    assert "ml1m: 30 users" in result.stdout
    rows = [line.split("│") for line in result.stdout.splitlines() if "│" in line]
    ids = [row[0].strip() for row in rows]
    assert ids == [str(u) for u in range(1, 31)]  # numeric ids sort numerically
    assert sum(int(row[1]) for row in rows) == 360  # the training ratings
    limited = ok(run_cli(ingested_home, "users", "--limit", "5")).stdout
    assert len([line for line in limited.splitlines() if "│" in line]) == 5


def test_users_and_train_default_to_the_latest_dataset(ingested_home, sources):
    ingest_json(ingested_home, sources.ml10m_zip, "--name", "newer")
    assert "newer: 30 users" in ok(run_cli(ingested_home, "users")).stdout
    assert "ml1m: 30 users" in ok(run_cli(ingested_home, "users", "--data", "ml1m")).stdout
