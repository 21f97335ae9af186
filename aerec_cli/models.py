"""The autoencoders. One rating vector (an item's or a user's) in, its reconstruction out.

All kinds share one shape: sigmoid encoder layers, mirrored sigmoid decoder layers and a linear
output layer (as in AutoRec). What makes a kind itself lives in its own class: a penalty on the
hidden code, a corruption of the input, or a pretraining recipe (see training.py).
"""

from __future__ import annotations

import torch
from torch import nn

from aerec_cli.errors import AerecError


class RatingAutoencoder(nn.Module):
    kind = "basic"

    def __init__(self, n_inputs: int, hidden: list[int]):
        super().__init__()
        if not hidden or min(hidden) < 1:
            raise AerecError(f"hidden layer sizes must be positive integers, not {hidden}")
        sizes = [n_inputs, *hidden]
        self.n_inputs = n_inputs
        self.hidden = list(hidden)
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        # The decoder mirrors the encoder; its last layer is the linear output layer.
        self.decoder = nn.ModuleList(
            nn.Linear(b, a) for a, b in reversed(list(zip(sizes[1:-1], sizes[2:])))
        )
        self.output = nn.Linear(sizes[1], n_inputs)

    def spec(self) -> dict:
        """What build_model needs to rebuild this network (saved in config.json)."""
        return {"kind": self.kind, "n_inputs": self.n_inputs, "hidden": self.hidden}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder:
            x = torch.sigmoid(layer(x))
        return x

    def penultimate(self, code: torch.Tensor) -> torch.Tensor:
        for layer in self.decoder:
            code = torch.sigmoid(layer(code))
        return code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.penultimate(self.encode(x)))

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training input; the clean x stays the target. Identity except for denoising."""
        return x

    def penalty(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """A kind's own regulariser on the code, added to the loss. None for basic."""
        return code.new_zeros(())

    def weight_norm(self) -> torch.Tensor:
        """Sum of squared weights (biases excluded): AutoRec's L2 term."""
        layers = [*self.encoder, *self.decoder, self.output]
        return sum((layer.weight**2).sum() for layer in layers)


class BasicAutoencoder(RatingAutoencoder):
    """Undercomplete: one hidden layer smaller than the input (I-AutoRec / U-AutoRec)."""

    kind = "basic"

    def __init__(self, n_inputs: int, hidden: list[int]):
        if len(hidden) != 1:
            raise AerecError("basic takes one hidden size (--hidden N); use stacked for more layers")
        if hidden[0] >= n_inputs:
            raise AerecError(
                f"basic is undercomplete: --hidden {hidden[0]} must be below the input size "
                f"{n_inputs}; pick a smaller --hidden (or --kind sparse for overcomplete)"
            )
        super().__init__(n_inputs, hidden)


MODEL_KINDS: dict[str, type[RatingAutoencoder]] = {"basic": BasicAutoencoder}


def build_model(spec: dict) -> RatingAutoencoder:
    kind = spec.get("kind")
    if kind not in MODEL_KINDS:
        raise AerecError(f"unknown --kind {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    return MODEL_KINDS[kind](**params)
