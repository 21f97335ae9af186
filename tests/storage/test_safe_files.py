"""Safe files: a write killed at any moment (kill -9) leaves the previous version whole and
loadable; a replaced folder is never missing; two ingests of one name never interleave.

The kill tests run the writer in a child process (``sys.executable -c``) and SIGKILL it after
a random short sleep, several times over, then load what is on disk.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, dataset_store, locks, run_store
from tests import fixtures
from tests.helpers import REPO, assert_clean_error, ok, run_cli
from tests.versioned_folders import read_version, write_version

CPU = torch.device("cpu")


def start_child(code: str, *args: str) -> subprocess.Popen:
    """``python -c CODE ARGS``, importing this checkout; waits until it prints ``ready``."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
    )
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise AssertionError(f"child did not start: {line!r} {process.stderr.read()}")
    return process


def kill_after(process: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    if process.poll() is not None:  # it must still be writing when killed
        raise AssertionError(f"child ended early: {process.stderr.read()}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    process.stderr.close()


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.") and p.is_dir())


# --- staged_folder: the swap itself ------------------------------------------------------


def test_replacing_a_folder_swaps_it_atomically(tmp_path):
    final = tmp_path / "thing"
    for version in (1, 2, 3):
        with atomic.staged_folder(final, replace=True) as folder:
            write_version(folder, version)
        assert read_version(final) == version
    assert leftovers(tmp_path, "thing") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_linux_exchanges_the_two_names_in_one_step(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from-a").touch()
    assert atomic.exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["from-a"] and os.listdir(tmp_path / "a") == []


def test_a_failed_build_leaves_the_old_folder(tmp_path):
    final = tmp_path / "thing"
    with atomic.staged_folder(final) as folder:
        write_version(folder, 1)
    with pytest.raises(RuntimeError), atomic.staged_folder(final, replace=True) as folder:
        write_version(folder, 2)
        raise RuntimeError("disk full")
    assert read_version(final) == 1
    assert leftovers(tmp_path, "thing") == []


def test_without_exchange_a_crash_between_the_renames_is_recovered(tmp_path, monkeypatch):
    """Where names cannot be exchanged, the old folder is renamed aside first; a crash before
    the new one is renamed in leaves no folder, and readers put the old one back."""
    final = tmp_path / "thing"
    with atomic.staged_folder(final) as folder:
        write_version(folder, 1)
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    real_replace = os.replace

    def crash_on_the_second_rename(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise KeyboardInterrupt  # as if killed here
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt), atomic.staged_folder(final, replace=True) as folder:
        write_version(folder, 2)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert not final.exists()  # the window: no folder under the final name
    atomic.recover_folders(tmp_path)
    assert read_version(final) == 1
    with atomic.staged_folder(final, replace=True) as folder:  # the fallback works too
        write_version(folder, 3)
    assert read_version(final) == 3


WRITER = """
    import sys
    from pathlib import Path
    from aerec_cli.storage import atomic
    from tests.versioned_folders import read_version, write_version
    final, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "fallback":
        atomic.exchange = lambda a, b: False
    version = read_version(final)
    print("ready", flush=True)
    while True:
        version += 1
        with atomic.staged_folder(final, replace=True) as folder:
            write_version(folder, version, size=1 << 21)
            atomic.fsync_dir(folder)
"""


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_kill_9_while_replacing_a_folder_in_a_loop(tmp_path, mode):
    if mode == "exchange" and not atomic.exchange(tmp_path, tmp_path):
        pytest.skip("this system cannot exchange names")
    final = tmp_path / "thing"
    with atomic.staged_folder(final) as folder:
        write_version(folder, 1)
    rng = random.Random(7)
    seen = set()
    for _ in range(8):
        child = start_child(WRITER, final, mode)
        kill_after(child, rng.uniform(0.0, 0.25))
        if mode == "exchange":
            assert final.is_dir()  # never a moment without it
        atomic.recover_folders(tmp_path)  # what every reader does first
        seen.add(read_version(final))  # whole: both files of one version
    assert len(seen) > 1  # the children did replace it


GAP_WRITER = """
    import os, sys, time
    from pathlib import Path
    from aerec_cli.storage import atomic
    atomic.exchange = lambda a, b: False  # a system without renameat2
    real_replace = os.replace

    def slow_replace(src, dst):
        real_replace(src, dst)
        if Path(dst).parent.name.endswith(".old"):
            print("ready", flush=True)  # the old folder is aside, the new one not yet in
            time.sleep(60)

    atomic.os.replace = slow_replace
    from aerec_cli.storage import dataset_store
    dataset_store.ingest(sys.argv[1], Path(sys.argv[2]), name="d", force=True)
"""


def test_kill_9_between_the_renames_of_a_dataset_replacement(tmp_path, sources):
    home = tmp_path / "home"
    first, _ = dataset_store.ingest(str(sources.ml1m.path), home, name="d")
    child = start_child(GAP_WRITER, sources.ml100k.path, home)
    kill_after(child, 0.05)
    assert not (home / "datasets" / "d").exists()  # killed in the window
    again = dataset_store.load(home, "d")  # recovered by the reader
    assert again.meta == first.meta and again.train.nnz == first.train.nnz
    ok(run_cli(home, "-q", "ingest", sources.ml1m.path, "--name", "d", "--force"))
    assert leftovers(home / "datasets", "d") == []


# --- datasets: dataset_store.ingest --force killed at random moments -----------------------------


INGESTER = """
    import sys
    from pathlib import Path
    from aerec_cli.storage import dataset_store
    home, sources = Path(sys.argv[1]), sys.argv[2:]
    print("ready", flush=True)
    k = 0
    while True:
        dataset_store.ingest(sources[k % len(sources)], home, name="d", force=True)
        k += 1
"""


def test_kill_9_during_dataset_replacement_keeps_a_whole_version(tmp_path, sources):
    home = tmp_path / "home"
    other = fixtures.write_ml1m(tmp_path / "other", seed=5)
    keep = fixtures.synthetic_ratings(n_ratings=300, seed=5)
    fixtures.write_generic(tmp_path / "small" / "ratings.csv", keep)
    versions = {}
    every = (sources.ml1m.path, other.path, tmp_path / "small" / "ratings.csv")
    for source in every:
        dataset, _ = dataset_store.ingest(str(source), tmp_path / "probe", name="p", force=True)
        versions[dataset.meta["source_sha256"]] = (dataset.train.nnz, dataset.test.nnz)
    dataset_store.ingest(str(sources.ml1m.path), home, name="d")
    rng = random.Random(11)
    for _ in range(5):
        child = start_child(INGESTER, home, *every)
        kill_after(child, rng.uniform(0.05, 0.6))
        assert (home / "datasets" / "d").is_dir()
        dataset = dataset_store.load(home, "d")
        # One whole version: its matrices are the ones its meta.json describes.
        assert versions[dataset.meta["source_sha256"]] == (dataset.train.nnz, dataset.test.nnz)
        assert dataset.meta["ratings"] == dataset.train.nnz + dataset.test.nnz
    # The lock died with its holder: the next ingest is not refused.
    ok(run_cli(home, "-q", "ingest", sources.ml1m.path, "--name", "d", "--force"))
    assert leftovers(home / "datasets", "d") == []


# --- runs: run_store.save_run killed at random moments ---------------------------------


SAVER = """
    import sys
    from pathlib import Path
    import torch
    from aerec_cli.storage import run_store
    torch.set_num_threads(1)
    home = Path(sys.argv[1])
    run = run_store.load_run(home, "r")
    model = run.load_model(torch.device("cpu"))
    version = run.metrics["version"]
    config = {k: v for k, v in run.config.items() if k not in ("model", "created", "sha256")}
    print("ready", flush=True)
    while True:
        version += 1
        with torch.no_grad():
            for value in model.state_dict().values():
                value += 1.0
        metrics = {**run.metrics, "version": version}
        run_store.save_run(home, "r", model, config, [], metrics, replace=True)
"""


def test_kill_9_during_checkpoint_replacement_keeps_a_whole_version(tmp_path, ingested_home):
    home = ingested_home
    ok(
        run_cli(
            home,
            "-q",
            "train",
            "--epochs",
            "2",
            "--hidden",
            "64",
            "--objective",
            "rating",
            "--run",
            "r",
        )
    )
    run = run_store.load_run(home, "r")
    run.update_metrics(version=0)
    start = run.load_model(CPU).state_dict()
    rng = random.Random(3)
    versions = set()
    for _ in range(3):
        child = start_child(SAVER, home)
        kill_after(child, rng.uniform(0.05, 0.4))
        assert (home / "runs" / "r").is_dir()
        run = run_store.load_run(home, "r")
        weights = run.load_model(CPU).state_dict()  # checked against its checksum too
        version = run.metrics["version"]
        versions.add(version)
        for key, value in weights.items():  # the weights are those of the metrics' version
            assert torch.allclose(value, start[key] + version), key
    assert max(versions) > 0
    ok(run_cli(home, "evaluate", "--run", "r"))


# --- two ingests of one name -------------------------------------------------------------


LOCK_HOLDER = """
    import sys, time
    from pathlib import Path
    from aerec_cli.storage import locks
    with locks.name_lock(Path(sys.argv[1]), "d", "d is busy"):
        print("ready", flush=True)
        time.sleep(60)
"""


def test_a_held_name_lock_refuses_at_once_and_dies_with_its_holder(tmp_path):
    child = start_child(LOCK_HOLDER, tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(AerecError, match="^d is busy$"):
            with locks.name_lock(tmp_path, "d", "d is busy"):
                pass
        assert time.monotonic() - started < 5  # refused, not queued behind the holder
    finally:
        kill_after(child, 0)
    # kill -9 left the lock file but not the lock; what a killed write left is swept.
    assert (tmp_path / ".d.lock").exists()
    stale = tmp_path / ".d.abcd1234.tmp"
    stale.mkdir()
    with locks.name_lock(tmp_path, "d", "d is busy"):
        assert not stale.exists()
        with pytest.raises(AerecError, match="^d is busy$"):  # a second holder in-process too
            with locks.name_lock(tmp_path, "d", "d is busy"):
                pass
    with locks.name_lock(tmp_path, "d", "d is busy"):  # released on leaving
        pass


SLOW_INGEST = """
    import sys, time
    from pathlib import Path
    from aerec_cli.storage import dataset_store
    real_read = dataset_store._read

    def slow_read(*args, **kwargs):
        print("ready", flush=True)
        time.sleep(60)
        return real_read(*args, **kwargs)

    dataset_store._read = slow_read
    dataset_store.ingest(sys.argv[1], Path(sys.argv[2]), name="d", force=True)
"""


def test_a_second_ingest_of_the_same_name_is_refused(tmp_path, sources):
    home = tmp_path / "home"
    dataset_store.ingest(str(sources.ml1m.path), home, name="d")
    before = (home / "datasets" / "d" / "meta.json").read_bytes()
    child = start_child(SLOW_INGEST, sources.ml100k.path, home)
    try:
        for extra in (["--force"], []):
            result = run_cli(home, "ingest", sources.ml1m_zip, "--name", "d", *extra)
            assert_clean_error(result, "dataset d is being ingested by another aerec process")
        ok(run_cli(home, "-q", "ingest", sources.ml1m_zip, "--name", "other"))  # others go on
        with pytest.raises(AerecError, match="being ingested"):
            dataset_store.ingest(str(sources.ml1m.path), home, name="d", force=True)
    finally:
        kill_after(child, 0)
    assert (home / "datasets" / "d" / "meta.json").read_bytes() == before
    ok(run_cli(home, "-q", "ingest", sources.ml1m_zip, "--name", "d", "--force"))


# --- bad input never damages what is stored ----------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_forced_ingest_leaves_the_stored_dataset(ingested_home, tmp_path):
    before = snapshot(ingested_home / "datasets" / "ml1m")
    bad = tmp_path / "ratings.dat"
    bad.write_text("1::2::3::4\n1::3::oops::5\n")
    assert_clean_error(run_cli(ingested_home, "ingest", bad, "--name", "ml1m", "--force"))
    fake = tmp_path / "ml1m.zip"
    fake.write_text("not a zip")
    assert_clean_error(run_cli(ingested_home, "ingest", fake, "--force"))
    assert snapshot(ingested_home / "datasets" / "ml1m") == before
    assert leftovers(ingested_home / "datasets", "ml1m") == []


def test_leftovers_of_an_interrupted_write_are_swept_under_the_lock(ingested_home, sources):
    datasets = ingested_home / "datasets"
    stale = datasets / ".ml1m.abcd1234.tmp"
    stale.mkdir()
    (stale / "train.npz").write_bytes(b"half written")
    other = datasets / ".ml1m.x.abcd1234.tmp"  # dataset "ml1m.x": not ours to remove
    other.mkdir()
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml1m_zip, "--name", "ml1m", "--force"))
    assert not stale.exists() and other.exists()
    shutil.rmtree(other)
