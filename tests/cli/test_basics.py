"""Version, help, the `python -m` entry point, --home / AEREC_HOME and --device cpu."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aerec_cli import __version__
from tests.helpers import REPO, assert_clean_error, ok, run_cli


def run_module(*args, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"AEREC_HOME", "AEREC_DEVICE"}}
    if home is not None:
        env["AEREC_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "aerec_cli", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env,
    )


def test_version(home):
    result = ok(run_cli(home, "--version"))
    assert result.stdout.strip() == f"aerec {__version__}"
    assert not home.exists()  # --version touches nothing


def test_version_without_home():
    assert ok(run_cli(None, "--version", threads=None)).stdout.strip() == f"aerec {__version__}"


def test_python_dash_m_version():
    result = run_module("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aerec {__version__}"


def test_python_dash_m_error_is_one_line(tmp_path):
    result = run_module("-q", "ingest", tmp_path / "missing.zip", home=tmp_path / "home")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
    assert result.stdout == ""


def test_python_dash_m_json_is_clean_utf8(tmp_path, sources):
    result = run_module("ingest", sources.ml1m_zip, "--format", "json", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ratings"] == 400
    assert "reading" in result.stderr  # progress on stderr keeps stdout parseable


def test_help_lists_the_commands(home):
    out = ok(run_cli(home, "--help")).stdout
    for command in ("ingest", "datasets", "users", "train", "runs", "evaluate", "recommend"):
        assert command in out


def test_home_from_the_environment(tmp_path, sources):
    home = tmp_path / "env-home"
    env = {"AEREC_HOME": str(home)}
    ok(run_cli(None, "-q", "ingest", sources.ml1m_zip, "--name", "d", env=env))
    assert (home / "datasets" / "d" / "meta.json").is_file()
    listed = ok(run_cli(None, "datasets", "--format", "json", env=env)).json()
    assert [m["name"] for m in listed] == ["d"]


def test_home_option_beats_the_environment(tmp_path, sources):
    env_home, flag_home = tmp_path / "env-home", tmp_path / "flag-home"
    ok(run_cli(flag_home, "-q", "ingest", sources.ml1m_zip, env={"AEREC_HOME": str(env_home)}))
    assert (flag_home / "datasets" / "ml-1m").is_dir()
    assert not env_home.exists()


def test_device_cpu_end_to_end(ingested_home):
    # threads=None: torch gets its default thread count here.
    cpu = ["--device", "cpu"]
    train = ["train", "--epochs", "2", "--hidden", "4", "--run", "r"]
    ok(run_cli(ingested_home, "-q", *cpu, *train, threads=None))
    config = json.loads((ingested_home / "runs" / "r" / "config.json").read_text())
    assert config["device"] == "cpu"
    assert ok(run_cli(ingested_home, *cpu, "evaluate", "--format", "json")).json()["run"] == "r"
    recs = ok(run_cli(ingested_home, *cpu, "recommend", "--user", "4", "--format", "json")).json()
    assert len(recs["items"]) == 10  # the default --top


def test_quiet_train_prints_no_progress(ingested_home):
    result = ok(run_cli(ingested_home, "-q", "train", "--epochs", "2", "--hidden", "4"))
    assert result.stderr == ""
    assert "saved to" in result.stdout


def test_no_arguments_shows_help_without_an_empty_error():
    result = run_cli(None, threads=None)
    assert "Traceback" not in result.stdout + result.stderr
    assert "ingest" in result.stdout + result.stderr
    for line in result.stderr.splitlines():
        if line.startswith("error:"):
            assert line.split("(see:")[0].strip() != "error:", line


def test_missing_command(home):
    assert_clean_error(run_cli(home), "missing command")


def test_help_keeps_the_bracketed_defaults(home):
    out = re.sub(r"[│\s]+", " ", ok(run_cli(home, "--help")).stdout)
    assert "live ." not in out
    assert "user data dir" in out


# --- global options after the command --------------------------------------------------


def test_global_options_work_after_the_command(ingested_home, tmp_path):
    train = ["train", "--epochs", "2", "--hidden", "4", "--objective", "rating"]
    after = ok(run_cli(None, *train, "--run", "a", "-q", "--seed", "7", "--home", ingested_home))
    assert after.stderr == ""  # -q took effect
    before = ok(run_cli(ingested_home, "-q", "--seed", "7", *train, "--run", "b"))
    runs = {r["run"]: r for r in ok(run_cli(ingested_home, "runs", "--format", "json")).json()}
    assert runs["a"]["val_rmse"] == runs["b"]["val_rmse"]  # the same seed reached training
    assert "run b" in before.stdout
    config = json.loads((ingested_home / "runs" / "a" / "config.json").read_text())
    assert config["train"]["seed"] == 7
    listed = ok(run_cli(None, "runs", "--format=json", "--home", str(ingested_home))).json()
    assert {r["run"] for r in listed} == {"a", "b"}
    # --opt=value and flags mixed with the command's own options.
    ok(run_cli(None, "recommend", "--user", "4", f"--home={ingested_home}", "--run", "a", "-v"))


def test_a_value_of_the_commands_own_option_is_never_taken_for_a_global_one(tmp_path):
    # `--name -q` names the dataset "-q"...: the dataset-name rule refuses it, nothing moves.
    result = run_cli(tmp_path / "home", "ingest", "sample", "--name", "--seed")
    assert_clean_error(result, "dataset name '--seed'")


def test_options_after_a_double_dash_stay_where_they_are(tmp_path):
    result = run_cli(tmp_path / "home", "ingest", "--", "-q")
    assert_clean_error(result, "-q")  # read as the source, which does not exist


def test_a_wrong_global_option_after_the_command_is_named(ingested_home):
    assert_clean_error(run_cli(ingested_home, "train", "--seed", "-1"), "--seed must be")
    assert_clean_error(run_cli(ingested_home, "train", "--threads", "x"), "--threads")


def test_ctrl_c_outside_training_says_interrupted(home, monkeypatch):
    from aerec_cli.storage import dataset_store

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset_store, "ingest", interrupted)
    result = run_cli(home, "ingest", "sample")
    assert result.exit_code == 130
    assert_clean_error(result, "interrupted")


def test_titles_are_printed_as_they_are_not_read_as_markup():
    """Rich would read "[bold]" as a style and ":smile:" as an emoji; a title is data."""
    from aerec_cli.cli import output

    rows = [["Dr. :smile: [bold]Strange[/bold] [red]x"]]
    with output.out.capture() as captured:
        output.out.print(output.table("similar to [REC] (2007)", ["title"], rows))
    text = captured.get()
    assert "similar to [REC] (2007)" in text
    assert "Dr. :smile: [bold]Strange[/bold] [red]x" in text


@pytest.mark.parametrize(
    "args, command",
    [
        (["recommend", "--user", "1"], "recommend"),
        (["-q", "--home", "h", "train", "--epochs", "2"], "train"),
        (["recommend", "--help"], "recommend"),
        (["--help"], None),  # the whole list of commands
        (["-h", "train"], None),
        (["--home", "train", "recommend"], None),  # which one runs is click's to say
        (["recomend"], None),  # click suggests from every command
    ],
)
def test_the_console_script_builds_only_the_command_that_runs(args, command):
    from typer.main import get_command_name

    from aerec_cli.cli import _only, app, command_asked_for

    assert command_asked_for(args) == command
    if command is not None:
        built = _only(command)
        names = [get_command_name(c.callback.__name__) for c in built.registered_commands]
        assert names == [command]
        assert len(app.registered_commands) > 10  # the app itself is left whole


def test_serving_commands_exit_with_their_code_and_whole_output(tmp_path):
    """recommend, predict and similar leave without the interpreter's teardown: their
    output must still arrive whole, piped, and their exit code be kept."""
    script = "import sys; from aerec_cli.cli import main; sys.argv[0] = 'aerec'; main()"
    env = {**os.environ, "AEREC_HOME": str(tmp_path / "empty")}
    missing = subprocess.run(
        [sys.executable, "-c", script, "recommend", "--user", "1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert missing.returncode != 0 and missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr
    helped = subprocess.run(
        [sys.executable, "-c", script, "predict", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert helped.returncode == 0 and "Usage: aerec predict" in helped.stdout
