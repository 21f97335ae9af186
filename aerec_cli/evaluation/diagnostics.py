"""Measurements that show each kind is itself: sparsity, contraction, robustness to missing
inputs. Used by the tests and the benchmark; they read a model and a rating matrix only."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.models.autoencoders import ContractiveAutoencoder, RatingAutoencoder, predict_entries
from aerec_cli.models.batches import SparseRows


@torch.no_grad()
def _codes(model: RatingAutoencoder, rows: sp.csr_matrix) -> torch.Tensor:
    inputs = SparseRows(rows, next(model.parameters()).device)
    batches = torch.split(torch.arange(inputs.n_rows), 512)
    return torch.cat([model.encode(inputs.batch(b)) for b in batches])


def mean_activation(model: RatingAutoencoder, rows: sp.csr_matrix) -> float:
    """Mean hidden (code) activation over all rows and units."""
    return float(_codes(model, rows).mean())


def mean_jacobian_norm(model: RatingAutoencoder, rows: sp.csr_matrix) -> float:
    """Mean Frobenius norm of the first encoder layer's Jacobian dh/dx over the rows."""
    codes = _codes(model, rows) if len(model.encoder) == 1 else None
    if codes is None:
        raise ValueError("defined here for one-layer encoders")
    with torch.no_grad():
        return float(ContractiveAutoencoder.jacobian_norm2(model, codes).sqrt().mean())


def withheld_rmse(
    model: RatingAutoencoder,
    inputs: sp.csr_matrix,
    targets: sp.csr_matrix,
    withhold: float,
    seed: int = 0,
    scale: tuple[float, float] = (1.0, 5.0),
) -> float:
    """RMSE on ``targets`` when a share of each input row's known ratings is withheld."""
    coo = inputs.tocoo()
    keep = np.random.default_rng(seed).random(coo.nnz) >= withhold
    kept = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=inputs.shape)
    device = next(model.parameters()).device
    goal = targets.tocoo()
    predicted = predict_entries(model, SparseRows(kept, device), goal.row, goal.col)
    return float(np.sqrt(np.mean((np.clip(predicted, *scale) - goal.data) ** 2)))
