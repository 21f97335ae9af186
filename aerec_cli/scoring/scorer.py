"""Scoring without torch or pandas: what a run keeps in ``RUN/serving.safetensors``, and the
numpy forward pass that reads it.

Every kind shares one network at inference (sigmoid encoder layers, mirrored sigmoid decoder
layers, a linear output layer), so one numpy forward pass over the saved weights scores every
kind. At the end of training (training.py, once the run folder is saved) :func:`save` stores
what does not depend on the user:

- the weights, layer by layer (torch layout: out x in) and where the code sits;
- the train split as CSR (users x items), so no scipy is needed to read a user's ratings;
- the bias baseline (mean, user and item biases) and which users and items have training
  ratings: the fallback for what the autoencoder never saw, as in ``inference.Scorer``;
- item rating counts and sums (the damped-popularity list for a user with too few ratings);
- ``item_hidden``: the last hidden layer of every item's training row (item orientation), so a
  known user's scores are one product ``H @ W[u] + b[u]``;
- ``item_code``: the learned item representation (item orientation: the encoder code of each
  item row; user orientation: each item's row of the output layer), for ``similar``/``embed``.

A run without the file (trained before it existed) gets it on first use. ``recommend``,
``similar``, ``embed`` and ``outliers`` import neither torch nor pandas on this path.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, run_store

if TYPE_CHECKING:
    import scipy.sparse as sp

    from aerec_cli.models.autoencoders import RatingAutoencoder

FILENAME = "serving.safetensors"
FORMAT = "1"
# Entries (ratings) per step of numpy's sparse product (gathered rows stay in cache).
CHUNK_ENTRIES = 1 << 12
# Above this many entries a sparse product goes to scipy.sparse (about 10x faster, but its
# import costs about 0.2 s, more than one user's few hundred ratings take with numpy).
SCIPY_ABOVE = 1 << 16
# Pairs per step of pair predictions, and users per block of user-oriented hidden layers.
PAIR_CHUNK = 1 << 12
USER_CHUNK = 256
# Regularisation of the bias baseline (as baselines.BiasBaseline's defaults).
REG_USER = 15.0


# --- the numpy network ----------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings (tanh form), in place on float arrays."""
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    np.add(x, 1.0, out=x)
    np.multiply(x, 0.5, out=x)
    return x


@dataclass
class Network:
    """The autoencoder as numpy arrays: ``weights[k]`` is out x in (torch layout).

    Layers ``0 .. n_encoder-1`` are the encoder (the code is the last one's output), the layers
    after them up to the last are the decoder, and the last is the linear output layer.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    n_encoder: int
    _table: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: RatingAutoencoder) -> Network:
        layers = [*model.encoder, *model.decoder, model.output]
        weights = [_to_numpy(layer.weight) for layer in layers]
        biases = [_to_numpy(layer.bias) for layer in layers]
        return cls(weights, biases, len(model.encoder))

    @property
    def table(self) -> np.ndarray:
        """The first layer input-major (inputs x units): one row per input, for sparse rows."""
        if self._table is None:
            self._table = np.ascontiguousarray(self.weights[0].T)
        return self._table

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    def first(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Pre-activations of the first layer for CSR rows (indptr may start above 0)."""
        return sparse_dot(indptr, indices, data, self.table) + self.biases[0]

    def from_first(self, z1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(code, last hidden layer) from first-layer pre-activations (consumed)."""
        h = sigmoid(z1)
        for k in range(1, len(self.weights) - 1):
            if k == self.n_encoder:
                code = h
            h = sigmoid(h @ self.weights[k].T + self.biases[k])
        if self.n_encoder == len(self.weights) - 1:
            code = h
        return code, h

    def output(self, hidden: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """The linear output layer, for all units or only ``cols``."""
        if cols is None:
            return hidden @ self.weights[-1].T + self.biases[-1]
        return hidden @ self.weights[-1][cols].T + self.biases[-1][cols]


def _to_numpy(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)


def sparse_dot(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """CSR rows (``indptr`` over ``indices``/``data``) times ``table`` (inputs x units)."""
    n_rows = len(indptr) - 1
    base = int(indptr[0])
    if int(indptr[-1]) - base > SCIPY_ABOVE:
        import scipy.sparse as sp

        stop = int(indptr[-1]) - base
        matrix = sp.csr_matrix(
            (data[:stop], indices[:stop], np.asarray(indptr) - base),
            shape=(n_rows, table.shape[0]),
        )
        return np.asarray(matrix @ table, dtype=np.float32)
    out = np.zeros((n_rows, table.shape[1]), dtype=np.float32)
    row = 0
    while row < n_rows:
        # As many whole rows as fit CHUNK_ENTRIES (at least one).
        stop = int(np.searchsorted(indptr, indptr[row] + CHUNK_ENTRIES, "right")) - 1
        stop = min(max(stop, row + 1), n_rows)
        lo, hi = int(indptr[row]) - base, int(indptr[stop]) - base
        if hi > lo:
            products = table[indices[lo:hi]] * data[lo:hi, None]
            starts = indptr[row:stop] - base - lo
            filled = indptr[row + 1 : stop + 1] > indptr[row:stop]
            out[row:stop][filled] = np.add.reduceat(products, starts[filled], axis=0)
        row = stop
    return out


def row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each entry's row in ``rows``, entry index) for the CSR rows ``rows``."""
    starts, ends = indptr[rows], indptr[rows + 1]
    counts = (ends - starts).astype(np.int64)
    local = np.repeat(np.arange(len(rows)), counts)
    offsets = np.cumsum(counts) - counts
    positions = np.arange(int(counts.sum())) - offsets[local] + starts[local]
    return local, positions


# --- building the file (end of training, or first use) --------------------------------------


def build(
    model: RatingAutoencoder, train: sp.csr_matrix, orientation: str
) -> dict[str, np.ndarray]:
    """Everything :class:`Served` reads, from a trained model and its train split."""
    from aerec_cli.models.baselines import BiasBaseline

    net = Network.from_model(model)
    train = train.tocsr().astype(np.float32)
    train.sort_indices()
    baseline = BiasBaseline.fit(train)
    n_users, n_items = train.shape
    item_count = np.bincount(train.indices, minlength=n_items)
    arrays = {
        "train.indptr": train.indptr.astype(np.int64),
        "train.indices": train.indices.astype(np.int32),
        "train.data": train.data.astype(np.float32),
        "baseline.mean": np.array([baseline.mean], dtype=np.float64),
        "baseline.user_bias": baseline.user_bias.astype(np.float64),
        "baseline.item_bias": baseline.item_bias.astype(np.float64),
        "user_seen": (np.diff(train.indptr) > 0).astype(np.uint8),
        "item_seen": (item_count > 0).astype(np.uint8),
        "item_count": item_count.astype(np.int64),
        "item_sum": np.bincount(train.indices, train.data, minlength=n_items).astype(np.float64),
    }
    for k, (weight, bias) in enumerate(zip(net.weights, net.biases)):
        arrays[f"layer.{k}.weight"] = weight
        arrays[f"layer.{k}.bias"] = bias
    if orientation == "item":
        by_item = train.T.tocsr()
        by_item.sort_indices()
        code, hidden = net.from_first(net.first(by_item.indptr, by_item.indices, by_item.data))
        arrays["item_hidden"] = np.ascontiguousarray(hidden, dtype=np.float32)
        if code is not hidden:
            arrays["item_code"] = np.ascontiguousarray(code, dtype=np.float32)
    else:
        arrays["item_code"] = np.ascontiguousarray(net.weights[-1], dtype=np.float32)
    return arrays


def save(
    run_path: Path,
    model: RatingAutoencoder,
    train: sp.csr_matrix,
    orientation: str,
    dataset_meta_sha256: str,
) -> Path:
    """Write ``RUN/serving.safetensors`` (atomically). Called at the end of training."""
    from safetensors.numpy import save as to_bytes

    arrays = build(model, train, orientation)
    metadata = {
        "format": FORMAT,
        "orientation": orientation,
        "n_layers": str(len(model.encoder) + len(model.decoder) + 1),
        "n_encoder": str(len(model.encoder)),
        "dataset_meta_sha256": dataset_meta_sha256,
    }
    target = Path(run_path) / FILENAME
    # safetensors writes raw buffers: every array must be C-contiguous.
    arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    # The digest of the data section (tensor offsets are relative to it, so adding the digest
    # to the header leaves it unchanged): a damaged file is rebuilt rather than trusted.
    blob = to_bytes(arrays, metadata=metadata)
    metadata["data_sha256"] = hashlib.sha256(_data_section(blob)).hexdigest()
    atomic.write_bytes(target, to_bytes(arrays, metadata=metadata))
    return target


def _data_section(blob: bytes | memoryview) -> memoryview:
    """The tensor bytes of a safetensors file: after the 8-byte header length and the header."""
    view = memoryview(blob)
    return view[8 + int.from_bytes(view[:8], "little") :]


def _file_data_sha256(path: Path) -> str:
    """The digest of a safetensors file's data section, as :func:`save` records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- reading it back ----------------------------------------------------------------------


class Arrays:
    """Lazy, cached access to the tensors of a serving file (memory-mapped by safetensors)."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        self._file = safe_open(str(path), framework="np")
        self.metadata = self._file.metadata() or {}
        self._keys = set(self._file.keys())
        self._cache: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._keys

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._file.get_tensor(name)
        return self._cache[name]

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of a tensor without reading the rest."""
        if name in self._cache:
            return self._cache[name][start:stop]
        return self._file.get_slice(name)[start:stop]


@dataclass
class ItemInfo:
    ids: list[str]
    titles: list[str]
    genres: list[str]

    def title(self, index: int) -> str:
        return self.titles[index] or f"item {self.ids[index]}"


@dataclass
class Served:
    """A run ready to score with numpy: its serving arrays and its dataset's id maps."""

    run: run_store.Run
    dataset: str
    dataset_path: Path
    meta: dict
    arrays: Arrays
    _users: list[str] | None = field(default=None, repr=False)
    _user_index: dict[str, int] | None = field(default=None, repr=False)
    _items: ItemInfo | None = field(default=None, repr=False)
    _item_index: dict[str, int] | None = field(default=None, repr=False)
    _net: Network | None = field(default=None, repr=False)
    _first_all: np.ndarray | None = field(default=None, repr=False)

    # -- what the run and dataset are

    @property
    def orientation(self) -> str:
        return self.run.config["orientation"]

    @property
    def scale(self) -> tuple[float, float]:
        low, high = self.meta["rating_scale"]
        return float(low), float(high)

    @property
    def n_users(self) -> int:
        return len(self.arrays["train.indptr"]) - 1

    @property
    def n_items(self) -> int:
        return len(self.arrays["item_seen"])

    @property
    def user_ids(self) -> list[str]:
        if self._users is None:
            self._users = [row[0] for row in _read_csv(self.dataset_path / "users.csv")]
        return self._users

    @property
    def items(self) -> ItemInfo:
        if self._items is None:
            rows = _read_csv(self.dataset_path / "items.csv")
            self._items = ItemInfo(
                [r[0] for r in rows],
                [r[1] if len(r) > 1 else "" for r in rows],
                [r[2] if len(r) > 2 else "" for r in rows],
            )
        return self._items

    def user_index(self, raw_id: str) -> int:
        if self._user_index is None:
            self._user_index = {}
            for index, uid in enumerate(self.user_ids):
                self._user_index.setdefault(uid, index)
        index = self._user_index.get(str(raw_id).strip())
        if index is None:
            ids = self.user_ids
            span = f"ids run {ids[0]}..{ids[-1]}, " if ids else ""
            raise AerecError(
                f"unknown user id {raw_id!r} in dataset {self.dataset} "
                f"({span}{len(ids):,} users); list them with: aerec users --data {self.dataset}"
            )
        return index

    def item_index(self, raw_id: str) -> int | None:
        if self._item_index is None:
            self._item_index = {}
            for index, iid in enumerate(self.items.ids):
                self._item_index.setdefault(iid, index)
        return self._item_index.get(str(raw_id).strip())

    def unknown_item(self, raw_id: str) -> AerecError:
        path = self.dataset_path / "items.csv"
        return AerecError(
            f"unknown item id {raw_id!r} in dataset {self.dataset}: item ids are the raw "
            f"MovieLens movie ids, in the 'item' column of {path}; look a title up with: "
            f"grep -i 'TITLE' {path}"
        )

    @property
    def user_seen(self) -> np.ndarray:
        return self.arrays["user_seen"].astype(bool)

    @property
    def item_seen(self) -> np.ndarray:
        return self.arrays["item_seen"].astype(bool)

    @property
    def network(self) -> Network:
        if self._net is None:
            n_layers = int(self.arrays.metadata["n_layers"])
            weights = [self.arrays[f"layer.{k}.weight"] for k in range(n_layers)]
            biases = [self.arrays[f"layer.{k}.bias"] for k in range(n_layers)]
            self._net = Network(weights, biases, int(self.arrays.metadata["n_encoder"]))
        return self._net

    @property
    def output_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight, bias) of the output layer alone (without reading the other layers)."""
        if self._net is not None:
            return self._net.weights[-1], self._net.biases[-1]
        last = int(self.arrays.metadata["n_layers"]) - 1
        return self.arrays[f"layer.{last}.weight"], self.arrays[f"layer.{last}.bias"]

    def item_codes(self) -> np.ndarray:
        """The learned item representation (items x dims); see the module doc."""
        if "item_code" in self.arrays:
            return self.arrays["item_code"]
        return self.arrays["item_hidden"]

    def unit_codes(self) -> np.ndarray:
        """Item codes centred on the mean code of the items seen in training, then scaled to
        unit length: their dot products are the cosine similarities ``similar`` ranks by.

        Centring removes what all codes share (sigmoid codes are all positive), so the cosine
        measures how two items differ from the average item in the same way.
        """
        codes = self.item_codes().astype(np.float64)
        seen = self.item_seen
        centred = codes - (codes[seen].mean(0) if seen.any() else 0.0)
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        return centred / np.maximum(norms, 1e-12)

    @property
    def item_code_name(self) -> str:
        return "encoder code" if self.orientation == "item" else "output-layer weights"

    # -- ratings of the train split

    def user_ratings(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, stars) of a user's training ratings."""
        indptr = self.arrays["train.indptr"]
        lo, hi = int(indptr[user]), int(indptr[user + 1])
        cols = self.arrays.rows("train.indices", lo, hi).astype(np.int64)
        return cols, self.arrays.rows("train.data", lo, hi).astype(np.float64)

    # -- baseline fallback

    def baseline_block(self, users: np.ndarray) -> np.ndarray:
        mean = float(self.arrays["baseline.mean"][0])
        user_bias = self.arrays["baseline.user_bias"][users]
        return mean + user_bias[:, None] + self.arrays["baseline.item_bias"][None, :]

    def new_user_bias(self, cols: np.ndarray, stars: np.ndarray) -> float:
        """The bias baseline's user bias for ratings not in the train split (same shrinkage)."""
        if len(cols) == 0:
            return 0.0
        mean = float(self.arrays["baseline.mean"][0])
        residual = stars - mean - self.arrays["baseline.item_bias"][cols]
        return float(residual.sum() / (REG_USER + len(cols)))

    # -- scores of known users

    def user_scores(self, user: int) -> np.ndarray:
        """Predicted stars for every item, for one known user (as inference.Scorer)."""
        return self.block_scores(np.array([user]))[0]

    def block_scores(self, users: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predicted stars (users x items), with the bias-baseline fallback for unseen ones."""
        users = np.asarray(users, dtype=np.int64)
        raw = self.raw_block(users)
        cold = ~self.user_seen[users][:, None] | ~self.item_seen[None, :]
        scores = np.where(cold, self.baseline_block(users), raw)
        return np.clip(scores, *self.scale) if clip else scores

    def predict(self, users: np.ndarray, items: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predicted stars for (user, item) index pairs, with the bias-baseline fallback for
        users or items without training ratings; the one path every command's pairs take."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        raw = self.raw_pairs(users, items)
        cold = ~(self.user_seen[users] & self.item_seen[items])
        mean = float(self.arrays["baseline.mean"][0])
        baseline = (
            mean
            + self.arrays["baseline.user_bias"][users]
            + self.arrays["baseline.item_bias"][items]
        )
        scores = np.where(cold, baseline, raw)
        return np.clip(scores, *self.scale) if clip else scores

    def raw_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The autoencoder's own outputs at (user, item) index pairs, unclipped: the output
        unit of the pair's column, from the last hidden layer of the pair's row."""
        out_weight, out_bias = self.output_layer
        predicted = np.empty(len(users), dtype=np.float64)
        if self.orientation == "item":
            hidden = self.arrays["item_hidden"]  # items x h; output unit u is user u
            for lo in range(0, len(users), PAIR_CHUNK):
                u, i = users[lo : lo + PAIR_CHUNK], items[lo : lo + PAIR_CHUNK]
                dot = np.einsum("ij,ij->i", out_weight[u], hidden[i])
                predicted[lo : lo + PAIR_CHUNK] = dot + out_bias[u]
            return predicted
        order = np.argsort(users, kind="stable")
        rows = np.unique(users)
        for start in range(0, len(rows), USER_CHUNK):
            block = rows[start : start + USER_CHUNK]
            lo, hi = np.searchsorted(users[order], [block[0], block[-1] + 1])
            picked = order[lo:hi]
            hidden = self.user_hidden(block)[np.searchsorted(block, users[picked])]
            i = items[picked]
            predicted[picked] = np.einsum("ij,ij->i", hidden, out_weight[i]) + out_bias[i]
        return predicted

    def raw_block(self, users: np.ndarray) -> np.ndarray:
        """The autoencoder's own outputs for known users (users x items), unclipped."""
        if self.orientation == "item":
            hidden = self.arrays["item_hidden"]
            if len(users) == 1:
                u = int(users[0])
                last = int(self.arrays.metadata["n_layers"]) - 1
                weight = self.arrays.rows(f"layer.{last}.weight", u, u + 1)
                bias = self.arrays.rows(f"layer.{last}.bias", u, u + 1)
            else:
                weight, bias = self.output_layer
                weight, bias = weight[users], bias[users]
            return weight @ hidden.T + bias[:, None]
        return self.network.output(self.user_hidden(users))

    def user_hidden(self, users: np.ndarray) -> np.ndarray:
        """User orientation: the last hidden layer of known users' training rows."""
        net = self.network
        if self._first_all is not None:
            z1 = self._first_all[users]  # a copy: from_first works in place
        else:
            indptr = self.arrays["train.indptr"]
            _, positions = row_entries(indptr, users)
            sub_indptr = np.concatenate([[0], np.cumsum(indptr[users + 1] - indptr[users])])
            z1 = net.first(
                sub_indptr,
                self.arrays["train.indices"][positions],
                self.arrays["train.data"][positions],
            )
        return net.from_first(z1)[1]

    def prepare_all_users(self) -> None:
        """User orientation: the first layer of every user's training row in one sparse
        product (scipy), before scoring many users block by block."""
        if self.orientation == "user" and self._first_all is None:
            self._first_all = self.network.first(
                self.arrays["train.indptr"],
                self.arrays["train.indices"],
                self.arrays["train.data"],
            )

    # -- scores of a new user (fold-in, no retraining)

    def new_user_scores(self, cols: np.ndarray, stars: np.ndarray, val_rmse: float) -> np.ndarray:
        """Predicted stars for every item from ratings not in the train split.

        User orientation: the ratings are the input vector. Item orientation: the new user is a
        new output unit, so (w, b) are fitted by ridge regression on the rated items' last
        hidden layers h_j, r_j ~ h_j.w + b, shrunk towards the average trained user (prior
        variances from the trained output layer, noise variance from the validation RMSE).
        Items unseen in training get the bias baseline, as for known users.
        """
        cols = np.asarray(cols, dtype=np.int64)
        stars = np.asarray(stars, dtype=np.float64)
        if self.orientation == "user":
            net = self.network
            z1 = net.first(np.array([0, len(cols)]), cols, stars.astype(np.float32))
            raw = net.output(net.from_first(z1)[1])[0].astype(np.float64)
        else:
            out_weight, out_bias = self.output_layer
            weight, bias = fold_in(
                self.arrays["item_hidden"][cols].astype(np.float64),
                stars,
                out_weight[self.user_seen],
                out_bias[self.user_seen],
                val_rmse,
            )
            raw = self.arrays["item_hidden"].astype(np.float64) @ weight + bias
        mean = float(self.arrays["baseline.mean"][0])
        baseline = mean + self.new_user_bias(cols, stars) + self.arrays["baseline.item_bias"]
        return np.clip(np.where(self.item_seen, raw, baseline), *self.scale)


def fold_in(
    hidden: np.ndarray,
    stars: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
    val_rmse: float,
) -> tuple[np.ndarray, float]:
    """Ridge fit of one output unit (w, b) with r ~ hidden @ w + b, shrunk towards the mean
    trained unit: a Gaussian prior with the trained units' mean and per-dimension variance."""
    w0 = weights.mean(0).astype(np.float64) if len(weights) else np.zeros(hidden.shape[1])
    b0 = float(biases.mean()) if len(biases) else float(stars.mean())
    w_var = max(float(weights.var(0).mean()) if len(weights) > 1 else 0.0, 1e-8)
    b_var = max(float(biases.var()) if len(biases) > 1 else 0.0, 1e-8)
    noise = max(float(val_rmse) ** 2, 1e-2)
    x = np.hstack([hidden, np.ones((len(hidden), 1))])
    theta0 = np.append(w0, b0)
    prior = np.append(np.full(hidden.shape[1], w_var), b_var)  # prior variances
    residual = stars - x @ theta0
    # Dual (kernel) form: n_rated x n_rated, cheap when there are fewer ratings than units.
    kernel = (x * prior) @ x.T + noise * np.eye(len(x))
    theta = theta0 + prior * (x.T @ np.linalg.solve(kernel, residual))
    return theta[:-1], float(theta[-1])


def _read_csv(path: Path) -> list[list[str]]:
    """Rows of a dataset CSV written by dataset_store.ingest, header dropped (no pandas)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise AerecError(
            f"cannot read {path} ({exc.strerror or exc}); ingest the dataset again with --force"
        ) from exc
    return rows[1:]


# --- opening a run ----------------------------------------------------------------------


def open_run(home: Path, run_name: str | None = None, note=None) -> Served:
    """The run (default: latest) and its dataset, checked to match, ready to score.

    The same checks as evaluation.load_for_scoring, without torch or pandas. Builds the serving
    file first where it is missing or stale (``note`` is told, as this loads torch).
    """
    run = run_store.load_run(home, run_name)
    folder = home / "datasets" / run.dataset
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise AerecError(
            f"dataset {run.dataset} of run {run.name} is not in {home}; "
            f"ingest it again, then train again: aerec train --data {run.dataset}"
        )
    meta_bytes = meta_path.read_bytes()
    try:
        meta = json.loads(meta_bytes)
    except ValueError as exc:
        raise AerecError(
            f"dataset {run.dataset} at {folder} is damaged ({exc}); ingest it again with --force"
        ) from exc
    meta_hash = hashlib.sha256(meta_bytes).hexdigest()
    if run.config.get("dataset_meta_sha256") != meta_hash:
        raise AerecError(
            f"dataset {run.dataset} was re-ingested after run {run.name} was trained on it; "
            f"train again: aerec train --data {run.dataset}"
        )
    # The weights are the run's source of truth: damage there is an error, even though
    # scoring reads the serving file.
    run.read_checked(run_store.WEIGHTS)
    path = run.path / FILENAME
    arrays = _open_arrays(path, meta_hash)
    if arrays is None:
        if note is not None:
            note(f"preparing run {run.name} for fast scoring (once) ...")
        arrays = _rebuild(home, run, meta_hash, path)
    served = Served(run, run.dataset, folder, meta, arrays)
    expected = (int(meta["users"]), int(meta["items"]))
    if (served.n_users, served.n_items) != expected:
        raise AerecError(f"run {run.name} does not fit dataset {run.dataset}; train again")
    return served


def _open_arrays(path: Path, meta_hash: str) -> Arrays | None:
    """The serving file if present, readable and made for this dataset version."""
    if not path.is_file():
        return None
    try:
        arrays = Arrays(path)
    except Exception:  # a damaged or foreign file: rebuild it
        return None
    meta = arrays.metadata
    if meta.get("format") != FORMAT or meta.get("dataset_meta_sha256") != meta_hash:
        return None
    try:
        if meta.get("data_sha256") != _file_data_sha256(path):  # damaged (or from before)
            return None
    except (OSError, ValueError, OverflowError):
        return None
    return arrays


def _rebuild(home: Path, run: run_store.Run, meta_hash: str, path: Path) -> Arrays:
    import torch

    from aerec_cli.storage import dataset_store

    dataset = dataset_store.load(home, run.dataset)
    model = run.load_model(torch.device("cpu"))
    expected = dataset.train.shape[1 if run.config["orientation"] == "user" else 0]
    if model.n_inputs != expected:
        raise AerecError(f"run {run.name} does not fit dataset {dataset.name}; train again")
    try:
        save(run.path, model, dataset.train, run.config["orientation"], meta_hash)
    except OSError as exc:
        raise AerecError(
            f"cannot write {path} ({exc.strerror or exc}); make the run folder writable"
        ) from exc
    return Arrays(path)
