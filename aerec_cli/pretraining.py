"""Greedy layer-wise pretraining for the stacked and deep kinds, run before fine-tuning.

Layer k is pretrained on the codes of layers below it, in place inside the model, so the
fine-tuning starts from exactly these weights:

- stacked: each layer is a shallow autoencoder (encoder layer k and its mirror in the
  decoder). The first reconstructs observed ratings with AutoRec's masked loss; the others
  reconstruct the codes below them.
- deep: each layer is an RBM trained by CD-k. The first has Gaussian visible units for the
  ratings (unit variance; unrated units are left out of both phases), the others Bernoulli
  units for the codes. The RBM's weight W serves as encoder layer k and W^T as its mirror.

CD-k is written as the gradient of the free-energy gap F(v_data) - F(v_model), so Adam can
follow it like any other loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from aerec_cli.matrices import SparseRows, row_batches
from aerec_cli.models import RatingAutoencoder


def pretrain(
    model: RatingAutoencoder,
    inputs: SparseRows,
    epochs: int,
    lr: float,
    batch_size: int,
    cd_steps: int,
    generator: torch.Generator,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Pretrain every encoder layer of ``model`` in turn; returns history rows."""
    history = []
    codes: torch.Tensor | None = None  # dense codes of the layer below (None: the ratings)
    for index in range(len(model.encoder)):
        train_layer = _rbm_epoch if model.pretraining == "rbm" else _autoencoder_epoch
        if model.pretraining == "rbm":
            _tie(model, index)
        params = [*model.encoder[index].parameters(), *model.mirror(index).parameters()]
        optimizer = torch.optim.Adam(params, lr=lr)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            error = train_layer(
                model, index, inputs, codes, optimizer, batch_size, cd_steps, generator
            )
            row = {
                "phase": "pretrain",
                "layer": index + 1,
                "epoch": epoch,
                "train_loss": round(error, 6),
                "val_rmse": "",
                "seconds": round(time.perf_counter() - t0, 4),
            }
            history.append(row)
            if on_epoch:
                on_epoch(row)
        codes = _codes_after(model, index, inputs, codes)
    return history


def _batches(inputs: SparseRows, codes, batch_size, generator):
    n_rows = inputs.n_rows if codes is None else len(codes)
    for rows in row_batches(n_rows, batch_size, generator):
        yield inputs.dense(rows) if codes is None else codes[rows.to(codes.device)]


@torch.no_grad()
def _codes_after(model, index, inputs, codes) -> torch.Tensor:
    """The activations of encoder layer ``index`` for every row (input to the next layer)."""
    layer = model.encoder[index]
    parts = [torch.sigmoid(layer(batch)) for batch in _batches(inputs, codes, 1024, generator=None)]
    return torch.cat(parts)


def _autoencoder_epoch(model, index, inputs, codes, optimizer, batch_size, _cd, generator):
    encoder, decoder = model.encoder[index], model.mirror(index)
    total, count = 0.0, 0
    for x in _batches(inputs, codes, batch_size, generator):
        hidden = torch.sigmoid(encoder(x))
        if index == 0:  # ratings: linear output, loss on observed ratings only
            observed = x != 0
            error = ((decoder(hidden) - x)[observed] ** 2).mean()
        else:  # codes in (0, 1): sigmoid output, plain squared error
            error = ((torch.sigmoid(decoder(hidden)) - x) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        error.backward()
        optimizer.step()
        total, count = total + error.item() * len(x), count + len(x)
    return (total / max(count, 1)) ** 0.5


@torch.no_grad()
def _tie(model, index) -> None:
    """Start the mirror as W^T, the RBM's own generative direction."""
    model.mirror(index).weight.copy_(model.encoder[index].weight.T)


def _rbm_epoch(model, index, inputs, codes, optimizer, batch_size, cd_steps, generator):
    """One CD-k epoch of the RBM (W, c) = encoder layer, visible bias b = the mirror's bias."""
    encoder, mirror = model.encoder[index], model.mirror(index)
    gaussian = index == 0
    total, count = 0.0, 0
    for v_data in _batches(inputs, codes, batch_size, generator):
        observed = (v_data != 0).float() if gaussian else torch.ones_like(v_data)
        v_model = _gibbs_chain(encoder, mirror, v_data, observed, gaussian, cd_steps, generator)
        gap = _free_energy(encoder, mirror, v_data, observed, gaussian) - _free_energy(
            encoder, mirror, v_model, observed, gaussian
        )
        optimizer.zero_grad(set_to_none=True)
        gap.mean().backward()
        optimizer.step()
        with torch.no_grad():  # keep the mirror tied to W^T during pretraining
            mirror.weight.copy_(encoder.weight.T)
        squared = ((v_model - v_data) ** 2 * observed).sum()
        total, count = total + float(squared), count + float(observed.sum())
    return (total / max(count, 1.0)) ** 0.5


@torch.no_grad()
def _gibbs_chain(encoder, mirror, v, observed, gaussian, steps, generator):
    """k alternating Gibbs steps from the data; visible units use their means."""
    for _ in range(steps):
        p_hidden = torch.sigmoid(encoder(v))
        hidden = (torch.rand(p_hidden.shape, generator=generator).to(v.device) < p_hidden).float()
        mean = F.linear(hidden, encoder.weight.T, mirror.bias)
        v = (mean if gaussian else torch.sigmoid(mean)) * observed
    return v


def _free_energy(encoder, mirror, v, observed, gaussian) -> torch.Tensor:
    hidden_term = F.softplus(encoder(v)).sum(1)
    if gaussian:
        visible_term = (0.5 * (v - mirror.bias) ** 2 * observed).sum(1)
    else:
        visible_term = -(v * mirror.bias).sum(1)
    return visible_term - hidden_term
