"""Predictions from a trained autoencoder, for evaluation and recommendation.

Users or items with no training ratings have nothing for the autoencoder to read or learn
from, so their predictions fall back to the bias baseline (mu + b_u + b_i, with a zero bias
for the unseen side). Every prediction is clipped to the rating scale.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.models.autoencoders import RatingAutoencoder
from aerec_cli.models.baselines import BiasBaseline
from aerec_cli.models.batches import SparseRows, oriented


@torch.no_grad()
def predict_entries(
    model: RatingAutoencoder,
    inputs: SparseRows,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """Reconstruction at (row, col) for each pair, feeding each needed row once."""
    order = np.argsort(rows, kind="stable")
    sorted_rows, sorted_cols = rows[order], cols[order]
    unique_rows = np.unique(sorted_rows)
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(unique_rows), batch_size):
        batch = unique_rows[start : start + batch_size]
        lo = np.searchsorted(sorted_rows, batch[0], "left")
        hi = np.searchsorted(sorted_rows, batch[-1], "right")
        local = torch.from_numpy(np.searchsorted(batch, sorted_rows[lo:hi])).to(inputs.device)
        hidden = model.penultimate(model.encode(inputs.batch(torch.from_numpy(batch))))
        cols = torch.from_numpy(sorted_cols[lo:hi].astype(np.int64)).to(inputs.device)
        picked = model.output_at(hidden, local, cols)
        out[order[lo:hi]] = picked.float().cpu().numpy()
    return out


class Scorer:
    """Predicted stars for (user, item) pairs and for all items of one user."""

    def __init__(
        self,
        model: RatingAutoencoder,
        train: sp.csr_matrix,
        orientation: str,
        rating_scale: tuple[float, float],
        device: torch.device,
    ):
        self.model = model.eval()
        self.orientation = orientation
        self.scale = rating_scale
        self.inputs = SparseRows(oriented(train, orientation), device)
        self.baseline = BiasBaseline.fit(train)
        self.user_seen = np.diff(train.indptr) > 0
        self.item_seen = np.bincount(train.indices, minlength=train.shape[1]) > 0
        self._item_hidden: torch.Tensor | None = None

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self.orientation == "item":
            raw = predict_entries(self.model, self.inputs, items, users)
        else:
            raw = predict_entries(self.model, self.inputs, users, items)
        cold = ~(self.user_seen[users] & self.item_seen[items])
        raw = np.where(cold, self.baseline.predict(users, items), raw)
        return np.clip(raw, *self.scale)

    @torch.no_grad()
    def user_scores(self, user: int) -> np.ndarray:
        """Predicted stars for every item, for one (known) user."""
        if self.orientation == "user":
            scores = self.model(self.inputs.batch(torch.tensor([user])))[0].float().cpu().numpy()
        else:
            # Item-oriented: user u is output unit u of every item's reconstruction, so only
            # that unit of the output layer is needed once the item codes are known.
            hidden = self.item_hidden()
            weight, bias = self.model.output.weight[user], self.model.output.bias[user]
            scores = (hidden @ weight + bias).float().cpu().numpy()
        if not self.user_seen[user]:
            scores = self.baseline.user_scores(user)
        scores = np.where(self.item_seen, scores, self.baseline.user_scores(user))
        return np.clip(scores, *self.scale)

    @torch.no_grad()
    def block_scores(self, users: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predicted stars for every item, for a block of users (users x items).

        The same numbers as ``user_scores`` row by row, with the same bias-baseline fallback
        for unseen users and items. ``clip=False`` keeps the raw scores, so items predicted
        above the top star keep their order (ranking evaluation).
        """
        users = np.asarray(users, dtype=np.int64)
        rows = torch.from_numpy(users)
        if self.orientation == "user":
            scores = self.model(self.inputs.batch(rows)).float().cpu().numpy()
        else:
            hidden = self.item_hidden()
            rows = rows.to(hidden.device)
            weight, bias = self.model.output.weight[rows], self.model.output.bias[rows]
            scores = (weight @ hidden.T + bias[:, None]).float().cpu().numpy()
        baseline = self.baseline.mean + self.baseline.user_bias[users][:, None]
        baseline = (baseline + self.baseline.item_bias[None, :]).astype(scores.dtype)
        cold = ~self.user_seen[users][:, None] | ~self.item_seen[None, :]
        scores = np.where(cold, baseline, scores)
        return np.clip(scores, *self.scale) if clip else scores

    def item_hidden(self) -> torch.Tensor:
        """The last hidden layer for every item row (item orientation), computed once."""
        if self._item_hidden is None:
            parts = []
            for batch in torch.split(torch.arange(self.inputs.n_rows), 1024):
                parts.append(self.model.penultimate(self.model.encode(self.inputs.batch(batch))))
            self._item_hidden = torch.cat(parts)
        return self._item_hidden
