"""Checks of what a dataset folder holds, for every reader of it: the training and
evaluation load (dataset_store) and the fast scoring path (scoring/scorer.py), which imports
neither pandas nor scipy, so neither is imported here.

A stored file may have been damaged (a bad disk, a truncated copy), edited by hand, or
crafted. Each check turns that into one AerecError that names the dataset and the fix, before
the file is used: a wrong id map shifts every id silently, and a sparse matrix with indices
out of range makes later C code read past its arrays.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aerec_cli.errors import AerecError

# The files of a dataset besides meta.json, whose sha256 its meta records ("files").
DATA_FILES = ("train.npz", "test.npz", "users.csv", "items.csv")
# What each id map's header is (dataset_store writes them).
HEADERS = {"users.csv": ["user"], "items.csv": ["item", "title", "genres"]}
_COUNTS = ("users", "items", "ratings", "train", "test")


@dataclass
class Damaged:
    """A stored dataset or run that cannot be read: listed as such, never used."""

    name: str
    problem: str  # what is wrong, for "dataset NAME is damaged (PROBLEM)"
    order: int  # when it was stored (ns since the epoch), to tell whether it is the latest


def stored_entries(root: Path) -> list[Path]:
    """The stored folders of ``root`` (datasets/ or runs/), not temp folders or lock files."""
    if not root.is_dir():
        return []
    try:
        return [p for p in sorted(root.iterdir()) if not p.name.startswith(".") and p.is_dir()]
    except OSError as exc:
        raise AerecError(
            f"cannot read {root} ({exc.strerror or exc}); check its permissions, or pick "
            "another home with --home"
        ) from exc


def damaged(name: str, problem: str) -> AerecError:
    return AerecError(f"dataset {name} is damaged ({problem}); ingest it again with --force")


def digests(files: dict[str, bytes]) -> dict[str, str]:
    """The sha256 of each data file, as meta.json records them."""
    return {name: hashlib.sha256(files[name]).hexdigest() for name in DATA_FILES}


def version_digest(meta_bytes: bytes) -> str:
    """A dataset version's fingerprint: the digest of its meta.json, which records every other
    file's digest. A run keeps the one it was trained on (``dataset_meta_sha256``)."""
    return hashlib.sha256(meta_bytes).hexdigest()


def meta_problem(meta: Any) -> str | None:
    """What is wrong with a meta.json's content (hand-edited, crafted), or None."""
    if not isinstance(meta, dict):
        return f"meta.json holds {type(meta).__name__}, not an object"
    for key in ("name", "format", "created"):
        if not isinstance(meta.get(key), str):
            return f"meta.json has no text {key!r}"
    for key in (*_COUNTS, "format_version"):
        if not _whole(meta.get(key)):
            return f"meta.json's {key!r} is not a whole number"
    if "created_ns" in meta and not _whole(meta["created_ns"]):
        return "meta.json's 'created_ns' is not a whole number"
    scale = meta.get("rating_scale")
    if not (
        isinstance(scale, list)
        and len(scale) == 2
        and all(_finite(v) for v in scale)
        and scale[0] < scale[1]
    ):
        return "meta.json's 'rating_scale' is not two numbers LOW, HIGH"
    split = meta.get("split")
    if not isinstance(split, dict) or not isinstance(split.get("method"), str):
        return "meta.json's 'split' has no method"
    histogram = meta.get("histogram")
    if not isinstance(histogram, dict) or not all(_whole(v) for v in histogram.values()):
        return "meta.json's 'histogram' is not counts by stars"
    if not isinstance(meta.get("warnings", []), list):
        return "meta.json's 'warnings' is not a list"
    files = meta.get("files")
    if files is not None and not (
        isinstance(files, dict) and all(isinstance(files.get(n), str) for n in DATA_FILES)
    ):
        return "meta.json's 'files' does not list the digest of each file"
    return None


def check_meta(meta: Any, name: str) -> dict:
    """``meta`` if it is a meta.json this aerec can use, else an AerecError."""
    problem = meta_problem(meta)
    if problem is not None:
        raise damaged(name, problem)
    return meta


def check_digest(meta: dict, filename: str, data: bytes, name: str) -> None:
    """``data`` is the ``filename`` that meta.json recorded (datasets ingested before digests
    were recorded have nothing to check here; their other checks still apply)."""
    expected = (meta.get("files") or {}).get(filename)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise damaged(name, f"{filename} is not the file that was ingested")


def id_rows(data: bytes, filename: str, expected: int, name: str) -> list[list[str]]:
    """The rows of an id map (users.csv, items.csv), header dropped, checked to hold one
    distinct id for each of the ``expected`` rows or columns of the matrices."""
    try:
        text = data.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise damaged(name, f"{filename} is not a readable CSV: {_short(exc)}") from exc
    header = HEADERS[filename]
    if not rows or rows[0] != header:
        raise damaged(name, f"{filename} does not start with the header {','.join(header)}")
    rows = rows[1:]
    if len(rows) != expected:
        raise damaged(
            name, f"{filename} lists {len(rows):,} ids where the matrices have {expected:,}"
        )
    if any(len(row) != len(header) for row in rows):
        raise damaged(name, f"{filename} has a line without its {len(header)} fields")
    if len({row[0] for row in rows}) != len(rows):
        raise damaged(name, f"{filename} lists an id twice")
    return rows


def check_matrix(matrix, filename: str, meta: dict, name: str) -> None:
    """A loaded split (scipy sparse) is a well-formed CSR matrix of the dataset's shape, its
    stars on its scale."""
    shape = (meta["users"], meta["items"])
    if getattr(matrix, "format", None) != "csr" or matrix.shape != shape:
        raise damaged(name, f"{filename} is not a {shape[0]} x {shape[1]} CSR matrix")
    try:
        # Indices within the shape, indptr monotone and consistent: what scipy's and our own
        # loops index by without checking.
        matrix.check_format(full_check=True)
    except (ValueError, TypeError) as exc:
        raise damaged(name, f"{filename}: {_short(exc)}") from exc
    low, high = meta["rating_scale"]
    data = matrix.data
    if data.dtype.kind != "f" or (len(data) and not (data.min() >= low and data.max() <= high)):
        raise damaged(name, f"{filename} holds values that are not stars from {low:g} to {high:g}")
    expected = meta["train" if filename == "train.npz" else "test"]
    if matrix.nnz != expected:
        raise damaged(name, f"{filename} holds {matrix.nnz:,} ratings, meta.json says {expected:,}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
