"""The autoencoder as numpy arrays, and the sparse products scoring needs (no torch).

Every kind shares one shape at inference: sigmoid encoder layers, mirrored sigmoid decoder
layers and a linear output layer. Past the first layer, the forward pass is
``models.network.hidden_path``, the same function the torch model trains with, so scoring
and training cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from aerec_cli.models.network import hidden_path

if TYPE_CHECKING:
    from aerec_cli.models.autoencoders import RatingAutoencoder

# Entries (ratings) per step of numpy's sparse product (gathered rows stay in cache).
CHUNK_ENTRIES = 1 << 12
# Above this many entries a sparse product goes to scipy.sparse (about 10x faster, but its
# import costs about 0.2 s, more than one user's few hundred ratings take with numpy).
SCIPY_ABOVE = 1 << 16


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings (tanh form), in place on float arrays."""
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    np.add(x, 1.0, out=x)
    np.multiply(x, 0.5, out=x)
    return x


@dataclass
class Network:
    """The autoencoder as numpy arrays: ``weights[k]`` is out x in (torch layout).

    Layers ``0 .. n_encoder-1`` are the encoder (the code is the last one's output), the layers
    after them up to the last are the decoder, and the last is the linear output layer.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    n_encoder: int
    _table: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: RatingAutoencoder) -> Network:
        layers = [*model.encoder, *model.decoder, model.output]
        weights = [_to_numpy(layer.weight) for layer in layers]
        biases = [_to_numpy(layer.bias) for layer in layers]
        return cls(weights, biases, len(model.encoder))

    @property
    def table(self) -> np.ndarray:
        """The first layer input-major (inputs x units): one row per input, for sparse rows."""
        if self._table is None:
            self._table = np.ascontiguousarray(self.weights[0].T)
        return self._table

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    def first(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Pre-activations of the first layer for CSR rows (indptr may start above 0)."""
        return sparse_dot(indptr, indices, data, self.table) + self.biases[0]

    def from_first(self, z1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(code, last hidden layer) from first-layer pre-activations (consumed)."""
        rest = list(zip(self.weights[1:-1], self.biases[1:-1]))
        return hidden_path(z1, rest, sigmoid, self.n_encoder)

    def output(self, hidden: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """The linear output layer, for all units or only ``cols``."""
        if cols is None:
            return hidden @ self.weights[-1].T + self.biases[-1]
        return hidden @ self.weights[-1][cols].T + self.biases[-1][cols]


def _to_numpy(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)


def sparse_dot(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """CSR rows (``indptr`` over ``indices``/``data``) times ``table`` (inputs x units)."""
    n_rows = len(indptr) - 1
    base = int(indptr[0])
    if int(indptr[-1]) - base > SCIPY_ABOVE:
        import scipy.sparse as sp

        stop = int(indptr[-1]) - base
        matrix = sp.csr_matrix(
            (data[:stop], indices[:stop], np.asarray(indptr) - base),
            shape=(n_rows, table.shape[0]),
        )
        return np.asarray(matrix @ table, dtype=np.float32)
    out = np.zeros((n_rows, table.shape[1]), dtype=np.float32)
    row = 0
    while row < n_rows:
        # As many whole rows as fit CHUNK_ENTRIES (at least one).
        stop = int(np.searchsorted(indptr, indptr[row] + CHUNK_ENTRIES, "right")) - 1
        stop = min(max(stop, row + 1), n_rows)
        lo, hi = int(indptr[row]) - base, int(indptr[stop]) - base
        if hi > lo:
            products = table[indices[lo:hi]] * data[lo:hi, None]
            starts = indptr[row:stop] - base - lo
            filled = indptr[row + 1 : stop + 1] > indptr[row:stop]
            out[row:stop][filled] = np.add.reduceat(products, starts[filled], axis=0)
        row = stop
    return out


def row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each entry's row in ``rows``, entry index) for the CSR rows ``rows``."""
    starts, ends = indptr[rows], indptr[rows + 1]
    counts = (ends - starts).astype(np.int64)
    local = np.repeat(np.arange(len(rows)), counts)
    offsets = np.cumsum(counts) - counts
    positions = np.arange(int(counts.sum())) - offsets[local] + starts[local]
    return local, positions


def fold_in(
    hidden: np.ndarray,
    stars: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
    val_rmse: float,
) -> tuple[np.ndarray, float]:
    """Ridge fit of one output unit (w, b) with r ~ hidden @ w + b, shrunk towards the mean
    trained unit: a Gaussian prior with the trained units' mean and per-dimension variance."""
    w0 = weights.mean(0).astype(np.float64) if len(weights) else np.zeros(hidden.shape[1])
    b0 = float(biases.mean()) if len(biases) else float(stars.mean())
    w_var = max(float(weights.var(0).mean()) if len(weights) > 1 else 0.0, 1e-8)
    b_var = max(float(biases.var()) if len(biases) > 1 else 0.0, 1e-8)
    noise = max(float(val_rmse) ** 2, 1e-2)
    x = np.hstack([hidden, np.ones((len(hidden), 1))])
    theta0 = np.append(w0, b0)
    prior = np.append(np.full(hidden.shape[1], w_var), b_var)  # prior variances
    residual = stars - x @ theta0
    # Dual (kernel) form: n_rated x n_rated, cheap when there are fewer ratings than units.
    kernel = (x * prior) @ x.T + noise * np.eye(len(x))
    theta = theta0 + prior * (x.T @ np.linalg.solve(kernel, residual))
    return theta[:-1], float(theta[-1])
