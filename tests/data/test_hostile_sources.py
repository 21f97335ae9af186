"""Sources that are hostile or just strange: zips whose entries point outside, zip bombs, other
text encodings, and random lines and bytes (property-based, with hypothesis).

Each either reads correctly or ends in one clear error (AerecError; in the CLI one `error:`
line and a non-zero exit): never another exception, a traceback, a file written outside the
aerec home, or memory filled by a small archive.
"""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aerec_cli.data import readers
from aerec_cli.data import sources as data_sources  # `sources` is the fixture
from aerec_cli.errors import AerecError
from tests import fixtures
from tests.helpers import assert_clean_error, ok, run_cli

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def ingest_json(home: Path, source: Path, *args) -> dict:
    return ok(run_cli(home, "-q", "ingest", source, "--format", "json", *args)).json()


def every_file(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- zips whose entries point outside ----------------------------------------------------


def zip_with_names(target: Path, fixture: fixtures.Fixture, names: dict[str, str]) -> Path:
    """A zip holding the fixture's files under the member names given (file -> member)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for filename, member in names.items():
            info = zipfile.ZipInfo("placeholder")
            info.filename = member  # ZipInfo would normalise ../ and / away
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (fixture.path / filename).read_bytes())
    return target


@pytest.mark.parametrize(
    "prefix",
    ["../../evil/", "/tmp/aerec-evil/", "ml-1m/../../../evil/", "..\\..\\evil\\", "C:/evil/"],
    ids=["dotdot", "absolute", "nested-dotdot", "backslashes", "drive"],
)
def test_zip_entries_pointing_outside_are_read_in_memory_only(home, sources, tmp_path, prefix):
    archive = zip_with_names(
        tmp_path / "zips" / "ml-1m.zip",
        sources.ml1m,
        {name: prefix + name for name in ("ratings.dat", "movies.dat", "users.dat")},
    )
    with zipfile.ZipFile(archive) as check:  # the names really are hostile in the archive
        assert all(info.filename.startswith(prefix) for info in check.infolist())
    before = every_file(tmp_path)
    outside = Path("/tmp/aerec-evil")
    result = run_cli(home, "-q", "ingest", archive, "--format", "json")
    if result.exit_code == 0:  # ingested from memory: the ratings are the fixture's
        assert result.json()["ratings"] == sources.ml1m.n_ratings
    else:
        assert_clean_error(result)
    created = every_file(tmp_path) - before
    assert all(path.startswith("home") for path in created), created
    assert not outside.exists() and not (tmp_path.parent / "evil").exists()


def test_a_zip_member_named_like_a_symlink_is_not_followed(home, sources, tmp_path):
    """Zip "symlinks" (unix mode bits) are plain members to a reader that never extracts."""
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as out:
        link = zipfile.ZipInfo("ml-1m/ratings.dat")
        link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK
        out.writestr(link, "/etc/passwd")
        out.write(sources.ml1m.path / "movies.dat", "ml-1m/movies.dat")
    assert_clean_error(run_cli(home, "ingest", archive), "ratings.dat")


# --- zip bombs ---------------------------------------------------------------------------


def zeros_zip(target: Path, member: str, size: int) -> Path:
    """A zip whose member inflates to ``size`` zero bytes (about 1000x smaller compressed)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w", force_zip64=True) as out:
            block = bytes(1 << 20)
            for start in range(0, size, len(block)):
                out.write(block[: min(len(block), size - start)])
    return target


def test_a_member_declaring_more_than_any_movielens_file_is_refused(home, tmp_path, monkeypatch):
    monkeypatch.setattr(data_sources, "MAX_MEMBER_BYTES", 1 << 20)  # 1 MiB stands in for 4 GiB
    bomb = zeros_zip(tmp_path / "bomb.zip", "ml-1m/ratings.dat", 64 << 20)
    assert bomb.stat().st_size < (1 << 20)  # 64 MiB of zeros in well under 1 MiB
    tracemalloc.start()
    try:
        result = run_cli(home, "ingest", bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_clean_error(result, "declares", "refusing to read it")
    assert peak < (16 << 20)  # nothing like the 64 MiB it inflates to
    assert not (home / "datasets" / "bomb").exists()


def test_a_crafted_central_directory_size_is_refused(home, sources, tmp_path, monkeypatch):
    """The size a zip declares is only a claim; a claim beyond the limit is refused."""
    monkeypatch.setattr(data_sources, "MAX_MEMBER_BYTES", 1 << 20)
    archive = fixtures.zip_folder(sources.ml1m.path, tmp_path / "ml-1m.zip")
    patch_declared_size(archive, "ml-1m/ratings.dat", 3_000_000_000)
    assert_clean_error(run_cli(home, "ingest", archive), "declares 3,000,000,000 bytes")


def patch_declared_size(archive: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size a zip's central directory and local header declare."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    # Local file header: uncompressed size at offset 22.
    struct.pack_into("<I", data, info.header_offset + 22, size)
    # Central directory entry: signature PK\1\2, uncompressed size at offset 24.
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_len] == name:
            struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))


def test_a_member_that_inflates_beyond_its_declared_size_is_refused(home, tmp_path, monkeypatch):
    """A bomb that lies about its size: reading stops at the limit, not at the end."""
    monkeypatch.setattr(data_sources, "MAX_MEMBER_BYTES", 1 << 20)
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("liar/ratings.dat", b"1::1::5::978300760\n" * 300_000)  # 5.7 MB
    patch_declared_size(archive, "liar/ratings.dat", 1000)
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("liar/ratings.dat").file_size == 1000
    assert_clean_error(run_cli(home, "ingest", archive))
    assert not (home / "datasets" / "liar").exists()


def test_a_member_declaring_over_4_gib_is_refused_before_inflating(tmp_path, monkeypatch):
    """With the real limit: a (zip64) member declaring 5 GB is refused unopened."""
    archive = zeros_zip(tmp_path / "z.zip", "ml-1m/ratings.dat", 1 << 16)
    real_getinfo = zipfile.ZipFile.getinfo

    def declared_huge(self, name):
        info = real_getinfo(self, name)
        info.file_size = 5_000_000_000
        return info

    def never_opened(self, *args, **kwargs):
        raise AssertionError("the member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "getinfo", declared_huge)
    monkeypatch.setattr(zipfile.ZipFile, "open", never_opened)
    with pytest.raises(AerecError, match="declares 5,000,000,000 bytes"):
        readers.read_source(archive)


# --- other encodings ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
@pytest.mark.parametrize("layout", ["movielens-csv", "generic"])
def test_ratings_in_another_unicode_encoding(home, sources, tmp_path, encoding, layout):
    """A ratings file saved as UTF-16/32 or with a byte-order mark reads the same as UTF-8."""
    if layout == "movielens-csv":
        folder = tmp_path / "ml-latest-small"
        folder.mkdir()
        for name in ("ratings.csv", "movies.csv"):
            text = (sources.latest_small.path / name).read_text(encoding="utf-8")
            (folder / name).write_bytes(text.encode(encoding))
        source, expected = folder, sources.latest_small
    else:
        expected = sources.ml1m
        lines = ["user,item,rating,timestamp"] + [
            f"{r.user},{r.item},{r.rating:g},{r.timestamp}"
            for r in expected.ratings.itertuples(index=False)
        ]
        source = tmp_path / "ratings.csv"
        source.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    summary = ingest_json(home, source)
    assert summary["ratings"] == expected.n_ratings
    assert summary["users"] == expected.n_users and summary["items"] == expected.n_items
    if layout == "movielens-csv":
        titles = (home / "datasets" / "ml-latest-small" / "items.csv").read_text(encoding="utf-8")
        assert fixtures.UTF8_TITLE in titles


def test_latin1_titles_in_a_utf8_layout_are_read(home, sources, tmp_path):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes((sources.latest_small.path / "ratings.csv").read_bytes())
    movies = (sources.latest_small.path / "movies.csv").read_text(encoding="utf-8")
    movies = movies.replace(fixtures.UTF8_TITLE, "Café au lait (1993)")
    (folder / "movies.csv").write_bytes(movies.encode("latin-1"))
    ingest_json(home, folder)
    titles = (home / "datasets" / "ml-latest-small" / "items.csv").read_text(encoding="utf-8")
    assert "Café au lait (1993)" in titles


def test_latin1_bytes_in_ids_are_refused_clearly(home, tmp_path):
    """Read as UTF-8, 'café' and 'cafè' would both become 'caf\ufffd': one user, silently."""
    path = tmp_path / "ratings.csv"
    path.write_bytes("user,item,rating\ncafé,2,3\ncafè,3,4\nthé,2,5\n".encode("latin-1"))
    assert_clean_error(run_cli(home, "ingest", path), "not UTF-8", "iconv")
    path.write_bytes("user,item,rating\ncafé,2,3\ncafè,3,4\nthé,2,5\n".encode())
    assert ingest_json(home, path, "--force")["users"] == 3


def test_a_binary_file_is_a_clear_error(home, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes(bytes(range(256)) * 20)
    assert_clean_error(run_cli(home, "ingest", path))


# --- property-based: random lines and bytes at the readers --------------------------------


def read_or_clear_error(path: Path, **options) -> readers.RatingsTable | None:
    """read_source, allowing only AerecError; checks what a successful read returns."""
    try:
        table = readers.read_source(path, **options)
    except AerecError as exc:
        assert exc.message.strip() and "Traceback" not in exc.message
        return None
    ratings = table.ratings
    assert len(ratings) > 0
    assert set(ratings.columns) >= {"user", "item", "rating", "timestamp"}
    values = ratings["rating"].to_numpy(np.float64)
    assert np.isfinite(values).all()
    low, high = table.rating_scale
    assert np.isfinite([low, high]).all() and low <= values.min() and values.max() <= high
    assert not ratings.duplicated(["user", "item"]).any()
    return table


FIELD = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["", " ", "5", "4.5", "0", "-1", "nan", "inf", "-inf", "1e308", "1e-9",
                     "007", "+3", "0x1F", "True", "NULL", '"3"', '"', "é", "\x00", "3,5"]),
    st.text(max_size=8),
)  # fmt: skip
SEPARATORS = st.sampled_from([",", "\t", "::", ";", "|", " "])


@st.composite
def rating_lines(draw) -> str:
    """Lines that look like ratings, with every kind of damage mixed in."""
    sep = draw(SEPARATORS)
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind < 5:  # a plausible line
            user, item = draw(st.integers(1, 6)), draw(st.integers(1, 6))
            stars = draw(st.sampled_from(["1", "2", "3", "4", "5", "3.5"]))
            lines.append(sep.join([str(user), str(item), stars, str(draw(st.integers(0, 10**9)))]))
        elif kind < 7:  # a plausible line with one odd field
            fields = [str(draw(st.integers(1, 6))), str(draw(st.integers(1, 6))), "4", "1"]
            fields[draw(st.integers(0, 3))] = draw(FIELD)
            lines.append(sep.join(fields))
        elif kind < 9:  # random fields
            lines.append(sep.join(draw(st.lists(FIELD, max_size=6))))
        else:
            lines.append(draw(st.text(max_size=30)))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


HEADERS = {
    "u.data": "",
    "ratings.dat": "",
    "ratings.csv": "userId,movieId,rating,timestamp\n",
    "data.csv": "",
}


def write_source(root: Path, shape: str, member: str, data: bytes) -> Path:
    """``data`` as a lone file, a file in a MovieLens folder, or a member of a zip."""
    root.mkdir(parents=True, exist_ok=True)
    if shape == "file":
        path = root / member
        path.write_bytes(data)
        return path
    if shape == "folder":
        folder = root / "ml-fuzz"
        folder.mkdir()
        (folder / member).write_bytes(data)
        (folder / "movies.dat").write_bytes(b"1::Toy Story (1995)::Comedy\n")
        return folder
    path = root / "ml-fuzz.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"ml-fuzz/{member}", data)
    return path


@FUZZ
@given(
    text=rating_lines(),
    member=st.sampled_from(sorted(HEADERS)),
    shape=st.sampled_from(["file", "folder", "zip"]),
    encoding=st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]),
)
def test_random_lines_read_or_fail_clearly(text, member, shape, encoding):
    data = (HEADERS[member] + text).encode(encoding, errors="replace")
    with tempfile.TemporaryDirectory() as root:
        read_or_clear_error(write_source(Path(root), shape, member, data))


@FUZZ
@given(
    data=st.binary(max_size=600),
    member=st.sampled_from(sorted(HEADERS)),
    shape=st.sampled_from(["file", "folder", "zip"]),
)
def test_random_bytes_read_or_fail_clearly(data, member, shape):
    with tempfile.TemporaryDirectory() as root:
        read_or_clear_error(
            write_source(Path(root), shape, member, HEADERS[member].encode() + data)
        )


@FUZZ
@given(
    text=rating_lines(),
    sep=st.sampled_from([",", "\\t", ";", "::", "|", "space", "x"]),
    columns=st.sampled_from([None, "0,1,2", "2,1,0,3", "user,item,rating", "0,1,9"]),
    skip=st.booleans(),
)
def test_random_lines_with_options_read_or_fail_clearly(text, sep, columns, skip):
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "ratings.txt"
        path.write_text(text, encoding="utf-8")
        read_or_clear_error(path, columns=columns, sep=sep, skip_bad_lines=skip)


def _zip_with_a_bad_utf8_name() -> bytes:
    """A small MovieLens zip whose first local header claims a UTF-8 name (flag bit 11) that
    starts with the byte 0xED (no valid UTF-8 sequence follows it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-1m/ratings.dat", "1::1::5::1\n1::2::3::2\n2::1::4::3\n")
        archive.writestr("ml-1m/movies.dat", "1::A (1990)::Drama\n2::B (1991)::Comedy\n")
    data = bytearray(buffer.getvalue())
    data[7] |= 0x08  # general-purpose flags, high byte: bit 11, names are UTF-8
    data[30] = 0xED  # the first byte of the member's name
    return bytes(data)


@st.composite
def damaged_zips(draw) -> bytes:
    """A valid small MovieLens zip with bytes flipped, cut or appended."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", draw(st.sampled_from([0, 8]))) as archive:
        archive.writestr("ml-1m/ratings.dat", "1::1::5::1\n1::2::3::2\n2::1::4::3\n")
        archive.writestr("ml-1m/movies.dat", "1::A (1990)::Drama\n2::B (1991)::Comedy\n")
    data = bytearray(buffer.getvalue())
    action = draw(st.sampled_from(["flip", "cut", "append"]))
    if action == "flip":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
    elif action == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@FUZZ
@given(data=damaged_zips())
# Found by CI: a flipped byte sets a member's UTF-8 name flag over a name that is not UTF-8, and
# zipfile then fails with UnicodeDecodeError when it opens the member.
@example(data=_zip_with_a_bad_utf8_name())
def test_damaged_zips_read_or_fail_clearly(data):
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "ml-1m.zip"
        path.write_bytes(data)
        read_or_clear_error(path)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    text=rating_lines(),
    member=st.sampled_from(sorted(HEADERS)),
    shape=st.sampled_from(["file", "zip"]),
    noise=st.binary(max_size=40),
)
def test_the_cli_ingests_or_fails_with_one_error_line(text, member, shape, noise):
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        source = write_source(
            root / "src", shape, member, (HEADERS[member] + text).encode() + noise
        )
        home = root / "home"
        before = every_file(root)
        result = run_cli(home, "-q", "ingest", source, "--name", "fuzz", "--format", "json")
        if result.exit_code == 0:
            assert result.json()["ratings"] > 0
            assert (home / "datasets" / "fuzz" / "meta.json").is_file()
        else:
            assert_clean_error(result)
            assert not (home / "datasets" / "fuzz").exists()
        created = every_file(root) - before
        assert all(path.startswith("home") for path in created), created
