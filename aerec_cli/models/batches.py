"""Rating matrices in the model's orientation, handed out as sparse batches of rows.

Nothing of size rows x columns is ever built: a batch holds only its rows' observed ratings,
so the cost of training and prediction follows the number of ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.data.splits import hold_out


def oriented(matrix: sp.csr_matrix, orientation: str) -> sp.csr_matrix:
    """Rows are what the autoencoder reconstructs: items (I-AutoRec) or users (U-AutoRec)."""
    return matrix.T.tocsr() if orientation == "item" else matrix.tocsr()


def validation_split(train: sp.csr_matrix, orientation: str, fraction: float, seed: int):
    """(the ratings fitted, in ``orientation``; validation rows, cols, stars): each rating of
    ``train`` (users x items) is held out with probability ``fraction``. The draw is over the
    item-oriented matrix in either orientation, so the two networks of --orientation both are
    judged on the same ratings, listed in the same order."""
    fit, rows, cols, stars = hold_out(oriented(train, "item"), fraction, seed)
    if orientation == "user":
        return fit.T.tocsr(), cols, rows, stars
    return fit, rows, cols, stars


@dataclass
class SparseBatch:
    """The observed entries of a batch of rows, in CSR order.

    ``row`` is each entry's position in the batch, ``col`` its column, ``value`` the rating;
    ``offsets`` are where each row's entries start (as torch's embedding_bag wants them).
    """

    n_rows: int
    n_cols: int
    row: torch.Tensor
    col: torch.Tensor
    value: torch.Tensor
    offsets: torch.Tensor

    def keep(self, mask: torch.Tensor) -> SparseBatch:
        """The same rows with only the entries where ``mask`` is true."""
        row = self.row[mask]
        counts = torch.bincount(row, minlength=self.n_rows)
        offsets = torch.cumsum(counts, 0) - counts
        return SparseBatch(self.n_rows, self.n_cols, row, self.col[mask], self.value[mask], offsets)

    def with_values(self, value: torch.Tensor) -> SparseBatch:
        return SparseBatch(self.n_rows, self.n_cols, self.row, self.col, value, self.offsets)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.n_rows, self.n_cols, device=self.value.device)
        out[self.row, self.col] = self.value
        return out


class SparseRows:
    """A CSR matrix kept on the device, handing out sparse batches of its rows."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device):
        matrix = matrix.tocsr()
        matrix.sort_indices()
        self.shape = matrix.shape
        self.nnz = matrix.nnz
        self.device = device
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(matrix.data.astype(np.float32)).to(device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    def batch(self, rows: torch.Tensor) -> SparseBatch:
        rows = rows.to(self.device)
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        offsets = torch.cumsum(counts, 0) - counts
        row = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        positions = torch.arange(len(row), device=self.device) - offsets[row] + starts[row]
        return SparseBatch(
            len(rows), self.shape[1], row, self.indices[positions], self.values[positions], offsets
        )

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        return self.batch(rows).to_dense()


def row_batches(n_rows: int, batch_size: int, generator: torch.Generator | None = None):
    """Row index batches, shuffled when a generator is given."""
    order = torch.randperm(n_rows, generator=generator) if generator else torch.arange(n_rows)
    return torch.split(order, batch_size)
