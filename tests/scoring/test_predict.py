"""`aerec predict`: stars for (user, item) pairs through the shared numpy scorer, the pairs
file (read by the one small-file reader that --ratings-file uses too), its outputs, and every
bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aerec_cli.data import small_files
from aerec_cli.errors import AerecError
from aerec_cli.scoring import predictions, scorer
from tests.helpers import (
    assert_clean_error,
    copy_home,
    heavy_imports,
    ok,
    read_exported,
    run_cli,
    stored_ratings,
)

RUNS = ["item-run", "user-run"]


@pytest.fixture(scope="module")
def test_split(trained) -> pd.DataFrame:
    """The stored test split as raw user, item, rating."""
    return stored_ratings(trained / "datasets" / "ml1m")[1]


def predict(home, *args) -> dict:
    return ok(run_cli(home, "predict", *args, "--format", "json")).json()


def write(path, text: str):
    path.write_text(text)
    return path


# --- the same stars as every other command -----------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_rmse_over_the_test_split_equals_evaluate(trained, tmp_path, test_split, run):
    path = tmp_path / "test.csv"
    test_split.to_csv(path, index=False)  # user,item,rating with a header
    predicted = predict(trained, "--pairs", path, "--run", run)
    # evaluate writes the run's metrics.json: give it a copy of the home.
    scratch = copy_home(trained, tmp_path)
    report = ok(run_cli(scratch, "evaluate", "--run", run, "--format", "json")).json()
    assert len(predicted["pairs"]) == len(test_split) and predicted["skipped"] == 0
    assert predicted["rmse"] == pytest.approx(report["rmse"], abs=1e-6)
    assert predicted["mae"] == pytest.approx(report["mae"], abs=1e-6)


@pytest.mark.parametrize("run", RUNS)
def test_repeated_item_options_give_the_served_stars(trained, run):
    result = predict(trained, "--user", "8", "--item", "3", "--item", "17", "--item", "3",
                     "--run", run)  # fmt: skip
    served = scorer.open_run(trained, run)
    items = np.array([served.item_index(i) for i in ("3", "17", "3")])
    expected = served.predict(np.full(3, served.user_index("8")), items)
    assert [p["item"] for p in result["pairs"]] == ["3", "17", "3"]
    assert [p["user"] for p in result["pairs"]] == ["8"] * 3
    assert [p["predicted"] for p in result["pairs"]] == pytest.approx(expected, abs=1e-4)
    assert result["pairs"][0]["title"] == served.items.title(served.item_index("3"))
    assert result["run"] == run and result["skipped"] == 0
    assert "rmse" not in result and "rating" not in result["pairs"][0]


def test_stars_equal_recommends(trained):
    listed = ok(run_cli(trained, "recommend", "--user", "4", "--top", "40", "--include-rated",
                        "--format", "json")).json()  # fmt: skip
    scores = {e["item"]: e["score"] for e in listed["items"]}
    items = sorted(scores, key=int)
    result = predict(trained, "--user", "4", *[f"--item={i}" for i in items])
    assert {p["item"]: p["predicted"] for p in result["pairs"]} == scores


def test_from_python(trained, test_split):
    rows = list(test_split.itertuples(index=False, name=None))
    result = predictions.predict_pairs(trained, rows, run="item-run")
    assert isinstance(result, predictions.Predictions)
    assert result.n_rated == len(rows) and result.rmse > 0 and result.mae > 0
    assert result.pairs[0].rating == rows[0][2]
    plain = predictions.predict_pairs(trained, [("1", "1"), ("2", "5")], run="item-run")
    assert plain.rmse is None and plain.to_dict()["skipped"] == 0
    with pytest.raises(AerecError, match="--skip-unknown"):
        predictions.predict_pairs(trained, [("1", "nope")])


def test_predict_imports_neither_torch_nor_pandas(trained, tmp_path):
    write(tmp_path / "pairs.csv", "user,item,rating\n1,1,4\n2,5,3\n")
    for mode in (["--user", "1", "--item", "2"], ["--pairs", "pairs.csv"]):
        args = ["--home", trained, "-q", "predict", *mode]
        assert "heavy: []" in heavy_imports(args, tmp_path), mode


# --- pairs files ---------------------------------------------------------------------------


def test_pairs_file_forms_read_the_same(trained, tmp_path):
    rows = [("1", "1", 4), ("2", "5", 3), ("7", "12", 5)]
    files = {
        "header.csv": "user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows),
        "plain.csv": "".join(f"{u},{i},{r}\n" for u, i, r in rows),
        "tabs.tsv": "userId\tmovieId\tstars\n" + "".join(f"{u}\t{i}\t{r}\n" for u, i, r in rows),
        "semicolons.csv": "".join(f"{u};{i};{r}\n" for u, i, r in rows),
        "swapped.csv": "rating,item,user\n" + "".join(f"{r},{i},{u}\n" for u, i, r in rows),
        "comments.csv": "# mine\n\nuser,item,rating\n"
        + "".join(f"{u},{i},{r}\n\n" for u, i, r in rows),
    }
    results = [predict(trained, "--pairs", write(tmp_path / n, t)) for n, t in files.items()]
    assert all(r == results[0] for r in results)
    assert [p["rating"] for p in results[0]["pairs"]] == [4, 3, 5]
    assert "rmse" in results[0] and "mae" in results[0]


def test_pairs_without_ratings(trained, tmp_path):
    for text in ("1,1\n2,5\n", "user,item\n1,1\n2,5\n", "\ufeffuser\titem\n1\t1\n2\t5\n"):
        result = predict(trained, "--pairs", write(tmp_path / "p.csv", text))
        assert [(p["user"], p["item"]) for p in result["pairs"]] == [("1", "1"), ("2", "5")]
        assert "rmse" not in result and "rating" not in result["pairs"][0]


# --- outputs -------------------------------------------------------------------------------


def test_table_output_with_ratings(trained, tmp_path):
    path = write(tmp_path / "p.csv", "1,1,4\n2,5,3\n")
    result = ok(run_cli(trained, "predict", "--pairs", path))
    lines = result.stdout.splitlines()
    assert lines[0] == "predicted stars (run user-run)"
    for column in ("user", "item", "title", "stars", "rating"):
        assert column in lines[1]
    assert lines[-1].startswith("RMSE ") and "MAE " in lines[-1] and "2 rated pairs" in lines[-1]


def test_csv_output(trained, tmp_path):
    result = ok(run_cli(trained, "predict", "--user", "3", "--item", "9", "--format", "csv"))
    lines = result.stdout.splitlines()
    assert lines[0] == "user,item,title,predicted"
    assert lines[1].startswith("3,9,")
    rated = ok(run_cli(trained, "predict", "--pairs", write(tmp_path / "p.csv", "3,9,4\n"),
                       "--format", "csv"))  # fmt: skip
    assert rated.stdout.splitlines()[0] == "user,item,title,predicted,rating"
    assert "RMSE" in rated.stderr


@pytest.mark.parametrize("extension", ["csv", "parquet", "jsonl"])
def test_output_file(trained, tmp_path, extension):
    pairs = write(tmp_path / "p.csv", "user,item,rating\n1,1,4\n2,5,3\n1,7,2\n")
    path = tmp_path / f"out.{extension}"
    result = ok(run_cli(trained, "predict", "--pairs", pairs, "-o", path))
    assert result.stdout == "" and "wrote 3 rows" in result.stderr and "RMSE" in result.stderr
    frame = read_exported(path)
    assert list(frame.columns) == ["user", "item", "title", "predicted", "rating"]
    expected = predict(trained, "--pairs", pairs)["pairs"]
    assert frame["predicted"].tolist() == pytest.approx([p["predicted"] for p in expected])
    assert frame["item"].astype(str).tolist() == ["1", "5", "7"]


# --- unknown ids ---------------------------------------------------------------------------


def test_unknown_user_or_item_is_one_error(trained, tmp_path):
    line = assert_clean_error(
        run_cli(trained, "predict", "--user", "4200", "--item", "1"),
        "4200", "aerec users", "--skip-unknown",
    )  # fmt: skip
    assert "user" in line
    assert_clean_error(
        run_cli(trained, "predict", "--user", "1", "--item", "9999"),
        "9999", "items.csv", "--skip-unknown",
    )  # fmt: skip
    pairs = write(tmp_path / "p.csv", "1,1,4\n4200,1,3\n")
    assert_clean_error(run_cli(trained, "predict", "--pairs", pairs), "4200")


def test_skip_unknown_counts_on_stderr(trained, tmp_path):
    pairs = write(tmp_path / "p.csv", "1,1,4\n4200,1,3\n2,9999,5\n4200,9999,1\n2,5,3\n")
    result = ok(run_cli(trained, "predict", "--pairs", pairs, "--skip-unknown",
                        "--format", "json"))  # fmt: skip
    data = result.json()
    assert data["skipped"] == 3
    assert [(p["user"], p["item"]) for p in data["pairs"]] == [("1", "1"), ("2", "5")]
    assert "skipped 3 pair(s)" in result.stderr
    assert "4200" in result.stderr and "9999" in result.stderr
    known = predict(trained, "--pairs", write(tmp_path / "k.csv", "1,1,4\n2,5,3\n"))
    assert data["rmse"] == known["rmse"]


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line",
    [
        ("user,item,rating\n1,1,4\n2,5,four\n", 3),
        ("1,1,4\n2,5\n", 2),
        ("1,1\n2,5,3\n", 2),
        ("1,1,4,9\n", 1),
        ("user,item\n1,1\n,5\n", 3),
        ("1\n", 1),
        ("# note\n1,1,4\n\n2,5,inf\n", 4),
    ],
)
def test_malformed_pairs_file_names_the_line(trained, tmp_path, text, line):
    path = write(tmp_path / "mine.csv", text)
    assert_clean_error(run_cli(trained, "predict", "--pairs", path), f"line {line}", "mine.csv")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--pairs", "nowhere.csv"], ["nowhere.csv", "does not exist"]),
        (["--pairs", "empty.csv"], ["empty.csv", "no pairs"]),
        (["--pairs", "header.csv"], ["header.csv", "no pairs"]),
        (["--pairs", "."], ["folder"]),
        (["--pairs", "scale.csv"], ["rating 9", "1-5"]),
        ([], ["--user", "--item", "--pairs"]),
        (["--user", "1"], ["--item"]),
        (["--item", "1"], ["--user"]),
        (["--user", "1", "--item", "1", "--pairs", "empty.csv"], ["either", "not both"]),
        (["--user", "1", "--item", "1", "-o", "out.xlsx"], [".xlsx", ".csv"]),
        (["--user", "1", "--item", "1", "--run", "nope"], ["nope"]),
    ],
)
def test_predict_bad_inputs(trained, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "empty.csv", "")
    write(tmp_path / "header.csv", "user,item,rating\n")
    write(tmp_path / "scale.csv", "1,1,9\n")
    assert_clean_error(run_cli(trained, "predict", *args), *fragments)
    assert not list(tmp_path.glob("out*"))


# --- the shared small-file reader ----------------------------------------------------------


def test_reader_header_names_and_optional_columns(tmp_path):
    spec = predictions.PAIRS_SPEC
    read = small_files.read_columns(
        write(tmp_path / "a.csv", "movieId,userId\n5,1\n"), spec, label="f", meaning="m"
    )
    assert read.columns == ["user", "item"] and read.rows == [("1", "5")] and read.lines == [2]
    read = small_files.read_columns(
        write(tmp_path / "b.csv", "id,item,stars\nu1,007,4.5\n"), spec, label="f", meaning="m"
    )  # 'item' wins over 'id' for the item column; the user keeps its place
    assert read.rows == [("u1", "007", 4.5)]


def test_reader_size_bound(tmp_path):
    path = write(tmp_path / "big.csv", "1,1,4\n" * 100)
    with pytest.raises(AerecError, match="aerec ingest"):
        small_files.read_columns(
            path, predictions.PAIRS_SPEC, label="pairs file", meaning="m", max_bytes=100
        )


def test_reader_ambiguous_header(tmp_path):
    path = write(tmp_path / "a.csv", "rating,stars\n4,5\n")
    spec = [small_files.ITEM, small_files.RATING]
    with pytest.raises(AerecError, match="cannot tell the item and rating columns"):
        small_files.read_columns(path, spec, label="ratings file", meaning="m")
