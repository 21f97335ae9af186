"""A dataset is read as one whole, checked version: never half of an old one and half of a new
one, never a damaged matrix or id map taken at its word.

- a replacement (``ingest --force``) while a dataset is read does not mix the two versions;
- a truncated, bit-flipped or crafted ``.npz`` is one clear error, before any C code indexes
  it;
- ``users.csv``/``items.csv`` with a line lost or bytes that are not UTF-8 are refused by
  every reader, not read as shifted ids.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, dataset_store
from tests.helpers import TINIEST, assert_clean_error, copy_home, ok, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ingested_template) -> Path:
    """Dataset ml1m with run r: read-only (tests copy it)."""
    home = copy_home(ingested_template, tmp_path_factory.mktemp("versions"))
    ok(run_cli(home, "-q", "train", *TINIEST, "--run", "r"))
    return home


@pytest.fixture
def home(trained, tmp_path) -> Path:
    target = copy_home(trained, tmp_path)
    return target


def dataset_file(home: Path, name: str) -> Path:
    return home / "datasets" / "ml1m" / name


def assert_whole(dataset: dataset_store.Dataset) -> None:
    """The matrices, id maps and meta all come from one version."""
    meta = dataset.meta
    assert dataset.train.shape == (meta["users"], meta["items"]) == dataset.test.shape
    assert (dataset.train.nnz, dataset.test.nnz) == (meta["train"], meta["test"])
    assert len(dataset.user_ids) == meta["users"] and len(dataset.items) == meta["items"]


def reingest(home: Path, source: Path, fraction: str) -> None:
    args = ["-q", "ingest", source, "--name", "ml1m", "--force", "--test-fraction", fraction]
    ok(run_cli(home, *args))


# --- one version (item 3) ------------------------------------------------------------------


def test_a_dataset_replaced_between_its_files_is_not_mixed(ingested_home, sources, monkeypatch):
    # The replacement lands after meta.json was read and before the matrices are parsed.
    real = sp.load_npz
    replaced = []

    def load_npz(file):
        if not replaced:
            replaced.append(True)
            reingest(ingested_home, sources.ml1m_zip, "0.5")
        return real(file)

    monkeypatch.setattr(sp, "load_npz", load_npz)
    dataset = dataset_store.load(ingested_home, "ml1m")
    assert replaced
    assert_whole(dataset)
    monkeypatch.setattr(sp, "load_npz", real)
    again = dataset_store.load(ingested_home, "ml1m")
    assert again.meta["split"]["test_fraction"] == 0.5  # the store itself holds the new one
    assert_whole(again)


def test_a_dataset_swapped_while_its_files_are_read_is_read_again_whole(
    ingested_home, sources, monkeypatch
):
    # The folder is swapped once meta.json is open: the other files are gone from the old
    # version (deleted once swapped out), so the reader starts again on the new one.
    real = os.fdopen
    seen = []

    def fdopen(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        if not seen:
            seen.append(True)
            reingest(ingested_home, sources.ml1m_zip, "0.5")
        return handle

    monkeypatch.setattr(os, "fdopen", fdopen)
    dataset = dataset_store.load(ingested_home, "ml1m")
    assert seen
    assert dataset.meta["split"]["test_fraction"] == 0.5
    assert_whole(dataset)


def test_read_files_takes_every_file_from_one_version(tmp_path, monkeypatch):
    folder = tmp_path / "d"
    with atomic.staged_folder(folder) as staging:
        for name in ("a", "b"):
            (staging / name).write_text(f"{name}1")
    real, swapped = os.fdopen, []

    def fdopen(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        if not swapped:
            swapped.append(True)
            with atomic.staged_folder(folder, replace=True) as staging:
                for name in ("a", "b"):
                    (staging / name).write_text(f"{name}2")
        return handle

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(atomic.FolderChanged):
        atomic.read_files(folder, ["a", "b"])
    assert atomic.read_files(folder, ["a", "b"]) == {"a": b"a2", "b": b"b2"}


def test_a_dataset_that_keeps_changing_is_a_clear_error(ingested_home, monkeypatch):
    def always_changed(folder, names, optional=()):
        raise atomic.FolderChanged(str(folder))

    monkeypatch.setattr(atomic, "read_files", always_changed)
    with pytest.raises(AerecError, match="replaced .* while it was read.*run the command again"):
        dataset_store.load(ingested_home, "ml1m")


def test_meta_records_the_digest_of_every_file(ingested_home):
    meta = json.loads(dataset_file(ingested_home, "meta.json").read_text())
    assert set(meta["files"]) == {"train.npz", "test.npz", "users.csv", "items.csv"}


# --- damaged matrices (item 5) -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "bit-flip", "empty", "garbage"])
def test_a_damaged_matrix_is_one_clear_error(home, damage):
    path = dataset_file(home, "train.npz")
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit-flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"PK\x03\x04" + b"\x00" * 64)
    path.write_bytes(bytes(data))
    with pytest.raises(AerecError, match="dataset ml1m is damaged.*ingest it again with --force"):
        dataset_store.load(home, "ml1m")
    assert_clean_error(run_cli(home, "train", *TINIEST, "--data", "ml1m"), "damaged", "--force")
    assert_clean_error(run_cli(home, "evaluate", "--run", "r"), "damaged", "--force")
    assert_clean_error(run_cli(home, "users", "--data", "ml1m"), "damaged", "--force")


def crafted(matrix: sp.csr_matrix, **arrays) -> bytes:
    """An .npz as scipy writes one, with some of its arrays replaced."""
    parts = {
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "format": np.array(b"csr"),
        "shape": np.array(matrix.shape),
        "data": matrix.data,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **(parts | arrays))
    return buffer.getvalue()


def forget_digests(home: Path) -> None:
    """Make ml1m look like a dataset ingested before digests were recorded (or a crafted one
    whose meta agrees): the structure checks alone must catch what follows."""
    path = dataset_file(home, "meta.json")
    meta = json.loads(path.read_text())
    meta.pop("files", None)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change",
    ["index-beyond-the-columns", "negative-index", "indptr-beyond-the-data", "indptr-backwards",
     "nan-stars", "stars-off-the-scale", "another-shape"],
)  # fmt: skip
def test_a_crafted_matrix_is_refused_before_use(home, change):
    forget_digests(home)
    path = dataset_file(home, "train.npz")
    matrix = sp.load_npz(path)
    indices, indptr, data = matrix.indices.copy(), matrix.indptr.copy(), matrix.data.copy()
    if change == "index-beyond-the-columns":
        indices[3] = 10**6
        arrays = {"indices": indices}
    elif change == "negative-index":
        indices[3] = -5
        arrays = {"indices": indices}
    elif change == "indptr-beyond-the-data":
        indptr[-1] += 1000
        arrays = {"indptr": indptr}
    elif change == "indptr-backwards":
        indptr[2], indptr[3] = indptr[3], indptr[2]
        arrays = {"indptr": indptr}
    elif change == "nan-stars":
        data[0] = np.nan
        arrays = {"data": data}
    elif change == "stars-off-the-scale":
        data[0] = 1e30
        arrays = {"data": data}
    else:
        arrays = {"shape": np.array([matrix.shape[0], matrix.shape[1] + 1])}
    path.write_bytes(crafted(matrix, **arrays))
    with pytest.raises(AerecError, match="dataset ml1m is damaged.*train.npz"):
        dataset_store.load(home, "ml1m")


# --- damaged id maps (item 6) --------------------------------------------------------------


def drop_line(path: Path, index: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[index]
    path.write_bytes(b"".join(lines))


# Every command that reads each map.
READERS = {
    "users.csv": [
        ["recommend", "--user", "1", "--run", "r"],
        ["predict", "--user", "1", "--item", "1", "--run", "r"],
        ["outliers", "--by", "user", "--run", "r"],
        ["evaluate", "--run", "r"],
        ["users", "--data", "ml1m"],
    ],
    "items.csv": [
        ["recommend", "--user", "1", "--run", "r"],
        ["recommend", "--rate", "1=5", "--rate", "2=4", "--run", "r"],
        ["similar", "--item", "1", "--run", "r"],
        ["predict", "--user", "1", "--item", "1", "--run", "r"],
        ["outliers", "--run", "r"],
        ["evaluate", "--run", "r"],
    ],
}


@pytest.mark.parametrize("filename", ["users.csv", "items.csv"])
def test_an_id_map_with_a_line_lost_is_refused_everywhere(home, filename):
    drop_line(dataset_file(home, filename), 3)
    for args in READERS[filename]:
        assert_clean_error(run_cli(home, *args), "ml1m", "damaged", "ingest it again with --force")


@pytest.mark.parametrize("filename", ["users.csv", "items.csv"])
def test_an_id_map_that_is_not_utf8_is_refused_everywhere(home, filename):
    path = dataset_file(home, filename)
    path.write_bytes(path.read_bytes().replace(b"1", b"\xff", 1))
    for args in READERS[filename]:
        assert_clean_error(run_cli(home, *args), "ml1m", "damaged", "--force")


def test_without_digests_a_shifted_id_map_is_still_refused(home, sources):
    # A dataset ingested before digests were recorded, and a run trained on it: the count of
    # ids against the matrices' shape is what catches the lost line.
    forget_digests(home)
    ok(run_cli(home, "-q", "train", *TINIEST, "--run", "old"))
    ok(run_cli(home, "recommend", "--user", "1", "--run", "old"))
    drop_line(dataset_file(home, "users.csv"), 5)
    drop_line(dataset_file(home, "items.csv"), 5)
    for args in (["recommend", "--user", "1"], ["similar", "--item", "1"]):
        assert_clean_error(run_cli(home, *args, "--run", "old"), "lists", "ids where the matrices")
