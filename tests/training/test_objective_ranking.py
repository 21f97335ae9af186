"""`aerec train --objective ranking`: the ranker alone, no rating autoencoder, end to end
through the CLI and the Python API; the autoencoder's settings are refused, not ignored.

Scoring such a run is tested in tests/scoring/test_ranking_only.py, stopping and resuming it
in tests/training/test_interruptions.py.
"""

from __future__ import annotations

import csv
import json

import pytest

from aerec_cli import Home
from aerec_cli.errors import AerecError
from aerec_cli.storage import run_store
from aerec_cli.training.config import OBJECTIVES, TrainConfig
from tests.helpers import assert_clean_error, ok, run_cli


def test_training_through_the_cli_saves_the_ranker_alone(ingested_home):
    result = ok(run_cli(ingested_home, "train", "--objective", "ranking", "--rank-epochs", "10"))
    (run,) = run_store.list_runs(ingested_home)
    folder = run.path
    assert folder.name.startswith("ml1m-ranker-")
    assert "training the ranker alone" in result.stderr
    assert f"run {folder.name}: best validation NDCG@10 " in result.stdout
    assert "at ranker epoch" in result.stdout and "RMSE" not in result.stdout
    files = {path.name for path in folder.iterdir()}
    assert files == {
        "config.json",
        "history.csv",
        "metrics.json",
        run_store.RANKER,
        "serving.safetensors",
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "ranker" and "model" not in config
    assert config["train"] == {"seed": 0, "objective": "ranking", "rank_epochs": 10}
    assert set(config["sha256"]) == {run_store.RANKER}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs_run"] == 10
    assert metrics["val_rmse"] is None and 0 < metrics["val_ndcg@10"] <= 1
    with open(folder / "history.csv", newline="") as handle:
        assert [row["phase"] for row in csv.DictReader(handle)] == ["rank"] * 10
    listing = ok(run_cli(ingested_home, "recommend", "--user", "1", "--format", "json")).json()
    assert len(listing["items"]) == 10  # the latest run: this one


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--kind", "basic"], "--kind (a setting of the rating autoencoder) does not apply"),
        (["--orientation", "user", "--hidden", "8"], "--orientation, --hidden (settings"),
        (["--epochs", "5", "--lr", "0.1", "--patience", "3"], "--epochs, --lr, --patience"),
        (["--corruption", "0.1"], "--corruption"),
        (["--sparsity-target", "0.1"], "--sparsity-target"),
        (["--kind", "stacked", "--pretrain-epochs", "2"], "--kind, --pretrain-epochs"),
        (["--ensemble", "3"], "--ensemble"),
    ],
)
def test_the_autoencoders_settings_are_refused(ingested_home, args, named):
    result = run_cli(ingested_home, "train", "--objective", "ranking", *args)
    assert_clean_error(
        result, "--objective ranking trains the ranker alone", named, "--objective both"
    )
    assert run_store.list_runs(ingested_home) == []


def test_train_config_says_what_each_objective_trains():
    trains = {
        o: (TrainConfig(objective=o).rates, TrainConfig(objective=o).ranks) for o in OBJECTIVES
    }
    assert trains == {"both": (True, True), "rating": (True, False), "ranking": (False, True)}
    ranking = TrainConfig(objective="ranking", rank_epochs=7, seed=3)
    ranking.check()
    assert ranking.to_dict() == {"seed": 3, "objective": "ranking", "rank_epochs": 7}
    assert TrainConfig.from_dict(ranking.to_dict(), saved=True) == ranking
    with pytest.raises(AerecError, match="--weight-decay"):
        TrainConfig(objective="ranking", weight_decay=1.0).check()
    with pytest.raises(AerecError, match="one of both, rating, ranking"):
        TrainConfig(objective="lists").check()


def test_the_python_api_trains_and_scores_a_ranking_run(ingested_home):
    home = Home(ingested_home)
    run = home.train(objective="ranking", rank_epochs=10, run="api", device="cpu", threads=1)
    assert run.kind == "ranker" and not (run.path / run_store.WEIGHTS).exists()
    report = run.evaluate()
    assert report.objective == "ranking" and report.rmse is None and report.mae is None
    assert report.n_fallback is None and set(report.baselines) == {"global_mean", "bias"}
    assert 0 < report.ranking_frame().loc["model", "ndcg@10"] <= 1
    listing = run.recommend("1", top=3)
    assert len(listing.items) == 3 and listing.to_frame()["score"].isna().all()
    assert run.recommend(ratings=[("1", 5), ("2", 4)], top=3).method == "model"
    assert run.recommend_all(top=2)["score"].isna().all()
    assert run.similar("1", top=2).representation == "ranker item embedding"
    assert run.embed().shape == (40, 2 + 200)
    for call in (lambda: run.predict([("1", "2")]), run.outliers):
        with pytest.raises(AerecError, match="run api has no rating model"):
            call()
    with pytest.raises(AerecError, match="--epochs"):
        home.train(objective="ranking", epochs=3)
