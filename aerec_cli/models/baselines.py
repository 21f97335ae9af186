"""Reference predictors fitted on the same train split: global mean and user+item biases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class BiasBaseline:
    """r(u, i) = mu + b_u + b_i, regularised, fitted by alternating least squares.

    The regularisation follows Koren's baseline estimates (as in Surprise's BaselineOnly):
    item biases shrink with reg_item, user biases with reg_user.
    """

    mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray

    @classmethod
    def fit(
        cls, train: sp.csr_matrix, reg_user: float = 15.0, reg_item: float = 10.0, epochs: int = 10
    ) -> BiasBaseline:
        coo = train.tocoo()
        users, items, ratings = coo.row, coo.col, coo.data.astype(np.float64)
        n_users, n_items = train.shape
        mean = float(ratings.mean()) if len(ratings) else 0.0
        user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
        user_counts = np.bincount(users, minlength=n_users)
        item_counts = np.bincount(items, minlength=n_items)
        for _ in range(epochs):
            residual = ratings - mean - user_bias[users]
            item_bias = np.bincount(items, residual, n_items) / (reg_item + item_counts)
            residual = ratings - mean - item_bias[items]
            user_bias = np.bincount(users, residual, n_users) / (reg_user + user_counts)
        return cls(mean, user_bias, item_bias)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mean + self.user_bias[users] + self.item_bias[items]

    def user_scores(self, user: int) -> np.ndarray:
        return self.mean + self.user_bias[user] + self.item_bias


@dataclass
class GlobalMean:
    mean: float

    @classmethod
    def fit(cls, train: sp.csr_matrix) -> GlobalMean:
        return cls(float(train.data.mean()) if train.nnz else 0.0)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mean)
