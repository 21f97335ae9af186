"""Known dataset names are downloaded once, checked by checksum before use, and kept only when
they pass. The network is replaced by a fake ``urlopen`` that serves bytes."""

from __future__ import annotations

import hashlib
import http.client
import io
import urllib.error
import urllib.request

import pytest

from aerec_cli.data import downloads
from aerec_cli.errors import AerecError
from tests.helpers import assert_clean_error, ok, run_cli

NAME = "ml-latest-small"


class FakeNetwork:
    """Serves ``body`` for every URL (or raises ``error``); counts the requests."""

    def __init__(self, body: bytes = b"", error: BaseException | None = None, cut_at=None):
        self.body, self.error, self.cut_at = body, error, cut_at
        self.urls: list[str] = []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        if self.cut_at is None:
            return io.BytesIO(self.body)
        return CutResponse(self.body[: self.cut_at], len(self.body))


class CutResponse(io.BytesIO):
    """A response whose connection drops after the bytes it holds."""

    def __init__(self, head: bytes, expected: int):
        super().__init__(head)
        self.expected = expected

    def read(self, size=-1):
        data = super().read(size)
        if not data:
            raise http.client.IncompleteRead(b"", self.expected - self.tell())
        return data


@pytest.fixture
def served(sources, monkeypatch):
    """The ml-latest-small fixture zip as the published file, with its real sha256."""
    body = sources.latest_small_zip.read_bytes()
    monkeypatch.setitem(
        downloads.KNOWN_DATASETS, NAME, ("sha256", hashlib.sha256(body).hexdigest())
    )
    return body


def use_network(monkeypatch, network: FakeNetwork) -> FakeNetwork:
    monkeypatch.setattr(urllib.request, "urlopen", network)
    return network


def cache_files(home) -> list[str]:
    cache = home / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def stored(home) -> list[str]:
    folder = home / "datasets"
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.exists()
        else []
    )


def test_a_verified_download_is_ingested(home, served, sources, monkeypatch):
    network = use_network(monkeypatch, FakeNetwork(served))
    summary = ok(run_cli(home, "-q", "ingest", NAME, "--format", "json")).json()
    assert network.urls == [f"{downloads.BASE_URL}{NAME}.zip"]
    assert summary["name"] == NAME and summary["ratings"] == sources.latest_small.n_ratings
    assert cache_files(home) == [f"{NAME}.zip"]
    assert (home / "cache" / f"{NAME}.zip").read_bytes() == served


def test_a_cached_file_with_the_right_checksum_is_reused(home, served, monkeypatch):
    use_network(monkeypatch, FakeNetwork(served))
    ok(run_cli(home, "-q", "ingest", NAME))
    network = use_network(monkeypatch, FakeNetwork(error=AssertionError("no download")))
    ok(run_cli(home, "-q", "ingest", NAME, "--force"))
    assert network.urls == []


def test_a_cached_file_that_fails_its_checksum_is_downloaded_again(home, served, monkeypatch):
    (home / "cache").mkdir(parents=True)
    (home / "cache" / f"{NAME}.zip").write_bytes(served[:1000])  # an old partial copy
    network = use_network(monkeypatch, FakeNetwork(served))
    ok(run_cli(home, "-q", "ingest", NAME))
    assert len(network.urls) == 1
    assert (home / "cache" / f"{NAME}.zip").read_bytes() == served


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(home, served, monkeypatch):
    tampered = bytearray(served)
    tampered[len(tampered) // 2] ^= 0xFF
    use_network(monkeypatch, FakeNetwork(bytes(tampered)))
    message = assert_clean_error(run_cli(home, "ingest", NAME), "failed its sha256 check")
    assert "try again" in message
    assert cache_files(home) == []  # neither the bad file nor a temp file is kept
    assert stored(home) == []


def test_an_md5_checksum_is_checked_too(tmp_path, served, monkeypatch):
    monkeypatch.setitem(downloads.KNOWN_DATASETS, NAME, ("md5", hashlib.md5(served).hexdigest()))
    use_network(monkeypatch, FakeNetwork(served))
    assert downloads.fetch(NAME, tmp_path).read_bytes() == served
    monkeypatch.setitem(downloads.KNOWN_DATASETS, NAME, ("md5", "0" * 32))
    with pytest.raises(AerecError, match="md5 check"):
        downloads.fetch(NAME, tmp_path / "other")
    assert not (tmp_path / "other" / f"{NAME}.zip").exists()


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        urllib.error.HTTPError(f"{downloads.BASE_URL}{NAME}.zip", 404, "Not Found", {}, None),
        TimeoutError("timed out"),
        ConnectionResetError("connection reset by peer"),
    ],
    ids=["offline", "http-404", "timeout", "reset"],
)
def test_a_failed_download_says_to_download_it_elsewhere(home, served, monkeypatch, error):
    use_network(monkeypatch, FakeNetwork(error=error))
    assert_clean_error(
        run_cli(home, "ingest", NAME),
        f"cannot download {NAME}",
        "download it elsewhere",
        f"aerec ingest path/to/{NAME}.zip",
    )
    assert cache_files(home) == [] and stored(home) == []


def test_a_connection_cut_midway_keeps_no_partial_file(home, served, monkeypatch):
    use_network(monkeypatch, FakeNetwork(served, cut_at=len(served) // 3))
    assert_clean_error(run_cli(home, "ingest", NAME), f"cannot download {NAME}")
    assert cache_files(home) == [] and stored(home) == []


def test_offline_with_a_verified_cache_needs_no_network(home, served, monkeypatch):
    (home / "cache").mkdir(parents=True)
    (home / "cache" / f"{NAME}.zip").write_bytes(served)
    network = use_network(monkeypatch, FakeNetwork(error=urllib.error.URLError("offline")))
    ok(run_cli(home, "-q", "ingest", NAME))
    assert network.urls == []


def test_a_local_zip_is_never_checked_against_the_published_checksum(home, sources, monkeypatch):
    """Passing the file itself (downloaded elsewhere) needs no network and no checksum."""
    monkeypatch.setitem(downloads.KNOWN_DATASETS, NAME, ("sha256", "0" * 64))
    network = use_network(monkeypatch, FakeNetwork(error=AssertionError("no download")))
    ok(run_cli(home, "-q", "ingest", sources.latest_small_zip))
    assert network.urls == []
