"""A trained run ready to score with numpy: the one scoring path of every command.

``open_run`` checks a run against its dataset and opens its serving file (see
serving_file.py); :class:`Scorer` predicts stars for (user, item) pairs, for every item of
known users, and for new users folded in without retraining. Users or items with no
training ratings fall back to the bias baseline (mu + b_u + b_i). ``evaluate``, ``predict``,
``recommend``, ``similar``, ``embed`` and ``outliers`` all score through it, and none of them
imports torch or pandas on this path.

A run trained with --objective ranking has a ranker and no rating autoencoder (``rates`` is
False): its lists and item codes come from the ranker, and what needs predicted stars is
refused with one clear error (``require_stars``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.models import ranking
from aerec_cli.scoring import serving_file
from aerec_cli.scoring.network import Network, fold_in, row_entries, sparse_dot
from aerec_cli.scoring.serving_file import Arrays
from aerec_cli.storage import integrity, paths, run_store

# Pairs per step of pair predictions, and users per block of user-oriented hidden layers.
PAIR_CHUNK = 1 << 12
USER_CHUNK = 256
# Up to this many ratings, EASE's rows are read one by one from the memory-mapped file
# rather than the whole item x item matrix (55 MB on ML-1M).
FEW_RATED_ROWS = 2000
# Regularisation of the bias baseline (as baselines.BiasBaseline's defaults).
REG_USER = 15.0


@dataclass
class ItemInfo:
    ids: list[str]
    titles: list[str]
    genres: list[str]

    def title(self, index: int) -> str:
        return self.titles[index] or f"item {self.ids[index]}"


@dataclass
class Scorer:
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
        """The layout the run is scored in: a blend of both orientations is served as an
        item-oriented product (serving_file.py)."""
        return "user" if self.run.config["orientation"] == "user" else "item"

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
            self._users = [row[0] for row in self._id_map("users.csv", self.n_users)]
        return self._users

    @property
    def items(self) -> ItemInfo:
        if self._items is None:
            rows = self._id_map("items.csv", self.n_items)
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
    def rates(self) -> bool:
        """Whether the run has a rating autoencoder (predicted stars): all runs but those
        trained with --objective ranking."""
        return "layer.0.weight" in self.arrays

    def require_stars(self, what: str) -> None:
        """Refuse ``what`` (something that needs predicted stars) on a run without a rating
        model, with the fix."""
        if not self.rates:
            raise AerecError(
                f"run {self.run.name} has no rating model (it was trained with --objective "
                f"ranking), so it cannot {what}; train one that predicts stars with "
                "aerec train --objective both (or rating)"
            )

    @property
    def network(self) -> Network:
        self.require_stars("predict stars")
        if self._net is None:
            n_layers = int(self.arrays.metadata["n_layers"])
            weights = [self.arrays[f"layer.{k}.weight"] for k in range(n_layers)]
            biases = [self.arrays[f"layer.{k}.bias"] for k in range(n_layers)]
            self._net = Network(weights, biases, int(self.arrays.metadata["n_encoder"]))
        return self._net

    @property
    def output_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight, bias) of the output layer alone (without reading the other layers); of a
        blend of both orientations, the user factors that play its part."""
        self.require_stars("predict stars")
        if "blend.user_weight" in self.arrays:
            return self.arrays["blend.user_weight"], self.arrays["blend.user_bias"]
        if self._net is not None:
            return self._net.weights[-1], self._net.biases[-1]
        last = int(self.arrays.metadata["n_layers"]) - 1
        return self.arrays[f"layer.{last}.weight"], self.arrays[f"layer.{last}.bias"]

    def item_codes(self) -> np.ndarray:
        """The learned item representation (items x dims); see the module doc. A run without
        a rating model uses its ranker's input table: the item embedding its lists are made
        from."""
        if not self.rates:
            return self.arrays["ranker.table"]
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
        if not self.rates:
            return "ranker item embedding"
        return "encoder code" if self.orientation == "item" else "output-layer weights"

    def _id_map(self, filename: str, expected: int) -> list[list[str]]:
        """The rows of users.csv or items.csv, checked against the dataset version this
        scorer was opened with and the matrices' shape: a map with a line lost or added
        would give every later row another's id."""
        path = self.dataset_path / filename
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AerecError(
                f"cannot read {path} ({exc.strerror or exc}); ingest the dataset again with --force"
            ) from exc
        integrity.check_digest(self.meta, filename, data, self.dataset)
        return integrity.id_rows(data, filename, expected, self.dataset)

    # -- ratings of the train split

    def user_ratings(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, stars) of a user's training ratings."""
        indptr = self.arrays["train.indptr"]
        lo, hi = int(indptr[user]), int(indptr[user + 1])
        cols = self.arrays["train.indices"][lo:hi].astype(np.int64)
        return cols, self.arrays["train.data"][lo:hi].astype(np.float64)

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
        """Predicted stars for every item, for one known user."""
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
            weight, bias = self.output_layer  # memory maps: only these users' rows are read
            return weight[users] @ self.arrays["item_hidden"].T + bias[users][:, None]
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
        if self.orientation == "user" and self.rates and self._first_all is None:
            self._first_all = self.network.first(
                self.arrays["train.indptr"],
                self.arrays["train.indices"],
                self.arrays["train.data"],
            )

    # -- ranking scores (runs with a ranker: models/ranking.py)

    @property
    def ranks(self) -> bool:
        """Whether the run learnt to rank (its lists then follow the ranker, not the stars)."""
        return "ranker.table" in self.arrays

    def rank_rows(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Ranking scores (rows x items) of CSR rows of stars: z(log p) + share * z(EASE).

        Items without training ratings get -inf: the model learnt nothing about them, so they
        are never recommended by its score."""
        ease = self._ease_rows(indptr, indices) if "ranker.ease" in self.arrays else None
        return self._rank_scores(self._log_p(indptr, indices, data), ease)

    def rank_without_each(self, cols: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """Ranking scores (rated x items) of one row of ratings with each rating left out in
        turn: what `recommend --explain` compares the whole row's scores with.

        EASE's scores are linear in the rated items, so the row without item j scores the
        whole row's EASE scores minus j's own row of EASE's weights."""
        cols = np.asarray(cols, dtype=np.int64)
        k = len(cols)
        kept = ~np.eye(k, dtype=bool)  # row j: every rating but the j-th
        indptr = np.arange(k + 1, dtype=np.int64) * (k - 1)
        log_p = self._log_p(
            indptr,
            np.broadcast_to(cols, (k, k))[kept],
            np.broadcast_to(np.asarray(stars, dtype=np.float32), (k, k))[kept],
        )
        ease = None
        if "ranker.ease" in self.arrays:
            rows = self._ease_table(cols)
            ease = rows.sum(axis=0, keepdims=True) - rows
        return self._rank_scores(log_p, ease)

    def _log_p(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The Mult-DAE's log-probabilities over every item (rows x items) of CSR rows."""
        arrays = self.arrays
        values = ranking.input_values(indptr, data, self.scale[1])
        first = sparse_dot(indptr, indices, values, arrays["ranker.table"])
        hidden = np.tanh(first + arrays["ranker.bias"])
        logits = hidden @ arrays["ranker.out.weight"].T + arrays["ranker.out.bias"]
        return ranking.log_softmax(logits)

    def _rank_scores(self, log_p: np.ndarray, ease: np.ndarray | None) -> np.ndarray:
        scores = ranking.combine(log_p, ease)
        scores[:, ~self.item_seen] = -np.inf
        return scores

    def _ease_rows(self, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Each row's EASE scores: the sum of EASE's rows of the items it rated. For a few
        rows, only those rows of the item x item matrix are read from the file."""
        ones = np.ones(len(indices), dtype=np.float32)
        if len(indices) > FEW_RATED_ROWS:
            # Many rows (--all-users, evaluate): one sparse x dense product; numpy's gather
            # would copy a whole matrix row per rating.
            import scipy.sparse as sp

            n_items = self.n_items
            rows = sp.csr_matrix((ones, indices, indptr), shape=(len(indptr) - 1, n_items))
            return np.asarray(rows @ self.arrays["ranker.ease"], dtype=np.float32)
        if len(indices) == 0:
            return np.zeros((len(indptr) - 1, self.n_items), dtype=np.float32)
        unique, local = np.unique(indices, return_inverse=True)
        return sparse_dot(indptr, local, ones, self._ease_table(unique))

    def _ease_table(self, items: np.ndarray) -> np.ndarray:
        """EASE's rows of ``items`` (items x every item), only those read from the file."""
        return self.arrays["ranker.ease"][items]

    def rank_block(self, users: np.ndarray) -> np.ndarray:
        """Ranking scores of known users (users x items), from their training rows."""
        users = np.asarray(users, dtype=np.int64)
        indptr = self.arrays["train.indptr"]  # memory maps: only these users' entries are read
        _, positions = row_entries(indptr, users)
        sub_indptr = np.concatenate([[0], np.cumsum(indptr[users + 1] - indptr[users])])
        return self.rank_rows(
            sub_indptr,
            self.arrays["train.indices"][positions].astype(np.int64),
            self.arrays["train.data"][positions],
        )

    def list_scores(self, users: np.ndarray) -> np.ndarray:
        """What top-N lists follow: the ranking score where the run has a ranker, else the
        unclipped stars; items without training ratings are never listed (-inf)."""
        if self.ranks:
            return self.rank_block(users)
        return self.star_list_scores(users)

    def star_list_scores(self, users: np.ndarray) -> np.ndarray:
        """What top-N lists by predicted stars follow (``--order stars``): the unclipped
        stars, since clipping would tie every item predicted above the top star."""
        scores = self.block_scores(users, clip=False)
        scores[:, ~self.item_seen] = -np.inf
        return scores

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


# --- opening a run ----------------------------------------------------------------------


def open_run(home: Path, run_name: str | None = None, note=None) -> Scorer:
    """The run (default: latest) and its dataset, checked to match, ready to score.

    Needs neither torch nor pandas. Builds the serving file first where it is missing, damaged
    or made from other weights or another dataset version (``note`` is told, as this loads
    torch).
    """
    run = run_store.load_run(home, run_name)
    folder = paths.store_folder(home, "datasets") / run.dataset
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise AerecError(
            f"dataset {run.dataset} of run {run.name} is not in {home}; "
            f"ingest it again, then train again: aerec train --data {run.dataset}"
        )
    try:
        meta_bytes = meta_path.read_bytes()
        meta = integrity.check_meta(json.loads(meta_bytes), run.dataset)
    except OSError as exc:
        raise AerecError(f"cannot read {meta_path} ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise integrity.damaged(run.dataset, f"meta.json: {exc}") from exc
    meta_hash = integrity.version_digest(meta_bytes)
    run.require_trained_on(meta_hash)
    # The weights are the run's source of truth: damage there is an error, even though
    # scoring reads the serving file (a run without a rating model: its ranker's).
    run.check(run.tensor_file)
    weights_hash = serving_file.weights_digest(run)
    path = run.path / serving_file.FILENAME
    hashes = {"meta_hash": meta_hash, "weights_hash": weights_hash}
    arrays = serving_file.open_arrays(path, **hashes)
    if arrays is None:
        if note is not None:
            note(f"preparing run {run.name} for fast scoring (once) ...")
        arrays = serving_file.rebuild(home, run, path=path, **hashes)
    served = Scorer(run, run.dataset, folder, meta, arrays)
    expected = (int(meta["users"]), int(meta["items"]))
    if (served.n_users, served.n_items) != expected:
        raise AerecError(f"run {run.name} does not fit dataset {run.dataset}; train again")
    return served
