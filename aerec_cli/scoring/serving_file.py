"""What a run keeps in ``RUN/serving.safetensors`` so that scoring needs neither torch nor
pandas: written at the end of training, checked and memory-mapped when a run is scored.

Every kind shares one network at inference (sigmoid encoder layers, mirrored sigmoid decoder
layers, a linear output layer), so one numpy forward pass over the saved weights scores every
kind. At the end of training (training/session.py or, for a run trained with --objective
ranking, training/ranking_run.py; once the run folder is saved) :func:`save` stores what does
not depend on the user:

- the weights, layer by layer (torch layout: out x in) and where the code sits;
- the train split as CSR (users x items), so no scipy is needed to read a user's ratings;
- the bias baseline (mean, user and item biases) and which users and items have training
  ratings: the fallback for what the autoencoder never saw (see scorer.py);
- item rating counts and sums (the damped-popularity list for a user with too few ratings);
- ``item_hidden``: the last hidden layer of every item's training row (item orientation), so a
  known user's scores are one product ``H @ W[u] + b[u]``;
- ``item_code``: the learned item representation (item orientation: the encoder code of each
  item row; user orientation: each item's row of the output layer), for ``similar``/``embed``;
- ``ranker.*``: the ranker of a run that ranks (its network and EASE's item x item weights).

A run trained with --orientation both is served in the item layout: its stars
``w * (h_i . W[u] + b[u]) + (1 - w) * (g_u . V[i] + c[i])`` (h_i: the item network's last
hidden layer of item i's row; g_u: the user network's of user u's; W, b and V, c: their
output layers) are one product of an item factor [h_i, V[i], c[i]] (``item_hidden``) and a user
factor [w W[u], (1 - w) g_u, 1 - w] (``blend.user_weight``) plus w b[u] (``blend.user_bias``).
Its layers and ``item_code`` are the item network's.

A run trained with --objective ranking has no autoencoder: its file holds everything above but
the layers, ``item_hidden`` and ``item_code`` (its items' representation is the ranker's input
table).

A run without a valid file (trained before it existed, damaged, or derived from other weights
or another dataset version) gets a new one on first use.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.scoring.network import Network
from aerec_cli.storage import atomic, run_store, verified

if TYPE_CHECKING:
    import scipy.sparse as sp

    from aerec_cli.models.autoencoders import OrientationBlend, RatingAutoencoder

FILENAME = "serving.safetensors"
FORMAT = "1"


# --- building the file (end of training, or first use) --------------------------------------


def build(
    model: RatingAutoencoder | None, train: sp.csr_matrix, orientation: str
) -> dict[str, np.ndarray]:
    """Everything :class:`Scorer` reads, from a trained model and its train split. Without a
    model (a run trained with --objective ranking) only what does not depend on it: the train
    split, the bias baseline and the item counts; the ranker's arrays are added by :func:`save`.
    """
    from aerec_cli.models.baselines import BiasBaseline

    train = train.tocsr().astype(np.float32)
    train.sort_indices()
    baseline = BiasBaseline.fit(train)
    n_items = train.shape[1]
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
    if model is not None:
        arrays.update(_autoencoder_arrays(model, train, orientation))
    return arrays


def _autoencoder_arrays(
    model: RatingAutoencoder, train: sp.csr_matrix, orientation: str
) -> dict[str, np.ndarray]:
    """The rating autoencoder's layers, and its item representation (see the module doc)."""
    if _is_blend(model):
        return _blend_arrays(model, train)
    net = Network.from_model(model)
    arrays = {}
    for k, (weight, bias) in enumerate(zip(net.weights, net.biases)):
        arrays[f"layer.{k}.weight"] = weight
        arrays[f"layer.{k}.bias"] = bias
    if orientation != "user":  # item, or both when only the item side was trained
        by_item = train.T.tocsr()
        by_item.sort_indices()
        code, hidden = net.from_first(net.first(by_item.indptr, by_item.indices, by_item.data))
        arrays["item_hidden"] = np.ascontiguousarray(hidden, dtype=np.float32)
        if code is not hidden:
            arrays["item_code"] = np.ascontiguousarray(code, dtype=np.float32)
    else:
        arrays["item_code"] = np.ascontiguousarray(net.weights[-1], dtype=np.float32)
    return arrays


def _blend_arrays(blend: OrientationBlend, train: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A blend of both orientations as one item-oriented product (see the module doc)."""
    arrays = _autoencoder_arrays(blend.item, train, "item")
    item_hidden = arrays["item_hidden"]
    arrays.setdefault("item_code", item_hidden)  # the item network's code, for similar/embed
    user_net = Network.from_model(blend.user)
    _, user_hidden = user_net.from_first(user_net.first(train.indptr, train.indices, train.data))
    weight = blend.item_weight
    last = len(blend.item.encoder) + len(blend.item.decoder)  # the item network's output layer
    item_out, item_bias = arrays[f"layer.{last}.weight"], arrays[f"layer.{last}.bias"]
    arrays["item_hidden"] = np.hstack(
        [item_hidden, user_net.weights[-1], user_net.biases[-1][:, None]]
    ).astype(np.float32)
    arrays["blend.user_weight"] = np.hstack(
        [weight * item_out, (1 - weight) * user_hidden, np.full((len(item_out), 1), 1 - weight)]
    ).astype(np.float32)
    arrays["blend.user_bias"] = (weight * item_bias).astype(np.float32)
    return arrays


def ranker_arrays(model, ease: np.ndarray | None) -> dict[str, np.ndarray]:
    """The ranker as plain arrays (models/ranker.py): the Mult-DAE's input table and bias, its
    output layer, and EASE's item x item weights when it was fitted."""

    def plain(tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)

    arrays = {
        "ranker.table": plain(model.table),
        "ranker.bias": plain(model.bias),
        "ranker.out.weight": plain(model.output.weight),
        "ranker.out.bias": plain(model.output.bias),
    }
    if ease is not None:
        arrays["ranker.ease"] = np.ascontiguousarray(ease, dtype=np.float32)
    return arrays


def weights_digest(run: run_store.Run) -> str:
    """What a serving file is derived from: the digests config.json records for the run's
    weights (and its ranker), or the weights' own digest for a run saved before checksums."""
    sums = run.config.get("sha256")
    if isinstance(sums, dict) and isinstance(sums.get(run.tensor_file), str):
        parts = [sums[run_store.WEIGHTS]] if run.has_model else []
        if run.has_ranker:
            parts.append(str(sums.get(run_store.RANKER)))
        return "+".join(parts)
    return hashlib.sha256(run.read_checked(run.tensor_file)).hexdigest()


def save(
    run_path: Path,
    model: RatingAutoencoder | None,
    train: sp.csr_matrix,
    orientation: str,
    *,
    dataset_meta_sha256: str,
    weights_sha256: str,
    ranker: tuple | None = None,
) -> Path:
    """Write ``RUN/serving.safetensors`` (atomically). Called at the end of training.

    It records the digests of the dataset version and of the weights it was derived from, so
    a serving file that no longer matches its run (an older state of a resumed run, or
    another run's file) is rebuilt rather than trusted. ``model`` is None for a run trained
    with --objective ranking (it then has no layers: n_layers 0)."""
    from safetensors.numpy import save as to_bytes

    arrays = build(model, train, orientation)
    layers = model.item if _is_blend(model) else model
    if ranker is not None:
        arrays.update(ranker_arrays(*ranker))
    metadata = {
        "format": FORMAT,
        "orientation": orientation,
        "n_layers": "0" if model is None else str(len(layers.encoder) + len(layers.decoder) + 1),
        "n_encoder": "0" if model is None else str(len(layers.encoder)),
        "dataset_meta_sha256": dataset_meta_sha256,
        "weights_sha256": weights_sha256,
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


def save_for_run(saved: run_store.Run, model, dataset, ranked) -> list[str]:
    """Save the serving file of a run just saved. A derived file: if it cannot be written now,
    scoring builds it on first use (the warning returned says so)."""
    try:
        save(
            saved.path,
            model,
            dataset.train,
            saved.config["orientation"],
            dataset_meta_sha256=dataset.meta_hash,
            weights_sha256=weights_digest(saved),
            ranker=None if ranked is None else (ranked.model, ranked.ease),
        )
    except OSError as exc:
        why, remedy = atomic.write_failure(exc)
        return [
            f"run {saved.name} is saved, but its serving file could not be written ({why}); "
            f"scoring builds it on first use: {remedy}"
        ]
    return []


def _data_start(first: bytes | memoryview) -> int:
    """Where a safetensors file's tensor bytes start, from its first 8 bytes: after that
    header length and the header."""
    return 8 + int.from_bytes(first[:8], "little")


def _data_section(blob: bytes | memoryview) -> memoryview:
    """The tensor bytes of a safetensors file."""
    view = memoryview(blob)
    return view[_data_start(view) :]


def _file_data_sha256(path: Path) -> str:
    """The digest of a safetensors file's data section, as :func:`save` records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(_data_start(handle.read(8)))
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- reading it back ----------------------------------------------------------------------


# safetensors' dtype names, as numpy's (the format is little-endian).
DTYPES = {"F64": "<f8", "F32": "<f4", "I64": "<i8", "I32": "<i4", "U8": "u1"}


class Arrays:
    """Lazy access to the tensors of a serving file, each a read-only memory map: a command
    reads only the pages it uses (one user's list reads one row of the output layer), and
    no tensor is copied (reading an ML-1M ensemble's 37 MB item_hidden took 45 ms, mapped
    it takes none)."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as handle:
            self._start = _data_start(handle.read(8))
            header = json.loads(handle.read(self._start - 8))
        self.metadata = header.pop("__metadata__", None) or {}
        self._end = path.stat().st_size
        self._tensors: dict[str, dict] = header
        self._cache: dict[str, np.ndarray] = {}
        for name in header:  # a damaged header is found now, not in the middle of a command
            self._layout(name)

    def __contains__(self, name: str) -> bool:
        return name in self._tensors

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            dtype, shape, offset = self._layout(name)
            self._cache[name] = (
                np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape)
                if math.prod(shape)
                else np.empty(shape, dtype=dtype)  # an empty map is refused
            )
        return self._cache[name]

    def _layout(self, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
        """(dtype, shape, file offset) of a tensor, checked against the file."""
        info = self._tensors[name]
        dtype, shape = np.dtype(DTYPES[info["dtype"]]), tuple(int(n) for n in info["shape"])
        begin, end = (int(n) for n in info["data_offsets"])
        if begin < 0 or end - begin != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor {name} does not match its size")
        if self._start + end > self._end:
            raise ValueError(f"tensor {name} lies past the end of the file")
        return dtype, shape, self._start + begin


def open_arrays(path: Path, *, meta_hash: str, weights_hash: str) -> Arrays | None:
    """The serving file if present, readable and made from this dataset version and these
    weights."""
    if not path.is_file():
        return None
    try:
        arrays = Arrays(path)
    except Exception:  # a damaged or foreign file: rebuild it
        return None
    meta = arrays.metadata
    if meta.get("format") != FORMAT or meta.get("dataset_meta_sha256") != meta_hash:
        return None
    if meta.get("weights_sha256") != weights_hash:
        return None
    recorded = meta.get("data_sha256")
    if not isinstance(recorded, str):  # from before digests: rebuild it
        return None
    if verified.unchanged(path, recorded):
        return arrays
    try:
        if recorded != _file_data_sha256(path):  # damaged
            return None
    except (OSError, ValueError, OverflowError):
        return None
    verified.note(path, recorded)
    return arrays


def rebuild(
    home: Path, run: run_store.Run, *, meta_hash: str, weights_hash: str, path: Path
) -> Arrays:
    import torch

    from aerec_cli.storage import dataset_store

    dataset = dataset_store.load(home, run.dataset)
    cpu = torch.device("cpu")
    model = run.load_model(cpu) if run.has_model else None
    ranker = run.load_ranker(cpu) if run.has_ranker else None
    fits = (model is None or _fits(model, dataset.train.shape, run.config["orientation"])) and (
        ranker is None or ranker[0].n_items == dataset.train.shape[1]
    )
    if not fits:
        raise AerecError(f"run {run.name} does not fit dataset {dataset.name}; train again")
    try:
        save(
            run.path,
            model,
            dataset.train,
            run.config["orientation"],
            dataset_meta_sha256=meta_hash,
            weights_sha256=weights_hash,
            ranker=ranker,
        )
    except OSError as exc:
        why, remedy = atomic.write_failure(exc)
        raise AerecError(
            f"run {run.name} cannot be prepared for scoring: its serving file could not be "
            f"written ({why}); the run is unchanged: {remedy}"
        ) from exc
    return Arrays(path)


def _is_blend(model) -> bool:
    """Whether ``model`` blends both orientations (imported here: it needs torch, which
    scoring a saved file does not)."""
    from aerec_cli.models.autoencoders import OrientationBlend

    return isinstance(model, OrientationBlend)


def _fits(model, shape: tuple[int, int], orientation: str) -> bool:
    """Whether a run's rating model reads rows of a train split of ``shape`` (users x items):
    an item-oriented network's input is a user count long, a user-oriented one's an item
    count; a blend has one of each."""
    if _is_blend(model):
        return (model.item.n_inputs, model.user.n_inputs) == shape
    return model.n_inputs == shape[1 if orientation == "user" else 0]
