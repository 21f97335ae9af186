"""The autoencoder kinds, each declared once: the one place that says what a kind is.

A :class:`Kind` names its model class, gives its one-line help, its rule for hidden layer
sizes, its default L2 strength and its options. Each :class:`Option` is declared once, with its
type, default, allowed range or choices and help, and listed by every kind that takes it.
Everything else reads these declarations: ``TrainConfig`` (its kind options, defaults and
checks), `aerec train`'s flags and help, ``build_model`` and the saved specs, and the
benchmarks' kind lists.

To add a kind, write its model class in autoencoders.py (its behaviour) and add a ``Kind`` to
``KINDS``. To add an option, declare an ``Option`` and list it in the ``options`` of the kinds
that take it; a model option becomes a keyword argument of the model class.

No torch here: the CLI reads this at start-up, and `aerec recommend` never imports torch, so
a kind names its model class as ``"module:Class"`` and it is imported only when a model is
built.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aerec_cli.errors import AerecError

_TYPE_WORDS = {int: "a whole number", float: "a number", str: "a word"}


@dataclass(frozen=True, kw_only=True)
class Option:
    """One kind option: ``name`` is its Python name; its flag is ``--name-with-dashes``.

    ``low``/``high`` bound a number (inclusive unless ``low_open``/``high_open``);
    ``choices`` lists a word's allowed values. ``model``: a keyword argument of the model
    class, saved in the model's spec; when False, the training recipe reads it (pretraining)
    and the network does not depend on it.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    model: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """A command-line value as the option's type; the range is checked by :meth:`check`."""
        if self.type is str:
            return text
        try:
            return self.type(text)
        except ValueError:
            raise AerecError(f"{self.flag} takes {_TYPE_WORDS[self.type]}, not {text!r}") from None

    def check(self, value: Any) -> None:
        """Raise AerecError, naming the flag and the rule, unless ``value`` is allowed."""
        if not self._has_type(value):
            raise AerecError(f"{self.flag} takes {_TYPE_WORDS[self.type]}, not {value!r}")
        if self.choices and value not in self.choices:
            raise AerecError(f"{self.flag} must be one of {', '.join(self.choices)}, not {value!r}")
        if self.type is float and not math.isfinite(value):
            # nan and inf train nothing: refused here rather than blamed later on --lr.
            rule = "" if self.low is None and self.high is None else f" {self.describe_rule()}"
            raise AerecError(f"{self.flag} must be a finite number{rule}, not {value}")
        if not self._in_range(value):
            raise AerecError(f"{self.flag} must be {self._broken_rule(value)}, not {value}")

    def _broken_rule(self, value: Any) -> str:
        """The rule as the error states it. A whole number names the bound it crossed ("at
        least 1"): its upper bound is often only a cap far beyond any sensible value."""
        if self.type is not int or self.low is None or self.high is None:
            return self.describe_rule()
        return (
            f"at least {_number(self.low)}" if value < self.low else f"at most {_number(self.high)}"
        )

    def _has_type(self, value: Any) -> bool:
        if self.type is str:
            return isinstance(value, str)
        # A whole number is a fine float; a bool is not a number here.
        allowed = (int, float) if self.type is float else (int,)
        return isinstance(value, allowed) and not isinstance(value, bool)

    def _in_range(self, value: Any) -> bool:
        # Each bound asks "is the value inside?", which NaN never is, so NaN is refused.
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or bool(
            value < self.high if self.high_open else value <= self.high
        )

    def describe_rule(self) -> str:
        """The allowed range in words, as error messages say it: "in [0, 1)", "0 or more"."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(low)}, {_number(high)}{right}"
        if low is not None:
            if self.low_open:
                return f"above {_number(low)}"
            return f"at least {_number(low)}" if self.type is int else f"{_number(low)} or more"
        if high is not None:
            return f"below {_number(high)}" if self.high_open else f"at most {_number(high)}"
        return "any value"

    def describe_range(self) -> str | None:
        """The allowed range as Typer prints one in `--help` (``0<=x<1``, ``x>=0``)."""
        if self.low is None and self.high is None:
            return None
        if self.high is None:
            return f"x{'>' if self.low_open else '>='}{_number(self.low)}"
        left = "" if self.low is None else f"{_number(self.low)}{'<' if self.low_open else '<='}"
        return f"{left}x{'<' if self.high_open else '<='}{_number(self.high)}"


def _number(value: float) -> str:
    """A bound as people write it: 4294967295 and 1000000 whole, 0.5 as is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_hidden(text: str) -> list[int]:
    """`--hidden` as given on the command line, e.g. "500,250"; the sizes are checked by
    :meth:`Kind.check_hidden`, which knows the kind."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AerecError(f"--hidden takes integers like 500 or 500,250, not {text!r}") from None


@dataclass(frozen=True)
class Hidden:
    """A rule for hidden layer sizes that several kinds share.

    ``sizes`` gives the default sizes for a number of inputs and ``describe`` says it in
    words for `--help`; ``deep``: two or more layers (else exactly one).
    """

    sizes: Callable[[int], list[int]]
    describe: str
    deep: bool = False


def _two_layers(n_inputs: int) -> list[int]:
    first = max(2, min(500, n_inputs // 2))
    return [first, max(1, first // 2)]


ONE_LAYER = Hidden(lambda n: [max(1, min(300, n // 2))], "min(300, inputs/2)")
# More units than inputs, rounded up to a multiple of 64, capped for memory.
OVERCOMPLETE = Hidden(lambda n: [min(8192, -(-int(n * 1.25) // 64) * 64)], "1.25 x inputs")
TWO_LAYERS = Hidden(_two_layers, "min(500, inputs/2) and half that", deep=True)


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One autoencoder kind. ``model`` is its class as ``"module:Class"``; ``undercomplete``:
    its one layer must be smaller than the input; ``weight_decay``: its default L2 strength
    (AutoRec's lambda), chosen on the validation slice (benchmarks/search-*.csv)."""

    name: str
    help: str
    model: str
    hidden: Hidden
    options: tuple[Option, ...] = ()
    weight_decay: float = 100.0
    undercomplete: bool = False

    def model_class(self) -> type:
        module, _, attribute = self.model.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {option.name: option.default for option in self.options}

    def model_options(self) -> tuple[Option, ...]:
        return tuple(option for option in self.options if option.model)

    def check_options(self, values: Mapping[str, Any]) -> None:
        """Every value is one of this kind's options and in its range."""
        for name, value in values.items():
            option = self.option(name)
            if option is None:
                raise AerecError(self._foreign(name))
            option.check(value)

    def _foreign(self, name: str) -> str:
        takers = [kind.name for kind in KINDS.values() if kind.option(name) is not None]
        flag = "--" + name.replace("_", "-")
        if takers:
            return f"{flag} is an option of {'/'.join(takers)}; --kind {self.name} does not take it"
        own = ", ".join(option.flag for option in self.options) or "none"
        return f"unknown option {name!r} of --kind {self.name} (its options: {own})"

    def check_hidden(self, hidden: list[int], n_inputs: int | None = None) -> None:
        """The layer sizes suit this kind; with ``n_inputs``, also suit that input size."""
        if any(not isinstance(size, int) or isinstance(size, bool) for size in hidden):
            raise AerecError(f"--hidden takes whole numbers, not {hidden}")
        if any(size < 1 for size in hidden):
            raise AerecError(f"--hidden sizes must be at least 1, not {hidden}")
        if self.hidden.deep and len(hidden) < 2:
            raise AerecError(f"{self.name} needs two or more hidden sizes, e.g. --hidden 500,250")
        if not self.hidden.deep and len(hidden) != 1:
            raise AerecError(
                f"{self.name} takes one hidden size (--hidden N); use stacked for more layers"
            )
        if self.undercomplete and n_inputs is not None and hidden[0] >= n_inputs:
            raise AerecError(
                f"{self.name} is undercomplete: --hidden {hidden[0]} must be below the input "
                f"size {n_inputs}; pick a smaller --hidden (or --kind sparse for overcomplete)"
            )


# --- the declarations ------------------------------------------------------------------------

# The most epochs of any kind a run may ask for (fine-tuning, pretraining, ranker): far more
# than any training needs, and small enough for every counter and progress display.
MAX_EPOCHS = 1_000_000

SPARSITY_TARGET = Option(
    name="sparsity_target",
    type=float,
    default=0.05,
    help="target mean activation of each hidden unit.",
    low=0,
    high=1,
    low_open=True,
    high_open=True,
)
SPARSITY_WEIGHT = Option(
    name="sparsity_weight",
    type=float,
    default=20.0,
    help="weight of the KL sparsity penalty.",
    low=0,
)
CORRUPTION = Option(
    name="corruption",
    type=float,
    default=0.25,
    help="share of observed input ratings hidden (mask noise).",
    low=0,
    high=1,
    high_open=True,
)
NOISE = Option(
    name="noise",
    type=str,
    default="mask",
    help="hide observed ratings (mask), jitter them (gaussian), or both.",
    choices=("mask", "gaussian", "mask+gaussian"),
)
NOISE_STD = Option(
    name="noise_std",
    type=float,
    default=0.3,
    help="std (stars) of Gaussian noise on observed ratings.",
    low=0,
)
CONTRACTION_WEIGHT = Option(
    name="contraction_weight",
    type=float,
    default=0.01,
    help="weight of the Jacobian penalty.",
    low=0,
)
PRETRAIN_EPOCHS = Option(
    name="pretrain_epochs",
    type=int,
    default=10,
    help="pretraining epochs per layer (0: none).",
    low=0,
    high=MAX_EPOCHS,
    model=False,
)
CD_STEPS = Option(
    name="cd_steps",
    type=int,
    default=1,
    help="Gibbs steps of contrastive divergence (CD-k).",
    low=1,
    high=1000,
    model=False,
)

_MODELS = "aerec_cli.models.autoencoders"
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="basic",
            help="undercomplete, one sigmoid bottleneck smaller than the input, linear output "
            "(AutoRec).",
            model=f"{_MODELS}:BasicAutoencoder",
            hidden=ONE_LAYER,
            undercomplete=True,
        ),
        Kind(
            name="sparse",
            help="overcomplete layer; a KL penalty pulls each unit's mean activation to "
            "--sparsity-target.",
            model=f"{_MODELS}:SparseAutoencoder",
            hidden=OVERCOMPLETE,
            options=(SPARSITY_TARGET, SPARSITY_WEIGHT),
        ),
        Kind(
            name="denoising",
            help="observed inputs masked (--corruption) or jittered (--noise); loss on clean "
            "ratings.",
            model=f"{_MODELS}:DenoisingAutoencoder",
            hidden=ONE_LAYER,
            options=(CORRUPTION, NOISE, NOISE_STD),
        ),
        Kind(
            name="contractive",
            help="adds --contraction-weight x the squared Frobenius norm of the encoder's "
            "Jacobian.",
            model=f"{_MODELS}:ContractiveAutoencoder",
            hidden=ONE_LAYER,
            options=(CONTRACTION_WEIGHT,),
        ),
        Kind(
            name="stacked",
            help="two or more layers, each pretrained greedily as a shallow autoencoder, then "
            "fine-tuned.",
            model=f"{_MODELS}:StackedAutoencoder",
            hidden=TWO_LAYERS,
            options=(PRETRAIN_EPOCHS,),
            weight_decay=30.0,
        ),
        Kind(
            name="deep",
            help="a stack of RBMs pretrained by contrastive divergence, unrolled, then fine-tuned.",
            model=f"{_MODELS}:DeepAutoencoder",
            hidden=TWO_LAYERS,
            options=(PRETRAIN_EPOCHS, CD_STEPS),
            weight_decay=30.0,
        ),
    )
}


def get(name: Any) -> Kind:
    """The kind called ``name``; an unknown name is an error that lists the kinds."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise AerecError(f"unknown --kind {name!r}; choose one of: {', '.join(KINDS)}")
    return kind


def options() -> list[tuple[Option, list[Kind]]]:
    """Every declared option once, in declaration order, with the kinds that take it."""
    found: dict[str, tuple[Option, list[Kind]]] = {}
    for kind in KINDS.values():
        for option in kind.options:
            declared, takers = found.setdefault(option.name, (option, []))
            if declared != option:  # a programming error: one name, two declarations
                raise ValueError(f"option {option.name} is declared twice, differently")
            takers.append(kind)
    return list(found.values())


def kind_of(model_class: type) -> Kind:
    """The kind whose declaration names ``model_class``."""
    path = f"{model_class.__module__}:{model_class.__qualname__}"
    for kind in KINDS.values():
        if kind.model == path:
            return kind
    raise AerecError(f"{model_class.__name__} is not the model of any declared kind")
