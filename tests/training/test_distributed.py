"""`torchrun --nproc-per-node 2 -m aerec_cli train` trains one run like a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aerec_cli.storage import dataset_store
from tests.helpers import ok, run_cli


def test_two_cpu_processes_train_the_same_run_as_one(tmp_path):
    home = tmp_path / "home"
    dataset_store.ingest("sample", home)
    common = ["--home", str(home), "--device", "cpu", "--threads", "1", "-q"]
    train = ["train", "--kind", "basic", "--epochs", "3", "--hidden", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "aerec_cli",
            "--",
            *common,
            *train,
            "--run",
            "two",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("saved to") == 1  # rank 0 alone reports and writes
    ok(run_cli(home, *train, "--run", "one"))
    runs = sorted(p.name for p in (home / "runs").iterdir() if not p.name.startswith("."))
    assert runs == ["one", "two"]
    config = json.loads((home / "runs" / "two" / "config.json").read_text())
    assert config["processes"] == 2

    reports = {}
    for run in ("one", "two"):
        result = ok(run_cli(home, "evaluate", "--run", run, "--format", "json"))
        reports[run] = json.loads(result.stdout)
    # Each process trains on half of every batch and DDP averages the gradients, so without
    # input corruption the two runs follow the same path.
    assert abs(reports["one"]["rmse"] - reports["two"]["rmse"]) < 1e-4
    ok(run_cli(home, "recommend", "--run", "two", "--user", "3"))
