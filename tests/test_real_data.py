"""Ingest of the real MovieLens files in ../shared/data (skipped where they are absent).

Ingest only: no training on these here, to keep the suite fast.
"""

from __future__ import annotations

import pytest

from tests.helpers import SHARED_DATA, ok, run_cli, stored_items

ML100K = SHARED_DATA / "ml-100k.zip"
ML1M_SYNTHETIC = SHARED_DATA / "ml-1m-synthetic.zip"


@pytest.mark.skipif(not ML100K.is_file(), reason=f"{ML100K} is absent")
def test_real_ml100k(home):
    summary = ok(run_cli(home, "-q", "ingest", ML100K, "--format", "json")).json()
    assert summary["name"] == "ml-100k"
    assert summary["format"] == "ml-100k"
    assert (summary["users"], summary["items"], summary["ratings"]) == (943, 1682, 100000)
    assert (summary["train"], summary["test"]) == (90000, 10000)
    assert summary["rating_scale"] == [1.0, 5.0]
    items = stored_items(summary["path"]).set_index("item")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"

    for split, sizes in (("u1", (80000, 20000)), ("ua", (90570, 9430))):
        args = ["-q", "ingest", ML100K, "--name", split, "--split", split, "--format", "json"]
        summary = ok(run_cli(home, *args)).json()
        assert (summary["train"], summary["test"]) == sizes
        assert summary["ratings"] == 100000


@pytest.mark.skipif(not ML1M_SYNTHETIC.is_file(), reason=f"{ML1M_SYNTHETIC} is absent")
def test_ml1m_synthetic(home):
    summary = ok(run_cli(home, "-q", "ingest", ML1M_SYNTHETIC, "--format", "json")).json()
    assert summary["name"] == "ml-1m-synthetic"
    assert summary["format"] == "ml-1m"
    assert (summary["users"], summary["items"], summary["ratings"]) == (6040, 3706, 995306)
    assert summary["rating_scale"] == [1.0, 5.0]
    items = stored_items(summary["path"]).set_index("item")
    # Titles and genres come from the original (latin-1) movies.dat.
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert (items["title"] != "").all()
