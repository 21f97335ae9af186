"""The small files a user hands to a command (``recommend --ratings-file``, ``predict
--pairs``) are read within bounds: a device, a pipe or a file of endless lines is refused
with a clear error once the bound is passed, never read without end."""

from __future__ import annotations

import os
import threading

import pytest

from aerec_cli.data import small_files
from aerec_cli.errors import AerecError
from aerec_cli.scoring import predictions
from tests.helpers import assert_clean_error, run_cli

SPEC = [small_files.ITEM, small_files.RATING]


def read(path, **bounds):
    return small_files.read_columns(path, SPEC, label="ratings file", meaning="m", **bounds)


def test_a_pipe_is_read_no_further_than_the_bound(tmp_path):
    # A pipe has no size to check before reading: the bound holds while reading.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as handle:
            handle.write(b"1,5\n" * 1000)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with pytest.raises(AerecError, match="more than .* a small file may hold"):
            read(fifo, max_bytes=100)
    finally:
        writer.join()


def test_a_file_of_endless_lines_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(small_files, "MAX_LINES", 10)
    path = tmp_path / "lines.csv"
    path.write_text("1,5\n" + "\n" * 20)  # blank lines too: each would be an object
    with pytest.raises(AerecError, match="10 lines"):
        read(path)
    path.write_text("1,5\n" * 10)
    assert len(read(path).rows) == 10


def test_dev_zero_is_refused(trained):
    for args in (
        ["recommend", "--ratings-file", "/dev/zero"],
        ["predict", "--pairs", "/dev/zero"],
    ):
        assert_clean_error(run_cli(trained, *args), "/dev/zero", "a small file may hold")


def test_the_pairs_reader_shares_the_bound(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("1,1,4\n" * 100)
    with pytest.raises(AerecError, match="aerec ingest"):
        small_files.read_columns(
            path, predictions.PAIRS_SPEC, label="pairs file", meaning="m", max_bytes=100
        )
