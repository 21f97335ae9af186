"""The recommendation side beyond a known user's top-N: --include-rated, --explain, new users
(--rate, --ratings-file, popularity fallback), --all-users files, `similar`, `embed`,
`outliers`, the fast numpy path (equal to the torch Scorer) and every bad input."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from aerec_cli.scoring import network, outliers, scorer, serving_file
from aerec_cli.scoring.recommendations import EXPLAIN_METHODS
from aerec_cli.storage import dataset_store, run_store
from tests import fixtures
from tests.helpers import (
    assert_clean_error,
    heavy_imports,
    ok,
    read_exported,
    run_cli,
    stored_ratings,
)

RUNS = ["item-run", "user-run"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def train_frame(trained) -> pd.DataFrame:
    return stored_ratings(trained / "datasets" / "ml1m")[0]


def rec(home, *args) -> dict:
    return ok(run_cli(home, "recommend", *args, "--format", "json")).json()


def rated_by(frame: pd.DataFrame, user: str) -> dict[str, float]:
    rows = frame[frame["user"] == user]
    return dict(zip(rows["item"], rows["rating"]))


def seen(frame: pd.DataFrame) -> set[str]:
    """Items with training ratings (the others are scored by the bias baseline)."""
    return set(frame["item"])


def item_index(home) -> dict[str, int]:
    with open(home / "datasets" / "ml1m" / "items.csv", newline="", encoding="utf-8") as handle:
        return {row["item"]: k for k, row in enumerate(csv.DictReader(handle))}


# --- the fast path ----------------------------------------------------------------------


def test_training_writes_the_serving_file(trained):
    for run in RUNS:
        assert (trained / "runs" / run / serving_file.FILENAME).is_file()


@pytest.mark.parametrize("run", RUNS)
def test_numpy_scores_equal_the_torch_model(trained, run):
    """The numpy scorer every command uses gives the torch network's own reconstruction."""
    served = scorer.open_run(trained, run)
    model = served.run.load_model(CPU)
    train = dataset_store.load(trained, "ml1m").train.toarray()
    with torch.no_grad():
        if served.orientation == "item":
            expected = model(torch.from_numpy(train.T)).numpy().T
        else:
            expected = model(torch.from_numpy(train)).numpy()
    users = np.arange(served.n_users)
    warm = served.user_seen[:, None] & served.item_seen[None, :]
    got = served.block_scores(users, clip=False)
    np.testing.assert_allclose(got[warm], expected[warm], atol=1e-4)
    rows, cols = np.nonzero(warm)
    np.testing.assert_allclose(served.predict(rows, cols, clip=False), expected[warm], atol=1e-4)
    for user in (0, 7, 29):
        np.testing.assert_allclose(served.user_scores(user), np.clip(got[user], 1, 5), atol=1e-6)
    # ... and what the CLI prints is those scores.
    result = rec(trained, "--user", "8", "--top", "40", "--run", run, "--include-rated")
    index = item_index(trained)
    user = served.user_index("8")
    scores = served.user_scores(user)
    for entry in result["items"]:
        assert entry["score"] == pytest.approx(scores[index[entry["item"]]], abs=1e-4)


def test_a_run_without_the_serving_file_gets_it_on_first_use(scratch):
    before = rec(scratch, "--user", "3", "--run", "item-run")
    (scratch / "runs" / "item-run" / serving_file.FILENAME).unlink()
    result = run_cli(scratch, "recommend", "--user", "3", "--run", "item-run", "--format", "json")
    ok(result)
    assert json.loads(result.stdout) == before
    assert (scratch / "runs" / "item-run" / serving_file.FILENAME).is_file()


def test_a_damaged_serving_file_is_rebuilt(scratch):
    before = rec(scratch, "--user", "3")
    (scratch / "runs" / "user-run" / serving_file.FILENAME).write_bytes(b"not safetensors")
    assert rec(scratch, "--user", "3") == before


@pytest.mark.parametrize("mode", [["--user", "5"], ["--all-users", "-o", "all.csv"]])
def test_recommend_imports_neither_torch_nor_pandas(trained, tmp_path, mode):
    args = ["--home", trained, "-q", "recommend", *mode]
    assert "heavy: []" in heavy_imports(args, tmp_path)


# --- known users: --include-rated, --explain ----------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_include_rated_keeps_the_users_own_items(trained, train_frame, run):
    own = rated_by(train_frame, "4")
    stars = ["--order", "stars"]
    everything = rec(
        trained, "--user", "4", "--top", "100", "--run", run, "--include-rated", *stars
    )
    assert len(everything["items"]) == 40
    for entry in everything["items"]:
        assert entry["rating"] == own.get(entry["item"])
    scores = [e["score"] for e in everything["items"]]
    assert scores == sorted(scores, reverse=True)
    unrated = rec(trained, "--user", "4", "--top", "100", "--run", run, *stars)["items"]
    assert [e["item"] for e in unrated] == [
        e["item"] for e in everything["items"] if e["item"] not in own
    ]


def test_include_rated_table_and_csv(trained):
    table = ok(run_cli(trained, "recommend", "--user", "4", "--top", "40", "--include-rated"))
    assert "rated" in table.stdout.splitlines()[1]
    result = ok(run_cli(trained, "recommend", "--user", "4", "--include-rated", "--format", "csv"))
    assert result.stdout.splitlines()[0] == "user,rank,item,title,genres,score,rating"


def test_explain_user_orientation_is_leave_one_out(trained, train_frame):
    args = ["--user", "6", "--top", "4", "--run", "user-run", "--order", "stars", "--explain"]
    result = rec(trained, *args)
    assert result["explain_method"] == EXPLAIN_METHODS["user"]
    model = run_store.load_run(trained, "user-run").load_model(CPU)
    index = item_index(trained)
    own = rated_by(train_frame, "6")
    x = torch.zeros(1, 40)
    for item, stars in own.items():
        x[0, index[item]] = stars
    with torch.no_grad():
        full = model(x)[0]
        effects = {}
        for item in own:
            dropped = x.clone()
            dropped[0, index[item]] = 0
            effects[item] = full - model(dropped)[0]
    for entry in result["items"]:
        target = index[entry["item"]]
        if entry["item"] not in seen(train_frame):
            assert entry["because"] == []
            continue
        ordered = sorted(own, key=lambda i: -float(effects[i][target]))[:3]
        expected = [i for i in ordered if float(effects[i][target]) > 0]  # only what raises it
        assert [r["item"] for r in entry["because"]] == expected
        for reason in entry["because"]:
            assert reason["rating"] == own[reason["item"]]
            assert reason["effect"] == pytest.approx(
                float(effects[reason["item"]][target]), abs=1e-3
            )


def test_explain_item_orientation_is_code_similarity(trained, train_frame):
    args = ["--user", "6", "--top", "4", "--run", "item-run", "--order", "stars", "--explain"]
    result = rec(trained, *args)
    assert result["explain_method"] == EXPLAIN_METHODS["item"]
    own = rated_by(train_frame, "6")
    mean = np.mean(list(own.values()))
    served = scorer.open_run(trained, "item-run")
    unit = served.unit_codes()
    index = item_index(trained)
    for entry in result["items"]:
        target = index[entry["item"]]
        if entry["item"] not in seen(train_frame):
            assert entry["because"] == []
            continue
        weight = {i: float(unit[target] @ unit[index[i]]) * (s - mean) for i, s in own.items()}
        expected = [i for i in sorted(own, key=lambda i: -weight[i])[:3] if weight[i] > 0]
        assert [r["item"] for r in entry["because"]] == expected
        for reason in entry["because"]:
            assert reason["effect"] == pytest.approx(weight[reason["item"]], abs=1e-3)
            similarity = unit[target] @ unit[index[reason["item"]]]
            assert reason["similarity"] == pytest.approx(float(similarity), abs=1e-3)


def test_item_codes_are_the_encoder_codes_of_item_rows(trained):
    """The similarity above rests on these: torch's encoder on each item's training ratings."""
    model = run_store.load_run(trained, "item-run").load_model(CPU)
    train = stored_ratings(trained / "datasets" / "ml1m")[0]
    users, items = item_index_users(trained), item_index(trained)
    x = torch.zeros(40, 30)
    for row in train.itertuples(index=False):
        x[items[row.item], users[row.user]] = row.rating
    with torch.no_grad():
        codes = model.encode(x).numpy()
    np.testing.assert_allclose(scorer.open_run(trained, "item-run").item_codes(), codes, atol=1e-5)


def item_index_users(home) -> dict[str, int]:
    with open(home / "datasets" / "ml1m" / "users.csv", newline="", encoding="utf-8") as handle:
        return {row["user"]: k for k, row in enumerate(csv.DictReader(handle))}


def test_explain_table_and_csv(trained):
    table = ok(run_cli(trained, "recommend", "--user", "6", "--top", "2", "--explain"))
    assert "because" in table.stdout and "you rated" in table.stdout
    assert table.stdout.rstrip().endswith("would be without that rating")  # said once
    result = ok(run_cli(trained, "recommend", "--user", "6", "--explain", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 10
    for row in rows:  # a sentence: "you rated A 5 stars (+0.12); and B 4 stars (+0.05)"
        sentence = r"you rated .+ [0-9.]+ stars? \(\+[0-9.]+\)(; and .+)*|no one rating of yours.*"
        assert re.fullmatch(sentence, row["because"])


def test_explain_follows_the_order_of_the_list(trained):
    """By rank, the ranker's leave-one-out explains; by stars, the rating model's method."""
    for run, method in (("item-run", "item"), ("user-run", "user")):
        by_rank = rec(trained, "--user", "6", "--top", "3", "--run", run, "--explain")
        assert by_rank["explain_method"] == EXPLAIN_METHODS["ranker"]
        by_stars = rec(trained, "--user", "6", "--run", run, "--order", "stars", "--explain")
        assert by_stars["explain_method"] == EXPLAIN_METHODS[method]
        for entry in by_rank["items"]:
            effects = [r["effect"] for r in entry["because"]]
            assert effects == sorted(effects, reverse=True) and all(e > 0 for e in effects)


def test_help_states_the_explain_method(trained):
    text = " ".join(ok(run_cli(trained, "recommend", "--help")).stdout.split())
    assert "leave-one-out" in text and "cosine similarity" in text and "ridge" in text


# --- new users ----------------------------------------------------------------------------


def test_user_orientation_encodes_the_new_rating_vector(trained, train_frame):
    """A user-oriented model fed a known user's ratings as a new user gives their scores."""
    own = rated_by(train_frame, "9")
    rates = [f"--rate={item}={stars:g}" for item, stars in own.items()]
    new = rec(trained, *rates, "--top", "40", "--include-rated", "--run", "user-run")
    known = rec(trained, "--user", "9", "--top", "40", "--include-rated", "--run", "user-run")
    assert new["method"] == "model" and new["user"] is None
    assert new["ratings_used"] == len(own)
    assert {e["item"]: e["score"] for e in new["items"]} == pytest.approx(
        {e["item"]: e["score"] for e in known["items"]}, abs=1e-3
    )


@pytest.mark.parametrize("run", RUNS)
def test_new_user_scores_follow_their_ratings(trained, run):
    liked = ["1", "2", "3", "4"]
    scores = {}
    for stars in (1, 5):
        args = [f"--rate={item}={stars}" for item in liked]
        result = rec(trained, *args, "--top", "40", "--include-rated", "--run", run)
        assert result["method"] == "model"
        assert len(result["items"]) == 40
        given = [e for e in result["items"] if e["item"] in liked]
        assert all(e["rating"] == stars for e in given)
        scores[stars] = np.mean([e["score"] for e in given])
    assert scores[5] > scores[1]
    unrated = rec(trained, *[f"--rate={i}=5" for i in liked], "--top", "40", "--run", run)
    assert len(unrated["items"]) == 36 and not {e["item"] for e in unrated["items"]} & set(liked)


def test_item_orientation_fold_in_is_the_ridge_fit(trained, train_frame):
    """The new user's output unit: ridge regression of their ratings on the items' H rows."""
    served = scorer.open_run(trained, "item-run")
    own = rated_by(train_frame, "11")
    index = item_index(trained)
    cols = np.array([index[i] for i in own])
    stars = np.array(list(own.values()))
    hidden = served.arrays["item_hidden"].astype(np.float64)
    weights, biases = [a[served.user_seen] for a in served.output_layer]
    val_rmse = served.run.metrics["val_rmse"]
    weight, bias = network.fold_in(hidden[cols], stars, weights, biases, val_rmse)
    # The fitted unit explains the ratings better than the prior (the mean trained unit).
    prior = hidden[cols] @ weights.mean(0) + biases.mean()
    fitted = hidden[cols] @ weight + bias
    assert np.mean((fitted - stars) ** 2) < np.mean((prior - stars) ** 2)
    args = [f"--rate={i}={s:g}" for i, s in own.items()]
    result = rec(trained, *args, "--run", "item-run", "--top", "40")
    expected = np.clip(hidden @ weight + bias, 1, 5)
    for entry in result["items"]:
        if entry["item"] in seen(train_frame):
            assert entry["score"] == pytest.approx(expected[index[entry["item"]]], abs=1e-3)


@pytest.mark.parametrize("run", RUNS)
def test_ratings_file_equals_rate_options(trained, tmp_path, run):
    rates = {"5": 4, "12": 2, "20": 5, "33": 3.5}
    by_option = rec(trained, *[f"--rate={i}={s}" for i, s in rates.items()], "--run", run)
    files = {
        "header.csv": "item,rating\n" + "".join(f"{i},{s}\n" for i, s in rates.items()),
        "plain.csv": "".join(f"{i},{s}\n" for i, s in rates.items()),
        "tabs.tsv": "movieId\trating\n" + "".join(f"{i}\t{s}\n" for i, s in rates.items()),
        "swapped.csv": "rating,item\n" + "".join(f"{s},{i}\n" for i, s in rates.items()),
    }
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        assert rec(trained, "--ratings-file", path, "--run", run) == by_option, name


def test_explain_for_a_new_user(trained, train_frame):
    rated = sorted(seen(train_frame), key=int)[:3]
    for run in RUNS:
        rates = [f"--rate={item}={stars}" for item, stars in zip(rated, (4, 1, 5))]
        for order, method in (("rank", "ranker"), ("stars", run.split("-")[0])):
            args = [*rates, "--explain", "--top", "3", "--run", run, "--order", order]
            result = rec(trained, *args)
            assert result["explain_method"] == EXPLAIN_METHODS[method]
            for entry in result["items"]:
                allowed = set(rated) if entry["item"] in seen(train_frame) else set()
                assert {r["item"] for r in entry["because"]} <= allowed
                assert all(r["effect"] > 0 for r in entry["because"])


def test_unknown_items_are_warned_about_and_dropped(trained):
    base = ["--rate=5=4", "--rate=12=2", "--rate=20=5"]
    result = run_cli(trained, "recommend", *base, "--rate=99999=5", "--format", "json")
    ok(result)
    assert "warning:" in result.stderr and "99999" in result.stderr
    assert result.json() == rec(trained, *base)


def test_popularity_fallback_with_fewer_than_three_ratings(trained, train_frame):
    """Ordered by stars, a new user needs 3 ratings for the model's fold-in."""
    result = rec(trained, "--rate=5=4", "--rate=12=2", "--top", "40", "--order", "stars")
    assert result["method"] == "popularity" and result["ratings_used"] == 2
    assert "popularity" in result["note"]
    mean = train_frame["rating"].mean()
    by_item = train_frame.groupby("item")["rating"].agg(["sum", "count"])
    by_item = by_item.reindex(list(item_index(trained)), fill_value=0)
    damped = (by_item["sum"] + 10 * mean) / (by_item["count"] + 10)
    expected = damped.drop(["5", "12"]).sort_values(ascending=False, kind="stable")
    assert [e["score"] for e in result["items"]] == pytest.approx(expected.to_numpy(), abs=1e-3)
    assert {e["item"] for e in result["items"]} == set(expected.index)
    table = ok(run_cli(trained, "recommend", "--rate=5=4", "--rate=12=2", "--order", "stars"))
    assert "popularity" in table.stdout.splitlines()[0]


def test_the_ranker_lists_a_new_user_with_any_number_of_ratings(trained):
    result = rec(trained, "--rate=5=4", "--rate=12=2", "--top", "5")
    assert result["method"] == "model" and result["ratings_used"] == 2


def test_an_empty_ratings_file_falls_back_to_popularity(trained, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("item,rating\n")
    result = run_cli(trained, "recommend", "--ratings-file", path, "--format", "json")
    assert ok(result).json()["method"] == "popularity"
    assert "holds no ratings" in result.stderr


def test_only_unknown_items_fall_back_to_popularity(trained):
    result = run_cli(trained, "recommend", "--rate=777=5", "--rate=888=4", "--format", "json")
    ok(result)
    assert result.json()["method"] == "popularity"
    assert "777" in result.stderr and "888" in result.stderr


# --- every user ---------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["csv", "parquet", "jsonl"])
def test_all_users_file(trained, tmp_path, train_frame, extension):
    path = tmp_path / f"all.{extension}"
    result = ok(run_cli(trained, "recommend", "--all-users", "--top", "3", "-o", path))
    assert "wrote 90 rows" in result.stderr and result.stdout == ""
    frame = read_exported(path)
    assert list(frame.columns) == ["user", "rank", "item", "title", "genres", "score"]
    assert len(frame) == 90 and frame["user"].nunique() == 30
    for user in ("1", "17", "30"):
        rows = frame[frame["user"] == user]
        assert rows["rank"].tolist() == [1, 2, 3]
        single = rec(trained, "--user", user, "--top", "3")["items"]
        assert rows["item"].tolist() == [e["item"] for e in single]
        assert rows["title"].tolist() == [e["title"] for e in single]
        assert rows["score"].tolist() == pytest.approx([e["score"] for e in single])
        assert not set(rows["item"]) & set(rated_by(train_frame, user))


def test_all_users_item_run_with_rated_items(trained, tmp_path):
    path = tmp_path / "all.jsonl"
    args = ["--all-users", "--top", "40", "--include-rated", "--run", "item-run", "-o", path]
    ok(run_cli(trained, "-q", "recommend", *args))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 30 * 40


def test_all_users_shows_progress_on_stderr(trained, tmp_path):
    result = ok(run_cli(trained, "recommend", "--all-users", "-o", tmp_path / "a.csv"))
    assert "users" in result.stderr and "30/30" in result.stderr


def test_single_user_to_a_file(trained, tmp_path):
    path = tmp_path / "one.csv"
    ok(run_cli(trained, "recommend", "--user", "2", "--top", "4", "-o", path))
    frame = pd.read_csv(path, dtype=str)
    assert frame["user"].tolist() == ["2"] * 4 and frame["rank"].tolist() == ["1", "2", "3", "4"]


# --- similar ------------------------------------------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_similar_items(trained, train_frame, run):
    result = ok(
        run_cli(trained, "similar", "--item", "7", "--top", "5", "--run", run, "--format", "json")
    ).json()
    assert result["item"] == "7" and result["run"] == run
    assert result["representation"] == (
        "encoder code" if run == "item-run" else "output-layer weights"
    )
    neighbours = result["items"]
    assert len(neighbours) == 5 and "7" not in {e["item"] for e in neighbours}
    similarity = [e["similarity"] for e in neighbours]
    assert similarity == sorted(similarity, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in similarity)
    assert all(e["title"] for e in neighbours)
    # The nearest really are the nearest: compare with every other item's similarity.
    everything = ok(
        run_cli(trained, "similar", "--item", "7", "--top", "100", "--run", run, "--format", "json")
    ).json()
    assert len(everything["items"]) == len(seen(train_frame)) - 1
    assert neighbours == everything["items"][:5]


def test_similar_table_and_csv(trained):
    table = ok(run_cli(trained, "similar", "--item", "2", "--top", "3"))
    assert "items like" in table.stdout and fixtures.LATIN1_TITLE in table.stdout
    rows = list(
        csv.DictReader(
            io.StringIO(ok(run_cli(trained, "similar", "--item", "2", "--format", "csv")).stdout)
        )
    )
    assert len(rows) == 10 and set(rows[0]) == {"item", "title", "genres", "similarity"}


# --- embed --------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["csv", "parquet", "jsonl"])
def test_embed_writes_item_codes(trained, tmp_path, extension):
    path = tmp_path / f"codes.{extension}"
    result = ok(run_cli(trained, "embed", "--run", "item-run", "-o", path))
    assert "wrote 40 items x 8 dims" in result.stderr
    frame = read_exported(path, ("item", "title"))
    assert list(frame.columns) == ["item", "title"] + [f"code_{k}" for k in range(8)]
    assert frame["item"].tolist() == list(item_index(trained))
    assert fixtures.LATIN1_TITLE in frame["title"].tolist()
    codes = scorer.open_run(trained, "item-run").item_codes()
    np.testing.assert_allclose(frame.iloc[:, 2:].to_numpy(float), codes, atol=1e-6)


def test_embed_user_run_uses_output_weights(trained, tmp_path):
    path = tmp_path / "codes.csv"
    ok(run_cli(trained, "embed", "--run", "user-run", "-o", path))
    frame = pd.read_csv(path)
    model = run_store.load_run(trained, "user-run").load_model(CPU)
    np.testing.assert_allclose(
        frame.iloc[:, 2:].to_numpy(float), model.output.weight.detach().numpy(), atol=1e-6
    )


# --- outliers -----------------------------------------------------------------------------


@pytest.mark.parametrize("run, default_by", [("item-run", "item"), ("user-run", "user")])
def test_outliers_sorted_with_counts(trained, train_frame, run, default_by):
    args = ["outliers", "--top", "100", "--run", run, "--min-ratings", "1", "--format", "json"]
    result = ok(run_cli(trained, *args)).json()
    assert result["by"] == default_by
    rows = result["rows"]
    counts = train_frame.groupby(default_by)["rating"].agg(["count", "mean"])
    assert len(rows) == len(counts)
    errors = [r["rmse"] for r in rows]
    assert errors == sorted(errors, reverse=True)
    for row in rows:
        assert row["ratings"] == counts.loc[row[default_by], "count"]
        assert row["mean_rating"] == pytest.approx(counts.loc[row[default_by], "mean"], abs=1e-3)
    # The per-row RMSEs come from the same errors as the overall train RMSE.
    total = sum(r["rmse"] ** 2 * r["ratings"] for r in rows) / sum(r["ratings"] for r in rows)
    assert np.sqrt(total) == pytest.approx(result["train_rmse"], abs=1e-3)


@pytest.mark.parametrize("by", ["user", "item"])
def test_outliers_leave_out_rows_with_too_few_ratings_by_default(trained, train_frame, by):
    """One 5-star rating of an obscure film is not an anomaly: the default minimum is 20
    ratings, or the median count where that is lower (as in this small fixture)."""
    args = ["outliers", "--by", by, "--top", "1000", "--format", "json"]
    result = ok(run_cli(trained, *args)).json()
    counts = train_frame.groupby(by).size()
    expected = min(20, int(np.median(counts)))
    assert expected > 1  # the fixture must make the default matter
    assert result["min_ratings"] == expected
    assert {str(r[by]) for r in result["rows"]} == {
        str(k) for k in counts[counts >= expected].index
    }
    assert outliers.default_min_ratings(np.array([0, 50, 60, 70])) == 20


def test_outliers_min_ratings_and_table(trained, train_frame):
    args = ["outliers", "--by", "user", "--min-ratings", "14", "--top", "100", "--format", "json"]
    rows = ok(run_cli(trained, *args)).json()["rows"]
    counts = train_frame.groupby("user").size()
    assert {r["user"] for r in rows} == set(counts[counts >= 14].index)
    table = ok(run_cli(trained, "outliers", "--top", "3", "--by", "item"))
    assert "reconstructed worst" in table.stdout and "RMSE" in table.stdout
    assert len([line for line in table.stdout.splitlines() if "│" in line]) == 3


@pytest.mark.parametrize("orientation", ["item", "user"])
def test_outliers_find_a_planted_random_user(tmp_path, orientation):
    ratings = fixtures.synthetic_ratings(n_users=40, n_items=40, n_ratings=800, seed=5)
    rng = np.random.default_rng(1)
    items = rng.choice(40, 30, replace=False) + 1
    planted = pd.DataFrame(
        {
            "user": "41",
            "item": items.astype(str),
            "rating": rng.choice([1.0, 5.0], 30),
            "timestamp": 890_000_000,
        }
    )
    source = fixtures.write_generic(
        tmp_path / "planted.csv",
        pd.concat([ratings, planted], ignore_index=True),
        header=["user", "item", "rating", "timestamp"],
    )
    home = tmp_path / "home"
    ok(run_cli(home, "-q", "ingest", source))
    train = ["--epochs", "60", "--hidden", "8", "--lr", "0.02", "--weight-decay", "1"]
    ok(run_cli(home, "-q", "train", "--orientation", orientation, *train, "--patience", "60"))
    rows = ok(run_cli(home, "outliers", "--by", "user", "--format", "json")).json()["rows"]
    assert rows[0]["user"] == "41" and rows[0]["ratings"] >= 25


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--rate", "5=abc"], ["--rate", "ITEM=STARS"]),
        (["--rate", "abc"], ["--rate", "ITEM=STARS"]),
        (["--rate", "=4"], ["--rate"]),
        (["--rate", "5=nan"], ["--rate"]),
        (["--rate", "5=7", "--rate", "6=4", "--rate", "7=4"], ["outside the rating scale", "1-5"]),
        (["--rate", "5=0"], ["outside the rating scale"]),
        (["--user", "1", "--rate", "5=4"], ["only one", "--user", "--rate"]),
        (["--user", "1", "--all-users", "-o", "x.csv"], ["only one"]),
        ([], ["--user", "--rate", "--all-users"]),
        (["--user", "1", "--top", "0"], ["--top"]),
        (["--rate", "5=4", "--top", "0"], ["--top"]),
        (["--all-users", "--top", "0", "-o", "x.csv"], ["--top"]),
        (["--all-users"], ["-o"]),
        (["--all-users", "-o", "out.xlsx"], [".xlsx", ".csv", ".parquet", ".jsonl"]),
        (["--user", "1", "-o", "out"], ["no extension", ".csv"]),
        (["--all-users", "--explain", "-o", "x.csv"], ["--explain"]),
        (["--ratings-file", "nowhere.csv"], ["nowhere.csv", "does not exist"]),
    ],
)
def test_recommend_bad_inputs(trained, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(run_cli(trained, "recommend", *args), *fragments)
    assert not list(tmp_path.glob("x.csv")) and not list(tmp_path.glob("out*"))


@pytest.mark.parametrize(
    "text, line",
    [
        ("item,rating\n5,4\n6,four\n", 3),
        ("5,4\n6\n", 2),
        ("5,4\n6,3,extra\n", 2),
        ("item,rating\n5,4\n,3\n", 3),
    ],
)
def test_malformed_ratings_file(trained, tmp_path, text, line):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    assert_clean_error(
        run_cli(trained, "recommend", "--ratings-file", path), f"line {line}", "mine.csv"
    )


def test_ratings_file_that_is_a_folder(trained, tmp_path):
    assert_clean_error(run_cli(trained, "recommend", "--ratings-file", tmp_path), "folder")


def test_similar_bad_inputs(trained):
    assert_clean_error(run_cli(trained, "similar", "--item", "9999"), "9999", "items.csv")
    assert_clean_error(run_cli(trained, "similar", "--item", "7", "--top", "0"), "--top")
    assert_clean_error(run_cli(trained, "similar"), "--item")


def test_embed_and_outliers_bad_inputs(trained, tmp_path):
    assert_clean_error(run_cli(trained, "embed", "-o", tmp_path / "codes.txt"), ".txt", ".csv")
    assert_clean_error(run_cli(trained, "embed", "-o", tmp_path / "no" / "c.csv"), "does not exist")
    assert_clean_error(run_cli(trained, "embed"), "-o")
    assert_clean_error(run_cli(trained, "outliers", "--by", "movie"), "--by", "user or item")
    assert_clean_error(run_cli(trained, "outliers", "--top", "0"), "--top")
    assert_clean_error(run_cli(trained, "outliers", "--min-ratings", "0"), "--min-ratings")


def test_new_commands_with_nothing_trained(ingested_home, tmp_path):
    for args in (
        ["recommend", "--rate", "5=4"],
        ["recommend", "--all-users", "-o", tmp_path / "a.csv"],
        ["similar", "--item", "5"],
        ["embed", "-o", tmp_path / "c.csv"],
        ["outliers"],
    ):
        assert_clean_error(run_cli(ingested_home, *args), "no trained run")


def test_new_commands_after_a_re_ingest(scratch, sources):
    ok(run_cli(scratch, "-q", "ingest", sources.ml1m_zip, "--name", "ml1m", "--force"))
    for args in (["recommend", "--user", "1"], ["similar", "--item", "5"], ["outliers"]):
        assert_clean_error(run_cli(scratch, *args), "re-ingested", "aerec train")


@pytest.mark.parametrize("scipy_above", [0, 10**9])
def test_sparse_product_with_scipy_and_numpy(monkeypatch, scipy_above):
    """network.sparse_dot: scipy for many entries, numpy chunks for few; same numbers, also
    for a slice of rows (indptr not starting at 0) and empty rows."""
    rng = np.random.default_rng(0)
    dense = (rng.random((50, 30)) * (rng.random((50, 30)) < 0.2)).astype(np.float32)
    dense[[7, 12, 13]] = 0
    rows, cols = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=50))])
    table = rng.random((30, 5)).astype(np.float32)
    monkeypatch.setattr(network, "SCIPY_ABOVE", scipy_above)
    monkeypatch.setattr(network, "CHUNK_ENTRIES", 7)
    whole = network.sparse_dot(indptr, cols, dense[rows, cols], table)
    np.testing.assert_allclose(whole, dense @ table, rtol=1e-5, atol=1e-6)
    lo = indptr[10]
    part = network.sparse_dot(indptr[10:22], cols[lo:], dense[rows, cols][lo:], table)
    np.testing.assert_allclose(part, dense[10:21] @ table, rtol=1e-5, atol=1e-6)


def test_a_list_names_its_run_and_dataset(trained):
    """Either may be a default the user did not name, so both are said."""
    table = ok(run_cli(trained, "recommend", "--user", "4", "--top", "2")).stdout
    latest = run_store.load_run(trained, None).name
    assert f"(run {latest}, dataset ml1m)" in table.splitlines()[0]
    result = rec(trained, "--user", "4", "--top", "2")
    assert (result["run"], result["dataset"]) == (latest, "ml1m")


def test_a_file_and_csv_on_stdout_have_the_same_columns(trained, tmp_path):
    args = ["recommend", "--user", "6", "--top", "3", "--include-rated", "--explain"]
    printed = ok(run_cli(trained, *args, "--format", "csv")).stdout
    piped = ok(run_cli(trained, *args, "-o", "-"))
    to_stdout = piped.stdout
    assert "wrote" not in piped.stderr  # nothing was written to a file named "-"
    ok(run_cli(trained, *args, "-o", tmp_path / "list.csv"))
    written = (tmp_path / "list.csv").read_text()
    assert printed == to_stdout == written
    header = printed.splitlines()[0].split(",")
    assert header == ["user", "rank", "item", "title", "genres", "score", "rating", "because"]
