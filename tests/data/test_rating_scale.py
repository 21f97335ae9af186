"""The rating scale at ingest: ``--rating-scale LOW,HIGH``, or the MovieLens release's, or for
a generic file one inferred from its ratings. A rating off the scale, 0 or below (0 stands for
"unrated" in the stored matrices) or absurdly far from the bulk is refused with its line
number, never silently widening the scale. Ids too long to keep are refused the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aerec_cli.data import parsing
from aerec_cli.data import sources as data_sources
from aerec_cli.storage import dataset_store
from tests.helpers import assert_clean_error, ok, run_cli

LINES = ["user,item,rating"] + [
    f"{u},{i},{1 + (u + i) % 5}" for u in range(1, 9) for i in (1, 2, 3)
]


def generic(tmp_path: Path, *inserted: tuple[int, str]) -> Path:
    """A generic CSV (header, 24 ratings of 1-5) with lines inserted at 0-based positions."""
    lines = list(LINES)
    for at, line in inserted:
        lines.insert(at, line)
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(home, path, *extra):
    return run_cli(home, "ingest", path, "--format", "json", *extra)


@pytest.mark.parametrize("value", ["1e30", "100000", "5e3"])
def test_an_absurd_rating_is_refused_by_line(home, tmp_path, value):
    path = generic(tmp_path, (6, f"9,1,{value}"))
    message = assert_clean_error(ingest(home, path), "line(s) 7", "far above", "--rating-scale")
    assert f"first: {float(value):g}" in message
    assert not (home / "datasets" / "r").exists()
    # Not a malformed line: --skip-bad-lines does not let it through.
    assert_clean_error(ingest(home, path, "--skip-bad-lines"), "far above")


@pytest.mark.parametrize("value", ["0", "-3", "-0.5"])
def test_a_rating_of_zero_or_below_is_refused_by_line(home, tmp_path, value):
    path = generic(tmp_path, (3, f"9,1,{value}"), (10, f"9,2,{value}"))
    message = assert_clean_error(ingest(home, path), "2 rating(s) of 0 or below", "--rating-scale")
    assert "line(s) 4, 11" in message and "unrated" in message


def test_the_given_scale_is_kept_and_enforced(home, tmp_path):
    path = generic(tmp_path, (6, "9,1,7"))
    message = assert_clean_error(ingest(home, path, "--rating-scale", "1,5"), "line(s) 7")
    assert "outside --rating-scale 1,5" in message
    summary = ok(ingest(home, path, "--rating-scale", "1,10")).json()
    assert summary["rating_scale"] == [1.0, 10.0]
    meta = json.loads((Path(summary["path"]) / "meta.json").read_text())
    assert meta["rating_scale_from"] == "given"


def test_an_inferred_scale_is_said(home, tmp_path):
    result = ok(run_cli(home, "ingest", generic(tmp_path)))
    assert "rating scale 1-5, inferred from the ratings" in result.stderr
    assert "--rating-scale" in result.stderr
    assert dataset_store.load(home).meta["rating_scale_from"] == "ratings"


def test_a_movielens_layout_takes_the_given_scale(home, sources):
    message = assert_clean_error(
        run_cli(home, "ingest", sources.ml1m_zip, "--rating-scale", "1,4"), "outside"
    )
    assert "--rating-scale 1,4" in message and "line(s)" in message
    summary = ok(run_cli(home, "ingest", sources.ml1m_zip, "--rating-scale", "0.5,10", "--format",
                         "json")).json()  # fmt: skip
    assert summary["rating_scale"] == [0.5, 10.0]
    ok(run_cli(home, "ingest", "sample", "--rating-scale", "1,5"))
    assert_clean_error(run_cli(home, "ingest", "sample", "--name", "s", "--rating-scale", "2,5"))


@pytest.mark.parametrize("text", ["0,5", "-1,5", "5,1", "3,3", "x", "1,2,3", "nan,5", "1,inf", ""])
def test_a_bad_rating_scale_option(home, tmp_path, text):
    assert_clean_error(ingest(home, generic(tmp_path), "--rating-scale", text), "--rating-scale")


def test_line_numbers_count_blank_lines_and_the_header(home, tmp_path, monkeypatch):
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 3)
    monkeypatch.setattr(data_sources, "READ_BLOCK", 17)
    path = generic(tmp_path, (2, ""), (3, "   "), (10, ""), (15, "9,9,0"), (20, "9,8,-1"))
    message = assert_clean_error(ingest(home, path), "of 0 or below")
    assert "line(s) 16, 21" in message


def test_an_id_too_long_to_keep_is_refused_by_line(home, tmp_path):
    path = generic(tmp_path, (5, f"{'u' * 300},1,4"))
    message = assert_clean_error(ingest(home, path), "longer than 256", "line(s) 6")
    assert "first: uuuu" in message
    assert not (home / "datasets" / "r").exists()


def test_an_id_past_the_csv_field_limit_is_refused(home, tmp_path):
    # Longer than Python's csv field limit (131,072), which the scorer reads the id maps with.
    path = generic(tmp_path, (5, f"1,{'7' * 40_000}x,4"))
    assert_clean_error(ingest(home, path), "longer than 256", "line(s) 6")
    path = generic(tmp_path, (5, f"1,{'i' * 200_000},4"))
    assert_clean_error(ingest(home, path), "line 6", "not a ratings file")


def test_an_id_of_the_longest_length_is_kept(home, tmp_path):
    longest = "i" * 256
    ok(ingest(home, generic(tmp_path, (5, f"1,{longest},4"))))
    assert longest in dataset_store.load(home).items["item"].tolist()


def test_a_file_without_line_ends_is_not_held_in_memory(home, tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"1,2,3," + b"9" * (1 << 17))
    assert_clean_error(ingest(home, path), "line 1 is longer", "not a ratings file")
