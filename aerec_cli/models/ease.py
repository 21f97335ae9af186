"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a linear
item-to-item model with a closed form, the strong top-N baseline that `evaluate` ranks beside
popularity.

X is the binary train matrix (users x items, 1 where rated). With G = X^T X + lambda I and
P = G^-1, the weights are B = I - P / diag(P) (column j divided by P_jj), so diag(B) = 0: no
item may predict itself. A user's scores are their row of X times B.

numpy/scipy only. The item x item matrices are float32: G holds integer co-occurrence counts
(exact in float32 up to 2^24) plus lambda >= 1, so G is well conditioned, and float32 halves
the memory and the time of the inverse; rankings match a float64 fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from aerec_cli.errors import AerecError

# Above this many items EASE is not fitted: its dense item x item matrices grow as n^2 (two
# float32 copies at 20,000 items are 3.2 GB) and the inverse as n^3.
MAX_ITEMS = 20_000
_BLOCK = 1024  # rows/columns per block when building or mirroring an item x item matrix


def memory_bytes(n_items: int) -> int:
    """What a fit holds at once: the Gram matrix (kept for the lambda search) and the one being
    inverted into B, float32 each."""
    return 2 * n_items**2 * 4


def memory_text(n_items: int) -> str:
    size = memory_bytes(n_items)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def binary(train: sp.spmatrix) -> sp.csr_matrix:
    """X: 1 where a rating is stored, whatever its stars."""
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


def gram(x: sp.csr_matrix, y: sp.csr_matrix | None = None) -> np.ndarray:
    """X^T Y (X^T X by default) as a dense float32 array, built a block of columns at a time:
    one sparse product of the whole catalogue would hold n^2 entries with their indices."""
    n_items = x.shape[1]
    x_t, y_c = x.T.tocsr(), (x if y is None else y).tocsc()
    out = np.empty((n_items, n_items), dtype=np.float32)
    for lo in range(0, n_items, _BLOCK):
        hi = min(lo + _BLOCK, n_items)
        out[:, lo:hi] = (x_t @ y_c[:, lo:hi]).toarray()
    return out


def inverse(gram_matrix: np.ndarray, lam: float) -> np.ndarray:
    """P = (G + lambda I)^-1 by a Cholesky inverse (half the work of a general inverse;
    G + lambda I is positive definite for lambda > 0). Symmetric, C-ordered float32."""
    if not lam > 0:
        raise AerecError(f"EASE's lambda must be positive, not {lam}")
    n_items = len(gram_matrix)
    g = np.array(gram_matrix, dtype=np.float32, order="F")  # LAPACK works on it in place
    g[np.diag_indices(n_items)] += np.float32(lam)
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (g,))
    factor, info = potrf(g, lower=True, clean=False, overwrite_a=True)
    if info == 0:
        inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise AerecError(f"EASE's Gram matrix is not positive definite (LAPACK info {info})")
    _mirror_lower(inverse)
    # P is symmetric, so its transpose is the same matrix in C order (what sparse X @ B reads
    # without a copy).
    return inverse.T


def weights(gram_matrix: np.ndarray, lam: float) -> np.ndarray:
    """B = I - P / diag(P) with P = (G + lambda I)^-1: EASE's closed form, zero diagonal."""
    p = inverse(gram_matrix, lam)
    p /= -np.diag(p).copy()[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def soft_weights(train: sp.spmatrix, targets: sp.spmatrix, lam: float) -> np.ndarray:
    """EASE towards weighted targets Y instead of X itself (the ranker's, models/ranking.py):
    min ||Y - X B||^2 + lambda ||B||^2 with diag(B) = 0. With P = (X^T X + lambda I)^-1 and
    C = P X^T Y, the Lagrangian solution is B = C - P diag(mu), mu_j = C_jj / P_jj; for Y = X
    this is ``weights``."""
    x = binary(train)
    p = inverse(gram(x), lam)
    c = p @ gram(x, sp.csr_matrix(targets, dtype=np.float32))
    mu = np.diag(c) / np.diag(p)
    c -= p * mu[None, :]
    np.fill_diagonal(c, 0.0)
    return np.ascontiguousarray(c, dtype=np.float32)


def _mirror_lower(a: np.ndarray) -> None:
    """Copy the lower triangle onto the upper, in place, a block of rows at a time (potri
    leaves the upper triangle stale; np.tril would need two more n x n arrays)."""
    n = len(a)
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        a[lo:hi, hi:] = a[hi:, lo:hi].T
        square = a[lo:hi, lo:hi]
        upper = np.triu_indices(hi - lo, 1)
        square[upper] = square.T[upper]


@dataclass
class Ease:
    """A fitted EASE: the binary train matrix X and the item weights B (zero diagonal)."""

    lam: float
    interactions: sp.csr_matrix
    weights: np.ndarray

    @classmethod
    def fit(cls, train: sp.spmatrix, lam: float, gram_matrix: np.ndarray | None = None) -> Ease:
        """Fit on ``train`` (stars are ignored: only which entries are rated counts).
        ``gram_matrix``, X^T X of this same train, saves recomputing it for each lambda."""
        x = binary(train)
        if x.shape[1] > MAX_ITEMS:
            raise AerecError(
                f"EASE needs at most {MAX_ITEMS:,} items, not {x.shape[1]:,} "
                f"(its item x item inverse needs about {memory_text(x.shape[1])})"
            )
        g = gram(x) if gram_matrix is None else gram_matrix
        return cls(float(lam), x, weights(g, lam))

    def scores(self, users: np.ndarray) -> np.ndarray:
        """users x items: each user's row of X times B (their rated items score too)."""
        return np.asarray(self.interactions[np.asarray(users)] @ self.weights)
