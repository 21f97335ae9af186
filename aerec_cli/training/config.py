"""Training settings as one dataclass (no torch import, so the CLI can show its defaults fast).

The kind's own options live in ``options``, filled with the kind's declared defaults; which
options a kind takes and their allowed values are declared once, in models/kinds.py, and
checked here. The defaults were chosen on the validation slice of ML-100K (see BENCHMARKS.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aerec_cli.errors import AerecError
from aerec_cli.models import kinds

# "both": an item-oriented and a user-oriented network, blended (training/ensemble.py).
ORIENTATIONS = ("item", "user", "both")
# What a run learns: star ratings ("rating": the kind's autoencoder), top-N lists ("ranking":
# the ranker alone, models/ranker.py), or both (the default: `recommend` ranks by the ranker
# and shows the stars).
OBJECTIVES = ("both", "rating", "ranking")
# The settings of the rating autoencoder, by flag: a run with --objective ranking trains none,
# so giving one there is refused rather than silently ignored. The ranker's own settings are
# fixed (training/ranking.py) but for --rank-epochs and --seed.
AUTOENCODER_FLAGS = {
    "kind": "--kind",
    "orientation": "--orientation",
    "hidden": "--hidden",
    "epochs": "--epochs",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "weight_decay": "--weight-decay",
    "patience": "--patience",
    "lr_patience": "--lr-patience",
    "val_fraction": "--val-fraction",
    "ensemble": "--ensemble",
    "val_slices": "--val-slices",
}
# What a ranking-only run records of its settings (config.json "train"): the rest do not apply.
RANKER_SETTINGS = ("seed", "objective", "rank_epochs")
# What config.json (and the default run name) calls the model of a ranking-only run, and its
# orientation: the ranker reads each user's whole row, as a user-oriented autoencoder does.
RANKER_KIND, RANKER_ORIENTATION = "ranker", "user"


# The kinds' default L2 strengths were chosen on ML-100K's validation slice (90,000 training
# ratings, 85,500 of them fitted). AutoRec's lambda weighs the whole objective, so on more
# ratings the same lambda regularises each rating less; on ML-1M's validation slice (855,000
# ratings fitted) the default kind did best at 250 of 100, 250 and 500 (validation RMSE
# 0.8328, 0.8254, 0.8358; benchmarks/search-ml1m-random.csv). Growing lambda as
# (ratings fitted / 90,000) ** 0.4 above that size gives 100 -> 246 there and leaves ML-100K's
# splits (at most 90,000 ratings) as they were.
L2_REFERENCE_RATINGS = 90_000
L2_GROWTH = 0.4


def default_l2(kind_default: float, n_ratings: int) -> float:
    """A kind's default L2 strength for ``n_ratings`` fitted ratings."""
    return kind_default * max(1.0, n_ratings / L2_REFERENCE_RATINGS) ** L2_GROWTH


# Rating vectors per step: 256, and twice that from LARGE_DATA_RATINGS fitted ratings on. There
# every step's Adam pass over all the weights (the input and output layers are each the input
# size x hidden) costs more than the batch's own arithmetic. On the ML-25M-shaped file (22.5M
# ratings fitted) 512 took 40 s an epoch against 60 s for 256 on 2 cores, with a lower
# validation RMSE after each of the first two epochs (0.998 and 1.007 against 1.073 and 1.025);
# ML-100K and ML-1M, where the defaults were chosen, keep 256.
BATCH_SIZE = 256
LARGE_DATA_RATINGS = 20_000_000


def default_batch_size(n_ratings: int) -> int:
    """The batch size for ``n_ratings`` fitted ratings."""
    return BATCH_SIZE * (2 if n_ratings >= LARGE_DATA_RATINGS else 1)


# --ensemble: networks trained one after another and averaged. Past a handful each adds
# little while training time and the served layers grow with their number (ML-1M, seed 0,
# --hidden 500, validation RMSE of the first 1 to 5 members' mean: 0.8221, 0.8193, 0.8183,
# 0.8179, 0.8177; metrics.json "val_rmse_by_members").
MAX_MEMBERS = 20
MEMBER_SEED_STEP = 1_000_003  # a prime: members' seeds stay apart for any run seed
# --val-slices: whether an ensemble's members hold out the run's validation slice ("shared":
# the ensemble's own validation RMSE is measured) or each its own ("own": together they fit
# every training rating, which on ML-100K beat the shared slice; each side of --orientation
# both then shares its slice with the other side's member of the same number).
VAL_SLICES = ("shared", "own")


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
    _rule("ensemble", int, 1, MAX_MEMBERS),
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
    batch_size: int | None = None  # None: by the data's size (default_batch_size)
    # AutoRec's lambda: lambda/2 * ||W||^2 over the whole objective. None: the kind's default.
    weight_decay: float | None = None
    patience: int = 20
    lr_patience: int = 10  # halve the step size after this many epochs without progress; 0: never
    val_fraction: float = 0.05
    # Rating networks trained with different initialisations on the same data; the run serves
    # their mean (models/autoencoders.ensemble_of). Each holds out the run's validation slice
    # or its own (val_slices: VAL_SLICES).
    ensemble: int = 1
    val_slices: str = "shared"
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
        if self.objective not in OBJECTIVES:
            raise AerecError(
                f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}"
            )
        if not self.rates:
            self._check_nothing_for_the_autoencoder()
        kind = kinds.get(self.kind)
        if self.orientation not in ORIENTATIONS:
            raise AerecError(f"--orientation must be item, user or both, not {self.orientation!r}")
        if self.val_slices not in VAL_SLICES:
            raise AerecError(f"--val-slices must be shared or own, not {self.val_slices!r}")
        for rule in NUMBERS:
            value = getattr(self, rule.name)
            if value is not None or rule.name not in ("weight_decay", "batch_size"):
                # None: the default for the kind (weight_decay) or the data (both)
                rule.check(value)
        if self.hidden:  # empty: the kind's default sizes, which suit it by construction
            kind.check_hidden(self.hidden)
        kind.check_options(self.options)

    def _check_nothing_for_the_autoencoder(self) -> None:
        """--objective ranking: refuse the autoencoder's settings (any not at its default)."""
        default = TrainConfig()
        given = [
            flag
            for name, flag in AUTOENCODER_FLAGS.items()
            if getattr(self, name) != getattr(default, name)
        ]
        # Options are filled with the kind's defaults: only the ones given differ from them.
        kind = kinds.KINDS.get(self.kind) if isinstance(self.kind, str) else None
        own = kind.defaults() if kind is not None else {}
        given += [
            "--" + name.replace("_", "-")
            for name, value in self.options.items()
            if name not in own or value != own[name]
        ]
        if given:
            what = "settings" if len(given) > 1 else "a setting"
            verb, them = ("do", "them") if len(given) > 1 else ("does", "it")
            raise AerecError(
                f"--objective ranking trains the ranker alone, so {', '.join(given)} ({what} of "
                f"the rating autoencoder) {verb} not apply; leave {them} out, or train both "
                "with --objective both"
            )

    @property
    def ranks(self) -> bool:
        """Whether the run trains a ranker (for top-N lists)."""
        return self.objective in ("both", "ranking")

    @property
    def rates(self) -> bool:
        """Whether the run trains the kind's rating autoencoder (for predicted stars)."""
        return self.objective in ("both", "rating")

    def to_dict(self) -> dict[str, Any]:
        """The settings a run records (config.json "train"): every one, or for a ranking-only
        run only those that apply to it, so its config does not name an untrained kind."""
        settings = asdict(self)
        if self.rates:
            return settings
        return {name: settings[name] for name in RANKER_SETTINGS}

    def l2(self, n_ratings: int) -> float:
        """The weight decay in force on ``n_ratings`` training ratings: the one given, else
        the kind's default grown with the data (:func:`default_l2`)."""
        if self.weight_decay is not None:
            return self.weight_decay
        return default_l2(kinds.get(self.kind).weight_decay, n_ratings)

    def batch(self, n_ratings: int) -> int:
        """The batch size in force on ``n_ratings`` fitted ratings: the one given, else
        :func:`default_batch_size`."""
        return self.batch_size or default_batch_size(n_ratings)

    def member_seed(self, member: int) -> int:
        """The seed of an ensemble's member: the run's for the first, so a one-member
        ensemble is the plain run, and distinct for the others. With --orientation both the
        user side's members take the item side's seeds (member k of N: k mod N), so each
        side's first member is the plain run of its orientation."""
        return (self.seed + member % self.ensemble * MEMBER_SEED_STEP) % 2**32

    def slice_seed(self, member: int) -> int:
        """The seed of the validation slice ``member`` holds out (see VAL_SLICES)."""
        return self.member_seed(member) if self.val_slices == "own" else self.seed

    @property
    def pretrain_epochs(self) -> int:
        """Layer-wise pretraining epochs per layer; 0 for kinds that have no pretraining."""
        return int(self.options.get("pretrain_epochs", 0))
