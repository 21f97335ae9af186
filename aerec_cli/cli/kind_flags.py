"""`aerec train`'s flags and help that come from the kind registry (models/kinds.py).

A command function marks the parameters to generate with ``= GENERATED``: ``kind``, ``hidden``
(parsed into a list of sizes) and ``weight_decay`` get their help from the declarations, and
``kind_options`` becomes one flag per declared option (in the "Kind options" panel), collected
back into a dict of the options the user gave. The flags are built each time Typer builds the
command, from the registry as it is then, so declaring a kind or an option is all it takes to
get its flags.

Values are only parsed here (text to number); their rules are checked once, by
``TrainConfig.check``, which reads the same declarations.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

import typer
from typer.core import TyperCommand

from aerec_cli.models import kinds
from aerec_cli.training.config import TrainConfig

GENERATED: Any = object()  # marks a parameter whose Typer option this module builds
PANEL = "Kind options"


class KindsCommand(TyperCommand):
    """A command whose epilog lists the declared kinds, each with its one-line help."""

    def __init__(self, *args, **kwargs):
        kinds_text = "\n\n".join(["Kinds:", *(f"{k.name}: {k.help}" for k in kinds.KINDS.values())])
        kwargs["epilog"] = kinds_text
        super().__init__(*args, **kwargs)


def with_kind_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its ``= GENERATED`` parameters built from the registry (see above)."""
    return _KindFlagged(func)


class _KindFlagged:
    """A callable with a ``__signature__`` computed when read: Typer reads it each time it
    builds the command, so the flags follow the registry (a test may register a kind)."""

    def __init__(self, func: Callable[..., Any]):
        copied = tuple(name for name in functools.WRAPPER_ASSIGNMENTS if name != "__annotations__")
        functools.update_wrapper(self, func, assigned=copied)
        self._func = func

    @property
    def __signature__(self) -> inspect.Signature:
        return _signature(inspect.signature(self._func))

    @property
    def __annotations__(self) -> dict[str, Any]:
        # Typer prefers these to the signature's, so they must show the generated ones too.
        return {
            name: param.annotation
            for name, param in self.__signature__.parameters.items()
            if param.annotation is not inspect.Parameter.empty
        }

    def __call__(self, **values: Any) -> Any:
        ctx = values["ctx"]
        given = {}
        for option, _ in kinds.options():
            value = values.pop(option.name)
            # Only the options the user gave: the config fills in the kind's defaults, and
            # an option of another kind is an error rather than silently ignored.
            if ctx.get_parameter_source(option.name).name != "DEFAULT":
                given[option.name] = value
        return self._func(**values, kind_options=given)


def _signature(signature: inspect.Signature) -> inspect.Signature:
    builders = {
        "kind": _kind_param,
        "hidden": _hidden_param,
        "weight_decay": _weight_decay_param,
    }
    params = []
    # Keyword-only throughout (Typer passes keywords), so generated flags may sit anywhere.
    for param in (
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
    ):
        if param.default is not GENERATED:
            params.append(param)
        elif param.name == "kind_options":
            taken = set(signature.parameters)
            params += [_option_param(option, takers, taken) for option, takers in kinds.options()]
        else:
            params.append(builders[param.name](param))
    return signature.replace(parameters=params)


def _kind_param(param: inspect.Parameter) -> inspect.Parameter:
    # The names go in the help rather than in a Literal's metavar: that column would grow to
    # fit all of them and squeeze every option's help. TrainConfig.check refuses other names.
    names = " | ".join(kinds.KINDS)
    return param.replace(
        annotation=str,
        default=typer.Option(TrainConfig.kind, "--kind", help=f"{names} (see Kinds below)."),
    )


def _hidden_param(param: inspect.Parameter) -> inspect.Parameter:
    rules: dict[str, list[str]] = {}  # the default rule in words -> the kinds that use it
    for kind in kinds.KINDS.values():
        rules.setdefault(kind.hidden.describe, []).append(kind.name)
    defaults = "; ".join(f"{'/'.join(names)} {rule}" for rule, names in rules.items())
    return param.replace(
        annotation=str,
        default=typer.Option(
            None,
            "--hidden",
            help=f"Layer sizes, e.g. 500 or 500,250 \\[default: {defaults}].",
            parser=kinds.parse_hidden,
        ),
    )


def _weight_decay_param(param: inspect.Parameter) -> inspect.Parameter:
    by_value: dict[float, list[str]] = {}
    for kind in kinds.KINDS.values():
        by_value.setdefault(kind.weight_decay, []).append(kind.name)
    # The most common value is "the" default; the others are named with their kinds.
    common = max(by_value, key=lambda value: len(by_value[value]))
    others = "".join(
        f"; {' and '.join(names)} {value:g}" for value, names in by_value.items() if value != common
    )
    return param.replace(
        annotation=float,
        default=typer.Option(
            None,
            "--weight-decay",
            help=f"L2 strength (AutoRec's lambda) \\[default: {common:g}{others}; grown as "
            "(ratings / 90,000)^0.4 on larger data].",
        ),
    )


def _option_param(option: kinds.Option, takers: list[kinds.Kind], taken: set[str]):
    if option.name in taken:  # a programming error in a declaration
        raise ValueError(f"kind option {option.name} clashes with a train parameter")
    # The label of the value in --help, written here from the declaration: with a parser,
    # Typer would show the parser's name rather than the choices or the range.
    shown = option.describe_range()
    if option.choices:
        metavar = f"<{'|'.join(option.choices)}>"
    elif shown:
        metavar = f"<{option.type.__name__} range> [{shown}]"
    else:
        metavar = f"<{option.type.__name__}>"
    annotation = Literal[option.choices] if option.choices else option.type  # type: ignore
    return inspect.Parameter(
        option.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=annotation,
        default=typer.Option(
            option.default,
            option.flag,
            help=f"{'/'.join(kind.name for kind in takers)}: {option.help}",
            rich_help_panel=PANEL,
            # The parser makes Typer hand over the value as parsed; TrainConfig.check
            # applies the declared rule
            # (one place, one message for the CLI and the Python API alike).
            parser=option.parse,
            metavar=metavar,
        ),
    )
