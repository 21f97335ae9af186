"""Ingest at scale: the ML-25M-shaped generator, numeric vs text ids, and chunked parsing.

The 25M-rating file itself is a benchmark (benchmarks/make_ml25m.py, then `aerec ingest`);
here the generator runs at a tiny --scale, and the chunk size is set small so that a few
hundred lines cross many chunk boundaries.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aerec_cli.data import parsing, readers
from aerec_cli.data import sources as data_sources  # `sources` is the fixture
from aerec_cli.data import table as ratings_table
from tests import fixtures
from tests.helpers import REPO, assert_clean_error, ok, run_cli, stored_items, stored_ratings

SCALE = "0.0005"  # 81 users, about 1,300 movies, 12,500 ratings


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_ml25m", REPO / "benchmarks" / "make_ml25m.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_ml25m", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    assert _generator().main(["--out", str(out), "--scale", SCALE, "--seed", "3", "--quiet"]) == 0
    return out / "ml-25m-synthetic"


def ingest_json(home, source, *extra):
    return ok(run_cli(home, "-q", "ingest", source, "--format", "json", *extra)).json()


def stored(path) -> dict:
    """Everything a dataset folder stores, for exact comparison (meta minus its times)."""
    folder = Path(path)
    meta = json.loads((folder / "meta.json").read_text())
    # "files": the digests of the files compared below (ids may differ by design).
    for key in ("created", "created_ns", "name", "source", "source_sha256", "files"):
        meta.pop(key)
    return {
        "train": sp.load_npz(folder / "train.npz"),
        "test": sp.load_npz(folder / "test.npz"),
        "users": (folder / "users.csv").read_text(),
        "items": (folder / "items.csv").read_text(),
        "meta": meta,
    }


def assert_same_store(a: dict, b: dict, ids: bool = True) -> None:
    for part in ("train", "test"):
        x, y = a[part], b[part]
        assert x.shape == y.shape and x.dtype == y.dtype == np.float32
        assert np.array_equal(x.indptr, y.indptr)
        assert np.array_equal(x.indices, y.indices)
        assert np.array_equal(x.data, y.data)
    assert a["meta"] == b["meta"]
    if ids:
        assert a["users"] == b["users"] and a["items"] == b["items"]


# --- the generator -------------------------------------------------------------------------


def test_generator_shape(generated):
    ratings_csv = generated / "ratings.csv"
    assert ratings_csv.read_text().splitlines()[0] == "userId,movieId,rating,timestamp"
    frame = pd.read_csv(ratings_csv)
    n_users, n_items, n_ratings, max_id = _generator().shape_for(float(SCALE))
    assert len(frame) == n_ratings
    assert frame["userId"].nunique() == n_users
    assert frame["movieId"].nunique() == n_items
    per_user = frame.groupby("userId").size()
    assert per_user.min() >= 20
    assert per_user.max() > 4 * per_user.median()  # a long tail of heavy users
    per_item = frame.groupby("movieId").size()
    assert per_item.max() > 20 * per_item.median()  # a few very popular movies
    assert not frame.duplicated(["userId", "movieId"]).any()
    stars = frame["rating"].to_numpy()
    assert stars.min() >= 0.5 and stars.max() <= 5.0
    assert np.all(stars * 2 == np.round(stars * 2))
    assert (stars % 1 != 0).any()  # some half stars
    assert len(np.unique(stars)) == 10
    ids = np.sort(frame["movieId"].unique())
    assert ids[-1] > len(ids) and ids[-1] <= max_id  # sparse ids, like the real ones
    # Each user's rows are in strictly increasing time, within 1995-2019.
    stamps = frame["timestamp"].to_numpy()
    same_user = frame["userId"].to_numpy()[1:] == frame["userId"].to_numpy()[:-1]
    assert np.all(np.diff(stamps)[same_user] > 0)
    assert stamps.min() >= 789_652_009 and stamps.max() <= 1_574_327_703

    movies = pd.read_csv(generated / "movies.csv", dtype=str, keep_default_na=False)
    assert list(movies.columns) == ["movieId", "title", "genres"]
    assert sorted(movies["movieId"].astype(int)) == ids.tolist()
    assert movies["title"].str.contains(",").any()  # quoted in the file
    assert '"' in (generated / "movies.csv").read_text()


def test_generator_is_deterministic(generated, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    gen = _generator()
    gen.main(["--out", str(again), "--scale", SCALE, "--seed", "3", "--quiet"])
    gen.main(["--out", str(other), "--scale", SCALE, "--seed", "4", "--quiet"])
    for name in ("ratings.csv", "movies.csv"):
        same = (again / "ml-25m-synthetic" / name).read_bytes()
        assert same == (generated / name).read_bytes()
    other_ratings = (other / "ml-25m-synthetic" / "ratings.csv").read_bytes()
    assert other_ratings != (generated / "ratings.csv").read_bytes()


def test_generator_ratings_have_structure(generated):
    # Users and movies differ in taste: their means spread far more than chance would allow.
    frame = pd.read_csv(generated / "ratings.csv")
    user_means = frame.groupby("userId")["rating"].mean()
    assert user_means.std() > 0.3
    assert 3.0 < frame["rating"].mean() < 4.0


def test_ingest_generated_dataset(home, generated):
    summary = ingest_json(home, generated)
    frame = pd.read_csv(generated / "ratings.csv")
    assert summary["name"] == "ml-25m-synthetic"
    assert summary["format"] == "ml-25m"
    assert summary["rating_scale"] == [0.5, 5.0]
    assert summary["users"] == frame["userId"].nunique()
    assert summary["items"] == frame["movieId"].nunique()
    assert summary["ratings"] == len(frame)
    assert summary["test"] == round(0.1 * len(frame))
    train, test = stored_ratings(summary["path"])
    both = pd.concat([train, test]).sort_values(["user", "item"]).reset_index(drop=True)
    expected = pd.DataFrame(
        {
            "user": frame["userId"].astype(str),
            "item": frame["movieId"].astype(str),
            "rating": frame["rating"].astype(float),
        }
    )
    expected = expected.sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, expected, check_dtype=False)
    users = pd.read_csv(Path(summary["path"]) / "users.csv", dtype=str)["user"]
    assert users.astype(int).is_monotonic_increasing  # numeric ids sort numerically
    items = stored_items(summary["path"])
    assert items["item"].astype(int).is_monotonic_increasing
    assert (items["title"] != "").all()


def test_ingest_builds_no_dense_matrix(home, generated, monkeypatch):
    # users x items dense would be 162,541 x 59,047 floats (38 GB) at full scale.
    def refuse(*args, **kwargs):
        raise AssertionError("ingest densified a sparse matrix")

    for method in ("toarray", "todense", "A"):
        if hasattr(sp.csr_matrix, method):
            monkeypatch.setattr(sp.csr_matrix, method, refuse, raising=False)
            monkeypatch.setattr(sp.coo_matrix, method, refuse, raising=False)
    summary = ingest_json(home, generated, "--split", "temporal")
    assert summary["ratings"] > 0


def test_ingest_generated_zip_and_temporal_split(home, generated, tmp_path):
    archive = fixtures.zip_folder(generated, tmp_path / "ml-25m-synthetic.zip")
    folder = ingest_json(home, generated, "--name", "folder")
    zipped = ingest_json(home, archive, "--name", "zipped")
    assert_same_store(stored(folder["path"]), stored(zipped["path"]))
    temporal = ingest_json(home, archive, "--name", "t", "--split", "temporal")
    frame = pd.read_csv(generated / "ratings.csv")
    counts = frame.groupby("userId").size()
    assert temporal["test"] == int(np.minimum(np.floor(counts * 0.1 + 0.5), counts - 1).sum())


# --- numeric and text ids ------------------------------------------------------------------


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_numeric_and_text_ids_store_the_same_matrices(home, tmp_path):
    ratings = fixtures.synthetic_ratings(seed=5)
    numeric = ratings.assign(user=ratings["user"].astype(int), item=ratings["item"].astype(int))
    # Text ids in the same order as the numbers: u001 < u002 < ... < u030.
    text = ratings.assign(
        user="u" + ratings["user"].str.zfill(3), item="m" + ratings["item"].str.zfill(3)
    )
    a = ingest_json(home, _write(tmp_path / "numeric.csv", numeric))
    b = ingest_json(home, _write(tmp_path / "text.csv", text))
    assert_same_store(stored(a["path"]), stored(b["path"]), ids=False)
    users = pd.read_csv(Path(b["path"]) / "users.csv", dtype=str)["user"]
    assert users.tolist() == [f"u{k:03d}" for k in range(1, 31)]
    # The temporal split too.
    a = ingest_json(home, tmp_path / "numeric.csv", "--name", "ta", "--split", "temporal")
    b = ingest_json(home, tmp_path / "text.csv", "--name", "tb", "--split", "temporal")
    assert_same_store(stored(a["path"]), stored(b["path"]), ids=False)


def test_text_path_and_numeric_path_agree(home, tmp_path, monkeypatch):
    # The same file through the numeric parse and through the all-text parse (forced).
    path = _write(tmp_path / "r.csv", fixtures.synthetic_ratings(seed=6))
    fast = stored(ingest_json(home, path, "--name", "fast")["path"])
    original = parsing._parse_pass

    def text_only(*args):
        return original(*args[:-1], None)

    monkeypatch.setattr(parsing, "_parse_pass", text_only)
    slow = stored(ingest_json(home, path, "--name", "slow")["path"])
    assert_same_store(fast, slow)


@pytest.mark.parametrize(
    ("odd_id", "kept"),
    [("007", "007"), ("+7", "+7"), ("7.0", "7.0"), ("u7", "u7"), (" 7 ", "7")],
    ids=["leading-zero", "plus", "float", "text", "spaces"],
)
@pytest.mark.parametrize("block", [7, 1 << 22])
def test_ids_keep_their_exact_text(home, tmp_path, monkeypatch, odd_id, kept, block):
    # One odd id deep in the file (past several chunks): ids are never rewritten by a number
    # parse ('007' stays '007'), and the plain ones are unaffected.
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 50)
    monkeypatch.setattr(data_sources, "READ_BLOCK", block)
    ratings = fixtures.synthetic_ratings(seed=8)
    lines = ["user,item,rating,timestamp"]
    lines += [f"{r.user},{r.item},{r.rating:g},{r.timestamp}" for r in ratings.itertuples()]
    lines.append(f"{odd_id},41,4,1000")  # item 41 is new: no duplicate pair
    (tmp_path / "odd.csv").write_text("\n".join(lines) + "\n")
    summary = ingest_json(home, tmp_path / "odd.csv")
    assert summary["ratings"] == 401
    train, test = stored_ratings(summary["path"])
    both = pd.concat([train, test])
    assert kept in set(both["user"])
    if kept != "7":
        assert both["user"].value_counts()[kept] == 1
    users = pd.read_csv(Path(summary["path"]) / "users.csv", dtype=str, keep_default_na=False)
    assert {str(k) for k in range(1, 31)} <= set(users["user"])


# --- chunked reading -----------------------------------------------------------------------


def _all_layouts(sources, tmp_path) -> list[tuple[str, list[str]]]:
    generic = fixtures.write_generic(
        tmp_path / "generic.csv",
        fixtures.synthetic_ratings(seed=9),
        ",",
        ["user", "item", "rating", "timestamp"],
    )
    return [
        (str(sources.ml1m_zip), []),
        (str(sources.ml10m.path), []),
        (str(sources.ml25m_zip), []),
        (str(sources.latest_small.path / "ratings.csv"), []),
        (str(sources.ml100k_zip), []),
        (str(sources.ml100k_zip), ["--split", "u1"]),
        (str(sources.ml1m_zip), ["--split", "temporal"]),
        (str(generic), []),
    ]


def test_small_chunks_store_the_same_as_one_chunk(home, sources, tmp_path, monkeypatch):
    layouts = _all_layouts(sources, tmp_path)
    whole = [stored(ingest_json(home, s, "--name", f"a{k}", *x)["path"]) for k, (s, x) in
             enumerate(layouts)]  # fmt: skip
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 7)
    monkeypatch.setattr(data_sources, "READ_BLOCK", 61)  # '::' often split between two reads
    chunked = [stored(ingest_json(home, s, "--name", f"b{k}", *x)["path"]) for k, (s, x) in
               enumerate(layouts)]  # fmt: skip
    for a, b in zip(whole, chunked, strict=True):
        assert_same_store(a, b)


def test_malformed_lines_are_numbered_across_chunks(home, sources, tmp_path, monkeypatch):
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 4)
    monkeypatch.setattr(data_sources, "READ_BLOCK", 50)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    lines = (sources.ml1m.path / "ratings.dat").read_text().splitlines()
    lines.insert(9, "1::3::five::978300760")  # line 10: chunk 3
    lines.insert(99, "::3::4::978300760")  # line 100: chunk 25
    lines.insert(299, "1::::4::978300760")  # line 300
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    message = assert_clean_error(run_cli(home, "ingest", folder), "3 malformed", "--skip")
    assert "10, 100, 300" in message
    summary = ingest_json(home, folder, "--skip-bad-lines")
    assert summary["ratings"] == 400
    # A line with too many fields is malformed like the others, whatever pandas makes of it.
    lines.insert(200, "1::2::3::978300760::extra")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    message = assert_clean_error(run_cli(home, "ingest", folder, "--name", "x"), "4 malformed")
    assert "10, 100, 201, 301" in message
    assert ingest_json(home, folder, "--name", "y", "--skip-bad-lines")["ratings"] == 400


def test_duplicates_across_chunks_keep_the_latest(home, tmp_path, monkeypatch):
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 3)
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{i},3.0,{1000 + u * 10 + i}" for u in range(1, 6) for i in range(1, 5)]
    lines += ["2,3,5.0,9999", "4,1,0.5,1", "2,3,1.0,9999"]  # the last line wins a tie
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    result = ok(run_cli(home, "ingest", folder, "--format", "json"))
    assert "3 duplicate" in result.stderr
    summary = result.json()
    assert summary["ratings"] == 20
    train, test = stored_ratings(summary["path"])
    both = pd.concat([train, test]).set_index(["user", "item"])["rating"]
    assert both[("2", "3")] == 1.0  # latest timestamp, then the last line
    assert both[("4", "1")] == 3.0  # the older 0.5 lost


def test_colon_stream_matches_a_whole_replace(tmp_path, monkeypatch):
    data = b"1::2::3::4\n5:::6::7::8\n::::\n9::10::1::2::\n:\n::\n"
    (tmp_path / "r.dat").write_bytes(data)
    files = data_sources.SourceFiles(tmp_path / "r.dat")
    for block in (1, 2, 3, 5, 64):
        monkeypatch.setattr(data_sources, "READ_BLOCK", block)
        with files.open("r.dat") as handle:
            stream, got = data_sources.MemberStream(handle, files, "r.dat", colons=True), b""
            while piece := stream.read(7):
                got += piece
        assert got == data.replace(b"::", b"\t"), block


def test_colon_stream_read_all(tmp_path, monkeypatch):
    data = b"1::2\n" + b":" * 9 + b"\n3::4"
    (tmp_path / "r.dat").write_bytes(data)
    files = data_sources.SourceFiles(tmp_path / "r.dat")
    monkeypatch.setattr(data_sources, "READ_BLOCK", 2)
    with files.open("r.dat") as handle:
        stream = data_sources.MemberStream(handle, files, "r.dat", colons=True)
        assert stream.read() == data.replace(b"::", b"\t")


def test_zip_member_size_guards(home, sources, monkeypatch):
    # A member declaring more than any MovieLens file is refused before reading; one that
    # holds more than it declares (a lying zip) is stopped while streaming.
    monkeypatch.setattr(data_sources, "MAX_MEMBER_BYTES", 1000)
    assert_clean_error(run_cli(home, "ingest", sources.ml1m_zip), "declares", "refusing")
    monkeypatch.setattr(data_sources, "MAX_MEMBER_BYTES", 4 * 1024**3)
    monkeypatch.setattr(data_sources.SourceFiles, "limit", property(lambda self: 100))
    assert_clean_error(run_cli(home, "ingest", sources.ml1m_zip), "larger than it declares")


def test_pair_key_tells_pairs_apart():
    users = pd.Series([1, 1, 2, -5, 2**40], dtype=np.int64)
    items = pd.Series([1, 2, 1, 1, 3], dtype=np.int64)
    key = ratings_table.pair_key(users, items)
    assert len(set(key.tolist())) == 5
    text = ratings_table.pair_key(users.astype(str), items.astype(str))
    assert len(set(text.tolist())) == 5
    huge = pd.Series([-(2**62), 2**62], dtype=np.int64)
    assert len(set(ratings_table.pair_key(huge, huge).tolist())) == 2


@pytest.mark.parametrize("block", [13, 1 << 22])
def test_numeric_ids_stay_numbers(tmp_path, monkeypatch, block):
    # The fast path keeps ids as int64 from the parser to the store, also when reads cut
    # lines anywhere (ratings 0.5 and timestamps with zeros must not look like '007'), and
    # when a malformed line is skipped.
    monkeypatch.setattr(data_sources, "READ_BLOCK", block)
    monkeypatch.setattr(parsing, "CHUNK_ROWS", 64)
    ratings = fixtures.synthetic_ratings(seed=4, half_stars=True)
    ratings["timestamp"] = ratings["timestamp"] - 880_000_000 + 100_000_000  # 10xxxxxxx
    ratings.loc[::17, "rating"] = 0.5
    header = ["user", "item", "rating", "timestamp"]
    path = fixtures.write_generic(tmp_path / "r.csv", ratings, ",", header)
    lines = path.read_text().splitlines()
    lines.insert(100, "garbage,line,here")
    path.write_text("\n".join(lines) + "\n")
    table = readers.read_source(path, skip_bad_lines=True)
    assert len(table.ratings) == 400
    assert table.ratings["user"].dtype == np.int64
    assert table.ratings["item"].dtype == np.int64
    assert table.ratings["rating"].dtype == np.float32
    assert table.ratings["timestamp"].dtype == np.int64
    assert (table.ratings["rating"] == 0.5).any()
