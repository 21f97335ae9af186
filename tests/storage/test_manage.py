"""Managing the store: `aerec use` pins the default run, `runs --delete` and
`datasets --delete` remove folders under the writer's lock, and what interrupted writes left
is cleaned unless a live process holds its lock.

``scratch`` (conftest.py): dataset ml1m with runs item-run, then user-run (the latest).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from aerec_cli import Home
from tests.helpers import REPO, assert_clean_error, ok, run_cli


def test_use_pins_the_default_run_and_latest_unpins(scratch):
    home = Home(scratch)
    assert home.run().name == "user-run"  # the latest
    result = ok(run_cli(scratch, "use", "item-run"))
    assert "pinned item-run" in result.stderr
    assert home.run().name == "item-run" and home.pinned() == "item-run"
    listed = ok(run_cli(scratch, "runs", "--format", "json")).json()
    assert {r["run"]: r["pinned"] for r in listed} == {"item-run": True, "user-run": False}
    table = ok(run_cli(scratch, "runs")).stdout
    assert "item-run *" in table and "user-run *" not in table
    ok(run_cli(scratch, "use", "--latest"))
    assert home.run().name == "user-run" and home.pinned() is None
    assert not (scratch / "default.json").exists()


def test_use_refuses_an_unknown_run_and_both_or_neither(scratch):
    assert_clean_error(run_cli(scratch, "use", "nope"), "no run named 'nope'")
    assert_clean_error(run_cli(scratch, "use"), "--latest")
    assert_clean_error(run_cli(scratch, "use", "item-run", "--latest"), "--latest")
    assert not (scratch / "default.json").exists()


def test_a_deleted_pinned_run_is_an_error_not_another_run(scratch):
    ok(run_cli(scratch, "use", "item-run"))

    shutil.rmtree(scratch / "runs" / "item-run")  # removed by hand, not by --delete
    assert_clean_error(
        run_cli(scratch, "evaluate"), "pinned run item-run", "no longer exists", "use --latest"
    )
    # An explicit --run still works, and listing warns rather than fails.
    listed = ok(run_cli(scratch, "runs", "--format", "json"))
    assert "pinned run item-run" in listed.stderr
    assert [r["pinned"] for r in listed.json()] == [False]


def test_a_damaged_pinned_run_is_an_error_naming_it(scratch):
    ok(run_cli(scratch, "use", "item-run"))
    (scratch / "runs" / "item-run" / "config.json").write_text("{not json")
    assert_clean_error(
        run_cli(scratch, "evaluate"), "pinned run item-run is damaged", "use --latest", "--run"
    )


def test_deleting_runs_unpins_and_unknown_names_list_what_exists(scratch):
    ok(run_cli(scratch, "use", "item-run"))
    assert_clean_error(
        run_cli(scratch, "runs", "--delete", "item-run,nope"), "nope", "item-run, user-run"
    )
    assert (scratch / "runs" / "item-run").is_dir()  # nothing deleted when one name is wrong
    assert_clean_error(run_cli(scratch, "runs", "--delete", "../ml1m"), "may hold only")
    result = ok(run_cli(scratch, "runs", "--delete", "item-run"))
    assert "unpinned" in result.stderr
    assert not (scratch / "runs" / "item-run").exists()
    assert [p.name for p in (scratch / "runs").iterdir()] == ["user-run"]
    assert Home(scratch).pinned() is None and Home(scratch).run().name == "user-run"


def test_deleting_a_dataset_with_runs_needs_force(scratch):
    assert_clean_error(
        run_cli(scratch, "datasets", "--delete", "ml1m"), "item-run, user-run", "--force"
    )
    assert (scratch / "datasets" / "ml1m").is_dir()
    assert_clean_error(run_cli(scratch, "datasets", "--delete", "nope"), "stored: ml1m")
    result = ok(run_cli(scratch, "datasets", "--delete", "ml1m", "--force"))
    assert "item-run" in result.stderr
    assert not (scratch / "datasets" / "ml1m").exists()
    assert (scratch / "runs" / "item-run").is_dir()  # only the dataset goes
    assert_clean_error(run_cli(scratch, "evaluate"), "dataset ml1m", "not in")


def test_api_deletes_a_dataset_once_its_runs_are_gone(scratch):
    home = Home(scratch)
    assert home.delete_run("item-run", "user-run") is False
    assert home.delete_dataset("ml1m") == []
    assert home.datasets() == [] and home.runs() == []


def _hold_lock(lock_file: Path) -> subprocess.Popen:
    """Another process that holds ``lock_file`` (as a writer does) until its stdin closes."""
    code = (
        "import sys, filelock\n"
        f"lock = filelock.FileLock({str(lock_file)!r}); lock.acquire()\n"
        "print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_lock_held_by_another_process_blocks_delete_and_is_not_cleaned(scratch):
    runs = scratch / "runs"
    staging = runs / ".item-run.abcd1234.tmp"  # what a live trainer is writing
    staging.mkdir()
    holder = _hold_lock(runs / ".item-run.lock")
    try:
        assert_clean_error(run_cli(scratch, "runs", "--delete", "item-run"), "being written")
        ok(run_cli(scratch, "runs"))  # listing cleans only what no one holds
        assert staging.is_dir() and (runs / ".item-run.lock").exists()
        assert (runs / "item-run").is_dir()
    finally:
        holder.stdin.close()
        holder.wait()
    ok(run_cli(scratch, "runs"))  # now the writer is gone: its leftovers are stale
    assert not staging.exists() and not (runs / ".item-run.lock").exists()


def test_stale_temp_folders_and_locks_are_cleaned_when_listing(scratch):
    stale = [
        scratch / "runs" / ".gone.x1y2z3w4.tmp",
        scratch / "runs" / ".user-run.abcdefgh.old",
        scratch / "datasets" / ".ml1m.qwertyui.tmp",
    ]
    for folder in stale:
        folder.mkdir()
    (scratch / "runs" / ".gone.lock").touch()
    ok(run_cli(scratch, "runs"))
    ok(run_cli(scratch, "datasets"))
    assert not any(folder.exists() for folder in stale)
    assert not (scratch / "runs" / ".gone.lock").exists()
    assert sorted(p.name for p in (scratch / "runs").iterdir()) == ["item-run", "user-run"]
    assert [p.name for p in (scratch / "datasets").iterdir()] == ["ml1m"]
