"""Runs trained with ``--objective ranking``: the ranker alone (training/ranking.py), no rating
autoencoder.

Such a run folder holds ``ranker.safetensors`` and no ``model.safetensors``; its config.json
has kind "ranker", no "model", and only the settings that apply to it under "train"
(TrainConfig.to_dict). Its serving file holds the train split, the bias baseline and the
ranker's arrays (scoring/serving_file.py), so `recommend`, `evaluate`, `similar` and `embed`
work on it, while what needs predicted stars says the run has none.

The ranker keeps no state to continue from, and it is quick to train: an interrupted run keeps
its best ranker so far (usable at once) and a resume.json without tensors, and
`train --resume` trains its ranker again from the first epoch with the run's own settings, so
it ends as an uninterrupted run would (exactly, on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from aerec_cli.errors import AerecError
from aerec_cli.scoring import serving_file
from aerec_cli.storage import dataset_store, run_store
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.distributed import World
from aerec_cli.training.ranking import CHECK_EVERY, RankerFit, fit_ranker, ranker_record
from aerec_cli.training.session import EpochCallback, run_settings

# resume.json of an interrupted ranking-only run: what `train --resume` does with it.
RESTART = {"restart": "ranker"}


def fit_and_save(
    home: Path,
    name: str,
    *,
    config: TrainConfig,
    dataset: dataset_store.Dataset,
    device: torch.device,
    world: World,
    on_epoch: EpochCallback | None,
    stop: Callable[[], bool],
    replace: bool = False,
) -> tuple[run_store.Run | None, RankerFit | None]:
    """Train the ranker on the dataset's train split and save run ``name`` (rank 0 alone
    under torchrun: the ranker is small; the others get (None, None)).

    When ``stop()`` turns true the ranker ends after the current epoch; the run is saved with
    its best ranker so far, if a validation check has passed, and AerecError (exit code 130)
    says how to train it in full.
    """
    if not world.is_main:
        return None, None
    ranked = fit_ranker(
        dataset.train,
        config=config,
        rating_scale=dataset.rating_scale,
        device=device,
        on_epoch=on_epoch,
        stop=stop,
    )
    if ranked.stopped and ranked.best_epoch == 0:  # no ranker worth keeping
        raise AerecError(
            f"interrupted before the ranker's first validation check (epoch {CHECK_EVERY}); "
            "nothing new was saved: train again",
            exit_code=130,
        )
    status = "interrupted" if ranked.stopped else "finished"
    metrics = {
        "status": status,
        "best_epoch": ranked.best_epoch,
        "epochs_run": len(ranked.history),
        "val_rmse": None,  # no rating model
        "val_ndcg@10": round(ranked.best_ndcg, 6),
        "train_seconds": round(ranked.seconds, 3),
    }
    saved = run_store.save_run(
        home,
        name,
        None,
        run_settings(config, dataset, device=device, world=world),
        ranked.history,
        metrics,
        replace,
        resume=(None, RESTART) if ranked.stopped else None,
        ranker=ranker_record(ranked),
    )
    if ranked.stopped:
        raise AerecError(
            f"interrupted after ranker epoch {len(ranked.history)}; run {name} keeps its best "
            f"ranker so far (epoch {ranked.best_epoch}). A ranker cannot continue where it "
            f"stopped: aerec train --resume {name} trains it again from its first epoch",
            exit_code=130,
        )
    ranked.warnings += serving_file.save_for_run(saved, None, dataset, ranked)
    return saved, ranked
