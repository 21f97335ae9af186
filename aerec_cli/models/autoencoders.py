"""The autoencoders. One rating vector (an item's or a user's) in, its reconstruction out.

All kinds share one shape: sigmoid encoder layers, mirrored sigmoid decoder layers and a linear
output layer (as in AutoRec), so evaluation and recommendation treat them alike. What makes a
kind itself lives in its class: a penalty on the code (sparse, contractive), a corruption of
the input (denoising), or a pretraining recipe run before fine-tuning (stacked, deep; see
pretraining.py). What a kind is called, which options it takes and which values they may have
is declared once in kinds.py; these classes only do the arithmetic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aerec_cli.models import kinds
from aerec_cli.models.batches import SparseBatch, SparseRows
from aerec_cli.models.network import hidden_path

# On the CPU, a batch whose share of observed entries is above 1/DENSE_BELOW is computed
# densely: there one matrix product is faster than the sampled one (ObservedOutput). Elsewhere
# (CUDA, MPS) the threshold is GATHER_DENSE_BELOW, against per-rating gathers. Same result.
DENSE_BELOW = 5
GATHER_DENSE_BELOW = 50


class InputLayer(nn.Module):
    """The first encoder layer, stored input-major (inputs x units).

    A sparse batch then picks just the rows of its observed ratings (embedding_bag), so the
    cost follows the ratings, not the input size. ``weight`` gives the nn.Linear view.
    """

    def __init__(self, n_inputs: int, units: int):
        super().__init__()
        bound = 1 / math.sqrt(n_inputs)  # nn.Linear's default initialisation
        self.table = nn.Parameter(torch.empty(n_inputs, units).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(units).uniform_(-bound, bound))

    @property
    def weight(self) -> torch.Tensor:
        return self.table.t()

    def forward(self, x: torch.Tensor | SparseBatch) -> torch.Tensor:
        if isinstance(x, SparseBatch):
            summed = F.embedding_bag(
                x.col, self.table, x.offsets, mode="sum", per_sample_weights=x.value
            )
            return summed + self.bias
        return x @ self.table + self.bias


class ObservedOutput(torch.autograd.Function):
    """A linear layer's outputs at the requested (row, col) entries only: hidden[row] .
    weight[col] + bias[col], with ``row`` sorted.

    The forward pass is a sampled matrix product and the backward pass two embedding bags (by
    row for the hidden layer's gradient, by column for the weights'), so each costs the entries
    times the width. The autograd of the gather formula would materialise entries x width
    copies of the weights, and the dense product computes every output to keep a few percent.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, row, col):
        n_rows = hidden.shape[0]
        row_starts = torch.zeros(n_rows + 1, dtype=torch.int64, device=row.device)
        torch.cumsum(torch.bincount(row, minlength=n_rows), 0, out=row_starts[1:])
        with warnings.catch_warnings():  # "sparse CSR support is in beta": not for users
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                row_starts,
                col,
                hidden.new_zeros(len(col)),
                (n_rows, weight.shape[0]),
                check_invariants=False,  # built here from sorted rows: valid by construction
            )
        sampled = torch.sparse.sampled_addmm(pattern, hidden, weight.t(), beta=0.0)
        ctx.save_for_backward(hidden, weight, row, col, row_starts)
        return sampled.values() + bias[col]

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, row, col, row_starts = ctx.saved_tensors
        grad = grad.contiguous()  # embedding_bag's fast kernel wants contiguous sample weights
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_hidden = F.embedding_bag(
                col, weight, row_starts[:-1], mode="sum", per_sample_weights=grad
            )
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            by_col = torch.argsort(col, stable=True)
            col_counts = torch.bincount(col, minlength=weight.shape[0])
            grad_weight = F.embedding_bag(
                row[by_col],
                hidden,
                torch.cumsum(col_counts, 0) - col_counts,
                mode="sum",
                per_sample_weights=grad[by_col],
            )
            grad_bias = torch.zeros_like(weight[:, 0]).index_add_(0, col, grad)
        return grad_hidden, grad_weight, grad_bias, None, None


class RatingAutoencoder(nn.Module):
    """The shared network. Subclasses take their kind's model options (kinds.py) as keyword
    arguments, already checked there, and keep each as an attribute of the same name."""

    pretraining: str | None = None  # "autoencoder" (stacked) or "rbm" (deep)
    # How many networks of the spec's hidden sizes this one holds side by side (ensemble_of):
    # each layer is ``members`` times as wide, and the output is the members' mean.
    members: int = 1

    def __init__(self, n_inputs: int, hidden: list[int]):
        super().__init__()
        sizes = [n_inputs, *hidden]
        self.n_inputs = n_inputs
        self.hidden = list(hidden)
        self.encoder = nn.ModuleList(
            [InputLayer(n_inputs, sizes[1])]
            + [nn.Linear(a, b) for a, b in zip(sizes[1:-1], sizes[2:])]
        )
        # The decoder mirrors the encoder; its last layer is the linear output layer.
        self.decoder = nn.ModuleList(
            nn.Linear(b, a) for a, b in reversed(list(zip(sizes[1:-1], sizes[2:])))
        )
        self.output = nn.Linear(sizes[1], n_inputs)

    @property
    def kind(self) -> str:
        return kinds.kind_of(type(self)).name

    def spec(self) -> dict:
        """What build_model needs to rebuild this network (saved in config.json)."""
        kind = kinds.kind_of(type(self))
        extra = {option.name: getattr(self, option.name) for option in kind.model_options()}
        if self.members > 1:
            extra["members"] = self.members
        hidden = [size // self.members for size in self.hidden]
        return {"kind": kind.name, "n_inputs": self.n_inputs, "hidden": hidden, **extra}

    def encode(self, x: torch.Tensor | SparseBatch) -> torch.Tensor:
        """The code of each row; x is a dense batch or a sparse one (observed ratings only)."""
        for layer in self.encoder:
            x = torch.sigmoid(layer(x))
        return x

    def penultimate(self, code: torch.Tensor) -> torch.Tensor:
        for layer in self.decoder:
            code = torch.sigmoid(layer(code))
        return code

    def code_and_hidden(self, x: torch.Tensor | SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(code, last hidden layer) of each row: the forward pass that numpy scoring shares."""
        rest = [(layer.weight, layer.bias) for layer in [*self.encoder[1:], *self.decoder]]
        return hidden_path(self.encoder[0](x), rest, torch.sigmoid, len(self.encoder))

    def forward(self, x: torch.Tensor | SparseBatch) -> torch.Tensor:
        """Full reconstruction of each row (dense: rows x inputs). For small data and tests."""
        return self.output(self.code_and_hidden(x)[1])

    def output_at(self, hidden: torch.Tensor, row: torch.Tensor, col: torch.Tensor):
        """Output unit ``col`` of batch row ``row`` only (``row`` sorted, as a batch's entries
        are): cost per requested entry."""
        on_cpu = hidden.device.type == "cpu"
        dense_below = DENSE_BELOW if on_cpu else GATHER_DENSE_BELOW
        if len(row) * dense_below > hidden.shape[0] * self.n_inputs:
            # Dense enough that one matrix product beats the per-entry work.
            return self.output(hidden)[row, col]
        if on_cpu:
            if bool((row[1:] < row[:-1]).any()):  # the sampled product reads rows in order
                raise ValueError("output_at needs its entries sorted by row")
            return ObservedOutput.apply(hidden, self.output.weight, self.output.bias, row, col)
        # The sampled product's kernels are only tested on the CPU; gathers work everywhere.
        weight, bias = self.output.weight[col], self.output.bias[col]
        return (hidden[row] * weight).sum(1) + bias

    def corrupt(self, x: SparseBatch, generator: torch.Generator | None = None) -> SparseBatch:
        """The training input; the clean x stays the target. Identity but for denoising."""
        return x

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        """The kind's own regulariser, added to the loss. Zero but for sparse and contractive."""
        return code.new_zeros(())

    def mirror(self, index: int) -> nn.Linear:
        """The decoder layer that undoes encoder layer ``index`` (the output layer for 0)."""
        return self.output if index == 0 else self.decoder[len(self.hidden) - 1 - index]


class BasicAutoencoder(RatingAutoencoder):
    """AutoRec: one sigmoid bottleneck smaller than the input, nothing else."""


class SparseAutoencoder(RatingAutoencoder):
    """Overcomplete, kept in check by a KL penalty that pulls each unit's mean activation
    (over the batch) towards a small target, so only a few units fire for any one input."""

    def __init__(
        self, n_inputs: int, hidden: list[int], *, sparsity_target: float, sparsity_weight: float
    ):
        super().__init__(n_inputs, hidden)
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        rho = self.sparsity_target
        rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return self.sparsity_weight * kl.mean()


class DenoisingAutoencoder(RatingAutoencoder):
    """Trained to restore what corruption removed: a share of each input's observed ratings is
    hidden (masking noise) and/or jittered (Gaussian noise); the loss compares the output with
    all the clean observed ratings."""

    def __init__(
        self, n_inputs: int, hidden: list[int], *, corruption: float, noise: str, noise_std: float
    ):
        super().__init__(n_inputs, hidden)
        self.corruption, self.noise, self.noise_std = corruption, noise, noise_std

    def corrupt(self, x: SparseBatch, generator: torch.Generator | None = None) -> SparseBatch:
        if "gaussian" in self.noise:
            jitter = torch.randn(len(x.value), generator=generator).to(x.value.device)
            x = x.with_values(x.value + jitter * self.noise_std)
        if "mask" in self.noise:
            kept = torch.rand(len(x.value), generator=generator).to(x.value.device)
            x = x.keep(kept >= self.corruption)
        return x


class ContractiveAutoencoder(RatingAutoencoder):
    """Adds the squared Frobenius norm of the encoder's Jacobian dh/dx to the loss. For a
    sigmoid encoder h = s(Wx + b) it is sum_j (h_j (1 - h_j))^2 * sum_i W_ji^2 (closed form)."""

    def __init__(self, n_inputs: int, hidden: list[int], *, contraction_weight: float):
        super().__init__(n_inputs, hidden)
        self.contraction_weight = contraction_weight

    def jacobian_norm2(self, code: torch.Tensor) -> torch.Tensor:
        """Squared Frobenius norm of dh/dx for each row of the batch."""
        row_norms = (self.encoder[0].weight ** 2).sum(1)
        return ((code * (1 - code)) ** 2 * row_norms).sum(1)

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        return self.contraction_weight * self.jacobian_norm2(code).mean()


class StackedAutoencoder(RatingAutoencoder):
    """Two or more hidden layers per side. Each layer is first trained greedily as a shallow
    autoencoder of the codes below it, then the whole stack is fine-tuned end to end."""

    pretraining = "autoencoder"


class DeepAutoencoder(StackedAutoencoder):
    """Hinton & Salakhutdinov's deep autoencoder: a stack of RBMs (Gaussian visible units for
    the ratings, Bernoulli above) pretrained with contrastive divergence, unrolled into a
    mirrored encoder-decoder, then fine-tuned by backpropagation."""

    pretraining = "rbm"


class _ModelKinds(Mapping):
    """Kind name -> model class, read from the registry when asked (so a kind registered
    later, e.g. by a test, is here too)."""

    def __getitem__(self, name: str) -> type[RatingAutoencoder]:
        if name not in kinds.KINDS:
            raise KeyError(name)
        return kinds.KINDS[name].model_class()

    def __iter__(self) -> Iterator[str]:
        return iter(kinds.KINDS)

    def __len__(self) -> int:
        return len(kinds.KINDS)


MODEL_KINDS: Mapping[str, type[RatingAutoencoder]] = _ModelKinds()


def build_model(spec: dict) -> RatingAutoencoder | OrientationBlend:
    """The network a spec describes: {"kind", "n_inputs", "hidden", <its model options>}, and
    "members" for an ensemble (:func:`ensemble_of`; ``hidden`` is then one member's sizes);
    or a blend of two such networks (:class:`OrientationBlend`).

    A spec comes from training or from a saved run's config.json (perhaps edited or from an
    older aerec), so it is checked against the kind's declaration; an option the spec lacks
    (one added after the run was saved) takes its declared default.
    """
    if "item_weight" in spec:
        return _blend_of(spec)
    kind = kinds.get(spec.get("kind"))
    n_inputs, hidden = spec.get("n_inputs"), list(spec.get("hidden") or [])
    if not isinstance(n_inputs, int) or n_inputs < 1:
        raise ValueError(f"the input size must be a positive integer, not {n_inputs!r}")
    kind.check_hidden(hidden, n_inputs)
    members = spec.get("members", 1)
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ValueError(f"the number of members must be a positive integer, not {members!r}")
    options = {option.name: option.default for option in kind.model_options()}
    for name, value in spec.items():
        if name in ("kind", "n_inputs", "hidden", "members"):
            continue
        if name not in options:
            raise ValueError(f"{name!r} is not an option of {kind.name} models")
        options[name] = value
    kind.check_options(options)
    model = kind.model_class()(n_inputs, [size * members for size in hidden], **options)
    model.members = members
    return model


class OrientationBlend(nn.Module):
    """An item-oriented and a user-oriented network of one kind (each perhaps an ensemble),
    trained apart on the same ratings and validation slice (`train --orientation both`); its
    stars are ``item_weight`` times the item network's plus the rest times the user
    network's. The two read different vectors (an item's ratings, a user's), so they err
    differently and their blend beats either (ML-100K: README "Both orientations"). Serving
    lays the blend out as one item-oriented product (scoring/serving_file.py)."""

    def __init__(self, item: RatingAutoencoder, user: RatingAutoencoder, item_weight: float):
        super().__init__()
        self.item, self.user, self.item_weight = item, user, float(item_weight)

    @property
    def kind(self) -> str:
        return self.item.kind

    def spec(self) -> dict:
        return {"item": self.item.spec(), "user": self.user.spec(), "item_weight": self.item_weight}


def _blend_of(spec: dict) -> OrientationBlend:
    """The blend a spec describes: {"item": spec, "user": spec, "item_weight": 0..1}."""
    weight = spec["item_weight"]
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 <= weight <= 1:
        raise ValueError(f"the item network's weight must be from 0 to 1, not {weight!r}")
    sides = [spec.get(side) for side in ("item", "user")]
    if not all(isinstance(side, dict) and "item_weight" not in side for side in sides):
        raise ValueError("a blend needs one network spec per orientation")
    item, user = (build_model(side) for side in sides)
    if item.kind != user.kind:
        raise ValueError(f"a blend's networks are of one kind, not {item.kind} and {user.kind}")
    return OrientationBlend(item, user, weight)


def blend_weight(item: np.ndarray, user: np.ndarray, truth: np.ndarray) -> float:
    """The item network's weight w in [0, 1] for which w * item + (1 - w) * user is closest to
    ``truth`` in squared error (least squares in one unknown, clipped)."""
    gap = item.astype(np.float64) - user
    spread = float(gap @ gap)
    if spread == 0:
        return 1.0
    return float(np.clip(gap @ (truth - user.astype(np.float64)) / spread, 0.0, 1.0))


@torch.no_grad()
def ensemble_of(models: list[RatingAutoencoder]) -> RatingAutoencoder:
    """One network that outputs the mean of ``models`` (same kind and sizes, trained apart).

    The members sit side by side: the input layers' units are concatenated, each deeper layer
    is block-diagonal (a member's units see only its own), and the output layer is the
    members' output layers side by side, divided by their number, with their biases' mean.
    So scoring, serving and every command treat an ensemble as one network of the kind.
    """
    first = models[0]
    if len(models) == 1:
        return first
    merged = build_model({**first.spec(), "members": len(models)})
    inputs = [member.encoder[0] for member in models]
    merged.encoder[0].table.copy_(torch.cat([layer.table for layer in inputs], 1))
    merged.encoder[0].bias.copy_(torch.cat([layer.bias for layer in inputs]))
    inner = [[*member.encoder[1:], *member.decoder] for member in models]
    for target, layers in zip([*merged.encoder[1:], *merged.decoder], zip(*inner)):
        target.weight.copy_(torch.block_diag(*(layer.weight for layer in layers)))
        target.bias.copy_(torch.cat([layer.bias for layer in layers]))
    outputs = [member.output for member in models]
    merged.output.weight.copy_(torch.cat([layer.weight for layer in outputs], 1) / len(models))
    merged.output.bias.copy_(torch.stack([layer.bias for layer in outputs]).mean(0))
    return merged.eval()


@torch.no_grad()
def predict_entries(
    model: RatingAutoencoder,
    inputs: SparseRows,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """The reconstruction at (row, col) for each pair, feeding each needed row once: the
    validation predictions of a model still in training (a saved run scores with numpy)."""
    order = np.argsort(rows, kind="stable")
    sorted_rows, sorted_cols = rows[order], cols[order]
    unique_rows = np.unique(sorted_rows)
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(unique_rows), batch_size):
        batch = unique_rows[start : start + batch_size]
        lo = np.searchsorted(sorted_rows, batch[0], "left")
        hi = np.searchsorted(sorted_rows, batch[-1], "right")
        local = torch.from_numpy(np.searchsorted(batch, sorted_rows[lo:hi])).to(inputs.device)
        hidden = model.code_and_hidden(inputs.batch(torch.from_numpy(batch)))[1]
        cols = torch.from_numpy(sorted_cols[lo:hi].astype(np.int64)).to(inputs.device)
        picked = model.output_at(hidden, local, cols)
        out[order[lo:hi]] = picked.float().cpu().numpy()
    return out
