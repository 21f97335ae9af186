"""Hyperparameter search on the validation slice only (the test split is never read).

Each setting is trained on the train split minus its validation slice; the best validation
RMSE is recorded with the setting in a CSV, one row per fit, so the search can be reread.

    python benchmarks/search.py --source ../shared/data/ml-100k.zip --split u1 \
        --kind denoising --grid '{"weight_decay": [30, 100], "hidden": [[300], [500]]}'
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from aerec_cli.models import kinds
from aerec_cli.storage import dataset_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.device import configure_threads


def dataset_for(source: str, split: str, seed: int, home: Path) -> dataset_store.Dataset:
    name = f"{Path(source).stem}-{split}-{seed}"
    if not (home / "datasets" / name).exists():
        dataset_store.ingest(source, home, name=name, split=split, seed=seed)
    return dataset_store.load(home, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--split", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", action="append", required=True, choices=list(kinds.KINDS))
    parser.add_argument("--orientation", default="item")
    settings = [f.name for f in fields(TrainConfig) if f.name != "options"]
    settings += [option.name for option, _ in kinds.options()]
    parser.add_argument(
        "--grid", default="{}", help=f"JSON: setting -> values; settings: {', '.join(settings)}"
    )
    parser.add_argument("--out", default="benchmarks/search.csv")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "aerec-search"))
    args = parser.parse_args()
    configure_threads(args.threads)
    dataset = dataset_for(args.source, args.split, args.seed, Path(args.home))
    grid = json.loads(args.grid)
    out = Path(args.out)
    new_file = not out.exists()
    with open(out, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(
                ["dataset", "split", "seed", "config", "val_rmse", "best_epoch", "seconds"]
            )
        for kind in args.kind:
            for values in itertools.product(*grid.values()):
                setting = dict(zip(grid.keys(), values), kind=kind, orientation=args.orientation)
                # Kind options sit at the top level of a grid, as in the CSVs' config column.
                config = TrainConfig.from_dict({**setting, "seed": args.seed})
                started = time.perf_counter()
                result = session.fit(
                    dataset.train, config, torch.device("cpu"), dataset.rating_scale
                )
                seconds = time.perf_counter() - started
                writer.writerow(
                    [
                        Path(args.source).stem,
                        args.split,
                        args.seed,
                        json.dumps(setting),
                        f"{result.best_val_rmse:.4f}",
                        result.best_epoch,
                        f"{seconds:.1f}",
                    ]
                )
                handle.flush()
                print(f"{setting} val {result.best_val_rmse:.4f} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
