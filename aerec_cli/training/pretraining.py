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

from aerec_cli.models.autoencoders import RatingAutoencoder
from aerec_cli.models.batches import SparseBatch, SparseRows, row_batches
from aerec_cli.training.optimizer import adam, adam_tensors, load_adam


class LayerwisePretraining:
    """Pretrains every encoder layer of ``model`` in turn, one epoch at a time, so that it can
    stop after any epoch and continue from there exactly (`train --resume`).

    Its state is the layer in progress, the epochs done on it and that layer's Adam moments;
    the codes of the layers below are recomputed from the weights (no randomness), and the
    shuffling generator is the trainer's own. ``cd_steps``: the Gibbs steps of CD-k, for RBM
    pretraining (None for autoencoders).
    """

    def __init__(
        self,
        model: RatingAutoencoder,
        inputs: SparseRows,
        *,
        epochs: int,
        lr: float,
        batch_size: int,
        cd_steps: int | None,
        generator: torch.Generator,
    ):
        self.model, self.inputs, self.generator = model, inputs, generator
        self.epochs, self.lr, self.batch_size, self.cd_steps = epochs, lr, batch_size, cd_steps
        self.layer = 0 if model.pretraining and epochs else len(model.encoder)
        self.epoch = 0  # whole epochs done on self.layer
        self.optimizer: torch.optim.Adam | None = None  # self.layer's, once started

    @property
    def done(self) -> bool:
        return self.layer >= len(self.model.encoder)

    def run(self, record: Callable[[dict], None], should_stop: Callable[[], bool]) -> bool:
        """Pretrain what is left; ``record`` gets each epoch's history row. Returns False when
        ``should_stop()``, asked after every epoch, said so (the state is then resumable)."""
        model, rbm = self.model, self.model.pretraining == "rbm"
        train_layer = _rbm_epoch if rbm else _autoencoder_epoch
        codes = None  # dense codes of the layer below (None: the ratings)
        for index in range(self.layer):
            codes = _codes_after(model, index, self.inputs, codes)
        while not self.done:
            if self.optimizer is None:
                self.optimizer = self._layer_optimizer(tie=rbm)
            while self.epoch < self.epochs:
                t0 = time.perf_counter()
                error = train_layer(
                    model,
                    self.layer,
                    self.inputs,
                    codes,
                    self.optimizer,
                    self.batch_size,
                    self.cd_steps,
                    self.generator,
                )
                self.epoch += 1
                record(
                    {
                        "phase": "pretrain",
                        "layer": self.layer + 1,
                        "epoch": self.epoch,
                        "train_loss": round(error, 6),
                        "val_rmse": "",
                        "seconds": round(time.perf_counter() - t0, 4),
                    }
                )
                if should_stop():
                    return False
            codes = _codes_after(model, self.layer, self.inputs, codes)
            self.layer, self.epoch, self.optimizer = self.layer + 1, 0, None
        return True

    def _layer_optimizer(self, *, tie: bool) -> torch.optim.Adam:
        if tie:
            _tie(self.model, self.layer)
        encoder, mirror = self.model.encoder[self.layer], self.model.mirror(self.layer)
        parameters = [*encoder.parameters(), *mirror.parameters()]
        return adam(parameters, lr=self.lr, device=encoder.bias.device)

    def state(self) -> tuple[dict[str, torch.Tensor], dict | None]:
        """(tensors, values) that resume pretraining; values None once it is done."""
        if self.done:
            return {}, None
        tensors, groups = adam_tensors(self.optimizer) if self.optimizer else ({}, None)
        return tensors, {"layer": self.layer, "epoch": self.epoch, "adam_groups": groups}

    def restore(self, tensors: dict[str, torch.Tensor], values: dict | None) -> None:
        """Continue from :meth:`state`. ``values`` None: pretraining was over (also what the
        resume state of runs saved before pretraining could stop says, by lacking it)."""
        if values is None:
            self.layer, self.epoch, self.optimizer = len(self.model.encoder), 0, None
            return
        self.layer, self.epoch = int(values["layer"]), int(values["epoch"])
        self.optimizer = None
        if values.get("adam_groups") is not None:
            # Not tied again: the layer's weights, mirror included, are the saved ones.
            self.optimizer = self._layer_optimizer(tie=False)
            device = self.model.encoder[0].table.device
            load_adam(self.optimizer, tensors, values["adam_groups"], device)


def _batches(inputs: SparseRows, codes, batch_size, generator):
    """Sparse rating batches for the first layer, dense code batches above it."""
    n_rows = inputs.n_rows if codes is None else len(codes)
    for rows in row_batches(n_rows, batch_size, generator):
        yield inputs.batch(rows) if codes is None else codes[rows.to(codes.device)]


@torch.no_grad()
def _codes_after(model, index, inputs, codes) -> torch.Tensor:
    """The activations of encoder layer ``index`` for every row (input to the next layer)."""
    layer = model.encoder[index]
    return torch.cat([torch.sigmoid(layer(x)) for x in _batches(inputs, codes, 1024, None)])


def _autoencoder_epoch(model, index, inputs, codes, optimizer, batch_size, _cd, generator):
    encoder, decoder = model.encoder[index], model.mirror(index)
    total, count = 0.0, 0
    for x in _batches(inputs, codes, batch_size, generator):
        hidden = torch.sigmoid(encoder(x))
        if index == 0:  # ratings: linear output, loss on observed ratings only
            error = ((model.output_at(hidden, x.row, x.col) - x.value) ** 2).mean()
            size = len(x.value)
        else:  # codes in (0, 1): sigmoid output, plain squared error
            error = ((torch.sigmoid(decoder(hidden)) - x) ** 2).mean()
            size = x.numel()
        optimizer.zero_grad(set_to_none=True)
        error.backward()
        optimizer.step()
        total, count = total + error.item() * size, count + size
    return (total / max(count, 1)) ** 0.5


@torch.no_grad()
def _tie(model, index) -> None:
    """Start the mirror as W^T, the RBM's own generative direction."""
    model.mirror(index).weight.copy_(model.encoder[index].weight.T)


def _rbm_epoch(model, index, inputs, codes, optimizer, batch_size, cd_steps, generator):
    """One CD-k epoch of the RBM (W, c) = encoder layer, visible bias b = the mirror's bias.

    The first RBM has Gaussian visible units (unit variance) on the observed ratings only;
    the ones above have Bernoulli visible units on the codes below.
    """
    encoder, mirror = model.encoder[index], model.mirror(index)
    rbm = _GaussianVisible(encoder, mirror) if index == 0 else _BernoulliVisible(encoder, mirror)
    total, count = 0.0, 0
    for v_data in _batches(inputs, codes, batch_size, generator):
        v_model = v_data
        with torch.no_grad():
            for _ in range(cd_steps):  # k alternating Gibbs steps; visible units use means
                p_hidden = torch.sigmoid(encoder(v_model))
                noise = torch.rand(p_hidden.shape, generator=generator).to(p_hidden.device)
                v_model = rbm.visible_mean(v_data, (noise < p_hidden).float())
        gap = rbm.free_energy(v_data) - rbm.free_energy(v_model)
        optimizer.zero_grad(set_to_none=True)
        gap.mean().backward()
        optimizer.step()
        with torch.no_grad():  # keep the mirror tied to W^T during pretraining
            mirror.weight.copy_(encoder.weight.T)
        squared, size = rbm.squared_error(v_data, v_model)
        total, count = total + squared, count + size
    return (total / max(count, 1)) ** 0.5


class _GaussianVisible:
    """Visible units = the observed ratings of a sparse batch (unrated units are left out)."""

    def __init__(self, encoder, mirror):
        self.encoder, self.mirror = encoder, mirror

    def visible_mean(self, v: SparseBatch, hidden: torch.Tensor) -> SparseBatch:
        weight = self.encoder.table[v.col]  # W^T rows of the observed units
        return v.with_values((hidden[v.row] * weight).sum(1) + self.mirror.bias[v.col])

    def free_energy(self, v: SparseBatch) -> torch.Tensor:
        square = 0.5 * (v.value - self.mirror.bias[v.col]) ** 2
        visible = torch.zeros(v.n_rows, device=v.value.device).index_add(0, v.row, square)
        return visible - F.softplus(self.encoder(v)).sum(1)

    @staticmethod
    def squared_error(v_data: SparseBatch, v_model: SparseBatch) -> tuple[float, int]:
        return float(((v_model.value - v_data.value) ** 2).sum()), len(v_data.value)


class _BernoulliVisible:
    def __init__(self, encoder, mirror):
        self.encoder, self.mirror = encoder, mirror

    def visible_mean(self, v: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(F.linear(hidden, self.encoder.weight.T, self.mirror.bias))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -(v * self.mirror.bias).sum(1) - F.softplus(self.encoder(v)).sum(1)

    @staticmethod
    def squared_error(v_data: torch.Tensor, v_model: torch.Tensor) -> tuple[float, int]:
        return float(((v_model - v_data) ** 2).sum()), v_data.numel()
