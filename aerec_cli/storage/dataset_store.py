"""The dataset store: ``HOME/datasets/NAME/`` holds the split rating matrices and id maps.

Layout of one dataset folder (written whole under a temp name, then renamed into place):

- ``train.npz``, ``test.npz``: scipy CSR, users x items, float32, 0 = unrated
- ``users.csv``: raw user id of each matrix row
- ``items.csv``: raw item id, title and genres of each matrix column
- ``meta.json``: format version, source and its sha256, counts, rating scale, split, time
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aerec_cli import __version__
from aerec_cli.data import downloads, readers, sample, splits
from aerec_cli.data import table as table_checks
from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, integrity, locks, paths
from aerec_cli.storage.paths import default_home  # noqa: F401  (re-exported: store.default_home)

FORMAT_VERSION = 1
KNOWN_NAMES = sorted(downloads.KNOWN_DATASETS)


@dataclass
class Dataset:
    """A stored dataset: the train/test matrices and what their rows and columns are."""

    name: str
    path: Path
    train: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray  # raw ids (str) of the matrix rows
    items: pd.DataFrame  # item (raw id), title, genres of the matrix columns
    meta: dict
    meta_hash: str  # fingerprint of this version; a run records it to detect a re-ingest

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item"].to_numpy()

    @property
    def rating_scale(self) -> tuple[float, float]:
        low, high = self.meta["rating_scale"]
        return float(low), float(high)

    def user_index(self, raw_id: str) -> int:
        index = _index_of(self.user_ids, raw_id)
        if index is None:
            raise AerecError(
                f"unknown user id {raw_id!r} in dataset {self.name} "
                f"(ids run {self.user_ids[0]}..{self.user_ids[-1]}, {len(self.user_ids):,} users); "
                f"list them with: aerec users --data {self.name}"
            )
        return index


def _index_of(ids: np.ndarray, raw_id: str) -> int | None:
    hits = np.flatnonzero(ids == str(raw_id).strip())
    return int(hits[0]) if len(hits) else None


# --- ingest ------------------------------------------------------------------------------


def ingest(
    source: str,
    home: Path,
    name: str | None = None,
    force: bool = False,
    split: str | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    columns: str | None = None,
    sep: str | None = None,
    skip_bad_lines: bool = False,
    *,
    test: str | Path | None = None,
    rating_scale: str | tuple[float, float] | None = None,
) -> tuple[Dataset, list[str]]:
    """Read ``source``, split it, and store it as ``HOME/datasets/NAME``. Returns warnings too.

    ``split`` defaults to random with ``test_fraction`` 0.1. ``test``: a second source holding
    the test split (the user's own split, read like ``source``); ``source`` is then the train
    split, and ``split``/``test_fraction`` must be left out. ``rating_scale``: "LOW,HIGH" or
    (low, high), the ratings' scale; ratings outside it are refused.
    """
    from aerec_cli.training.config import SEED  # one rule for --seed, CLI and Python alike

    SEED.check(seed)
    if isinstance(rating_scale, str):
        rating_scale = table_checks.parse_scale(rating_scale)
    elif rating_scale is not None:
        rating_scale = table_checks.parse_scale(",".join(map(str, rating_scale)))
    name = paths.check_name(name or _name_from_source(source), "dataset")
    target = paths.writable_folder(home, "datasets") / name
    # Checked before reading: a large source takes a while.
    if test is not None:
        test = splits.check_given(test, split, test_fraction)
    else:
        split = split or "random"
        test_fraction = 0.1 if test_fraction is None else test_fraction
        _check_split(split, test_fraction)
    with ingest_lock(home, name):  # from the existence check to the final rename
        if target.exists() and not force:
            raise AerecError(
                f"dataset {name} already exists at {target}; pass --force to replace it"
            )
        table, source_path = _read(source, home, columns, sep, skip_bad_lines, rating_scale)
        if test is not None:
            try:
                test_table = readers.read_source(
                    test, columns, sep, skip_bad_lines, rating_scale=rating_scale
                )
            except AerecError as exc:  # say which of the two sources it is about
                raise AerecError(f"test source {test}: {exc.message}") from exc
            table, ratings, is_test, split_info = splits.combine_given(table, test_table, test)
            split_info["test_sha256"] = _source_digest(test, test_table)
        else:
            ratings, is_test, split_info = _split(table, split, test_fraction, seed)
        digest = _source_digest(source_path, table)
        try:
            with atomic.staged_folder(target, replace=force) as folder:
                meta = _write_dataset(
                    folder, name, table, ratings, is_test, split_info, source, digest
                )
        except OSError as exc:  # the disk is full, say: the staged folder is removed
            why, remedy = atomic.write_failure(exc)
            kept = (
                f"dataset {name} keeps its earlier version"
                if target.exists()
                else "the datasets stored before are unchanged"
            )
            raise AerecError(
                f"dataset {name} could not be stored: {why}; {kept}: {remedy} and ingest again"
            ) from None
    return load(home, name), table.warnings + meta.get("warnings", [])


def check_dataset_name(name: str) -> str:
    return paths.check_name(name, "dataset")


def ingest_lock(home: Path, name: str):
    """Held while dataset NAME is written: a second ingest of it is refused, not interleaved."""
    return locks.name_lock(
        home / "datasets",
        name,
        f"dataset {name} is being ingested by another aerec process; wait for it to end, or "
        "pick another --name",
    )


def _read(source: str, home: Path, columns, sep, skip_bad_lines, rating_scale):
    if source == "sample":
        table = sample.sample_table()
        if rating_scale is not None:
            table.rating_scale, table.scale_from = rating_scale, "given"
            table_checks.finish(table)  # its ratings on the given scale, or an error
        return table, None
    if source in downloads.KNOWN_DATASETS and not Path(source).exists():
        source_path = downloads.fetch(source, home / "cache")
    else:
        source_path = Path(source).expanduser()
    table = readers.read_source(
        source_path, columns, sep, skip_bad_lines, rating_scale=rating_scale
    )
    return table, source_path


def _check_split(method: str, test_fraction: float) -> None:
    """Reject a split no source could have, or a bad fraction for random/temporal."""
    known = splits.SPLIT_METHODS + readers.PREDEFINED_SPLITS_100K
    if method not in known:
        raise AerecError(f"unknown split {method!r}; choose one of: {', '.join(known)}")
    if method in splits.SPLIT_METHODS and not 0.0 < test_fraction < 1.0:
        raise AerecError(
            f"--test-fraction must be between 0 and 1 (exclusive), not {test_fraction}"
        )


def _split(table: readers.RatingsTable, method: str, test_fraction: float, seed: int):
    """(ratings, is_test mask, split info); the train split is ``ratings[~is_test]``."""
    if method in table.predefined_splits:
        train_df, test_df = table.predefined_splits[method]()
        ratings = readers.concat_ratings([train_df, test_df])
        is_test = np.arange(len(ratings)) >= len(train_df)
        return ratings, is_test, {"method": method}
    if method not in splits.SPLIT_METHODS:
        named = sorted(table.predefined_splits)
        choices = ", ".join(splits.SPLIT_METHODS + named)
        raise AerecError(f"unknown split {method!r} for this source; choose one of: {choices}")
    mask = splits.test_mask(table.ratings, method, test_fraction, seed)
    info = {"method": method, "test_fraction": test_fraction, "seed": seed}
    return table.ratings, mask, info


def _name_from_source(source: str) -> str:
    if source == "sample" or source in downloads.KNOWN_DATASETS:
        return source
    path = Path(source).expanduser()
    stem = path.name[: -len(".zip")] if path.name.lower().endswith(".zip") else path.stem
    if path.is_file() and stem.lower() in {"u", "ratings", "data", "u.data"}:
        stem = path.resolve().parent.name or stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)[: paths.MAX_NAME["dataset"]]
    return name.strip("-._") or "dataset"


def _source_digest(path: Path | None, table: readers.RatingsTable) -> str:
    if path is None:
        data = table.ratings.to_csv(index=False).encode()
        return hashlib.sha256(data).hexdigest()
    if path.is_file():
        return downloads.file_digest(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(member.relative_to(path).as_posix().encode())
        digest.update(downloads.file_digest(member).encode())
    return digest.hexdigest()


def _id_codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct raw ids as str, int32 code of each row); numeric ids sort numerically.

    int64 ids are factorised as numbers (hashing, no per-row strings); only the distinct ids
    become strings. Text ids keep their exact text.
    """
    if ids.dtype == np.int64:
        codes, unique = pd.factorize(ids.to_numpy(), sort=True)
        return unique.astype(str), codes.astype(np.int32)
    text = ids.astype(str)
    unique = pd.unique(text)
    numeric = pd.to_numeric(pd.Series(unique), errors="coerce")
    if numeric.notna().all():
        ordered = unique[np.argsort(numeric.to_numpy(), kind="stable")].astype(str)
    else:
        ordered = np.sort(unique.astype(str))
    return ordered, pd.Index(ordered).get_indexer(text).astype(np.int32)


def _matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape) -> sp.csr_matrix:
    matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
    matrix.sort_indices()
    return matrix


def _write_dataset(folder, name, table, ratings, is_test, split_info, source, digest) -> dict:
    warnings = []
    user_ids, rows = _id_codes(ratings["user"])
    item_ids, cols = _id_codes(ratings["item"])
    values = ratings["rating"].to_numpy(np.float32)
    if split_info["method"] not in splits.SPLIT_METHODS:
        # A predefined split could list a pair twice; the test copy wins in neither matrix.
        pairs = pd.DataFrame({"user": rows, "item": cols})
        overlap = pairs[~is_test].merge(pairs[is_test], on=["user", "item"]).shape[0]
        if overlap:
            warnings.append(f"{overlap} (user, item) pair(s) are in both train and test")
    shape = (len(user_ids), len(item_ids))
    train = _matrix(rows[~is_test], cols[~is_test], values[~is_test], shape)
    test = _matrix(rows[is_test], cols[is_test], values[is_test], shape)
    del rows, cols
    for filename, matrix in (("train.npz", train), ("test.npz", test)):
        with atomic.atomic_open(folder / filename) as handle:
            sp.save_npz(handle, matrix, compressed=False)
    atomic.write_text(folder / "users.csv", pd.DataFrame({"user": user_ids}).to_csv(index=False))
    titles = table.items.set_index("item").reindex(item_ids)
    item_frame = pd.DataFrame(
        {
            "item": item_ids,
            "title": titles["title"].fillna("").to_numpy(),
            "genres": titles["genres"].fillna("").to_numpy(),
        }
    )
    atomic.write_text(folder / "items.csv", item_frame.to_csv(index=False))
    # Read back from the page cache: what a reader must find, one digest per file.
    files = {name: downloads.file_digest(folder / name) for name in integrity.DATA_FILES}
    stars, counts = np.unique(values, return_counts=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "source": str(source),
        "source_sha256": digest,
        "format": table.format,
        "users": len(user_ids),
        "items": len(item_ids),
        "ratings": int(train.nnz + test.nnz),
        "train": int(train.nnz),
        "test": int(test.nnz),
        "rating_scale": list(table.rating_scale),
        "rating_scale_from": table.scale_from,
        "histogram": {f"{v:g}": int(c) for v, c in zip(stars, counts)},
        "split": split_info,
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "created_ns": time.time_ns(),
        "aerec_version": __version__,
        "warnings": warnings,
        "files": files,
    }
    atomic.write_json(folder / "meta.json", meta)
    return meta


# --- reading back ------------------------------------------------------------------------

# Reads of one dataset that may meet a replacement in progress before one whole version is read.
READ_ATTEMPTS = 5


def scan_datasets(home: Path) -> tuple[list[dict], list[integrity.Damaged]]:
    """(meta of every readable dataset, oldest first; the damaged ones). Only meta.json is
    read (the matrices are checked when a dataset is loaded)."""
    root = paths.store_folder(home, "datasets")
    atomic.recover_folders(root)  # a replacement cut short between its renames
    metas, broken = [], []
    for folder in integrity.stored_entries(root):
        meta_path = folder / "meta.json"
        try:
            order = (meta_path if meta_path.exists() else folder).stat().st_mtime_ns
            meta = json.loads(meta_path.read_bytes())
        except FileNotFoundError:
            broken.append(integrity.Damaged(folder.name, "it has no meta.json", order))
            continue
        except (OSError, ValueError) as exc:
            broken.append(integrity.Damaged(folder.name, f"meta.json: {_short(exc)}", order))
            continue
        problem = integrity.meta_problem(meta)
        if problem is not None:
            broken.append(integrity.Damaged(folder.name, problem, order))
            continue
        # The folder names the dataset: what --data finds it by, even if it was renamed.
        metas.append({**meta, "name": folder.name})
    return sorted(metas, key=_created), broken


def list_datasets(home: Path) -> list[dict]:
    """Meta of every readable stored dataset, oldest first."""
    return scan_datasets(home)[0]


def _created(meta: dict) -> int:
    return meta.get("created_ns", 0)


def latest_name(home: Path) -> str:
    """The name of the latest dataset ingested (the default --data). A damaged latest one is
    an error that names it: silently using an older one would train on the wrong data."""
    metas, broken = scan_datasets(home)
    if not metas and not broken:
        raise AerecError(
            f"no dataset in {home}; ingest one first, e.g. aerec ingest sample "
            "or aerec ingest ml-100k.zip"
        )
    newest = max(broken, key=lambda d: d.order, default=None)
    if newest is not None and (not metas or newest.order > _created(metas[-1])):
        raise AerecError(
            f"the latest dataset, {newest.name}, is damaged ({newest.problem}): ingest it "
            "again with --force, or pick another with --data NAME (see: aerec datasets)"
        )
    return metas[-1]["name"]


def load(home: Path, name: str | None = None) -> Dataset:
    """Load dataset ``name``, or the latest one ingested, as one whole version: every file is
    read through one handle on its folder, and checked against meta.json."""
    root = paths.store_folder(home, "datasets")
    name = latest_name(home) if name is None else paths.check_name(name, "dataset")
    atomic.recover_folders(root)
    folder = root / name
    for _ in range(READ_ATTEMPTS):
        try:
            files = atomic.read_files(folder, ("meta.json", *integrity.DATA_FILES))
        except atomic.FolderChanged:
            continue  # replaced while read (ingest --force): read the new version whole
        except FileNotFoundError as exc:
            if not (folder / "meta.json").is_file():
                known = ", ".join(m["name"] for m in list_datasets(home)) or "none"
                raise AerecError(
                    f"no dataset named {name!r} in {home} (stored: {known}); see aerec datasets"
                ) from exc
            raise integrity.damaged(name, f"{Path(exc.filename or '?').name} is missing") from exc
        except OSError as exc:
            raise AerecError(
                f"cannot read dataset {name} at {folder} ({exc.strerror or exc})"
            ) from exc
        return _parse(name, folder, files)
    raise AerecError(
        f"dataset {name} was replaced {READ_ATTEMPTS} times while it was read (another aerec "
        "process keeps ingesting it); run the command again once that is done"
    )


def _parse(name: str, folder: Path, files: dict[str, bytes]) -> Dataset:
    """A Dataset from the bytes of its files (one version), each checked before use."""
    try:
        meta = json.loads(files["meta.json"])
    except ValueError as exc:
        raise integrity.damaged(name, f"meta.json: {_short(exc)}") from exc
    integrity.check_meta(meta, name)
    if meta["format_version"] != FORMAT_VERSION:
        raise AerecError(
            f"dataset {name} has format version {meta['format_version']}, this aerec "
            f"reads {FORMAT_VERSION}; ingest it again with --force"
        )
    for filename in integrity.DATA_FILES:
        integrity.check_digest(meta, filename, files[filename], name)
    matrices = []
    for filename in ("train.npz", "test.npz"):
        try:
            # np.load refuses pickled objects (allow_pickle=False), so nothing is unpickled.
            matrix = sp.load_npz(io.BytesIO(files[filename]))
        except Exception as exc:  # noqa: BLE001  (zip, npy or scipy errors: all damage)
            raise integrity.damaged(name, f"{filename}: {_short(exc)}") from exc
        integrity.check_matrix(matrix, filename, meta, name)
        matrices.append(matrix)
    users = integrity.id_rows(files["users.csv"], "users.csv", meta["users"], name)
    rows = integrity.id_rows(files["items.csv"], "items.csv", meta["items"], name)
    items = pd.DataFrame(rows, columns=integrity.HEADERS["items.csv"], dtype=str)
    user_ids = np.array([row[0] for row in users], dtype=object)
    # Hashed from the bytes just read: a re-ingest during a long training must not change
    # the version the run records.
    meta_hash = integrity.version_digest(files["meta.json"])
    return Dataset(name, folder, matrices[0], matrices[1], user_ids, items, meta, meta_hash)


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
