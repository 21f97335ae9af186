"""Bad sources and bad ingest options: one clean `error:` line, a non-zero exit, no traceback."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from tests import fixtures
from tests.helpers import assert_clean_error, ok, run_cli


def ingest(home, *args):
    return run_cli(home, "ingest", *args)


def edited_ml1m(sources, tmp_path: Path, edit) -> Path:
    """A copy of the ml-1m fixture folder whose ratings.dat lines went through ``edit``."""
    folder = tmp_path / "edited" / "ml-1m"
    shutil.copytree(sources.ml1m.path, folder)
    ratings = folder / "ratings.dat"
    lines = ratings.read_text().splitlines()
    edit(lines)
    ratings.write_text("\n".join(lines) + "\n")
    return folder


def insert_line(line: str, at: int = 5):
    return lambda lines: lines.insert(at, line)


def test_source_that_does_not_exist(home, tmp_path):
    assert_clean_error(ingest(home, tmp_path / "nowhere" / "ml-1m.zip"), "does not exist")
    stored = (home / "datasets").iterdir() if (home / "datasets").exists() else []
    assert not [p for p in stored if not p.name.startswith(".")]  # lock files start with "."


def test_empty_folder(home, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(ingest(home, tmp_path / "empty"), "no ratings found")


def test_folder_without_ratings(home, tmp_path):
    folder = tmp_path / "no-ratings"
    folder.mkdir()
    (folder / "README").write_text("This folder has no ratings in it at all.\n")
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    assert_clean_error(ingest(home, folder), "no ratings found")


def test_folder_with_only_a_readme(home, tmp_path):
    folder = tmp_path / "readme-only"
    folder.mkdir()
    (folder / "README").write_text("This folder has no ratings in it at all.\n")
    assert_clean_error(ingest(home, folder), "no ratings found")


def test_zip_without_ratings(home, tmp_path):
    target = tmp_path / "nothing.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("nothing/README", "no ratings here\n")
        archive.writestr("nothing/movies.dat", "1::Toy Story (1995)::Comedy\n")
    assert_clean_error(ingest(home, target), "no ratings found")


def test_zip_that_is_not_a_zip(home, tmp_path):
    fake = tmp_path / "ml-1m.zip"
    fake.write_text("<html>404 Not Found</html>\n")
    assert_clean_error(ingest(home, fake), "not a zip")


def test_truncated_zip(home, sources, tmp_path):
    data = sources.ml1m_zip.read_bytes()
    truncated = tmp_path / "ml-1m.zip"
    truncated.write_bytes(data[: len(data) // 2])
    assert_clean_error(ingest(home, truncated), "zip")


def _member_data_offset(archive: Path, member: str) -> int:
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    header = archive.read_bytes()[info.header_offset : info.header_offset + 30]
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_zip_with_a_corrupt_member(home, sources, tmp_path, compression):
    archive = fixtures.zip_folder(sources.ml1m.path, tmp_path / "src" / "ml-1m.zip", compression)
    data = bytearray(archive.read_bytes())
    start = _member_data_offset(archive, "ml-1m/ratings.dat") + 16
    for k in range(start, start + 64):
        data[k] ^= 0x5A
    corrupt = tmp_path / "ml-1m.zip"
    corrupt.write_bytes(bytes(data))
    assert_clean_error(ingest(home, corrupt), "corrupt")


def test_empty_ratings_file(home, tmp_path):
    empty = tmp_path / "ratings.csv"
    empty.write_bytes(b"")
    assert_clean_error(ingest(home, empty), "empty")


def test_empty_ratings_file_in_a_movielens_folder(home, sources, tmp_path):
    folder = edited_ml1m(sources, tmp_path, lambda lines: lines.clear())
    (folder / "ratings.dat").write_bytes(b"")
    assert_clean_error(ingest(home, folder), "empty")


def test_header_only_file(home, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("user,item,rating,timestamp\n")
    assert_clean_error(ingest(home, path), "no usable ratings")


@pytest.mark.parametrize(
    "line",
    ["1::2::3::978300760::extra", "1::2", "hello world", "::3::4::978300760", "1::::4::978300760"],
    ids=["extra-field", "missing-fields", "garbage", "no-user", "no-item"],
)
def test_malformed_line(home, sources, tmp_path, line):
    folder = edited_ml1m(sources, tmp_path, insert_line(line))
    message = assert_clean_error(ingest(home, folder), "line", "--skip-bad-lines")
    assert "6" in message  # the line number: the 6th line of ratings.dat
    summary = ok(ingest(home, folder, "--skip-bad-lines", "--format", "json")).json()
    assert summary["ratings"] == 400  # the bad line is skipped, the rest kept


def test_malformed_first_line(home, sources, tmp_path):
    # The C parser takes the first line's width as the norm; an extra field there must still
    # be caught rather than read as a rating.
    folder = edited_ml1m(sources, tmp_path, insert_line("1::2::3::978300760::extra", at=0))
    assert_clean_error(ingest(home, folder), "line", "1")
    summary = ok(ingest(home, folder, "--skip-bad-lines", "--format", "json")).json()
    assert summary["ratings"] == 400


def test_malformed_line_in_generic_csv(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "r.csv", ratings, ",", ["user", "item", "rating"], ("user", "item", "rating")
    )
    lines = path.read_text().splitlines()
    lines.insert(10, "7,8,4,5,6,7")
    path.write_text("\n".join(lines) + "\n")
    assert_clean_error(ingest(home, path), "malformed", "--skip-bad-lines")
    summary = ok(ingest(home, path, "--skip-bad-lines", "--format", "json")).json()
    assert summary["ratings"] == 400


def test_non_numeric_rating(home, sources, tmp_path):
    folder = edited_ml1m(sources, tmp_path, insert_line("1::3::five::978300760"))
    assert_clean_error(ingest(home, folder), "rating", "6")


def test_out_of_scale_rating(home, sources, tmp_path):
    folder = edited_ml1m(sources, tmp_path, insert_line("2::39::7::978300760"))
    message = assert_clean_error(ingest(home, folder), "scale", "7")
    assert "1-5" in message
    # Skipping bad lines does not make an out-of-scale rating acceptable.
    assert_clean_error(ingest(home, folder, "--skip-bad-lines"), "scale")


def test_zero_stars_is_outside_the_ml1m_scale(home, sources, tmp_path):
    folder = edited_ml1m(sources, tmp_path, insert_line("2::39::0::978300760"))
    assert_clean_error(ingest(home, folder), "scale")


def test_csv_missing_the_rating_column(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "r.csv",
        ratings,
        ",",
        ["user", "item", "timestamp"],
        ("user", "item", "timestamp"),
    )
    assert_clean_error(ingest(home, path), "rating", "--columns")


def test_columns_naming_a_missing_column(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "r.csv", ratings, ",", ["user", "item", "rating"])
    assert_clean_error(ingest(home, path, "--columns", "user,item,score"), "score")


def test_columns_with_wrong_count(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "r.csv", ratings, ",")
    assert_clean_error(ingest(home, path, "--columns", "0,1"), "--columns")


def test_columns_position_beyond_the_line(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(tmp_path / "r.csv", ratings, ",")
    assert_clean_error(ingest(home, path, "--columns", "0,1,9"), "field")


def test_columns_on_a_zip(home, sources):
    assert_clean_error(ingest(home, sources.ml1m_zip, "--columns", "0,1,2"), "single ratings file")


def test_temporal_split_without_timestamps(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=3)
    path = fixtures.write_generic(
        tmp_path / "r.csv", ratings, ",", order=("user", "item", "rating")
    )
    assert_clean_error(ingest(home, path, "--split", "temporal"), "timestamps")


def test_unknown_split(home, sources):
    assert_clean_error(ingest(home, sources.ml100k_zip, "--split", "u9"), "u9", "u1")
    assert_clean_error(ingest(home, sources.ml100k_zip, "--split", "sideways"), "sideways")
    # ml-1m ships no predefined splits.
    assert_clean_error(ingest(home, sources.ml1m_zip, "--split", "u1"), "u1", "random")
    assert not (home / "datasets").exists() or not any(
        p for p in (home / "datasets").iterdir() if not p.name.startswith(".")
    )


@pytest.mark.parametrize("fraction", ["1.5", "0", "1", "-0.1"])
def test_test_fraction_out_of_range(home, sources, fraction):
    assert_clean_error(
        ingest(home, sources.ml1m_zip, "--test-fraction", fraction), "--test-fraction"
    )


def test_split_options_are_checked_before_reading(home, tmp_path):
    # A bad --test-fraction or --split is reported before a (possibly huge) source is read.
    missing = tmp_path / "missing.zip"
    assert_clean_error(ingest(home, missing, "--test-fraction", "1.5"), "--test-fraction")
    assert_clean_error(ingest(home, missing, "--split", "u9"), "u9")


def test_test_fraction_not_a_number(home, sources):
    assert_clean_error(ingest(home, sources.ml1m_zip, "--test-fraction", "half"), "--test-fraction")


def test_bad_dataset_name(home, sources):
    assert_clean_error(ingest(home, sources.ml1m_zip, "--name", "../escape"), "name")
    assert_clean_error(ingest(home, sources.ml1m_zip, "--name", "a b"), "name")
    assert not (home.parent / "escape").exists()


def test_unknown_option(home, sources):
    assert_clean_error(ingest(home, sources.ml1m_zip, "--bogus"), "--bogus")


def test_missing_source_argument(home):
    assert_clean_error(run_cli(home, "ingest"), "source")


def test_quiet_error_is_the_only_line(home, tmp_path):
    result = run_cli(home, "-q", "ingest", tmp_path / "missing.zip")
    assert_clean_error(result)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
