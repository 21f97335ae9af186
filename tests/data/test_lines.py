"""Lines are checked before pandas sees them (data/lines.py), so what counts as a malformed
line, and its number, does not depend on the pandas version: pandas is only ever handed lines
with the file's number of fields."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from aerec_cli.data import lines, parsing, readers
from aerec_cli.data import sources as data_sources
from aerec_cli.errors import AerecError
from tests.helpers import assert_clean_error, ok, run_cli


def check(data: bytes, block: int, **options) -> tuple[bytes, lines.LineCheck]:
    checker = lines.LineCheck("f", **options)
    out = b""
    for start in range(0, len(data), block):
        out += checker.feed(data[start : start + block])
    return out + checker.feed(b"", final=True), checker


@pytest.mark.parametrize("block", [1, 3, 7, 1000])
def test_blank_and_malformed_lines_are_dropped_and_numbered(block):
    data = b"1\t2\t3\t4\n\n  \r\n1\t2\n5\t6\t7\t8\r\n1\t2\t3\t4\t5\n\t\t\t\n9\t9\t9\t9"
    out, checker = check(data, block, sep="\t", width=4, header=False)
    assert out == b"1\t2\t3\t4\n5\t6\t7\t8\r\n\t\t\t\n9\t9\t9\t9"
    assert (checker.malformed, checker.first_malformed) == (2, [4, 6])
    assert checker.line_numbers(np.arange(4)).tolist() == [1, 5, 7, 8]


def test_a_generic_width_is_the_usual_one_and_the_header_is_free():
    data = b'user,item,rating\nbad\n1,2,3,4\n1,2,3,4\n1,2,3\n"a,b",2,3\n1,2,3,4\n'
    out, checker = check(data, 1000, sep=",", width=None, header=True)
    assert checker.width == 4
    assert (checker.malformed, checker.first_malformed) == (2, [2, 5])
    assert out.splitlines()[0] == b"user,item,rating"
    assert b'"a,b",2,3' in out  # quoted: its fields are pandas' to tell


def test_released_numbers_are_forgotten():
    _, checker = check(b"".join(b"%d,1,1\n" % i for i in range(10)), 8, sep=",", width=3,
                       header=False)  # fmt: skip
    checker.release(6)
    assert checker.line_numbers(np.array([6, 9, 5])).tolist()[:2] == [7, 10]


@pytest.mark.parametrize(
    "line",
    ["1::2::3::978300760::extra", "1::2::3", "1::2", "1::2::3::4::5::6"],
    ids=["five-fields", "three-fields", "two-fields", "six-fields"],
)
def test_pandas_never_sees_a_malformed_ratings_dat_line(tmp_path, monkeypatch, line):
    # Whatever a pandas version would make of such a line (drop a field, pad one, fail), it
    # is never handed one: every line it reads has the layout's four fields.
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    good = [f"{u}::{i}::{1 + (u * i) % 5}::97830{u}{i}" for u in range(1, 6) for i in range(1, 6)]
    (folder / "ratings.dat").write_text("\n".join(good[:7] + [line] + good[7:]) + "\n")
    real, seen = pd.read_csv, []

    def read_csv(stream, **options):
        data = stream.read()
        seen.append(data)
        return real(io.BytesIO(data), **options)

    monkeypatch.setattr(parsing.pd, "read_csv", read_csv)
    with pytest.raises(AerecError, match=r"1 malformed line\(s\).*line\(s\) 8"):
        readers.read_source(folder)
    assert all(row.count(b"\t") == 3 for data in seen for row in data.splitlines())
    table = readers.read_source(folder, skip_bad_lines=True)
    assert len(table.ratings) == len(good)


def test_malformed_lines_are_numbered_by_their_line_in_the_file(home, sources, tmp_path,
                                                                monkeypatch):  # fmt: skip
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 5)
    monkeypatch.setattr(data_sources, "READ_BLOCK", 64)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = (sources.ml1m.path / "ratings.dat").read_text().splitlines()
    rows[3:3] = ["", "", "1::2"]  # blank lines 4, 5; malformed 6
    rows[20:20] = ["1::3::five::978300760"]  # line 21: found by pandas, numbered by the file
    rows[50:50] = ["", "1::2::3::4::5"]  # line 52
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    message = assert_clean_error(run_cli(home, "ingest", folder), "3 malformed")
    assert "6, 21, 52" in message
    summary = ok(run_cli(home, "ingest", folder, "--skip-bad-lines", "--format", "json")).json()
    assert summary["ratings"] == 400
