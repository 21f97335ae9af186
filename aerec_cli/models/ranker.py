"""The ranker's network: a multinomial denoising autoencoder (Mult-DAE, Liang et al. 2018).

A user's stars / top, L2-normalised, half of them dropped in training, through one tanh layer
to a softmax over every item: the probability that the user rates (and likes) each item. Its
targets, and how its scores join EASE's, are in models/ranking.py.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec_cli.models import ranking
from aerec_cli.models.batches import SparseBatch


def targets(train: sp.csr_matrix, top: float) -> sp.csr_matrix:
    """Y: users x items, the target weight of each rating (0 where unrated)."""
    y = sp.csr_matrix(train, dtype=np.float32, copy=True)
    y.data = ranking.target_weights(y.data, top)
    return y


def inputs(train: sp.csr_matrix, top: float) -> sp.csr_matrix:
    """The input rows: stars / top, each user's row scaled to unit length."""
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data = ranking.input_values(x.indptr, x.data, top)
    return x


class MultinomialRanker(nn.Module):
    """Mult-DAE: sparse input rows -> tanh code -> log-probabilities over every item."""

    def __init__(self, n_items: int, hidden: int, dropout: float):
        super().__init__()
        self.n_items, self.hidden, self.dropout = n_items, hidden, dropout
        # Input-major like the autoencoders' input layer: a sparse row picks its rated rows.
        self.table = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, hidden)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.output = nn.Linear(hidden, n_items)
        nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def spec(self) -> dict:
        return {"n_items": self.n_items, "hidden": self.hidden, "dropout": self.dropout}

    def forward(self, x: SparseBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-probabilities (rows x items); in training, inputs are dropped (and rescaled)."""
        value = x.value
        if self.training and self.dropout > 0:
            kept = torch.rand(len(value), generator=generator).to(value.device) >= self.dropout
            value = value * kept / (1 - self.dropout)
        first = F.embedding_bag(x.col, self.table, x.offsets, mode="sum", per_sample_weights=value)
        return F.log_softmax(self.output(torch.tanh(first + self.bias)), dim=1)
