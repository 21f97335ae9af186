"""EASE as a ranking baseline of `evaluate` (the model itself is in models/ease.py).

lambda is chosen on the train split alone, never on test: a seeded 10% of the train ratings is
held out (data/splits.hold_out, the rule training's validation slice uses), EASE is fitted on
the other 90% for each lambda the search tries (see climb) and scored by NDCG@10 on the
held-out slice with the test protocol (relevant = held-out rating >= the threshold,
candidates = every item not in the fit part). The best lambda is refitted on the whole train
split, which then ranks the test split like every other baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from aerec_cli.data.splits import hold_out
from aerec_cli.evaluation.metrics import ranking_metrics
from aerec_cli.models import ease

# Searched from the middle (500) outwards; see climb.
LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
DEFAULT_LAMBDA = 500.0  # when the validation slice has no relevant rating to choose by
VAL_FRACTION = 0.1
VAL_SEED = 0
SELECT_K = 10  # lambda is chosen by NDCG at this cut-off


@dataclass
class EaseBaseline:
    """The fitted model (None when skipped), the lambda chosen and why, or why it was skipped."""

    model: ease.Ease | None
    lam: float | None = None
    validation: dict[float, float | None] = field(default_factory=dict)  # lambda: NDCG@10
    skipped: str | None = None


def skip_reason(n_items: int) -> str | None:
    """Why EASE is not fitted on this catalogue, or None. Reads ease.MAX_ITEMS at call time."""
    if n_items <= ease.MAX_ITEMS:
        return None
    return (
        f"{n_items:,} items (its item x item inverse needs about "
        f"{ease.memory_text(n_items)}); the limit is {ease.MAX_ITEMS:,}"
    )


def validation_scores(
    train: sp.csr_matrix,
    relevant: float,
    *,
    lambdas: Sequence[float] = LAMBDAS,
    fraction: float = VAL_FRACTION,
    seed: int = VAL_SEED,
) -> dict[float, float | None]:
    """NDCG@10 on a held-out slice of ``train`` for the lambdas the search tries (None: no
    relevant rating in the slice)."""
    fit, rows, cols, values = hold_out(train, fraction, seed)
    validation = sp.csr_matrix((values, (rows, cols)), shape=train.shape)
    x = ease.binary(fit)
    gram = ease.gram(x)  # shared by every lambda: only the diagonal shift differs

    def ndcg(lam: float) -> float | None:
        model = ease.Ease(lam, x, ease.weights(gram, lam))
        _, results = ranking_metrics({"ease": model.scores}, fit, validation, relevant, [SELECT_K])
        return results["ease"][f"ndcg@{SELECT_K}"]

    return climb(ndcg, lambdas)


def climb(score: Callable[[float], float | None], lambdas: Sequence[float]) -> dict:
    """Scores along the sorted grid, from its middle towards the better neighbour until
    neither neighbour is better: validation NDCG rises then falls with lambda (too little
    regularisation overfits, too much flattens the weights), and each fit on ML-1M costs
    seconds, so the search fits 3 to 5 of the 7 lambdas (ML-100K 3, ML-1M 5), not all."""
    grid = sorted(float(lam) for lam in lambdas)
    scores: dict[float, float | None] = {}

    def at(i: int) -> float:
        if grid[i] not in scores:
            scores[grid[i]] = score(grid[i])
        value = scores[grid[i]]
        return -np.inf if value is None else value

    here = (len(grid) - 1) // 2
    while True:
        best = max((i for i in (here - 1, here, here + 1) if 0 <= i < len(grid)), key=at)
        if best == here or at(best) <= at(here):
            return dict(sorted(scores.items()))
        here = best


def best_lambda(scores: dict[float, float | None]) -> float:
    """The lambda of the highest validation NDCG; the smaller on a tie."""
    scored = [(value, -lam) for lam, value in scores.items() if value is not None]
    return -max(scored)[1] if scored else DEFAULT_LAMBDA


def fit_baseline(
    train: sp.csr_matrix,
    relevant: float,
    *,
    lambdas: Sequence[float] = LAMBDAS,
    note: Callable[[str], None] | None = None,
) -> EaseBaseline:
    """Choose lambda on a validation slice of ``train``, then fit on all of ``train``."""
    reason = skip_reason(train.shape[1])
    if reason is not None:
        return EaseBaseline(None, skipped=reason)
    if note:
        note(f"fitting EASE (λ chosen on {VAL_FRACTION:.0%} of the train split) ...")
    scores = validation_scores(train, relevant, lambdas=lambdas)
    lam = best_lambda(scores)
    return EaseBaseline(ease.Ease.fit(train, lam), lam, scores)


def as_json(number: float) -> int | float:
    return int(number) if float(number).is_integer() else float(number)


def validation_json(scores: dict[float, float | None]) -> list[dict]:
    return [
        {"lambda": as_json(lam), f"ndcg@{SELECT_K}": value} for lam, value in sorted(scores.items())
    ]
