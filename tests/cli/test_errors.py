"""Bad options and missing prerequisites for train, evaluate, recommend and the global flags.

Each must end in one `error:` line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers import TINIEST, assert_clean_error, copy_home, ok, run_cli


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, ingested_template):
    """A home with dataset ml1m and one run, r (read-only for these tests)."""
    home = copy_home(ingested_template, tmp_path_factory.mktemp("trained-once"))
    ok(run_cli(home, "-q", "train", *TINIEST, "--run", "r"))
    return home


def no_new_runs(home) -> bool:
    runs = home / "runs"
    return not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


# --- nothing there yet ------------------------------------------------------------------


def test_train_with_nothing_ingested(home):
    assert_clean_error(run_cli(home, "train", *TINIEST), "no dataset", "aerec ingest")


def test_users_with_nothing_ingested(home):
    assert_clean_error(run_cli(home, "users"), "no dataset")


def test_evaluate_with_nothing_trained(ingested_home):
    assert_clean_error(run_cli(ingested_home, "evaluate"), "no trained run", "aerec train")


def test_recommend_with_nothing_trained(ingested_home):
    assert_clean_error(run_cli(ingested_home, "recommend", "--user", "1"), "no trained run")


def test_evaluate_and_recommend_in_an_empty_home(home):
    assert_clean_error(run_cli(home, "evaluate"), "no trained run")
    assert_clean_error(run_cli(home, "recommend", "--user", "1"), "no trained run")


# --- unknown names ----------------------------------------------------------------------


def test_unknown_dataset(ingested_home):
    assert_clean_error(run_cli(ingested_home, "train", *TINIEST, "--data", "nope"), "nope", "ml1m")
    assert_clean_error(run_cli(ingested_home, "users", "--data", "nope"), "nope")
    assert no_new_runs(ingested_home)


def test_unknown_run(trained_once):
    assert_clean_error(run_cli(trained_once, "evaluate", "--run", "nope"), "nope", "aerec runs")
    assert_clean_error(run_cli(trained_once, "recommend", "--user", "1", "--run", "nope"), "nope")


def test_unknown_user(trained_once):
    message = assert_clean_error(
        run_cli(trained_once, "recommend", "--user", "9999"), "9999", "aerec users"
    )
    assert "ml1m" in message


def test_user_id_is_not_an_index(trained_once):
    # Ids are raw ids from the data: 0 is no user even though row 0 exists.
    assert_clean_error(run_cli(trained_once, "recommend", "--user", "0"), "aerec users")


# --- out-of-range options ---------------------------------------------------------------


@pytest.mark.parametrize("top", ["0", "-3"])
def test_top_below_one(trained_once, top):
    assert_clean_error(run_cli(trained_once, "recommend", "--user", "1", "--top", top), "--top")


def test_top_not_a_number(trained_once):
    assert_clean_error(run_cli(trained_once, "recommend", "--user", "1", "--top", "ten"), "--top")


def test_recommend_without_user(trained_once):
    assert_clean_error(run_cli(trained_once, "recommend"), "--user")


def test_recommend_unknown_format(trained_once):
    result = run_cli(trained_once, "recommend", "--user", "1", "--format", "xml")
    assert_clean_error(result, "--format")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "-1"], "--epochs"),
        (["--hidden", "0"], "--hidden"),
        (["--hidden", "abc"], "--hidden"),
        (["--hidden", "-4"], "--hidden"),
        (["--hidden", "4,2"], "one hidden size"),  # denoising, the default kind
        (["--kind", "basic", "--hidden", "30"], "undercomplete"),  # 30 inputs (users) per item
        (["--kind", "nosuch"], "nosuch"),
        (["--orientation", "diagonal"], "diagonal"),
        (["--batch-size", "0"], "--batch-size"),
        (["--patience", "0"], "--patience"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--val-fraction", "0"], "--val-fraction"),
        (["--val-fraction", "0.7"], "--val-fraction"),
        (["--run", "a/b"], "run name"),
        (["--epochs", "many"], "--epochs"),
        # Not finite: refused by name rather than trained and blamed on --lr.
        (["--weight-decay", "nan"], "--weight-decay must be a finite number"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--noise", "gaussian", "--noise-std", "inf"], "--noise-std must be a finite number"),
        (["--corruption", "nan"], "--corruption must be a finite number"),
        # Past what the counters and generators hold.
        (["--batch-size", "99999999999999999999"], "--batch-size"),
        (["--epochs", "99999999999999999999"], "--epochs"),
        (["--kind", "deep", "--hidden", "4,2", "--cd-steps", "100000"], "--cd-steps"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_train_option(ingested_home, args, fragment):
    base = {"--epochs": "2", "--hidden": "4"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [part for pair in base.items() for part in pair]
    assert_clean_error(run_cli(ingested_home, "train", *argv), fragment)
    assert no_new_runs(ingested_home)


def test_kind_error_lists_the_choices(ingested_home):
    assert_clean_error(run_cli(ingested_home, "train", "--kind", "nosuch"), "basic")


def test_existing_run_name(trained_once, tmp_path):
    home = copy_home(trained_once, tmp_path)
    before = (home / "runs" / "r" / "model.safetensors").read_bytes()
    assert_clean_error(run_cli(home, "train", *TINIEST, "--run", "r"), "already exists")
    assert (home / "runs" / "r" / "model.safetensors").read_bytes() == before


# --- devices and global options ---------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_on_a_machine_without_one(ingested_home, trained_once, device):
    assert_clean_error(run_cli(ingested_home, "--device", device, "train", *TINIEST), "cuda", "cpu")
    assert no_new_runs(ingested_home)
    assert_clean_error(run_cli(trained_once, "--device", device, "evaluate"), "cuda")
    assert_clean_error(
        run_cli(trained_once, "--device", device, "recommend", "--user", "1"), "cuda"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_beyond_the_devices(ingested_home):
    assert_clean_error(run_cli(ingested_home, "--device", "cuda:99", "train", *TINIEST), "cuda:99")


def test_unknown_device(ingested_home, trained_once):
    assert_clean_error(run_cli(ingested_home, "--device", "tpu", "train", *TINIEST), "tpu", "cpu")
    assert_clean_error(run_cli(trained_once, "--device", "tpu", "evaluate"), "tpu")


def test_device_from_the_environment(ingested_home):
    result = run_cli(ingested_home, "train", *TINIEST, env={"AEREC_DEVICE": "tpu"})
    assert_clean_error(result, "tpu")


def test_threads_below_one(ingested_home):
    assert_clean_error(run_cli(ingested_home, "--threads", "0", "train", *TINIEST), "--threads")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--seed", "-1"), ("--seed", "99999999999999999999"), ("--threads", "100000")],
)
@pytest.mark.parametrize("command", [["train", *TINIEST], ["ingest", "sample", "--name", "s"]])
def test_global_numbers_out_of_range(ingested_home, option, value, command):
    result = run_cli(ingested_home, option, value, *command, threads=None)
    assert_clean_error(result, f"{option} must be")
    assert no_new_runs(ingested_home)
    assert not (ingested_home / "datasets" / "s").exists()


@pytest.mark.parametrize("k", ["0", "99999999999999999999"])
def test_evaluate_k_out_of_range(trained_once, k):
    assert_clean_error(run_cli(trained_once, "evaluate", "--k", k), "--k must be at")


def test_unknown_option(ingested_home):
    assert_clean_error(run_cli(ingested_home, "train", "--bogus"), "--bogus")
    assert_clean_error(run_cli(ingested_home, "--bogus", "datasets"), "--bogus")


def test_unknown_command(home):
    assert_clean_error(run_cli(home, "frobnicate"), "frobnicate")


def test_unknown_format(home):
    assert_clean_error(run_cli(home, "datasets", "--format", "yaml"), "--format")


def test_a_full_disk_anywhere_is_one_clean_line(ingested_home, monkeypatch):
    import errno

    from aerec_cli.storage import dataset_store

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "somewhere")

    monkeypatch.setattr(dataset_store, "scan_datasets", full)
    result = run_cli(ingested_home, "datasets")
    assert_clean_error(result, "no space left on the disk (somewhere)", "unchanged", "free some")
