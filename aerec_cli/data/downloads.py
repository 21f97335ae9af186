"""Known MovieLens names: downloaded once from GroupLens into a cache, checked by checksum."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
# (algorithm, digest) as published by GroupLens (.md5 files) or recorded by TFDS (sha256).
KNOWN_DATASETS: dict[str, tuple[str, str]] = {
    "ml-100k": ("sha256", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "ml-1m": ("sha256", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    "ml-10m": ("sha256", "813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862"),
    "ml-20m": ("sha256", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    "ml-25m": ("sha256", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    "ml-32m": ("md5", "d472be332d4daa821edc399621853b57"),
    # GroupLens rebuilds ml-latest-small from time to time; a mismatch says so clearly.
    "ml-latest-small": (
        "sha256",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str, cache: Path, timeout: float = 30.0) -> Path:
    """Path of the verified zip for a known name, downloading it if it is not cached."""
    algorithm, expected = KNOWN_DATASETS[name]
    target = cache / f"{name}.zip"
    if target.exists() and file_digest(target, algorithm) == expected:
        return target
    url = f"{BASE_URL}{name}.zip"
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic.atomic_open(target) as out,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
    # A connection cut mid-way raises http.client.IncompleteRead (not an OSError).
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        raise AerecError(
            f"cannot download {name} from {url} ({getattr(exc, 'reason', exc)}); download it "
            f"elsewhere and run: aerec ingest path/to/{name}.zip"
        ) from exc
    actual = file_digest(target, algorithm)
    if actual != expected:
        target.unlink(missing_ok=True)
        raise AerecError(
            f"the download of {name} failed its {algorithm} check (got {actual[:12]}..., "
            f"expected {expected[:12]}...); try again, or pass a zip you trust"
        )
    return target
