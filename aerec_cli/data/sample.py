"""The built-in ``sample`` dataset: synthetic, deterministic, offline, and learnable.

Ratings come from a planted low-rank taste model passed through a nonlinearity, plus user and
item biases and a popularity-skewed choice of what each user rates, so an autoencoder has real
structure to find and the bias baseline does not already explain everything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aerec_cli.data.readers import RatingsTable

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation"]
N_USERS, N_ITEMS, N_FACTORS, MEAN_RATED = 400, 300, 6, 45


def sample_table() -> RatingsTable:
    rng = np.random.default_rng(20240601)
    users = rng.normal(size=(N_USERS, N_FACTORS))
    items = rng.normal(size=(N_ITEMS, N_FACTORS))
    affinity = np.tanh(users @ items.T / np.sqrt(N_FACTORS) * 1.5)
    score = 3.4 + 1.3 * affinity + rng.normal(0, 0.3, N_USERS)[:, None]
    score += rng.normal(0, 0.35, N_ITEMS)[None, :] + rng.normal(0, 0.35, (N_USERS, N_ITEMS))
    stars = np.clip(np.rint(score), 1, 5).astype(np.float32)

    popularity = rng.pareto(1.5, N_ITEMS) + 0.2
    rows, cols = [], []
    for user in range(N_USERS):
        count = int(np.clip(rng.lognormal(np.log(MEAN_RATED), 0.5), 12, N_ITEMS // 2))
        chosen = rng.choice(N_ITEMS, size=count, replace=False, p=popularity / popularity.sum())
        rows.append(np.full(count, user))
        cols.append(chosen)
    user_idx, item_idx = np.concatenate(rows), np.concatenate(cols)
    ratings = pd.DataFrame(
        {
            "user": (user_idx + 1).astype(str),
            "item": (item_idx + 1).astype(str),
            "rating": stars[user_idx, item_idx],
            "timestamp": 946684800 + rng.integers(0, 10 * 365 * 86400, len(user_idx)),
        }
    )
    # An item's two strongest taste factors name its genres, so genres carry signal.
    genre_of = np.argsort(-items, axis=1)
    titles = pd.DataFrame(
        {
            "item": [str(i + 1) for i in range(N_ITEMS)],
            "title": [f"Sample Movie {i + 1:03d} ({1970 + i % 50})" for i in range(N_ITEMS)],
            "genres": [
                "|".join(GENRES[g] for g in sorted(genre_of[i, :2])) for i in range(N_ITEMS)
            ],
        }
    )
    return RatingsTable(ratings, titles, "sample", (1.0, 5.0))
