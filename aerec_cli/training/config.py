"""Training settings as one dataclass (no torch import, so the CLI can show its defaults fast).

The kind's own options live in ``options``, filled with the kind's declared defaults; which
options a kind takes and their allowed values are declared once, in models/kinds.py, and
checked here. The defaults were chosen on the validation slice of ML-100K (see BENCHMARKS.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aerec_cli.errors import AerecError
from aerec_cli.models import kinds

ORIENTATIONS = ("item", "user")
# What a run learns: star ratings (the kind's autoencoder), top-N lists (the ranker,
# models/ranker.py), or both (the default: `recommend` ranks by the ranker and shows stars).
OBJECTIVES = ("both", "rating")


def _rule(name: str, kind: type, low: float | None, high: float | None, **openness) -> kinds.Option:
    """A numeric setting's allowed range, declared like a kind option so that it is checked
    and worded the same way (finite, in range, the flag named)."""
    return kinds.Option(name=name, type=kind, default=None, help="", low=low, high=high, **openness)


# Every numeric training setting, with its range (None: unbounded on that side). Whole numbers
# are bounded above too: a value past what torch's int64 counters hold is a traceback there.
NUMBERS = (
    _rule("epochs", int, 1, kinds.MAX_EPOCHS),
    _rule("lr", float, 0, None, low_open=True),
    _rule("batch_size", int, 1, 2**31 - 1),
    _rule("weight_decay", float, 0, None),
    _rule("patience", int, 1, kinds.MAX_EPOCHS),
    _rule("lr_patience", int, 0, kinds.MAX_EPOCHS),
    _rule("val_fraction", float, 0, 0.5, low_open=True, high_open=True),
    _rule("seed", int, 0, 2**32 - 1),  # what numpy's and torch's generators all accept
    _rule("rank_epochs", int, 1, kinds.MAX_EPOCHS),
)
SEED = NUMBERS[-2]


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int | None) -> None:
    """--threads: None (every CPU this process may use) or 1 to that many. More threads than
    CPUs only slow torch down, and a huge count exhausts memory on thread stacks."""
    cpus = available_cpus()
    whole = isinstance(threads, int) and not isinstance(threads, bool)
    if threads is not None and not (whole and 1 <= threads <= cpus):
        raise AerecError(
            f"--threads must be from 1 to {cpus} (the CPUs this process may use), not {threads}"
        )


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
    objective: str = "both"
    rank_epochs: int = 100  # most ranker epochs; it stops early on validation NDCG@10
    # The kind's options by name, e.g. {"corruption": 0.4}; those not given take the kind's
    # declared defaults (filled in on construction, so a saved config records them all).
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = kinds.KINDS.get(self.kind) if isinstance(self.kind, str) else None
        if kind is not None:  # an unknown kind is reported by check()
            self.options = {**kind.defaults(), **self.options}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, saved: bool = False) -> TrainConfig:
        """Settings from a mapping whose kind options may also sit at the top level, as in
        a benchmark grid ({"kind": "denoising", "corruption": 0.4}) and in the config.json
        of runs saved before the kind registry.

        ``saved``: a run's own "train" settings. Runs of that older layout stored every
        kind's options, so the ones its kind does not take are dropped rather than refused.
        """
        names = {f.name for f in fields(cls)}
        settings = {k: v for k, v in data.items() if k in names}
        kind = kinds.KINDS.get(settings.get("kind", cls.kind))
        options = dict(settings.pop("options", None) or {})
        for key, value in data.items():
            if key in names:
                continue
            if not any(option.name == key for option, _ in kinds.options()):
                raise AerecError(f"unknown training setting {key!r}")
            if not saved or kind is None or kind.option(key) is not None:
                options[key] = value
        return cls(**settings, options=options)

    def check(self) -> None:
        kind = kinds.get(self.kind)
        if self.orientation not in ORIENTATIONS:
            raise AerecError(f"--orientation must be item or user, not {self.orientation!r}")
        if self.objective not in OBJECTIVES:
            raise AerecError(
                f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}"
            )
        for rule in NUMBERS:
            value = getattr(self, rule.name)
            if value is not None or rule.name != "weight_decay":  # None: the kind's default
                rule.check(value)
        if self.hidden:  # empty: the kind's default sizes, which suit it by construction
            kind.check_hidden(self.hidden)
        kind.check_options(self.options)

    @property
    def ranks(self) -> bool:
        """Whether the run trains a ranker beside its rating autoencoder."""
        return self.objective == "both"

    @property
    def l2(self) -> float:
        """The weight decay in force: the one given, else the kind's default."""
        if self.weight_decay is not None:
            return self.weight_decay
        return kinds.get(self.kind).weight_decay

    @property
    def pretrain_epochs(self) -> int:
        """Layer-wise pretraining epochs per layer; 0 for kinds that have no pretraining."""
        return int(self.options.get("pretrain_epochs", 0))
