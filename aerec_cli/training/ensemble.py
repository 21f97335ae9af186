"""`aerec train --ensemble N`: N rating networks of the kind, averaged.

The members are trained one after another, each by its own :class:`Trainer` (its own
initialisation and shuffling, with pretraining and early stopping as usual), on the same
ratings and validation slice. The run then holds one network that outputs their mean
(models/autoencoders.ensemble_of), so evaluate, recommend and the rest serve it like any run;
its validation RMSE is the ensemble's. An interruption is resumable: the finished members are
saved with the state of the one in training.
"""

from __future__ import annotations

from collections.abc import Callable

import scipy.sparse as sp
import torch

from aerec_cli.models.autoencoders import RatingAutoencoder, ensemble_of, predict_entries
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.distributed import World
from aerec_cli.training.session import EpochCallback, FitResult, Trainer, build_for

MEMBER = "member.{}."  # resume tensors of finished member k: its best weights


class EnsembleTrainer:
    """Trains ``config.ensemble`` members in turn; answers what session.py asks of a Trainer
    (fit, state and restore, the best model so far and its summary)."""

    def __init__(
        self,
        train: sp.csr_matrix,
        config: TrainConfig,
        device: torch.device,
        rating_scale: tuple[float, float],
        on_epoch: EpochCallback | None = None,
        world: World | None = None,
    ):
        self._start = (train, config, device, rating_scale, on_epoch, world)
        self.config, self.device, self.on_epoch = config, device, on_epoch
        self.done: list[RatingAutoencoder] = []  # finished members, best weights
        self.done_history: list[dict] = []
        self.done_summaries: list[dict] = []
        self.current = Trainer(*self._start, member=0)
        self.world = self.current.world
        self.val_rmse: float | None = None  # the whole ensemble's, once trained
        self.by_members: list[float] = []  # the first k members' mean's, once trained

    def fit(self, stop: Callable[[], bool] = lambda: False) -> FitResult:
        """Train the members left (TrainingStopped, as from a Trainer, ends it early)."""
        while True:
            result = self.current.fit(stop)
            if len(self.done) + 1 == self.config.ensemble:
                break
            result.model.zero_grad(set_to_none=True)  # kept for its weights only
            self.done.append(result.model)
            self.done_history += self.current.history
            self.done_summaries.append(self.current.summary())
            self._start_member(len(self.done))
        members = [*self.done, result.model]  # the last with its best weights loaded
        self.by_members = self._validation_by_members(members)
        self.val_rmse = self.by_members[-1]
        return FitResult(
            ensemble_of(members), self.history, result.best_epoch, self.val_rmse, self.seconds
        )

    def _validation_by_members(self, members: list[RatingAutoencoder]) -> list[float]:
        """The validation RMSE of the mean of the first 1, 2, ... N members: what more
        members bought (metrics.json "val_rmse_by_members")."""
        rows, cols, _ = self.current.validation
        total, curve = 0.0, []
        for count, member in enumerate(members, start=1):
            total = total + predict_entries(member, self.current.inputs, rows, cols)
            curve.append(self.current.validation_error(total / count))
        return curve

    @property
    def history(self) -> list[dict]:
        return self.done_history + self.current.history

    @property
    def seconds(self) -> float:
        return sum(s["train_seconds"] for s in self.done_summaries) + self.current.seconds

    @property
    def has_best(self) -> bool:
        return bool(self.done) or self.current.has_best

    def best_model(self) -> RatingAutoencoder:
        """The mean of the finished members and of the one in training, if it has finished
        an epoch."""
        current = [self.current.best_model()] if self.current.has_best else []
        return ensemble_of([*self.done, *current])

    def summary(self) -> dict:
        """metrics.json: the ensemble's validation RMSE and each member's training."""
        members = [*self.done_summaries, self.current.summary()]
        if self.val_rmse is None and self.has_best:
            self.val_rmse = self.current.validation_rmse(self.best_model())
        return {
            **self.current.summary(),  # the member in training (or the last): its best epoch
            "epochs_run": sum(member["epochs_run"] for member in members),
            "val_rmse": None if self.val_rmse is None else round(self.val_rmse, 6),
            "train_seconds": round(self.seconds, 3),
            "members": members,
        } | (
            {"val_rmse_by_members": [round(v, 6) for v in self.by_members]}
            if self.by_members
            else {}
        )

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The member in training's state, with the finished members' weights."""
        tensors, info = self.current.state()
        for k, member in enumerate(self.done):
            tensors |= {
                MEMBER.format(k) + n: v.detach().cpu() for n, v in member.state_dict().items()
            }
        info = {**info, "ensemble": {"history": self.done_history, "members": self.done_summaries}}
        return tensors, info

    def restore(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        finished = info["ensemble"]
        n_inputs = self.current.model.n_inputs
        for k in range(len(finished["members"])):
            prefix = MEMBER.format(k)
            member = build_for(self.config, n_inputs).to(self.device)
            member.load_state_dict(
                {n[len(prefix) :]: v for n, v in tensors.items() if n.startswith(prefix)}
            )
            self.done.append(member.eval())
        self.done_history, self.done_summaries = finished["history"], finished["members"]
        if len(self.done) != self.current.member:
            self._start_member(len(self.done))
        self.current.restore(tensors, info)

    def _start_member(self, member: int) -> None:
        """Make ``member`` the one in training. The previous Trainer (its optimiser state,
        best weights and inputs) is released first, so two are never held at once."""
        self.current = None
        self.current = Trainer(*self._start, member=member)


def trainer_for(train: sp.csr_matrix, config: TrainConfig, device, rating_scale, on_epoch, world):
    """A Trainer, or for --ensemble N an EnsembleTrainer of N of them."""
    kind = Trainer if config.ensemble == 1 else EnsembleTrainer
    return kind(train, config, device, rating_scale, on_epoch, world)
