"""Settings of --orientation both, chosen on validation only (the test split is never read).

``user-side``: the item side at the kind's defaults, the user side at each setting of the
grid, on the run's validation slice; each row is the blend's validation RMSE at its fitted
weight (benchmarks/search-ml100k-both.csv).

``val-slices``: shared against own validation slices for ``--orientation both --ensemble 5``.
No slice is unseen by an own-slices ensemble, so a further 5% of the train split is held out,
the run trains on the rest, and each row is its RMSE on that 5%
(benchmarks/search-ml100k-val-slices.csv).

    python benchmarks/search_both.py user-side --source ../shared/data/ml-100k.zip \
        --split u1 --grid '{"weight_decay": [30, 100]}'
    python benchmarks/search_both.py val-slices --source ../shared/data/ml-100k.zip --seed 1
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from search import dataset_for

from aerec_cli.data.splits import hold_out
from aerec_cli.models.autoencoders import blend_weight, predict_entries
from aerec_cli.models.batches import SparseRows, oriented
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.device import configure_threads
from aerec_cli.training.ensemble import trainer_for
from aerec_cli.training.session import Trainer

CPU = torch.device("cpu")
OUTER_SEED = 10_000  # the further slice's seed is this plus the split's


def user_side(dataset, seed: int, grid: dict):
    """Rows (setting, user side's validation RMSE, its best epoch, weight, blend's RMSE)."""
    base = {"objective": "rating", "seed": seed}
    item = Trainer(dataset.train, TrainConfig(**base), CPU, dataset.rating_scale)
    item_stars = item.validation_predictions(item.fit().model)
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        config = TrainConfig.from_dict({**base, **setting, "orientation": "user"})
        user = Trainer(dataset.train, config, CPU, dataset.rating_scale)
        fitted = user.fit()
        user_stars = user.validation_predictions(fitted.model)
        weight = blend_weight(item_stars, user_stars, item.validation[2])
        blend = item.validation_error(weight * item_stars + (1 - weight) * user_stars)
        yield setting, fitted.best_val_rmse, fitted.best_epoch, weight, blend


def val_slices(dataset, seed: int):
    """Rows (setting, RMSE on a further 5% of the train split) for shared and own slices."""
    by_item = oriented(dataset.train, "item")
    fit, rows, cols, stars = hold_out(by_item, 0.05, OUTER_SEED + seed)
    rest = fit.T.tocsr()
    for mode in ("shared", "own"):
        config = TrainConfig(
            orientation="both", ensemble=5, val_slices=mode, seed=seed, objective="rating"
        )
        model = trainer_for(rest, config, CPU, dataset.rating_scale, None, None).fit().model
        item = predict_entries(model.item, SparseRows(fit, CPU), rows, cols)
        user = predict_entries(model.user, SparseRows(rest, CPU), cols, rows)
        weight = model.item_weight
        blended = np.clip(weight * item + (1 - weight) * user, *dataset.rating_scale)
        yield f"--orientation both --ensemble 5 --val-slices {mode}", rmse(blended, stars)


def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["user-side", "val-slices"])
    parser.add_argument("--source", required=True)
    parser.add_argument("--split", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", default='{"weight_decay": [100]}', help="user-side: JSON")
    parser.add_argument("--out", default=None)
    parser.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "aerec-search"))
    args = parser.parse_args()
    configure_threads(1)
    dataset = dataset_for(args.source, args.split, args.seed, Path(args.home))
    start = [Path(args.source).stem, args.split, args.seed]
    if args.what == "user-side":
        header = ["user_side_config", "user_val_rmse", "user_best_epoch", "item_weight"]
        header.append("blend_val_rmse")
        rows = user_side(dataset, args.seed, json.loads(args.grid))
        rows = ([json.dumps(s), f"{u:.4f}", e, f"{w:.3f}", f"{b:.4f}"] for s, u, e, w, b in rows)
    else:
        header = ["setting", "outer_val_rmse"]
        rows = ([setting, f"{value:.4f}"] for setting, value in val_slices(dataset, args.seed))
    name = {"user-side": "both", "val-slices": "val-slices"}[args.what]
    out = Path(args.out or f"benchmarks/search-{start[0].replace('-', '')}-{name}.csv")
    new_file = not out.exists()
    with open(out, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["dataset", "split", "seed", *header])
        for row in rows:
            writer.writerow([*start, *row])
            handle.flush()


if __name__ == "__main__":
    main()
