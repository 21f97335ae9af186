"""Files written with ``-o`` are the user's: they get the permissions the user's umask gives
(not the private 0600 of aerec's own temp files), and a folder that does not exist is an
error rather than created."""

from __future__ import annotations

import os
import stat

import pytest

from tests.helpers import assert_clean_error, ok, run_cli


@pytest.fixture
def umask():
    """Set the process umask for one test, then put it back."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".png"])
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_exports_follow_the_umask(trained, tmp_path, umask, suffix, mask):
    umask(mask)
    target = tmp_path / f"out{suffix}"
    if suffix == ".png":
        pytest.importorskip("matplotlib")  # an optional extra (aerec[plot])
        ok(run_cli(trained, "plot", "-o", target))
    else:
        ok(run_cli(trained, "embed", "-o", target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


@pytest.mark.parametrize(
    "args",
    [["plot"], ["embed"], ["recommend", "--user", "1"], ["recommend", "--all-users"]],
    ids=["plot", "embed", "recommend", "all-users"],
)
def test_an_export_into_a_missing_folder_is_refused(trained, tmp_path, args):
    suffix = ".png" if args == ["plot"] else ".csv"
    target = tmp_path / "missing" / f"x{suffix}"
    assert_clean_error(run_cli(trained, *args, "-o", target), "does not exist")
    assert not target.parent.exists()
