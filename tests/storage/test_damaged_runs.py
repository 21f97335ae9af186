"""Damaged, tampered or foreign files in a run or dataset: one clear error, never a traceback,
and never an unpickled object.

Every command that loads a run (evaluate, recommend, similar, embed, outliers) is checked
against each kind of damage. A damaged or foreign ``serving.safetensors`` (derived from the
weights) is rebuilt.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aerec_cli.errors import AerecError
from aerec_cli.scoring import serving_file
from aerec_cli.scoring.scorer import open_run
from aerec_cli.storage import dataset_store, run_store
from tests.helpers import PACKAGE, TINIEST, assert_clean_error, copy_home, ok, run_cli


def commands(home: Path) -> list[list[str]]:
    """Every command that loads run ``r``."""
    return [
        ["evaluate", "--run", "r"],
        ["recommend", "--user", "1", "--run", "r"],
        ["recommend", "--rate", "1=5", "--rate", "2=4", "--rate", "3=4", "--run", "r"],
        ["similar", "--item", "1", "--run", "r"],
        ["embed", "-o", str(home / "codes.csv"), "--run", "r"],
        ["outliers", "--run", "r"],
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ingested_template) -> Path:
    """Dataset ml1m with run r (4 hidden units) and run wide (8): read-only."""
    home = copy_home(ingested_template, tmp_path_factory.mktemp("damaged-runs"))
    ok(run_cli(home, "-q", "train", *TINIEST, "--run", "r"))
    ok(run_cli(home, "-q", "train", "--epochs", "2", "--hidden", "8", "--run", "wide"))
    return home


@pytest.fixture
def home(trained, tmp_path) -> Path:
    target = copy_home(trained, tmp_path)
    return target


class Trap:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def run_file(home: Path, name: str) -> Path:
    return home / "runs" / "r" / name


def drop_checksums(home: Path) -> None:
    """Make run r look like one saved before checksums were recorded."""
    path = run_file(home, "config.json")
    config = json.loads(path.read_text())
    config.pop("sha256")
    path.write_text(json.dumps(config))


def assert_every_command_fails(home: Path, *fragments: str) -> None:
    for args in commands(home):
        assert_clean_error(run_cli(home, *args), *fragments)


# --- the weights -------------------------------------------------------------------------


def test_a_saved_run_records_the_checksum_of_its_tensors(trained):
    run = run_store.load_run(trained, "r")
    assert set(run.config["sha256"]) == {"model.safetensors", "ranker.safetensors"}
    assert run.load_model(torch.device("cpu")).n_inputs > 0


def test_truncated_weights(home):
    path = run_file(home, "model.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_every_command_fails(home, "model.safetensors", "damaged", "train again")


def test_empty_weights(home):
    run_file(home, "model.safetensors").write_bytes(b"")
    assert_every_command_fails(home, "damaged")


def test_missing_weights(home):
    run_file(home, "model.safetensors").unlink()
    assert_every_command_fails(home, "model.safetensors", "cannot be read")


@pytest.mark.parametrize("where", ["header", "tensors"])
def test_tampered_weights(home, where):
    """Bytes flipped in the header are a parse error; flipped in the tensors they would be
    silently wrong weights: the checksum in config.json catches both."""
    path = run_file(home, "model.safetensors")
    data = bytearray(path.read_bytes())
    start = 12 if where == "header" else len(data) - 40
    for k in range(start, start + 8):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_every_command_fails(home, "model.safetensors", "damaged", "checksum")


def test_weights_of_another_size(home):
    shutil.copy(home / "runs" / "wide" / "model.safetensors", run_file(home, "model.safetensors"))
    assert_every_command_fails(home, "damaged")


def test_weights_of_another_size_in_a_run_without_checksums(home):
    """Without a checksum to compare with, the shapes are checked against config.json."""
    shutil.copy(home / "runs" / "wide" / "model.safetensors", run_file(home, "model.safetensors"))
    drop_checksums(home)
    assert_clean_error(run_cli(home, "evaluate", "--run", "r"), "cannot be loaded", "train again")
    run_file(home, serving_file.FILENAME).unlink()  # recommend must now read the weights
    assert_clean_error(run_cli(home, "recommend", "--user", "1", "--run", "r"), "cannot be loaded")


def test_tampered_weights_in_a_run_without_checksums_still_load_cleanly(home):
    """A run saved before checksums: tampered header bytes are still a clean error."""
    drop_checksums(home)
    path = run_file(home, "model.safetensors")
    data = bytearray(path.read_bytes())
    data[0:8] = (10**12).to_bytes(8, "little")  # a header length far beyond the file
    path.write_bytes(bytes(data))
    assert_clean_error(run_cli(home, "evaluate", "--run", "r"), "cannot be loaded")


# --- config.json, metrics.json -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["{not json", "", "[1, 2, 3]", '{"dataset": "ml1m"}', '{"model": {}, "dataset": 3}'],
    ids=["not-json", "empty", "a-list", "no-model", "dataset-not-a-name"],
)
def test_config_that_is_not_a_run_config(home, text):
    run_file(home, "config.json").write_text(text)
    assert_every_command_fails(home, "run r is damaged", "train it again")


def test_config_whose_model_spec_is_wrong(home):
    path = run_file(home, "config.json")
    config = json.loads(path.read_text())
    config["model"] = {"kind": "nosuch"}
    path.write_text(json.dumps(config))
    run_file(home, serving_file.FILENAME).unlink()
    assert_clean_error(run_cli(home, "evaluate", "--run", "r"), "nosuch")
    assert_clean_error(run_cli(home, "recommend", "--user", "1", "--run", "r"), "nosuch")


def test_metrics_that_are_not_json(home):
    run_file(home, "metrics.json").write_text("{")
    assert_every_command_fails(home, "run r is damaged")


def test_a_damaged_run_does_not_hide_the_others(home):
    run_file(home, "config.json").write_text("{not json")
    listed = ok(run_cli(home, "runs", "--format", "json")).json()
    assert [r["run"] for r in listed] == ["wide"]
    ok(run_cli(home, "evaluate", "--run", "wide"))


def test_comparing_runs_skips_a_damaged_checkpoint_with_a_warning(home):
    path = run_file(home, "model.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    result = ok(run_cli(home, "runs", "--compare"))
    assert "warning: skipped run r: model.safetensors of run r is damaged" in result.stderr
    assert "wide" in result.stdout


# --- a run without a rating model (--objective ranking): its ranker is checked -------------


def test_a_damaged_ranker_of_a_ranking_run_is_an_error_for_every_command(home):
    ok(run_cli(home, "-q", "train", "--objective", "ranking", "--rank-epochs", "5", "--run", "rk"))
    path = home / "runs" / "rk" / run_store.RANKER
    data = bytearray(path.read_bytes())
    for k in range(len(data) - 40, len(data) - 32):  # in the tensors: wrong, not unreadable
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    # Every command that loads a run, but outliers (it needs predicted stars; see
    # tests/scoring/test_ranking_only.py).
    for args in commands(home)[:-1]:
        args = [{"r": "rk"}.get(arg, arg) for arg in args]
        assert_clean_error(run_cli(home, *args), "ranker.safetensors of run rk is damaged")
    path.unlink()
    result = run_cli(home, "recommend", "--user", "1", "--run", "rk")
    assert_clean_error(result, "ranker.safetensors of run rk cannot be read")


# --- a different dataset version ---------------------------------------------------------


def test_every_command_refuses_a_run_of_a_re_ingested_dataset(home, sources):
    ok(run_cli(home, "-q", "ingest", sources.ml1m_zip, "--name", "ml1m", "--force"))
    assert_every_command_fails(home, "re-ingested", "aerec train --data ml1m")


def test_every_command_after_its_dataset_was_deleted(home):
    shutil.rmtree(home / "datasets" / "ml1m")
    assert_every_command_fails(home, "dataset", "ml1m")


# --- the serving file (a cache: rebuilt when damaged) ------------------------------------


def recommend_json(home: Path) -> dict:
    return ok(run_cli(home, "recommend", "--user", "3", "--run", "r", "--format", "json")).json()


@pytest.mark.parametrize(
    "damage", ["truncated", "tensor-bytes", "header-bytes", "header-length", "empty"]
)
def test_a_damaged_serving_file_is_rebuilt_and_scores_the_same(home, damage):
    before = recommend_json(home)
    path = run_file(home, serving_file.FILENAME)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    elif damage == "header-length":
        data[:8] = b"\xff" * 8
    else:
        start = 20 if damage == "header-bytes" else len(data) - 64
        for k in range(start, start + 16):
            data[k] ^= 0x55
    path.write_bytes(bytes(data))
    result = run_cli(home, "recommend", "--user", "3", "--run", "r", "--format", "json")
    ok(result)
    assert "preparing run r" in result.stderr  # rebuilt, not trusted
    assert result.json() == before
    assert recommend_json(home) == before  # and the rebuilt file is then used as is
    for args in commands(home):
        ok(run_cli(home, *args))


def test_an_intact_serving_file_is_not_rebuilt(home):
    path = run_file(home, serving_file.FILENAME)
    stamp = path.stat().st_mtime_ns
    result = ok(run_cli(home, "recommend", "--user", "3", "--run", "r"))
    assert "preparing" not in result.stderr
    assert path.stat().st_mtime_ns == stamp


def test_files_whose_digest_matched_are_not_hashed_again(home, monkeypatch):
    """What keeps `recommend` fast: a second open reads neither file in full."""
    recommend_json(home)  # the first open hashes both and notes them
    monkeypatch.setattr(serving_file, "_file_data_sha256", _never)
    monkeypatch.setattr(run_store.Run, "read_checked", _never)
    served = open_run(home, "r")
    assert served.run.name == "r"


@pytest.mark.parametrize("name", [run_store.WEIGHTS, serving_file.FILENAME])
def test_a_file_edited_in_place_is_hashed_again_even_with_its_old_times(home, name):
    """A same-size edit with its modification time set back still changes the inode's
    change time, so the noted digest no longer vouches for it."""
    recommend_json(home)
    path = run_file(home, name)
    times = path.stat()
    data = bytearray(path.read_bytes())
    for k in range(len(data) - 64, len(data) - 48):
        data[k] ^= 0x55
    with open(path, "r+b") as handle:
        handle.write(bytes(data))
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    result = run_cli(home, "recommend", "--user", "3", "--run", "r")
    if name == run_store.WEIGHTS:
        assert_clean_error(result, "damaged")
    else:
        assert "preparing run r" in ok(result).stderr  # rebuilt, not trusted


def _never(*args, **kwargs):
    raise AssertionError("read in full although unchanged since its digest matched")


# --- nothing is ever unpickled -----------------------------------------------------------


def test_weights_replaced_by_a_torch_pickle_are_refused_unread(home, tmp_path):
    sentinel = tmp_path / "unpickled"
    torch.save({"encoder.0.weight": Trap(sentinel)}, run_file(home, "model.safetensors"))
    run_file(home, serving_file.FILENAME).unlink()
    assert_every_command_fails(home, "damaged")
    drop_checksums(home)  # and without a checksum, safetensors refuses the pickle itself
    assert_every_command_fails(home, "cannot be loaded")
    assert not sentinel.exists()


def test_a_serving_file_replaced_by_a_pickle_is_rebuilt_unread(home, tmp_path):
    sentinel = tmp_path / "unpickled"
    before = recommend_json(home)
    run_file(home, serving_file.FILENAME).write_bytes(pickle.dumps(Trap(sentinel)))
    assert recommend_json(home) == before
    assert not sentinel.exists()


@pytest.mark.parametrize("member", ["data", "format"])
def test_a_dataset_matrix_holding_pickled_objects_is_refused_unread(home, tmp_path, member):
    sentinel = tmp_path / "unpickled"
    path = home / "datasets" / "ml1m" / "train.npz"
    matrix = sp.load_npz(path)
    arrays = {
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "format": np.array(b"csr"),
        "shape": np.array(matrix.shape),
    }
    arrays[member] = np.array([Trap(sentinel)] * 2, dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(AerecError, match="damaged.*ingest it again with --force"):
        dataset_store.load(home, "ml1m")
    assert_clean_error(run_cli(home, "train", *TINIEST, "--data", "ml1m"), "damaged", "--force")
    assert_clean_error(run_cli(home, "evaluate", "--run", "r"), "damaged")
    assert not sentinel.exists()


def test_a_pickle_given_to_ingest_is_not_unpickled(home, tmp_path):
    sentinel = tmp_path / "unpickled"
    path = tmp_path / "ratings.pkl"
    path.write_bytes(pickle.dumps([("1", "2", 4.0), Trap(sentinel)], protocol=4))
    assert_clean_error(run_cli(home, "ingest", path, "--name", "pkl"))
    assert not sentinel.exists()
    assert not (home / "datasets" / "pkl").exists()


UNPICKLERS = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|dill|cloudpickle|joblib|shelve|marshal)\b"
    r"|torch\.load\(|torch\.jit\.load\(|allow_pickle\s*=\s*True|read_pickle\(|np\.load\(|"
    r"numpy\.load\(|weights_only\s*=\s*False",
    re.MULTILINE,
)


def test_the_package_has_no_unpickling_call():
    """np.load/torch.load/pickle could unpickle; aerec reads safetensors, JSON, CSV and
    scipy's load_npz (which passes allow_pickle=False)."""
    found = [
        f"{path.name}: {match.group(0).strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for match in UNPICKLERS.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_another_runs_serving_file_is_rebuilt_not_served(home):
    """The serving file records the digest of the weights it came from: run wide's file
    copied into run r is detected, and r serves its own list."""
    own = ok(run_cli(home, "recommend", "--user", "1", "--run", "r", "--format", "json")).json()
    shutil.copy(
        home / "runs" / "wide" / serving_file.FILENAME, run_file(home, serving_file.FILENAME)
    )
    again = run_cli(home, "recommend", "--user", "1", "--run", "r", "--format", "json")
    assert ok(again).json() == own
    assert "preparing run r" in again.stderr
