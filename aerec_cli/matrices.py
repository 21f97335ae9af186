"""Rating matrices in the model's orientation, and dense row batches built on the device."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def oriented(matrix: sp.csr_matrix, orientation: str) -> sp.csr_matrix:
    """Rows are what the autoencoder reconstructs: items (I-AutoRec) or users (U-AutoRec)."""
    return matrix.T.tocsr() if orientation == "item" else matrix.tocsr()


class SparseRows:
    """A CSR matrix kept on the device, handing out dense batches of rows.

    Only the batch is ever dense, so memory follows the number of ratings rather than
    rows x columns.
    """

    def __init__(self, matrix: sp.csr_matrix, device: torch.device):
        matrix = matrix.tocsr()
        matrix.sort_indices()
        self.shape = matrix.shape
        self.device = device
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(matrix.data.astype(np.float32)).to(device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.to(self.device)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        batch_row = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(int(counts.sum()), device=self.device)
        positions = torch.repeat_interleave(starts - first, counts) + offsets
        out = torch.zeros(len(rows), self.shape[1], device=self.device)
        out[batch_row, self.indices[positions]] = self.values[positions]
        return out


def row_batches(n_rows: int, batch_size: int, generator: torch.Generator | None = None):
    """Row index batches, shuffled when a generator is given."""
    order = torch.randperm(n_rows, generator=generator) if generator else torch.arange(n_rows)
    return torch.split(order, batch_size)
