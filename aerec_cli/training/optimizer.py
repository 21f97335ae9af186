"""Adam, as every training phase makes it, and its state as a run saves and resumes it."""

from __future__ import annotations

from collections.abc import Iterable

import torch

# Where torch has a fused Adam (one kernel per step for all weights): on the CPU the default
# is a Python loop of a dozen passes per tensor, a tenth of an ML-1M epoch.
FUSED_DEVICES = ("cpu", "cuda")
# How the step is computed, not what it computes: taken from the optimizer being resumed,
# never from the saved groups (a run may resume on another device, or from an older aerec).
_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def adam(params: Iterable, *, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam over ``params`` (tensors or param-group dicts) on ``device``."""
    return torch.optim.Adam(params, lr=lr, fused=device.type in FUSED_DEVICES or None)


def adam_tensors(optimizer: torch.optim.Adam) -> tuple[dict[str, torch.Tensor], list]:
    """An Adam's moments as flat tensors ("INDEX.NAME", for safetensors) and its param
    groups (plain values, for JSON)."""
    saved = optimizer.state_dict()
    tensors = {}
    for index, slots in saved["state"].items():
        tensors.update({f"{index}.{name}": t for name, t in slots.items()})
    return tensors, saved["param_groups"]


def load_adam(optimizer: torch.optim.Adam, tensors: dict, groups: list, device) -> None:
    """Put back what :func:`adam_tensors` saved."""
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        # The step count goes to the CPU; load_state_dict moves it where this Adam keeps it.
        slots.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value.to(device)
    current = optimizer.param_groups
    groups = [
        {**saved, **{key: now[key] for key in _IMPLEMENTATION if key in now}}
        for saved, now in zip(groups, current)
    ]
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
