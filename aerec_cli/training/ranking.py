"""Training the ranker (models/ranker.py) after the rating autoencoder, on the same train split.

The Mult-DAE learns from users' whole rows: a multinomial log-likelihood of the rating-weighted
targets over every item. A seeded 10% of the train ratings is held out; every CHECK_EVERY
epochs the top-10 lists of the fit part are scored against it (NDCG@10, relevant = the
evaluation threshold), and training stops after PATIENCE checks without progress, keeping the
best weights. The network is not refitted: scoring feeds each user's whole train row. EASE is
fitted in closed form on the whole train split.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from aerec_cli.data.splits import hold_out
from aerec_cli.evaluation.metrics import default_relevant, ranking_metrics
from aerec_cli.models import ease, ranker
from aerec_cli.models.batches import SparseRows, row_batches
from aerec_cli.training.config import TrainConfig
from aerec_cli.training.optimizer import adam

HIDDEN = 200  # 600 was no better on either validation slice, at 3x the cost
DROPOUT = 0.5
LR = 1e-3
BATCH_USERS = 128
CHECK_EVERY = 5  # epochs between validation checks
PATIENCE = 3  # checks without a better NDCG@10 before stopping
VAL_FRACTION = 0.1
SCORE_BLOCK = 1024  # users per block when scoring every item


@dataclass
class RankerFit:
    model: ranker.MultinomialRanker
    ease: np.ndarray | None  # item x item weights; None above ease.MAX_ITEMS
    ease_lambda: float | None
    history: list[dict]
    best_epoch: int  # 0: stopped before the first validation check
    best_ndcg: float
    # Ended by ``stop()`` (Ctrl-C) before early stopping or the last epoch.
    stopped: bool = False
    seconds: float = 0.0  # the whole fit, EASE included
    warnings: list[str] = field(default_factory=list)  # e.g. a derived file left unwritten


def ease_lambda(n_users: int) -> float:
    """EASE's L2 strength by data size: 500 was best on ML-100K's validation slice (943 users),
    1000 on ML-1M's (6,040 users); more users support a stronger fit with more shrinkage."""
    return 500.0 if n_users < 3000 else 1000.0


def fit_ranker(
    train: sp.csr_matrix,
    *,
    config: TrainConfig,
    rating_scale: tuple[float, float],
    device: torch.device,
    on_epoch: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> RankerFit:
    """The ranker of a run, trained on ``train`` (users x items). ``stop()`` ends training
    early (after the current epoch) with the best weights so far."""
    began = time.perf_counter()
    top = rating_scale[1]
    relevant = default_relevant(rating_scale)
    fit_part, rows, cols, values = hold_out(train, VAL_FRACTION, config.seed)
    held = sp.csr_matrix((values, (rows, cols)), shape=train.shape)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = ranker.MultinomialRanker(train.shape[1], HIDDEN, DROPOUT).to(device)
    loop = _Loop(model, fit_part, top=top, device=device, generator=generator)
    history, best, best_state, since, stopped = [], (-1.0, 0), None, 0, False
    for epoch in range(1, config.rank_epochs + 1):
        started = time.perf_counter()
        loss = loop.epoch()
        row = {"phase": "rank", "layer": "", "epoch": epoch, "train_loss": round(loss, 6)}
        if epoch % CHECK_EVERY == 0 or epoch == config.rank_epochs:
            ndcg = _validation_ndcg(model, fit_part, held, relevant)
            row["val_ndcg"] = round(ndcg, 6)
            if ndcg > best[0] + 1e-6:
                best, best_state, since = (ndcg, epoch), copy.deepcopy(model.state_dict()), 0
            else:
                since += 1
        row["seconds"] = round(time.perf_counter() - started, 4)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if since >= PATIENCE:
            break
        if epoch < config.rank_epochs and stop():
            stopped = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    weights, lam = _fit_ease(train, top)
    return RankerFit(
        model.eval(),
        weights,
        lam,
        history,
        best[1],
        max(best[0], 0.0),
        stopped=stopped,
        seconds=time.perf_counter() - began,
    )


def _fit_ease(train: sp.csr_matrix, top: float) -> tuple[np.ndarray | None, float | None]:
    if train.shape[1] > ease.MAX_ITEMS:
        return None, None
    lam = ease_lambda(train.shape[0])
    return ease.soft_weights(train, ranker.targets(train, top), lam), lam


class _Loop:
    """One epoch after another over the users with ratings, in shuffled batches."""

    def __init__(self, model, fit_part: sp.csr_matrix, *, top, device, generator):
        self.model, self.generator = model, generator
        self.inputs = SparseRows(ranker.inputs(fit_part, top), device)
        self.targets = SparseRows(ranker.targets(fit_part, top), device)
        self.rows = np.flatnonzero(np.diff(fit_part.indptr) > 0)
        self.optimizer = adam(model.parameters(), lr=LR, device=device)

    def epoch(self) -> float:
        self.model.train()
        total, batches = 0.0, 0
        order = torch.from_numpy(self.rows)
        for picked in row_batches(len(self.rows), BATCH_USERS, self.generator):
            users = order[picked]
            log_p = self.model(self.inputs.batch(users), self.generator)
            target = self.targets.batch(users)
            loss = -(log_p[target.row, target.col] * target.value).sum() / len(users)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        self.model.eval()
        return total / max(batches, 1)


@torch.no_grad()
def log_probabilities(model, inputs: SparseRows, users: np.ndarray) -> np.ndarray:
    """log p(item | user's row) for a block of users (users x items)."""
    return model(inputs.batch(torch.from_numpy(users))).float().cpu().numpy()


def _validation_ndcg(model, fit_part, held, relevant: float) -> float:
    inputs = SparseRows(ranker.inputs(fit_part, 1.0), model.table.device)
    # Scale-free: the input rows are normalised to unit length, so dividing by the top star
    # first changes nothing; 1.0 spares passing it.
    _, results = ranking_metrics(
        {"ranker": lambda users: log_probabilities(model, inputs, users)},
        fit_part,
        held,
        relevant,
        [10],
        batch_size=SCORE_BLOCK,
    )
    value = results["ranker"]["ndcg@10"]
    return float(value) if value is not None else 0.0


def ranker_record(ranked: RankerFit) -> dict:
    """What run_store keeps of a ranker: its tensors, and its settings in config.json."""
    tensors = {
        f"dae.{k}": v.detach().cpu().contiguous() for k, v in ranked.model.state_dict().items()
    }
    if ranked.ease is not None:
        tensors["ease"] = torch.from_numpy(np.ascontiguousarray(ranked.ease, dtype=np.float32))
    config = {
        "model": ranked.model.spec(),
        "ease_lambda": ranked.ease_lambda,
        "best_epoch": ranked.best_epoch,
    }
    return {"tensors": tensors, "config": config}
