"""Training settings as one dataclass (no torch import, so the CLI can show its defaults fast).

The defaults were chosen on the validation slice of ML-100K (see BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aerec_cli.errors import AerecError

KINDS = ("basic", "sparse", "denoising", "contractive", "stacked", "deep")
ORIENTATIONS = ("item", "user")
# Chosen on the validation slice (benchmarks/search-*.csv): the deeper kinds want less L2.
WEIGHT_DECAY = {"stacked": 30.0, "deep": 30.0}
DEFAULT_WEIGHT_DECAY = 100.0


@dataclass
class TrainConfig:
    kind: str = "denoising"
    orientation: str = "item"
    hidden: list[int] = field(default_factory=list)  # empty: kind's default for the data
    epochs: int = 200
    lr: float = 3e-3
    batch_size: int = 256
    # AutoRec's lambda: lambda/2 * ||W||^2 over the whole objective. None: the kind's default.
    weight_decay: float | None = None
    patience: int = 20
    lr_patience: int = 10  # halve the step size after this many epochs without progress; 0: never
    val_fraction: float = 0.05
    seed: int = 0
    # Kind-specific (each model class lists the ones it takes in its ``options``).
    sparsity_target: float = 0.05
    sparsity_weight: float = 20.0
    corruption: float = 0.25
    noise: str = "mask"
    noise_std: float = 0.3
    contraction_weight: float = 0.01
    pretrain_epochs: int = 10
    cd_steps: int = 1

    def check(self) -> None:
        if self.kind not in KINDS:
            raise AerecError(f"unknown --kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if self.orientation not in ORIENTATIONS:
            raise AerecError(f"--orientation must be item or user, not {self.orientation!r}")
        for flag, value, low in (
            ("--epochs", self.epochs, 1),
            ("--batch-size", self.batch_size, 1),
            ("--patience", self.patience, 1),
            ("--lr-patience", self.lr_patience, 0),
            ("--pretrain-epochs", self.pretrain_epochs, 0),
            ("--cd-steps", self.cd_steps, 1),
        ):
            if value < low:
                raise AerecError(f"{flag} must be at least {low}, not {value}")
        if not self.lr > 0:
            raise AerecError(f"--lr must be positive, not {self.lr}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise AerecError(f"--weight-decay must be 0 or more, not {self.weight_decay}")
        if not 0 < self.val_fraction < 0.5:
            raise AerecError(f"--val-fraction must be in (0, 0.5), not {self.val_fraction}")
        if any(h < 1 for h in self.hidden):
            raise AerecError(f"--hidden sizes must be at least 1, not {self.hidden}")

    @property
    def l2(self) -> float:
        """The weight decay in force: the one given, else the kind's default."""
        if self.weight_decay is not None:
            return self.weight_decay
        return WEIGHT_DECAY.get(self.kind, DEFAULT_WEIGHT_DECAY)
