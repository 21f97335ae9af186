"""The training loop: AutoRec's masked loss, a validation slice, early stopping, best weights.

The loss counts observed ratings only. A seeded slice of the *train* split is held out of the
inputs and targets for validation (early stopping, best-epoch selection); the test split is
never read here.
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aerec_cli import __version__, checkpoints, serving, store
from aerec_cli.config import TrainConfig
from aerec_cli.distributed import World
from aerec_cli.errors import AerecError
from aerec_cli.inference import predict_entries
from aerec_cli.matrices import SparseBatch, SparseRows, oriented, row_batches
from aerec_cli.models import MODEL_KINDS, RatingAutoencoder, build_model
from aerec_cli.pretraining import pretrain


@dataclass
class FitResult:
    model: RatingAutoencoder
    history: list[dict]
    best_epoch: int
    best_val_rmse: float
    seconds: float


EpochCallback = Callable[[dict], None]


def hold_out(matrix: sp.csr_matrix, fraction: float, seed: int):
    """Split a CSR matrix's entries into (fit matrix, validation rows, cols, values)."""
    coo = matrix.tocoo()
    rng = np.random.default_rng(seed)
    is_val = rng.random(coo.nnz) < fraction
    fit = sp.csr_matrix(
        (coo.data[~is_val], (coo.row[~is_val], coo.col[~is_val])), shape=matrix.shape
    )
    return fit, coo.row[is_val], coo.col[is_val], coo.data[is_val]


def build_for(config: TrainConfig, n_inputs: int) -> RatingAutoencoder:
    """The network ``config`` asks for, with the kind's default layer sizes if none given."""
    cls = MODEL_KINDS[config.kind]
    options = {name: getattr(config, name) for name in cls.options}
    hidden = config.hidden or cls.default_hidden(n_inputs)
    return build_model({"kind": config.kind, "n_inputs": n_inputs, "hidden": hidden, **options})


class ObservedReconstruction(nn.Module):
    """One training step's forward pass, as a module so DistributedDataParallel can wrap it:
    the code of the (corrupted) inputs and the reconstruction at the observed entries."""

    def __init__(self, model: RatingAutoencoder):
        super().__init__()
        self.model = model

    def forward(self, inputs: SparseBatch, target: SparseBatch):
        code = self.model.encode(inputs)
        return self.model.output_at(self.model.penultimate(code), target.row, target.col), code


def fit(
    train: sp.csr_matrix,
    config: TrainConfig,
    device: torch.device,
    rating_scale: tuple[float, float],
    on_epoch: EpochCallback | None = None,
    world: World | None = None,
) -> FitResult:
    """Train an autoencoder on ``train`` (users x items) as ``config`` says.

    With a ``world`` of several processes, each trains on its share of every batch and
    DistributedDataParallel averages the gradients; pretraining and validation run in full
    on every process, so all of them take the same early-stopping decisions.
    """
    world = world or World()
    config.check()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    matrix = oriented(train, config.orientation)
    fit_matrix, val_rows, val_cols, val_values = hold_out(matrix, config.val_fraction, config.seed)
    if fit_matrix.nnz == 0 or len(val_values) == 0:
        raise AerecError("too few training ratings to hold out a validation slice")
    started = time.perf_counter()
    model = build_for(config, matrix.shape[1]).to(device)
    inputs = SparseRows(fit_matrix, device)
    history = []
    if model.pretraining and config.pretrain_epochs:
        history = pretrain(
            model,
            inputs,
            config.pretrain_epochs,
            config.lr,
            config.batch_size,
            config.cd_steps,
            generator,
            on_epoch,
        )
    step = ObservedReconstruction(model)
    if world.active:
        step = DistributedDataParallel(step)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # lambda/2 ||W||^2 belongs to the whole objective; per rating it is divided by the count.
    l2_scale = config.weight_decay / (2.0 * fit_matrix.nnz)

    best_rmse, best_epoch, best_state = float("inf"), 0, None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, batches = torch.zeros((), device=device), 0
        for rows in row_batches(inputs.n_rows, config.batch_size, generator):
            target = inputs.batch(world.shard(rows))
            predicted, code = step(model.corrupt(target, generator), target)
            # The batch's mean squared error over every process's observed ratings; DDP
            # averages gradients over processes, hence the factor world.size.
            observed = world.sum(torch.tensor(float(len(target.value)), device=device))
            squared = ((predicted - target.value) ** 2).sum() * world.size
            mse = squared / observed.clamp(min=1)
            loss = mse + l2_scale * model.weight_norm() + model.penalty(code)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.detach(), batches + 1
        model.eval()
        total = float(total)
        predicted = np.clip(predict_entries(model, inputs, val_rows, val_cols), *rating_scale)
        val_rmse = float(np.sqrt(np.mean((predicted - val_values) ** 2)))
        if not np.isfinite(total) or not np.isfinite(val_rmse):
            raise AerecError(
                f"training diverged at epoch {epoch} (loss is NaN or infinite); lower --lr "
                f"(now {config.lr:g}) or raise --weight-decay"
            )
        row = {
            "phase": "train",
            "layer": "",
            "epoch": epoch,
            "train_loss": round(total / max(batches, 1), 6),
            "val_rmse": round(val_rmse, 6),
            "seconds": round(time.perf_counter() - t0, 4),
        }
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if val_rmse < best_rmse - 1e-6:
            best_rmse, best_epoch = val_rmse, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(model.eval(), history, best_epoch, best_rmse, time.perf_counter() - started)


def train_run(
    home: Path,
    config: TrainConfig,
    device: torch.device,
    data: str | None = None,
    run: str | None = None,
    on_epoch: EpochCallback | None = None,
    world: World | None = None,
) -> tuple[checkpoints.Run | None, FitResult]:
    """Train on a stored dataset's train split and save the run. The Python face of `train`.

    Under torchrun only rank 0 saves; the other processes get None for the run.
    """
    world = world or World()
    config.check()
    if run is not None:
        checkpoints.check_run_name(run)
        if (home / "runs" / run).exists():
            raise AerecError(f"run {run} already exists; pick another --run name")
    dataset = store.load(home, data)
    result = fit(dataset.train, config, device, dataset.rating_scale, on_epoch, world)
    if not world.is_main:
        return None, result
    name = run or checkpoints.new_run_name(home, dataset.name, config.kind)
    run_config = {
        "kind": config.kind,
        "orientation": config.orientation,
        "train": asdict(config),
        "dataset": dataset.name,
        "dataset_meta_sha256": dataset.meta_hash,
        "rating_scale": list(dataset.rating_scale),
        "device": str(device),
        "processes": world.size,
        "versions": {
            "aerec": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    metrics = {
        "best_epoch": result.best_epoch,
        "epochs_run": len([h for h in result.history if h["phase"] == "train"]),
        "val_rmse": round(result.best_val_rmse, 6),
        "train_seconds": round(result.seconds, 3),
    }
    saved = checkpoints.save_run(home, name, result.model, run_config, result.history, metrics)
    # What scoring needs that does not depend on the user (fast `recommend`; see serving.py).
    serving.save(saved.path, result.model, dataset.train, config.orientation, dataset.meta_hash)
    return saved, result
