"""The forward pass past the input layer, written once for torch tensors and numpy arrays.

Training (torch, models/autoencoders.py) and scoring (numpy, scoring/network.py) both call
:func:`hidden_path`, so a change to the network's shape is made here and reaches both. The
input layer differs only in how a sparse row is multiplied (embedding_bag in torch, a CSR
product in numpy); the output layer is one linear map in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def hidden_path(
    first: Any, layers: Sequence[tuple[Any, Any]], sigmoid: Callable[[Any], Any], n_encoder: int
) -> tuple[Any, Any]:
    """(code, last hidden layer) from the first layer's pre-activation.

    ``layers`` are the (weight, bias) pairs after the input layer and before the output layer,
    weights stored out x in (torch's layout); the code is the output of the ``n_encoder``-th
    layer, the last hidden layer feeds the output layer.
    """
    hidden = sigmoid(first)
    code = hidden
    for index, (weight, bias) in enumerate(layers, start=2):
        hidden = sigmoid(hidden @ weight.T + bias)
        if index == n_encoder:
            code = hidden
    return code, hidden
