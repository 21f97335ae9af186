"""`aerec train --ensemble N` (N rating networks of the kind, averaged) and `--orientation
both` (an item-oriented and a user-oriented network, blended).

The members are trained one after another, each by its own :class:`Trainer` (its own
initialisation and shuffling, with pretraining and early stopping as usual), on the same
ratings and validation slice: with --orientation both, N item-oriented members and then N
user-oriented ones. The run then holds one network that outputs their mean
(models/autoencoders.ensemble_of), or for both orientations the blend of each side's mean with
the item side's weight fitted on the validation slice (OrientationBlend), so evaluate,
recommend and the rest serve it like any run; its validation RMSE is the whole's. With
--val-slices own each member holds out its own slice (config.slice_seed), shared with the
other side's member of the same number. An interruption is resumable: the finished members are
saved with the state of the one in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.models.autoencoders import (
    OrientationBlend,
    RatingAutoencoder,
    blend_weight,
    ensemble_of,
)
from aerec_cli.models.batches import validation_split
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.distributed import World
from aerec_cli.training.session import EpochCallback, FitResult, Trainer, build_for

MEMBER = "member.{}."  # resume tensors of finished member k: its best weights
MEMBER_VALIDATION = "validation.{}"  # ... and its stars at the validation slice


class EnsembleTrainer:
    """Trains the members in turn; answers what session.py asks of a Trainer (fit, state and
    restore, the best model so far and its summary)."""

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
        both = config.orientation == "both"
        self.sides = ("item", "user") if both else (config.orientation,)
        self.n_members = config.ensemble * len(self.sides)
        self.n_inputs = {"item": train.shape[0], "user": train.shape[1]}
        self.done: list[RatingAutoencoder] = []  # finished members, best weights
        self.done_validation: list[np.ndarray] = []  # their stars at the validation slice
        self.done_history: list[dict] = []
        self.done_summaries: list[dict] = []
        self.current: Trainer | None = None
        self._start_member(0)
        self.world = self.current.world
        self.val_rmse: float | None = None  # the whole's, once trained
        self.by_members: list[float] = []  # the first k members' mean's, once trained
        self.blend: dict | None = None  # --orientation both: the weight and each side's RMSE
        self._stars: dict[int, np.ndarray] = {}  # --val-slices own: each slice's stars
        self.fitted = None  # the combined network, once every member is trained

    def member_config(self, member: int) -> TrainConfig:
        """The settings of ``member``: the run's, in its side's orientation."""
        side = self.sides[member // self.config.ensemble]
        return dataclasses.replace(self.config, orientation=side)

    def fit(self, stop: Callable[[], bool] = lambda: False) -> FitResult:
        """Train the members left (TrainingStopped, as from a Trainer, ends it early)."""
        while True:
            result = self.current.fit(stop)
            if len(self.done) + 1 == self.n_members:
                break
            self._finish_member(result.model)
            self._start_member(len(self.done))
        members = [*self.done, result.model]  # the last with its best weights loaded
        validation = [*self.done_validation, self.current.validation_predictions(result.model)]
        self.fitted = self._combined(members, validation)
        if len(self.sides) == 1 and self.config.val_slices == "shared":
            self.by_members = self._validation_by_members(validation)
        return FitResult(self.fitted, self.history, result.best_epoch, self.val_rmse, self.seconds)

    def _finish_member(self, model: RatingAutoencoder) -> None:
        model.zero_grad(set_to_none=True)  # kept for its weights only
        self.done.append(model)
        self.done_validation.append(self.current.validation_predictions(model))
        self.done_history += self.current.history
        self.done_summaries.append(self.current.summary())

    def _combined(self, members: list, validation: list[np.ndarray]):
        """The one network the run holds: the members' mean, or with both orientations the
        blend of each side's mean (the item side's weight least-squares on the validation
        slices); sets the whole's validation RMSE. ``members``: those finished so far, with
        their stars at their validation slices.

        With --val-slices own no slice is unseen by the whole, so what is measured is each
        member (or item and user pair) on its own slice: the error of one, not of the mean."""
        per_side = self.config.ensemble
        sides = [members[k : k + per_side] for k in range(0, len(members), per_side)]
        stars, *means = self._by_slice(validation)
        if len(means) == 1:
            self.val_rmse = self.current.validation_error(means[0], stars)
            return ensemble_of(sides[0])
        paired = slice(0, len(means[1]))  # the slices the user side has reached so far
        item, user, stars = means[0][paired], means[1], stars[paired]
        weight = blend_weight(item, user, stars)
        error = self.current.validation_error
        self.val_rmse = error(weight * item + (1 - weight) * user, stars)
        self.blend = {
            "item_weight": round(weight, 6),
            "val_rmse_item": round(error(item, stars), 6),
            "val_rmse_user": round(error(user, stars), 6),
        }
        return OrientationBlend(ensemble_of(sides[0]), ensemble_of(sides[1]), weight)

    def _by_slice(self, validation: list[np.ndarray]) -> list[np.ndarray]:
        """[the validation stars, then each side's predictions of them]: one slice and each
        side's members' mean on it, or with --val-slices own every member's own slice one
        after another (each member its own, shared with the same member of the other side)."""
        per_side = self.config.ensemble
        sides = [validation[k : k + per_side] for k in range(0, len(validation), per_side)]
        if self.config.val_slices == "shared":
            return [self.current.validation[2], *(np.mean(side, axis=0) for side in sides)]
        stars = [self._slice_stars(k) for k in range(len(sides[0]))]
        return [np.concatenate(stars), *(np.concatenate(side) for side in sides)]

    def _slice_stars(self, member: int) -> np.ndarray:
        """The stars of the validation slice ``member`` holds out (the same in either
        orientation, in the same order)."""
        if member not in self._stars:
            config, train = self.config, self._start[0]
            seed = config.slice_seed(member)
            self._stars[member] = validation_split(train, "item", config.val_fraction, seed)[3]
        return self._stars[member]

    def _validation_by_members(self, validation: list[np.ndarray]) -> list[float]:
        """The validation RMSE of the mean of the first 1, 2, ... N members on the shared
        slice: what more members bought (metrics.json "val_rmse_by_members")."""
        means = np.cumsum(validation, axis=0) / np.arange(1, len(validation) + 1)[:, None]
        return [self.current.validation_error(mean) for mean in means]

    @property
    def history(self) -> list[dict]:
        return self.done_history + self.current.history

    @property
    def seconds(self) -> float:
        return sum(s["train_seconds"] for s in self.done_summaries) + self.current.seconds

    @property
    def has_best(self) -> bool:
        return bool(self.done) or self.current.has_best

    def best_model(self):
        """The finished members and the one in training (if it has finished an epoch, or
        nothing else has), combined as at the end; once all are trained, what fit returned
        (not a second copy of every member's weights)."""
        if self.fitted is not None:
            return self.fitted
        members, validation = list(self.done), list(self.done_validation)
        if self.current.has_best or not members:
            members.append(self.current.best_model())
            validation.append(self.current.validation_predictions(members[-1]))
        return self._combined(members, validation)

    def summary(self) -> dict:
        """metrics.json: the whole's validation RMSE and each member's training."""
        current = self.current.summary()
        members = [*self.done_summaries, current]
        if self.val_rmse is None and self.has_best:
            self.best_model()  # sets val_rmse
        return (
            {
                **current,  # the member in training (or the last): its best epoch
                "epochs_run": sum(member["epochs_run"] for member in members),
                "val_rmse": None if self.val_rmse is None else round(self.val_rmse, 6),
                "train_seconds": round(self.seconds, 3),
                "members": members,
            }
            | (
                {"val_rmse_by_members": [round(v, 6) for v in self.by_members]}
                if self.by_members
                else {}
            )
            | ({"blend": self.blend} if self.blend else {})
        )

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The member in training's state, with the finished members' weights and stars at
        the validation slice."""
        tensors, info = self.current.state()
        for k, member in enumerate(self.done):
            tensors |= {
                MEMBER.format(k) + n: v.detach().cpu() for n, v in member.state_dict().items()
            }
            tensors[MEMBER_VALIDATION.format(k)] = torch.from_numpy(self.done_validation[k])
        info = {**info, "ensemble": {"history": self.done_history, "members": self.done_summaries}}
        return tensors, info

    def restore(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        finished = info["ensemble"]
        for k in range(len(finished["members"])):
            prefix, config = MEMBER.format(k), self.member_config(k)
            member = build_for(config, self.n_inputs[config.orientation]).to(self.device)
            member.load_state_dict(
                {n[len(prefix) :]: v for n, v in tensors.items() if n.startswith(prefix)}
            )
            self.done.append(member.eval())
            stars = tensors.get(MEMBER_VALIDATION.format(k))  # absent before --orientation both
            self.done_validation.append(
                self.current.validation_predictions(member) if stars is None else stars.numpy()
            )
        self.done_history, self.done_summaries = finished["history"], finished["members"]
        if len(self.done) != self.current.member:
            self._start_member(len(self.done))
        self.current.restore(tensors, info)

    def _start_member(self, member: int) -> None:
        """Make ``member`` the one in training. The previous Trainer (its optimiser state,
        best weights and inputs) is released first, so two are never held at once."""
        self.current = None
        train, _, *rest = self._start
        config = self.member_config(member)
        self.current = Trainer(train, config, *rest, member=member, members=self.n_members)


def trainer_for(train: sp.csr_matrix, config: TrainConfig, device, rating_scale, on_epoch, world):
    """A Trainer, or for --ensemble N or --orientation both an EnsembleTrainer."""
    alone = config.ensemble == 1 and config.orientation != "both"
    kind = Trainer if alone else EnsembleTrainer
    return kind(train, config, device, rating_scale, on_epoch, world)
