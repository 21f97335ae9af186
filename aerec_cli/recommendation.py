"""Top-N lists: the highest-predicted items a user has not rated in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aerec_cli.errors import AerecError
from aerec_cli.evaluation import load_for_scoring


def top_n(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores, best first, skipping ``exclude``."""
    scores = scores.astype(np.float64).copy()
    scores[exclude] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    if n == 0:
        return np.empty(0, dtype=np.int64)
    best = np.argpartition(-scores, n - 1)[:n]
    return best[np.argsort(-scores[best], kind="stable")]


def recommend_for_user(
    user: str, home: Path, device: torch.device, top: int = 10, run: str | None = None
) -> dict:
    """The user's top-N unrated items with titles and predicted stars."""
    if top < 1:
        raise AerecError(f"--top must be at least 1, not {top}")
    loaded = load_for_scoring(home, run, device)
    dataset = loaded.dataset
    index = dataset.user_index(user)
    scores = loaded.scorer.user_scores(index)
    rated = dataset.train.indices[dataset.train.indptr[index] : dataset.train.indptr[index + 1]]
    best = top_n(scores, rated, top)
    items = dataset.items.iloc[best]
    return {
        "user": str(user),
        "run": loaded.run.name,
        "items": [
            {
                "item": row.item,
                "title": row.title or f"item {row.item}",
                "genres": row.genres,
                "score": round(float(score), 4),
            }
            for row, score in zip(items.itertuples(index=False), scores[best])
        ],
    }
