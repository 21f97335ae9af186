"""The training loop: AutoRec's masked loss, a validation slice, early stopping, best weights.

The loss counts observed ratings only. A seeded slice of the *train* split is held out of the
inputs and targets for validation (early stopping, best-epoch selection); the test split is
never read here.
"""

from __future__ import annotations

import contextlib
import copy
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aerec_cli import __version__
from aerec_cli.errors import AerecError
from aerec_cli.models import kinds
from aerec_cli.models.autoencoders import RatingAutoencoder, build_model, predict_entries
from aerec_cli.models.batches import SparseBatch, SparseRows, row_batches, validation_split
from aerec_cli.scoring import serving_file
from aerec_cli.storage import atomic, dataset_store, run_store
from aerec_cli.training.config import RANKER_KIND, RANKER_ORIENTATION, TrainConfig
from aerec_cli.training.distributed import World
from aerec_cli.training.memory import check_fits, keep_freed_memory
from aerec_cli.training.optimizer import adam, adam_tensors, load_adam
from aerec_cli.training.pretraining import LayerwisePretraining
from aerec_cli.training.stopping import stop_on_signals, stopped_error


@dataclass
class FitResult:
    model: RatingAutoencoder
    history: list[dict]
    best_epoch: int
    best_val_rmse: float
    seconds: float
    warnings: list[str] = field(default_factory=list)  # e.g. a derived file left unwritten


EpochCallback = Callable[[dict], None]


def build_for(config: TrainConfig, n_inputs: int) -> RatingAutoencoder:
    """The network ``config`` asks for, with the kind's default layer sizes if none given."""
    kind = kinds.get(config.kind)
    options = {option.name: config.options[option.name] for option in kind.model_options()}
    hidden = config.hidden or kind.hidden.sizes(n_inputs)
    return build_model({"kind": kind.name, "n_inputs": n_inputs, "hidden": hidden, **options})


class ObservedReconstruction(nn.Module):
    """One training step's forward pass, as a module so DistributedDataParallel can wrap it:
    the code of the (corrupted) inputs and the reconstruction at the observed entries."""

    def __init__(self, model: RatingAutoencoder):
        super().__init__()
        self.model = model

    def forward(self, inputs: SparseBatch, target: SparseBatch):
        code, hidden = self.model.code_and_hidden(inputs)
        return self.model.output_at(hidden, target.row, target.col), code


class TrainingStopped(Exception):
    """Training ended before its last epoch (a signal, or a diverging loss); ``trainer``
    holds the state to save."""

    def __init__(self, trainer: Trainer, reason: str):
        super().__init__(reason)
        self.trainer, self.reason = trainer, reason


class Trainer:
    """Owns one training run's state, so it can stop at an epoch boundary and resume exactly:
    the weights, Adam's moments, the shuffling generator, the best weights and the history."""

    def __init__(
        self,
        train: sp.csr_matrix,
        config: TrainConfig,
        device: torch.device,
        rating_scale: tuple[float, float],
        on_epoch: EpochCallback | None = None,
        world: World | None = None,
        *,
        member: int | None = None,
        members: int = 1,
    ):
        config.check()
        self.config, self.device, self.scale = config, device, rating_scale
        self.on_epoch, self.world = on_epoch, world or World()
        # An ensemble's members (training/ensemble.py) start from their own weights and
        # shuffles (config.member_seed), and hold out the run's validation slice or their own.
        self.member, self.members = member, members  # members: how many the run trains
        seed = config.member_seed(member or 0)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        # Refused before anything the size of the network is allocated.
        check_fits(config, train, device, processes=self.world.size)
        fit_matrix, *self.validation = validation_split(
            train, config.orientation, config.val_fraction, config.slice_seed(member or 0)
        )
        if fit_matrix.nnz == 0 or len(self.validation[2]) == 0:
            raise AerecError("too few training ratings to hold out a validation slice")
        self.batch_size = config.batch(fit_matrix.nnz)
        self.model = build_for(config, fit_matrix.shape[1]).to(device)
        self.inputs = SparseRows(fit_matrix, device)
        step = ObservedReconstruction(self.model)
        self.step = DistributedDataParallel(step) if self.world.active else step
        # AutoRec's lambda/2 ||W||^2 belongs to the whole objective; per rating it is divided by
        # the number of ratings. Its gradient, 2 * scale * W, is added by Adam's (coupled)
        # weight_decay on the weights only: the same update as the term in the loss, without
        # an extra pass over every weight for the forward and the backward.
        l2_scale = config.l2(fit_matrix.nnz) / (2.0 * fit_matrix.nnz)
        named = list(self.model.named_parameters())
        self.optimizer = adam(
            [
                {
                    "params": [p for n, p in named if not n.endswith("bias")],
                    "weight_decay": 2 * l2_scale,
                },
                {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0},
            ],
            lr=config.lr,
            device=device,
        )
        self.pretraining = LayerwisePretraining(
            self.model,
            self.inputs,
            epochs=config.pretrain_epochs,
            lr=config.lr,
            batch_size=self.batch_size,
            cd_steps=config.options.get("cd_steps"),  # deep's RBMs only; stacked has none
            generator=self.generator,
        )
        keep_freed_memory()
        self.history: list[dict] = []
        self.epoch, self.best_epoch, self.best_rmse = 0, 0, float("inf")
        self.best_state: dict | None = None
        self.seconds = 0.0

    def fit(self, stop: Callable[[], bool] = lambda: False) -> FitResult:
        """Pretrain (first time only), then fine-tune until early stopping or the last epoch.

        ``stop`` is asked after every epoch; when it says so, TrainingStopped is raised with
        the state of the last whole epoch.
        """
        started = time.perf_counter() - self.seconds
        config = self.config
        if not self.pretraining.done:
            # Stopped after any pretraining epoch, as after any fine-tuning one.
            if not self.pretraining.run(self._record, lambda: self._stop_agreed(stop)):
                self.seconds = time.perf_counter() - started
                raise TrainingStopped(self, "interrupted")
        while self.epoch < config.epochs and self.epoch - self.best_epoch < config.patience:
            t0 = time.perf_counter()
            loss, val_rmse = self._epoch()
            self.epoch += 1
            if not (np.isfinite(loss) and np.isfinite(val_rmse)):
                self.seconds = time.perf_counter() - started
                raise TrainingStopped(self, "diverged")
            row = {
                "phase": "train",
                "layer": "",
                "epoch": self.epoch,
                "train_loss": round(loss, 6),
                "val_rmse": round(val_rmse, 6),
                "seconds": round(time.perf_counter() - t0, 4),
            }
            self._record(row)
            if val_rmse < self.best_rmse - 1e-6:
                self.best_rmse, self.best_epoch = val_rmse, self.epoch
                self.best_state = copy.deepcopy(self.model.state_dict())
            self._maybe_decay_lr()
            self.seconds = time.perf_counter() - started
            if self.epoch < config.epochs and self._stop_agreed(stop):
                raise TrainingStopped(self, "interrupted")
        self.model.load_state_dict(self.best_state)
        return FitResult(
            self.model.eval(), self.history, self.best_epoch, self.best_rmse, self.seconds
        )

    @property
    def has_best(self) -> bool:
        """Whether a whole fine-tuning epoch has finished (so there are weights to keep)."""
        return self.best_state is not None

    def best_model(self) -> RatingAutoencoder:
        """A copy of the network with the best weights so far (the current ones if none)."""
        model = copy.deepcopy(self.model)
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model.eval()

    def summary(self) -> dict:
        """What metrics.json says of the training."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "val_rmse": round(self.best_rmse, 6) if self.best_state is not None else None,
            "train_seconds": round(self.seconds, 3),
        }

    def validation_rmse(self, model: RatingAutoencoder) -> float:
        """``model``'s RMSE on the validation slice, its inputs the ratings fitted."""
        return self.validation_error(self.validation_predictions(model))

    def validation_predictions(self, model: RatingAutoencoder) -> np.ndarray:
        """``model``'s stars at the validation slice (unclipped), in the slice's order."""
        rows, cols, _ = self.validation
        return predict_entries(model, self.inputs, rows, cols)

    def validation_error(self, predicted: np.ndarray, stars: np.ndarray | None = None) -> float:
        """The RMSE of predictions at the validation slice (or of ``stars``), clipped to the
        rating scale."""
        values = self.validation[2] if stars is None else stars
        return float(np.sqrt(np.mean((np.clip(predicted, *self.scale) - values) ** 2)))

    def _record(self, row: dict) -> None:
        if self.member is not None:
            row = {**row, "member": self.member + 1}
        self.history.append(row)
        if self.on_epoch:
            self.on_epoch(row)

    def _stop_agreed(self, stop: Callable[[], bool]) -> bool:
        """Whether any process was asked to stop: all of them must stop at the same epoch,
        so the flag is summed over them."""
        wants_stop = torch.tensor(float(stop()), device=self.device)
        return float(self.world.sum(wants_stop)) > 0

    def _maybe_decay_lr(self) -> None:
        """Halve the step size each time --lr-patience epochs pass without a better epoch."""
        wait = self.config.lr_patience
        if wait and (self.epoch - self.best_epoch) and (self.epoch - self.best_epoch) % wait == 0:
            for group in self.optimizer.param_groups:
                group["lr"] *= 0.5

    def _epoch(self) -> tuple[float, float]:
        """One pass over the rows; returns the mean batch loss and the validation RMSE."""
        model, world = self.model, self.world
        model.train()
        total, batches = torch.zeros((), device=self.device), 0
        for rows in row_batches(self.inputs.n_rows, self.batch_size, self.generator):
            target = self.inputs.batch(world.shard(rows))
            predicted, code = self.step(model.corrupt(target, self.generator), target)
            # The batch's mean squared error over every process's observed ratings; DDP
            # averages gradients over processes, hence the factor world.size.
            observed = world.sum(torch.tensor(float(len(target.value)), device=self.device))
            squared = ((predicted - target.value) ** 2).sum() * world.size
            mse = squared / observed.clamp(min=1)
            loss = mse + model.penalty(code)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total, batches = total + loss.detach(), batches + 1
        model.eval()
        return float(total) / max(batches, 1), self.validation_rmse(model)

    # --- resumable state ------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (for safetensors) and plain values (for JSON) that resume this run."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in (self.best_state or {}).items()})
        adam, groups = adam_tensors(self.optimizer)
        tensors.update({f"adam.{k}": v for k, v in adam.items()})
        pretraining, pretrain_info = self.pretraining.state()
        tensors.update({f"pretrain.adam.{k}": v for k, v in pretraining.items()})
        tensors["generator"] = self.generator.get_state()
        info = {
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_rmse": self.best_rmse,
            "history": self.history,
            "seconds": self.seconds,
            "adam_groups": groups,
            "pretrain": pretrain_info,  # None once pretraining is over
        }
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, info

    def restore(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        def part(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        best = part("best.")
        self.best_state = {k: v.to(self.device) for k, v in best.items()} or None
        load_adam(self.optimizer, part("adam."), info["adam_groups"], self.device)
        self.pretraining.restore(part("pretrain.adam."), info.get("pretrain"))
        self.generator.set_state(tensors["generator"])
        self.epoch, self.best_epoch = info["epoch"], info["best_epoch"]
        self.best_rmse, self.history = info["best_rmse"], info["history"]
        self.seconds = info["seconds"]


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
    try:
        from aerec_cli.training.ensemble import trainer_for

        return trainer_for(train, config, device, rating_scale, on_epoch, world).fit()
    except TrainingStopped as stopped:
        raise stopped_error(stopped, None) from None


def train_run(
    home: Path,
    config: TrainConfig,
    device: torch.device,
    data: str | None = None,
    run: str | None = None,
    on_epoch: EpochCallback | None = None,
    world: World | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[run_store.Run | None, FitResult]:
    """Train on a stored dataset's train split and save the run. The Python face of `train`.

    Under torchrun only rank 0 saves; the other processes get None for the run. When
    ``stop()`` turns true, the run is saved after the current epoch with what
    `train --resume` needs, and AerecError says how to resume.
    """
    world = world or World()
    config.check()
    if run is not None:
        run_store.check_run_name(run)
        if (home / "runs" / run).exists():
            raise AerecError(f"run {run} already exists; pick another --run name")
    dataset = dataset_store.load(home, data)
    kind = config.kind if config.rates else RANKER_KIND
    name = run or run_store.new_run_name(home, dataset.name, kind)
    with _lock(home, name, world):
        if not config.rates:
            return _ranking_only(home, name, config, dataset, device, on_epoch, world, stop)
        trainer = _trainer_for(dataset, config, device, on_epoch, world)
        return _train_and_save(home, name, trainer, dataset, stop)


def resume_run(
    home: Path,
    run: str,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    world: World | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[run_store.Run | None, FitResult]:
    """Continue an interrupted run from its last whole epoch, with its own settings.

    On the CPU with the same seed it ends exactly where an uninterrupted run would.
    """
    saved = run_store.load_run(home, run)
    with _lock(home, saved.name, world or World()):
        config = TrainConfig.from_dict(saved.config["train"], saved=True)
        if config.rates:
            tensors, info = saved.load_resume()
        else:
            saved.check_resumable()
        dataset = dataset_store.load(home, saved.dataset)
        if not saved.trained_on(dataset.meta_hash):
            raise AerecError(
                f"dataset {dataset.name} was re-ingested after run {run} started; it cannot "
                f"be resumed: train again with aerec train --data {dataset.name}"
            )
        if not config.rates:  # the ranker has no state to continue from: it starts again
            return _ranking_only(
                home, saved.name, config, dataset, device, on_epoch, world, stop, replace=True
            )
        trainer = _trainer_for(dataset, config, device, on_epoch, world)
        trainer.restore(tensors, info)
        return _train_and_save(home, saved.name, trainer, dataset, stop, replace=True)


def _trainer_for(dataset, config, device, on_epoch, world):
    from aerec_cli.training.ensemble import trainer_for

    return trainer_for(dataset.train, config, device, dataset.rating_scale, on_epoch, world)


def _ranking_only(home, name, config, dataset, device, on_epoch, world, stop, replace=False):
    """A run trained with --objective ranking: training/ranking_run.py."""
    from aerec_cli.training import ranking_run

    return ranking_run.fit_and_save(
        home,
        name,
        config=config,
        dataset=dataset,
        device=device,
        world=world or World(),
        on_epoch=on_epoch,
        stop=stop,
        replace=replace,
    )


def _lock(home: Path, name: str, world: World):
    """The run's lock, held by the process that writes it (rank 0 under torchrun)."""
    return run_store.run_lock(home, name) if world.is_main else contextlib.nullcontext()


def _train_and_save(home, name, trainer: Trainer, dataset, stop, replace=False):
    try:
        result = trainer.fit(stop)
    except TrainingStopped as stopped:
        # An interruption comes after a whole epoch (pretraining's included): resumable.
        # A divergence keeps only a whole, finite fine-tuning epoch.
        kept = stopped.reason == "interrupted" or trainer.has_best
        unsaved = None
        if trainer.world.is_main and kept:
            resume = trainer.state() if stopped.reason == "interrupted" else None
            try:
                _save(home, name, trainer, dataset, stopped.reason, replace, resume)
            except OSError as exc:  # the disk is full, say
                unsaved = exc
        raise stopped_error(
            stopped, name if kept else None, unsaved=unsaved, earlier=replace
        ) from None
    if not trainer.world.is_main:
        return None, result
    ranked = _fit_ranker(trainer, dataset, stop) if trainer.config.ranks else None
    try:
        saved = _save(home, name, trainer, dataset, "finished", replace, ranked=ranked)
    except OSError as exc:
        raise _unsaved(home, name, trainer, dataset, replace, exc) from None
    result.warnings += serving_file.save_for_run(saved, result.model, dataset, ranked)
    return saved, result


def _unsaved(home, name, trainer: Trainer, dataset, replace, exc: OSError) -> AerecError:
    """The finished run could not be saved (every write goes to a temp name first, so what
    was stored is intact). Its resumable state is kept if that fits, as it lacks the ranker
    and the serving file: `train --resume` then refits only the ranker, and saves."""
    why, remedy = atomic.write_failure(exc)
    try:
        _save(home, name, trainer, dataset, "interrupted", replace, trainer.state())
        kept = "it keeps a resumable state of the whole training"
    except OSError:
        if not replace:
            return AerecError(
                f"run {name} could not be saved: {why}; nothing was saved: {remedy} and train again"
            )
        kept = "it keeps its earlier state"
    return AerecError(
        f"run {name} could not be saved: {why}; {kept}: {remedy}, then aerec train --resume {name}"
    )


def _fit_ranker(trainer: Trainer, dataset, stop):
    """The ranker, trained once the rating autoencoder is done (rank 0 only: it is small)."""
    from aerec_cli.training.ranking import fit_ranker

    ranked = fit_ranker(
        dataset.train,
        config=trainer.config,
        rating_scale=dataset.rating_scale,
        device=trainer.device,
        on_epoch=trainer.on_epoch,
        stop=stop,
    )
    return ranked


def run_settings(config: TrainConfig, dataset, *, device: torch.device, world: World) -> dict:
    """What config.json says of a run besides its models (run_store adds those, the tensor
    files' digests and the time). A ranking-only run is of kind "ranker"."""
    return {
        "kind": config.kind if config.rates else RANKER_KIND,
        "orientation": config.orientation if config.rates else RANKER_ORIENTATION,
        "train": config.to_dict(),
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


def _save(home, name, trainer: Trainer, dataset, status, replace, resume=None, ranked=None):
    """The run folder: the best weights so far (the current ones if no epoch was better)."""
    from aerec_cli.training.ranking import ranker_record

    run_config = run_settings(trainer.config, dataset, device=trainer.device, world=trainer.world)
    metrics = {"status": status, **trainer.summary()}
    if ranked is not None:
        metrics["val_ndcg@10"] = round(ranked.best_ndcg, 6)
    if trainer.device.type == "cuda":  # the peak the GPU held (make bench-gpu reports it)
        metrics["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**20)
    return run_store.save_run(
        home,
        name,
        trainer.best_model(),
        run_config,
        trainer.history + (ranked.history if ranked is not None else []),
        metrics,
        replace,
        resume,
        ranker=None if ranked is None else ranker_record(ranked),
    )


# --- the whole of `aerec train`, for the CLI and Python alike ------------------------------


@dataclass
class TrainingStart:
    """What a training is about to do, told to ``on_start`` before its first epoch."""

    description: str  # e.g. "training denoising (item-based) on cpu"
    config: TrainConfig  # the settings in force (a resumed run's own)
    resumed: dict | None = None  # a resumed run's metrics: epochs_run, best_epoch, val_rmse


def train(
    home: Path,
    config: TrainConfig | None = None,
    *,
    resume: str | None = None,
    data: str | None = None,
    run: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    on_start: Callable[[TrainingStart], None] | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[run_store.Run | None, FitResult]:
    """Train a new run (``config``) or finish an interrupted one (``resume``), and save it.

    This is everything `aerec train` does: it picks the device and CPU threads, joins the
    process group when launched by torchrun (only rank 0 saves, and only it calls
    ``on_start``; the others get None for the run), and turns the first SIGINT or SIGTERM
    into a clean stop after the current epoch with a resumable run (AerecError says how to
    resume). ``on_epoch`` gets each epoch's history row.
    """
    from aerec_cli.training import distributed
    from aerec_cli.training.device import configure_threads, select_device

    resumed = None
    if resume is None:
        config = config or TrainConfig()
        config.check()
    else:
        stored = run_store.load_run(home, resume)
        config, resumed = TrainConfig.from_dict(stored.config["train"], saved=True), stored.metrics
    configure_threads(threads)
    world, torch_device = distributed.join(select_device(device))
    try:
        if on_start is not None and world.is_main:
            where = f"{world.size} processes" if world.active else str(torch_device)
            on_start(TrainingStart(f"{_what(config, resume)} on {where}", config, resumed))
        with stop_on_signals() as stop:
            if resume is not None:
                return resume_run(home, resume, torch_device, on_epoch, world, stop)
            return train_run(home, config, torch_device, data, run, on_epoch, world, stop)
    finally:
        distributed.leave()


def _what(config: TrainConfig, resume: str | None) -> str:
    """What a training does, for the line before its progress bars."""
    if config.rates:
        based = "item- and user" if config.orientation == "both" else config.orientation
        where = f"{config.kind} ({based}-based)"
        return f"resuming run {resume}" if resume else f"training {where}"
    if resume:
        return f"training the ranker of run {resume} again from its first epoch"
    return "training the ranker alone (Mult-DAE + EASE; no rating autoencoder)"
