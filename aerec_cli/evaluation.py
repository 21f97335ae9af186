"""Test-split accuracy of a run, side by side with baselines fitted on the same train split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aerec_cli import checkpoints, store
from aerec_cli.baselines import BiasBaseline, GlobalMean
from aerec_cli.errors import AerecError
from aerec_cli.inference import Scorer


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))


@dataclass
class Loaded:
    """A run with its dataset and a scorer ready: what evaluate and recommend both need."""

    run: checkpoints.Run
    dataset: store.Dataset
    scorer: Scorer


def load_for_scoring(home: Path, run_name: str | None, device: torch.device) -> Loaded:
    run = checkpoints.load_run(home, run_name)
    dataset = store.load(home, run.dataset)
    if run.config.get("dataset_meta_sha256") != dataset.meta_hash:
        raise AerecError(
            f"dataset {dataset.name} was re-ingested after run {run.name} was trained on it; "
            f"train again: aerec train --data {dataset.name}"
        )
    model = run.load_model(device)
    expected = dataset.train.shape[1 if run.config["orientation"] == "user" else 0]
    if model.n_inputs != expected:
        raise AerecError(f"run {run.name} does not fit dataset {dataset.name}; train again")
    scorer = Scorer(model, dataset.train, run.config["orientation"], dataset.rating_scale, device)
    return Loaded(run, dataset, scorer)


def evaluate_run(home: Path, run_name: str | None, device: torch.device) -> dict:
    """RMSE/MAE on the saved test split, plus baselines; records them in the run's metrics."""
    loaded = load_for_scoring(home, run_name, device)
    dataset, scorer = loaded.dataset, loaded.scorer
    test = dataset.test.tocoo()
    if test.nnz == 0:
        raise AerecError(f"dataset {dataset.name} has an empty test split; ingest it with a split")
    users, items, actual = test.row, test.col, test.data.astype(np.float64)
    predicted = scorer.predict(users, items)
    low, high = dataset.rating_scale
    baselines = {
        "global_mean": GlobalMean.fit(dataset.train),
        "bias": BiasBaseline.fit(dataset.train),
    }
    report = {
        "run": loaded.run.name,
        "dataset": dataset.name,
        "kind": loaded.run.config["kind"],
        "orientation": loaded.run.config["orientation"],
        "rmse": round(rmse(predicted, actual), 6),
        "mae": round(mae(predicted, actual), 6),
        "n_test": int(test.nnz),
        "n_fallback": int((~(scorer.user_seen[users] & scorer.item_seen[items])).sum()),
        "baselines": {},
    }
    for name, baseline in baselines.items():
        guess = np.clip(baseline.predict(users, items), low, high)
        report["baselines"][name] = {
            "rmse": round(rmse(guess, actual), 6),
            "mae": round(mae(guess, actual), 6),
        }
    loaded.run.update_metrics(test=report)
    return report
