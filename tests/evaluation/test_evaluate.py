"""Ranking metrics in `aerec evaluate`, run comparison (`--runs`, `runs --compare`) and `plot`.

The metric formulas are checked against hand-computed examples; the CLI's numbers against a
plain per-user recomputation on the tiny fixture.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import struct
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from rich.console import Console

from aerec_cli.cli import output
from aerec_cli.evaluation import evaluator
from aerec_cli.evaluation.metrics import (
    popularity_ranker,
    ranking_metrics,
    user_ranking_metrics,
)
from aerec_cli.models.baselines import BiasBaseline
from aerec_cli.scoring.topk import top_k
from aerec_cli.storage import dataset_store
from tests.helpers import TINY, assert_clean_error, copy_home, ok, run_cli

METRICS = ("precision", "recall", "ndcg", "mrr", "hit_rate", "coverage")
LOG3 = 1 / math.log2(3)  # the discount at rank 2


def evaluate_json(home, *args):
    return ok(run_cli(home, "--device", "cpu", "evaluate", "--format", "json", *args)).json()


# --- the formulas, by hand -----------------------------------------------------------------


def test_user_ranking_metrics_by_hand():
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    n_relevant = np.array([3, 2, 1])
    m = user_ranking_metrics(hits, n_relevant, 4)
    # user 0: hits at ranks 1 and 3 of 3 relevant; user 1: none; user 2: rank 2 of 1 relevant
    assert m["precision"] == pytest.approx([2 / 4, 0, 1 / 4])
    assert m["recall"] == pytest.approx([2 / 3, 0, 1])
    ideal_3 = 1 + LOG3 + 0.5  # min(k=4, 3 relevant) = 3 hits at ranks 1..3
    assert m["ndcg"] == pytest.approx([(1 + 0.5) / ideal_3, 0, LOG3 / 1])
    assert m["mrr"] == pytest.approx([1, 0, 0.5])
    assert m["hit_rate"] == pytest.approx([1, 0, 1])

    m2 = user_ranking_metrics(hits, n_relevant, 2)  # only the first two ranks count
    assert m2["precision"] == pytest.approx([1 / 2, 0, 1 / 2])
    assert m2["recall"] == pytest.approx([1 / 3, 0, 1])
    assert m2["ndcg"] == pytest.approx([1 / (1 + LOG3), 0, LOG3])
    assert m2["mrr"] == pytest.approx([1, 0, 0.5])


def test_ndcg_ideal_uses_at_most_k_relevant_items():
    # 5 relevant items, k = 2, both slots hit: a perfect list.
    m = user_ranking_metrics(np.array([[True, True]]), np.array([5]), 2)
    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["recall"][0] == pytest.approx(2 / 5)


def test_short_lists_count_missing_slots_as_misses():
    m = user_ranking_metrics(np.array([[True, False]]), np.array([1]), 5)
    assert m["precision"][0] == pytest.approx(1 / 5)
    assert m["ndcg"][0] == pytest.approx(1.0)


def test_user_ranking_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        user_ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([1]), 0)
    with pytest.raises(ValueError):
        user_ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([0]), 3)


def test_top_k_order_ties_and_non_candidates():
    scores = np.array([[0.5, 0.9, 0.9, -np.inf, 0.1], [1, 1, 1, 1, 1]], dtype=float)
    columns, valid = top_k(scores, 3)
    assert columns.tolist() == [[1, 2, 0], [0, 1, 2]]  # ties go to the lower column
    assert valid.all()
    columns, valid = top_k(scores, 9)  # more than there are columns
    assert columns[0].tolist() == [1, 2, 0, 4, 3]
    assert valid[0].tolist() == [True, True, True, True, False]  # -inf is no candidate


def tiny_split():
    """3 users x 5 items. Train: u0 {0, 1}, u1 {2}, u2 {0}. Test stars below."""
    train = sp.csr_matrix(
        (np.array([4.0, 3.0, 5.0, 2.0]), (np.array([0, 0, 1, 2]), np.array([0, 1, 2, 0]))),
        shape=(3, 5),
    )
    test = sp.csr_matrix(
        (
            np.array([5.0, 2.0, 4.0, 4.0, 3.0]),
            (np.array([0, 0, 1, 1, 2]), np.array([2, 3, 0, 4, 1])),
        ),
        shape=(3, 5),
    )
    return train, test


def test_ranking_metrics_exclude_training_items():
    train, test = tiny_split()
    fixed = {"fixed": lambda users: np.tile([5.0, 4.0, 3.0, 2.0, 1.0], (len(users), 1))}
    n_users, results = ranking_metrics(fixed, train, test, relevant=4, ks=[2])
    # u2 has no test rating >= 4. u0's candidates are 2, 3, 4 (0 and 1 are its training
    # items): top 2 = [2, 3], one hit of one relevant. u1's candidates 0, 1, 3, 4: top 2 =
    # [0, 1], one hit (rank 1) of two relevant (0 and 4).
    assert n_users == 2
    r = results["fixed"]
    assert r["precision@2"] == pytest.approx(0.5)
    assert r["recall@2"] == pytest.approx((1 + 0.5) / 2)
    assert r["ndcg@2"] == pytest.approx((1 + 1 / (1 + LOG3)) / 2, abs=1e-6)
    assert r["mrr@2"] == pytest.approx(1.0)
    assert r["hit_rate@2"] == pytest.approx(1.0)
    assert r["coverage@2"] == pytest.approx(4 / 5)  # items 0, 1, 2, 3 shown

    n_users, results = ranking_metrics(fixed, train, test, relevant=5, ks=[1, 3])
    assert n_users == 1  # only u0 (5 stars for item 2)
    assert results["fixed"]["precision@1"] == pytest.approx(1.0)
    assert results["fixed"]["precision@3"] == pytest.approx(1 / 3)
    assert results["fixed"]["coverage@1"] == pytest.approx(1 / 5)


def test_popularity_ranker_counts_training_ratings():
    train, test = tiny_split()
    assert popularity_ranker(train)(np.array([0, 2])).tolist() == [[2, 1, 1, 0, 0]] * 2
    _, results = ranking_metrics({"pop": popularity_ranker(train)}, train, test, 4, [1])
    # u0: candidates 2, 3, 4 -> item 2 (count 1) is first and relevant; u1: item 0 first, hit.
    assert results["pop"]["precision@1"] == pytest.approx(1.0)


def test_no_relevant_user_gives_no_values():
    train, test = tiny_split()
    n_users, results = ranking_metrics({"pop": popularity_ranker(train)}, train, test, 6, [2])
    assert n_users == 0
    assert set(results["pop"].values()) == {None}


@pytest.mark.parametrize("run", ["item-run", "user-run"])
def test_block_scores_match_user_scores(trained, run):
    scorer = evaluator.load_for_scoring(trained, run).scorer
    users = np.array([0, 5, 29])
    block = scorer.block_scores(users)
    for row, user in enumerate(users):
        assert block[row] == pytest.approx(scorer.user_scores(int(user)), abs=1e-5)


# --- evaluate: ranking through the CLI -----------------------------------------------------


def brute_force(scores_of, train, test, relevant: float, k: int) -> dict:
    """The metrics user by user in plain Python: rank every item not rated in training."""
    per_user = {m: [] for m in METRICS[:-1]}
    shown = set()
    for user in range(train.shape[0]):
        wanted = set(test[user].indices[test[user].data >= relevant])
        if not wanted:
            continue
        scores, rated = scores_of(user), set(train[user].indices)
        candidates = sorted(set(range(train.shape[1])) - rated, key=lambda i: (-scores[i], i))
        top = candidates[:k]
        shown |= set(top)
        hits = [item in wanted for item in top]
        per_user["precision"].append(sum(hits) / k)
        per_user["recall"].append(sum(hits) / len(wanted))
        dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(wanted))))
        per_user["ndcg"].append(dcg / ideal)
        per_user["mrr"].append(next((1 / (r + 1) for r, hit in enumerate(hits) if hit), 0.0))
        per_user["hit_rate"].append(float(any(hits)))
    result = {f"{m}@{k}": float(np.mean(v)) for m, v in per_user.items()}
    result[f"coverage@{k}"] = len(shown) / train.shape[1]
    return result


def test_evaluate_json_keeps_old_keys_and_adds_ranking(trained):
    report = evaluate_json(trained, "--run", "item-run")
    old = {"run", "dataset", "kind", "rmse", "mae", "n_test", "baselines", "orientation"}
    assert old | {"n_fallback", "ranking"} <= set(report)
    assert set(report["baselines"]) == {"global_mean", "bias"}
    ranking = report["ranking"]
    assert ranking["k"] == [10, 20, 100] and ranking["relevant"] == 4
    dataset = dataset_store.load(trained, "ml1m")
    relevant = dataset.test.copy()
    relevant.data = (relevant.data >= 4).astype(np.int8)
    relevant.eliminate_zeros()
    relevant_users = int((relevant.getnnz(axis=1) > 0).sum())
    assert ranking["n_users"] == relevant_users > 0
    assert set(ranking["baselines"]) == {"popularity", "bias", "ease"}
    for values in (ranking["model"], *ranking["baselines"].values()):
        assert set(values) == {f"{m}@{k}" for k in (10, 20, 100) for m in METRICS}
        assert all(0 <= v <= 1 for v in values.values())
    metrics = json.loads((trained / "runs" / "item-run" / "metrics.json").read_text())
    assert metrics["test"]["ranking"] == ranking


@pytest.mark.parametrize("run", ["item-run", "user-run"])
def test_ranking_matches_a_per_user_recomputation(trained, run):
    report = evaluate_json(trained, "--run", run, "--k", "3,10")
    dataset = dataset_store.load(trained, "ml1m")
    train, test = dataset.train, dataset.test
    scorer = evaluator.load_for_scoring(trained, run).scorer
    model = scorer.list_scores(np.arange(train.shape[0]))  # the ranker's, as recommend's lists
    counts = np.bincount(train.indices, minlength=train.shape[1])
    bias = BiasBaseline.fit(train)
    expected = {
        "model": lambda u: model[u],
        "popularity": lambda u: counts,
        "bias": lambda u: bias.mean + bias.user_bias[u] + bias.item_bias,
    }
    got = {"model": report["ranking"]["model"], **report["ranking"]["baselines"]}
    for name, scores_of in expected.items():
        for k in (3, 10):
            want = brute_force(scores_of, train, test, 4, k)
            for key, value in want.items():
                assert got[name][key] == pytest.approx(value, abs=1e-5), (name, key)


def test_recommendations_never_hit_training_items(trained):
    # With everything rated in training marked relevant, no list may hit anything: the
    # metrics are over candidates that exclude training items.
    dataset = dataset_store.load(trained, "ml1m")
    scorer = evaluator.load_for_scoring(trained, "item-run").scorer
    rankers = {"model": lambda users: scorer.block_scores(users, clip=False)}
    _, results = ranking_metrics(rankers, dataset.train, dataset.train, 1, [10])
    assert results["model"]["hit_rate@10"] == 0


def test_evaluate_relevant_threshold(trained):
    high = evaluate_json(trained, "--run", "item-run", "--relevant", "5")["ranking"]
    low = evaluate_json(trained, "--run", "item-run", "--relevant", "4")["ranking"]
    assert high["relevant"] == 5 and 0 < high["n_users"] < low["n_users"]
    assert evaluate_json(trained, "--relevant", "4.5")["ranking"]["relevant"] == 4.5


def test_evaluate_table_shows_both_tables(trained):
    out = ok(run_cli(trained, "evaluate", "--run", "item-run", "--k", "5,10")).stdout
    assert "RMSE" in out and "global mean" in out
    assert "test rating >= 4" in out
    for column in ("P@5", "R@5", "NDCG@5", "MRR@5", "HR@5", "cov@5", "P@10", "cov@10"):
        assert column in out
    rows = [line for line in out.splitlines() if "│" in line]
    assert any(line.strip().startswith("popularity") for line in rows)
    assert sum("bias baseline" in line for line in rows) == 2  # rating and ranking tables
    assert sum(line.strip().startswith("denoising (item)") for line in rows) == 2


# --- comparing runs ------------------------------------------------------------------------


BASELINE_ROWS = ("global mean", "bias baseline", "popularity", "EASE")


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the comparison table by run name, cells stripped."""
    rows = {}
    for line in text.splitlines():
        if "│" in line:
            cells = [c.strip() for c in line.split("│")]
            rows[cells[0]] = cells
    return rows


def row_names(text: str) -> set[str]:
    """The first cell of each table row, without a parenthesised detail ("EASE (λ=500)")."""
    return {name.split(" (")[0] for name in table_rows(text)}


def test_evaluate_runs_side_by_side_marks_the_best(trained):
    result = ok(run_cli(trained, "evaluate", "--runs", "item-run,user-run"))
    header = [c.strip() for c in result.stdout.splitlines()[1].split("┃")]
    assert header[:5] == ["run", "kind", "orientation", "RMSE", "MAE"]
    ranking_columns = ["P@10", "R@10", "NDCG@10", "MRR@10", "HR@10", "cov@10", "R@20", "NDCG@100"]
    assert header[5:] == ranking_columns
    rows = table_rows(result.stdout)
    assert row_names(result.stdout) == {"item-run", "user-run", *BASELINE_ROWS}
    rows = {run: rows[run] for run in ("item-run", "user-run")}
    assert "* best run in each column" in result.stdout
    reports = {r["run"]: r for r in evaluate_json(trained, "--runs", "item-run,user-run")}
    keys = ["rmse", "mae"] + [f"{m}@10" for m in METRICS] + ["recall@20", "ndcg@100"]
    for column, key in enumerate(keys, start=3):
        values = {
            run: reports[run].get(key, reports[run]["ranking"]["model"].get(key)) for run in rows
        }
        best = (min if key in ("rmse", "mae") else max)(values.values())
        for run, cells in rows.items():
            assert cells[column].rstrip("*") == f"{values[run]:.4f}"
            assert cells[column].endswith("*") == (values[run] == best), (run, key)


def test_evaluate_runs_json_is_a_list_of_reports(trained):
    reports = evaluate_json(trained, "--runs", "user-run,item-run", "--k", "5")
    assert [r["run"] for r in reports] == ["user-run", "item-run"]
    single = evaluate_json(trained, "--run", "item-run", "--k", "5")
    assert reports[1] == single


def test_evaluate_runs_loads_a_shared_dataset_once(trained, monkeypatch):
    calls = []
    real = dataset_store.load
    monkeypatch.setattr(dataset_store, "load", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    evaluate_json(trained, "--runs", "item-run,user-run")
    assert len(calls) == 1


def test_comparison_highlights_in_colour(trained, monkeypatch):
    monkeypatch.setattr(
        output, "out", Console(force_terminal=True, color_system="standard", width=200)
    )
    out = ok(run_cli(trained, "evaluate", "--runs", "item-run,user-run")).stdout
    assert "\x1b[1;32m" in out  # bold green
    assert "bold green" in out and "*" not in re.sub(r"\x1b\[[0-9;]*m", "", out)


def test_runs_compare_all_or_some(trained):
    everything = ok(run_cli(trained, "runs", "--compare", "--format", "json")).json()
    assert [r["run"] for r in everything] == ["item-run", "user-run"]
    assert all("ranking" in r for r in everything)
    table = ok(run_cli(trained, "runs", "--compare")).stdout
    assert row_names(table) == {"item-run", "user-run", *BASELINE_ROWS}
    some = ok(run_cli(trained, "runs", "--compare", "--runs", "user-run", "--format", "json"))
    assert [r["run"] for r in some.json()] == ["user-run"]
    plain = ok(run_cli(trained, "runs")).stdout  # the plain listing is unchanged
    assert "val RMSE" in plain and "NDCG" not in plain


def test_runs_compare_reuses_the_last_evaluate_that_answers_the_same_question(trained, monkeypatch):
    stored = evaluate_json(trained, "--run", "item-run")

    def refuse(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(evaluator, "_evaluate_loaded", refuse)
    again = ok(run_cli(trained, "runs", "--compare", "--runs", "item-run", "--format", "json"))
    assert again.json() == [stored]
    # Other cut-offs are evaluated again, and `evaluate` always evaluates.
    for args in (["runs", "--compare", "--runs", "item-run", "--k", "5"], ["evaluate"]):
        result = run_cli(trained, *args)
        assert "evaluated again" in str(result.exception), args


def test_runs_of_different_datasets_are_compared_within_their_own_dataset(ingested_home, sources):
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml100k_zip, "--name", "other"))
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "other", "--run", "a"))
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "ml1m", "--run", "b"))
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "ml1m", "--run", "c"))
    out = ok(run_cli(ingested_home, "evaluate", "--runs", "a,b,c")).stdout
    titles = [line for line in out.splitlines() if "on the test split of" in line]
    assert len(titles) == 2 and "of other" in titles[0] and "of ml1m" in titles[1]
    first, second = out.split(titles[1])
    assert "a " in first and "*" not in first  # a lone run is best of nothing
    assert {"b", "c"} <= set(table_rows(second)) and "*" in second
    for part in (first, second):
        assert set(BASELINE_ROWS) <= row_names(part)


def test_runs_compare_with_no_runs(ingested_home):
    assert ok(run_cli(ingested_home, "runs", "--compare", "--format", "json")).json() == []
    result = ok(run_cli(ingested_home, "runs", "--compare"))
    assert result.stdout == "" and "no runs" in result.stderr


def test_runs_compare_skips_a_stale_run_with_a_warning(ingested_home, sources):
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml100k_zip, "--name", "other"))
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "other", "--run", "stale"))
    ok(run_cli(ingested_home, "-q", "train", *TINY, "--data", "ml1m", "--run", "fine"))
    ok(run_cli(ingested_home, "evaluate", "--run", "stale"))  # its report is stale too
    ok(run_cli(ingested_home, "-q", "ingest", sources.ml100k_zip, "--name", "other", "--force"))
    result = ok(run_cli(ingested_home, "runs", "--compare", "--format", "json"))
    assert [r["run"] for r in result.json()] == ["fine"]
    assert "warning: skipped run stale" in result.stderr and "re-ingested" in result.stderr
    named = run_cli(ingested_home, "evaluate", "--runs", "fine,stale")
    assert_clean_error(named, "re-ingested")


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["evaluate", "--k", "0"], ["--k", "at least 1"]),
        (["evaluate", "--k", "abc"], ["--k", "abc"]),
        (["evaluate", "--k", "10,x"], ["--k", "10,x"]),
        (["evaluate", "--k", ","], ["--k"]),
        (["evaluate", "--relevant", "6"], ["--relevant", "1-5"]),
        (["evaluate", "--relevant", "0.5"], ["--relevant", "rating scale"]),
        (["evaluate", "--relevant", "nan"], ["--relevant"]),
        (["evaluate", "--relevant", "four"], ["--relevant"]),
        (["evaluate", "--runs", "item-run,nope"], ["nope", "aerec runs"]),
        (["evaluate", "--runs", ","], ["--runs"]),
        (["evaluate", "--run", "item-run", "--runs", "user-run"], ["not both"]),
        (["runs", "--compare", "--runs", "nope"], ["nope"]),
        (["runs", "--compare", "--k", "-3"], ["--k", "at least 1"]),
        (["runs", "--k", "5"], ["--compare"]),
        (["plot", "-o", "curves.jpg"], [".png", "curves.jpg"]),
        (["plot", "nope", "-o", "x.png"], ["nope"]),
    ],
)
def test_bad_input_is_one_clean_line(trained, args, fragments):
    assert_clean_error(run_cli(trained, *args), *fragments)


def test_plot_with_no_runs(ingested_home, tmp_path):
    target = tmp_path / "c.png"
    assert_clean_error(run_cli(ingested_home, "plot", "-o", target), "no trained run")
    assert not target.exists()


def test_plot_without_matplotlib_says_how_to_install(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    target = tmp_path / "c.png"
    line = assert_clean_error(run_cli(trained, "plot", "-o", target), "matplotlib")
    assert "pip install 'aerec[plot]'" in line
    assert not target.exists()


# --- plot ----------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_the_latest_run(trained, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "curves.png"  # into a folder that exists: -o never creates one
    result = ok(run_cli(trained, "plot", "-o", target))
    assert "user-run" in result.stdout and str(target) in result.stdout
    width, height = png_size(target.read_bytes())
    assert width > 600 and height > 300


def test_plot_several_runs_with_pretraining(trained, tmp_path):
    pytest.importorskip("matplotlib")
    home = copy_home(trained, tmp_path)
    stacked = ["--kind", "stacked", "--hidden", "6,3", "--epochs", "3", "--pretrain-epochs", "2"]
    ok(run_cli(home, "-q", "train", *stacked, "--run", "stacked-run"))
    history = (home / "runs" / "stacked-run" / "history.csv").read_text()
    assert "pretrain" in history
    plain = tmp_path / "plain.png"
    ok(run_cli(home, "plot", "item-run", "-o", plain))
    target = tmp_path / "three.PNG"
    result = ok(run_cli(home, "plot", "item-run", "user-run", "stacked-run", "-o", target))
    assert "item-run, user-run, stacked-run" in result.stdout
    _, plain_height = png_size(plain.read_bytes())
    _, height = png_size(target.read_bytes())
    assert height > plain_height  # the pretraining panel below the two curve panels


# --- a run trained with --objective ranking: lists, no stars --------------------------------


def test_evaluate_reports_a_ranking_runs_lists_and_no_rmse(planted):
    report = evaluate_json(planted, "--run", "ranks")
    assert report["objective"] == "ranking" and report["kind"] == "ranker"
    assert report["rmse"] is None and report["mae"] is None and report["n_fallback"] is None
    assert set(report["baselines"]) == {"global_mean", "bias"}  # the rating baselines stay
    assert all(scores["rmse"] > 0 for scores in report["baselines"].values())
    both = evaluate_json(planted, "--run", "both")
    assert both["objective"] == "both" and both["rmse"] > 0
    # The ranker does not depend on the rating autoencoder: with one seed, the same lists.
    assert "model_by_stars" not in report["ranking"]  # no stars to list by
    both["ranking"].pop("model_by_stars")
    assert report["ranking"] == both["ranking"]
    assert report["ranking"]["n_users"] == 3 and report["ranking"]["model"]["ndcg@10"] >= 0
    metrics = json.loads((planted / "runs" / "ranks" / "metrics.json").read_text())
    assert metrics["test"] == report


def test_evaluate_table_of_a_ranking_run_says_it_has_no_rmse(planted):
    lines = ok(run_cli(planted, "evaluate", "--run", "ranks")).stdout.splitlines()
    rows = [line.split("│") for line in lines if line.strip().startswith("ranker")]
    assert len(rows) == 2  # one row in each table
    assert [cell.strip() for cell in rows[0][1:]] == ["n/a", "n/a"]
    assert all(re.fullmatch(r"\d\.\d{4}", cell.strip()) for cell in rows[1][1:])
    assert any("predicts no stars" in line for line in lines)
    assert not any("predicted by the bias baseline" in line for line in lines)


def test_runs_with_and_without_a_rating_model_side_by_side(planted, tmp_path):
    reports = evaluate_json(planted, "--runs", "both,ranks")
    assert [report["rmse"] is None for report in reports] == [False, True]
    table = ok(run_cli(planted, "runs", "--compare", "--runs", "both,ranks")).stdout
    row = next(line.split("│") for line in table.splitlines() if line.startswith("ranks"))
    assert [cell.strip() for cell in row[1:5]] == ["ranker", "user", "-", "-"]
    listed = {r["run"]: r for r in ok(run_cli(planted, "runs", "--format", "json")).json()}
    assert listed["ranks"]["kind"] == "ranker"
    assert listed["ranks"]["val_rmse"] is None and listed["ranks"]["test_rmse"] is None
    assert "ranks" in ok(run_cli(planted, "runs")).stdout
    result = run_cli(planted, "plot", "ranks", "-o", tmp_path / "curves.png")
    assert_clean_error(result, "--objective ranking", "no rating-model epochs")


def test_runs_users_and_evaluate_as_csv(trained):
    runs = list(csv.DictReader(io.StringIO(ok(run_cli(trained, "runs", "--format", "csv")).stdout)))
    assert [r["run"] for r in runs] == ["item-run", "user-run"]
    users = ok(run_cli(trained, "users", "--limit", "3", "--format", "csv")).stdout.splitlines()
    assert users[0] == "user,train_ratings" and len(users) == 4
    report = evaluate_json(trained, "--run", "item-run")
    text = ok(run_cli(trained, "evaluate", "--run", "item-run", "--format", "csv")).stdout
    rows = {r["model"].split(" (")[0]: r for r in csv.DictReader(io.StringIO(text))}
    assert float(rows["denoising"]["rmse"]) == pytest.approx(report["rmse"])
    assert float(rows["denoising"]["ndcg@10"]) == pytest.approx(
        report["ranking"]["model"]["ndcg@10"]
    )
    ease = report["ranking"]["baselines"]["ease"]["ndcg@100"]
    assert float(rows["EASE"]["ndcg@100"]) == pytest.approx(ease)
    assert {"global mean", "bias baseline", "popularity", "denoising, by stars"} <= set(rows)
