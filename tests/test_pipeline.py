"""`aerec train`, `runs`, `evaluate` and `recommend` on a tiny ingested fixture."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import pytest
from safetensors.torch import load_file

from aerec_cli.training.config import TrainConfig
from tests import fixtures
from tests.helpers import TINY, ok, run_cli, stored_ratings

DEFAULT_KIND = TrainConfig().kind

RUN_FILES = {"model.safetensors", "config.json", "history.csv", "metrics.json"}
RUN_FILES |= {"serving.safetensors", "ranker.safetensors"}  # fast scoring; the ranker
HISTORY_HEADER = "phase,layer,epoch,train_loss,val_rmse,seconds,val_ndcg"


def recommend_json(home, user, top, *extra):
    args = ["recommend", "--user", user, "--top", top, "--format", "json", *extra]
    return ok(run_cli(home, *args)).json()


def train_items(home, user: str) -> set[str]:
    train, _ = stored_ratings(home / "datasets" / "ml1m")
    return set(train.loc[train["user"] == user, "item"])


# --- train ---------------------------------------------------------------------------------


def test_train_writes_a_complete_run_folder(ingested_home):
    result = ok(run_cli(ingested_home, "--device", "cpu", "train", *TINY, "--run", "r1"))
    assert "run r1" in result.stdout and "saved to" in result.stdout
    folder = ingested_home / "runs" / "r1"
    assert {p.name for p in folder.iterdir()} == RUN_FILES

    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == DEFAULT_KIND
    assert config["orientation"] == "item"
    assert config["dataset"] == "ml1m"
    meta = (ingested_home / "datasets" / "ml1m" / "meta.json").read_bytes()
    assert config["dataset_meta_sha256"] == hashlib.sha256(meta).hexdigest()
    assert config["device"] == "cpu"
    assert config["train"]["epochs"] == 5 and config["train"]["hidden"] == [8]

    history = (folder / "history.csv").read_text().splitlines()
    assert history[0] == HISTORY_HEADER
    every = list(csv.DictReader(io.StringIO("\n".join(history))))
    rows = [r for r in every if r["phase"] == "train"]
    assert 1 <= len(rows) <= 5
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(float(r["val_rmse"]) > 0 for r in rows)
    ranked = [r for r in every if r["phase"] == "rank"]  # the ranker, after the autoencoder
    assert ranked and every[len(rows) :] == ranked
    assert any(float(r["val_ndcg"] or 0) > 0 for r in ranked)

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_run"] == len(rows)
    assert 1 <= metrics["best_epoch"] <= len(rows)
    assert metrics["val_rmse"] == pytest.approx(min(float(r["val_rmse"]) for r in rows), abs=1e-5)

    # Item-based: each input is one item's ratings by the 30 users.
    # The input layer is stored input-major (inputs x units), the output layer as nn.Linear.
    weights = load_file(folder / "model.safetensors")
    assert weights["encoder.0.table"].shape == (30, 8)
    assert weights["output.weight"].shape == (30, 8)
    assert sum(w.numel() for w in weights.values()) == 30 * 8 + 8 + 8 * 30 + 30


def test_train_user_orientation(ingested_home):
    ok(run_cli(ingested_home, "train", *TINY, "--orientation", "user", "--run", "u"))
    config = json.loads((ingested_home / "runs" / "u" / "config.json").read_text())
    assert config["orientation"] == "user"
    assert config["model"]["n_inputs"] == 40  # a user's ratings of the 40 items
    weights = load_file(ingested_home / "runs" / "u" / "model.safetensors")
    assert sum(w.numel() for w in weights.values()) == 40 * 8 + 8 + 8 * 40 + 40


def test_train_epochs_limit(ingested_home):
    args = ["train", "--epochs", "3", "--hidden", "4", "--patience", "50", "--run", "r"]
    ok(run_cli(ingested_home, *args))
    rows = (ingested_home / "runs" / "r" / "history.csv").read_text().splitlines()[1:]
    assert len([row for row in rows if row.startswith("train,")]) == 3


def test_train_default_run_name_and_dataset(ingested_home, sources):
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml10m_zip, "--name", "ten"))
    result = ok(run_cli(ingested_home, "-q", "train", *TINY))
    name = re.search(r"run (\S+):", result.stdout).group(1)
    assert re.fullmatch(rf"ten-{DEFAULT_KIND}-\d{{8}}-\d{{6}}(-\d+)?", name)  # the latest dataset
    config = json.loads((ingested_home / "runs" / name / "config.json").read_text())
    assert config["dataset"] == "ten"
    assert config["rating_scale"] == [0.5, 5.0]
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "ml1m", "--run", "on-ml1m"))
    config = json.loads((ingested_home / "runs" / "on-ml1m" / "config.json").read_text())
    assert config["dataset"] == "ml1m"


def test_train_progress_goes_to_stderr(ingested_home):
    result = ok(run_cli(ingested_home, "train", *TINY, "--run", "r"))
    assert f"training {DEFAULT_KIND}" in result.stderr
    assert "training" not in result.stdout


def test_train_on_each_layout(home, sources):
    for k, source in enumerate(
        [sources.ml100k_zip, sources.ml10m_zip, sources.latest_small_zip, sources.ml25m.path]
    ):
        ok(run_cli(home, "-q", "ingest", source, "--name", f"d{k}"))
        ok(run_cli(home, "-q", "train", "--data", f"d{k}", "--epochs", "2", "--hidden", "4"))
        report = ok(run_cli(home, "evaluate", "--format", "json")).json()
        assert report["dataset"] == f"d{k}"
        assert report["n_test"] == 40


# --- runs ----------------------------------------------------------------------------------


def test_runs_when_there_are_none(home):
    assert ok(run_cli(home, "runs", "--format", "json")).json() == []
    result = ok(run_cli(home, "runs"))
    assert result.stdout == ""
    assert "no runs" in result.stderr


def test_runs_lists_runs_oldest_first(trained):
    records = ok(run_cli(trained, "runs", "--format", "json")).json()
    names = [r["run"] for r in records]
    assert names == ["item-run", "user-run"]
    for record in records:
        assert record["dataset"] == "ml1m"
        assert record["kind"] == DEFAULT_KIND
        assert record["val_rmse"] > 0
        assert 1 <= record["epochs"] <= 5
    assert [r["orientation"] for r in records] == ["item", "user"]
    table = ok(run_cli(trained, "runs")).stdout
    assert "item-run" in table and "user-run" in table and "val RMSE" in table


def test_runs_shows_test_rmse_once_evaluated(ingested_home):
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--run", "r"))
    before = ok(run_cli(ingested_home, "runs", "--format", "json")).json()
    assert before[0]["test_rmse"] is None
    table = ok(run_cli(ingested_home, "runs")).stdout.splitlines()
    row = [line for line in table if line.startswith("r ")]
    assert len(row) == 1
    assert [cell.strip() for cell in row[0].split("│")][5] == "-"  # no test RMSE yet
    report = ok(run_cli(ingested_home, "evaluate", "--format", "json")).json()
    after = ok(run_cli(ingested_home, "runs", "--format", "json")).json()
    assert after[0]["test_rmse"] == pytest.approx(report["rmse"])
    assert f"{report['rmse']:.4f}" in ok(run_cli(ingested_home, "runs")).stdout
    metrics = json.loads((ingested_home / "runs" / "r" / "metrics.json").read_text())
    assert metrics["test"]["rmse"] == pytest.approx(report["rmse"])


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_json(trained):
    args = ["--device", "cpu", "evaluate", "--run", "item-run", "--format", "json"]
    report = ok(run_cli(trained, *args)).json()
    assert {"run", "dataset", "kind", "rmse", "mae", "n_test", "baselines"} <= set(report)
    assert report["run"] == "item-run"
    assert report["dataset"] == "ml1m"
    assert report["kind"] == DEFAULT_KIND
    assert report["n_test"] == 40
    assert 0 < report["mae"] <= report["rmse"] <= 4
    for baseline in ("global_mean", "bias"):
        scores = report["baselines"][baseline]
        assert 0 < scores["mae"] <= scores["rmse"] <= 4
    # The global mean's error does not depend on the model: check it by hand.
    train, test = stored_ratings(trained / "datasets" / "ml1m")
    mean = train["rating"].mean()
    expected = ((test["rating"] - mean) ** 2).mean() ** 0.5
    assert report["baselines"]["global_mean"]["rmse"] == pytest.approx(expected, abs=1e-5)


def test_evaluate_is_repeatable(trained):
    first = ok(run_cli(trained, "evaluate", "--run", "item-run", "--format", "json")).json()
    second = ok(run_cli(trained, "evaluate", "--run", "item-run", "--format", "json")).json()
    assert first["rmse"] == second["rmse"] and first["mae"] == second["mae"]


def test_evaluate_defaults_to_the_latest_run(trained):
    report = ok(run_cli(trained, "evaluate", "--format", "json")).json()
    assert report["run"] == "user-run"
    assert report["orientation"] == "user"


def test_evaluate_table(trained):
    out = ok(run_cli(trained, "evaluate", "--run", "item-run")).stdout
    assert "item-run" in out and "40 test ratings" in out
    for label in (f"{DEFAULT_KIND} (item)", "global mean", "bias baseline", "RMSE", "MAE"):
        assert label in out


def test_evaluate_after_reingest_asks_to_train_again(ingested_home, sources):
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--run", "r"))
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml1m_zip, "--name", "ml1m", "--force"))
    result = run_cli(ingested_home, "evaluate")
    assert result.exit_code != 0
    assert "re-ingested" in result.stderr and "aerec train" in result.stderr


# --- recommend -----------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["item-run", "user-run"])
def test_recommend_json(trained, sources, run):
    result = recommend_json(trained, "1", 5, "--run", run, "--order", "stars")
    assert result["user"] == "1"
    assert result["run"] == run
    items = result["items"]
    assert len(items) == 5
    assert all({"item", "title", "score"} <= set(entry) for entry in items)
    assert len({entry["item"] for entry in items}) == 5
    scores = [entry["score"] for entry in items]
    assert scores == sorted(scores, reverse=True)
    assert all(1.0 <= s <= 5.0 for s in scores)
    assert not {entry["item"] for entry in items} & train_items(trained, "1")
    for entry in items:
        assert entry["title"] == sources.ml1m.title(entry["item"])


@pytest.mark.parametrize("run", ["item-run", "user-run"])
def test_recommend_returns_the_best_unrated_items(trained, run):
    for user in ("1", "17", "30"):
        unrated = 40 - len(train_items(trained, user))
        everything = recommend_json(trained, user, 1000, "--run", run, "--order", "stars")["items"]
        assert len(everything) == unrated  # all the user's unrated items, no more
        assert not {e["item"] for e in everything} & train_items(trained, user)
        top = recommend_json(trained, user, 4, "--run", run, "--order", "stars")["items"]
        rest = [e["score"] for e in everything if e["item"] not in {t["item"] for t in top}]
        assert min(t["score"] for t in top) >= max(rest)
        best = sorted((e["score"] for e in everything), reverse=True)[:4]
        assert [t["score"] for t in top] == best


def test_recommend_scores_are_not_constant(trained):
    scores = [e["score"] for e in recommend_json(trained, "2", 1000, "--run", "item-run")["items"]]
    assert len(set(scores)) > 1


def test_recommend_csv(trained):
    result = ok(run_cli(trained, "recommend", "--user", "3", "--top", "6", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0] == "user,rank,item,title,genres,score"
    assert len(rows) == 6
    as_json = recommend_json(trained, "3", 6)
    assert [r["item"] for r in rows] == [e["item"] for e in as_json["items"]]
    assert [float(r["score"]) for r in rows] == [e["score"] for e in as_json["items"]]


def test_recommend_table(trained):
    result = ok(run_cli(trained, "recommend", "--user", "3", "--top", "3", "--run", "item-run"))
    assert "top 3 for user 3" in result.stdout and "item-run" in result.stdout
    body = [line for line in result.stdout.splitlines() if "│" in line]
    assert len(body) == 3
    first = recommend_json(trained, "3", 3, "--run", "item-run")["items"][0]
    assert first["title"] in body[0]


def test_recommend_defaults_to_the_latest_run(trained):
    assert recommend_json(trained, "1", 2)["run"] == "user-run"


def test_recommend_accepts_padded_user_id(trained):
    assert recommend_json(trained, " 7 ", 2)["items"]


def test_recommend_shows_non_ascii_titles(trained):
    # Item 2 carries a latin-1 title in movies.dat; it must come out as UTF-8 text.
    for user in map(str, range(1, 31)):
        if "2" not in train_items(trained, user):
            break
    everything = recommend_json(trained, user, 1000, "--run", "item-run")["items"]
    assert fixtures.LATIN1_TITLE in {e["title"] for e in everything}
    table = ok(run_cli(trained, "recommend", "--user", user, "--top", "40", "--run", "item-run"))
    assert fixtures.LATIN1_TITLE in table.stdout
