"""The built-in sample dataset: ingest, train with default flags, beat the bias baseline."""

from __future__ import annotations

from tests.helpers import ok, run_cli


def test_sample_trains_with_defaults_and_beats_the_bias_baseline(home):
    summary = ok(run_cli(home, "-q", "ingest", "sample", "--format", "json")).json()
    assert summary["name"] == "sample"
    assert summary["format"] == "sample"
    assert (summary["users"], summary["items"]) == (400, 300)
    assert summary["rating_scale"] == [1.0, 5.0]
    assert summary["test"] == round(0.1 * summary["ratings"])

    ok(run_cli(home, "-q", "train"))  # every training flag at its default
    report = ok(run_cli(home, "evaluate", "--format", "json")).json()
    assert report["dataset"] == "sample"
    assert report["n_test"] == summary["test"]
    assert report["rmse"] < report["baselines"]["bias"]["rmse"]
    assert report["rmse"] < report["baselines"]["global_mean"]["rmse"]
    assert report["mae"] < report["baselines"]["bias"]["mae"]

    recs = ok(run_cli(home, "recommend", "--user", "42", "--format", "json")).json()
    assert len(recs["items"]) == 10
    assert all(item["title"].startswith("Sample Movie") for item in recs["items"])
