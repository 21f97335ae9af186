"""Scoring a run trained with --objective ranking (the ranker alone, no rating autoencoder):
run ``ranks`` of the planted tastes (``planted``, see conftest.py), beside ``both``.

Its lists follow the ranker and show no stars; what needs predicted stars (predict, outliers,
--order stars) is one clear error; similar and embed read the ranker's item embedding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from aerec_cli.scoring import scorer, serving_file
from aerec_cli.scoring.recommendations import EXPLAIN_METHODS
from aerec_cli.storage import run_store
from tests import fixtures
from tests.helpers import assert_clean_error, heavy_imports, ok, read_exported, run_cli

RUN = ["--run", "ranks"]
UNSEEN = "99"  # rated only in the test split: no model learnt anything about it


def rec(home, *args) -> dict:
    return ok(run_cli(home, "recommend", *args, *RUN, "--format", "json")).json()


def listed(result: dict) -> list[str]:
    return [entry["item"] for entry in result["items"]]


def rated_ids(served: scorer.Scorer, user: str) -> set[str]:
    cols, _ = served.user_ratings(served.user_index(user))
    return {served.items.ids[c] for c in cols}


def test_the_run_has_a_ranker_and_no_rating_model(planted):
    served = scorer.open_run(planted, "ranks")
    assert served.ranks and not served.rates
    assert served.run.objective == "ranking" and not served.run.has_model
    folder = planted / "runs" / "ranks"
    assert not (folder / run_store.WEIGHTS).exists()
    with safe_open(str(folder / serving_file.FILENAME), framework="np") as arrays:
        keys = set(arrays.keys())
        assert arrays.metadata()["n_layers"] == "0"
    assert {"ranker.table", "ranker.ease", "train.indptr", "baseline.mean"} <= keys
    assert not {k for k in keys if k.startswith("layer.")} | ({"item_hidden", "item_code"} & keys)


def test_a_known_users_list_follows_the_ranker_and_shows_no_stars(planted):
    served = scorer.open_run(planted, "ranks")
    result = rec(planted, "--user", "3", "--top", "5")
    assert result["method"] == "model"
    assert all(entry["score"] is None for entry in result["items"])
    # The list by hand: the ranker's scores, best first, without the user's rated items.
    scores = served.rank_block(np.array([served.user_index("3")]))[0]
    rated = rated_ids(served, "3")
    by_hand = [served.items.ids[i] for i in np.argsort(-scores, kind="stable")]
    assert listed(result) == [item for item in by_hand if item not in rated][:5]
    assert UNSEEN not in by_hand[: len(by_hand) - 1]  # -inf: last, never listed
    table = ok(run_cli(planted, "recommend", "--user", "3", "--top", "5", *RUN)).stdout
    assert "stars" not in table and result["items"][0]["title"] in table


def test_a_new_users_list_follows_the_ranker(planted, tmp_path):
    ratings = {"1": 5, "2": 5, "3": 4, "16": 1}
    result = rec(planted, *[f"--rate={item}={stars}" for item, stars in ratings.items()])
    assert result["method"] == "model" and result["ratings_used"] == 4
    assert all(entry["score"] is None for entry in result["items"])
    items = set(listed(result))
    assert len(items) == 10 and not items & (set(ratings) | {UNSEEN})
    assert len(items & {str(i) for i in fixtures.PLANTED_SIDES["a"]}) >= 8, items
    path = tmp_path / "mine.csv"
    path.write_text("item,rating\n" + "".join(f"{i},{s}\n" for i, s in ratings.items()))
    assert rec(planted, "--ratings-file", path) == result


def test_one_rating_is_enough_for_the_ranker_and_none_falls_back_to_popularity(planted):
    one = rec(planted, "--rate", "1=5", "--top", "3")
    assert one["method"] == "model" and one["ratings_used"] == 1
    none = rec(planted, "--rate", f"{UNSEEN}=5", "--top", "3")
    assert none["method"] == "popularity" and "the model needs 1" in none["note"]
    assert all(entry["score"] is None for entry in none["items"])


def test_every_users_list_is_written_without_stars(planted, tmp_path):
    path = tmp_path / "all.csv"
    ok(run_cli(planted, "recommend", "--all-users", "--top", "3", "-o", path, *RUN))
    table = read_exported(path)
    assert len(table) == 3 * 40 and table["score"].isna().all()
    served = scorer.open_run(planted, "ranks")
    mine = table[table["user"] == "3"]["item"].tolist()
    assert mine == listed(rec(planted, "--user", "3", "--top", "3"))
    assert not set(mine) & rated_ids(served, "3")


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--user", "3", "--item", "1"],
        ["outliers"],
        ["recommend", "--user", "3", "--order", "stars"],
        ["recommend", "--rate", "1=5", "--order", "stars"],
        ["recommend", "--all-users", "-o", "{tmp}/all.csv", "--order", "stars"],
    ],
    ids=["predict", "outliers", "order-stars", "new-user-order-stars", "all-users-order-stars"],
)
def test_what_needs_predicted_stars_is_one_clear_error(planted, tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli(planted, *args, *RUN)
    line = assert_clean_error(result, "run ranks has no rating model", "--objective ranking")
    assert "aerec train --objective both" in line
    assert not (tmp_path / "all.csv").exists()


def test_predict_from_a_file_is_refused_too(planted, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("user,item,rating\n3,1,4\n")
    assert_clean_error(run_cli(planted, "predict", "--pairs", path, *RUN), "no rating model")


def test_explain_leaves_each_rating_out_of_the_ranker(planted):
    served = scorer.open_run(planted, "ranks")
    result = rec(planted, "--user", "3", "--top", "3", "--explain")
    assert result["explain_method"] == EXPLAIN_METHODS["ranker"]
    cols, stars = served.user_ratings(served.user_index("3"))
    stars = stars.astype(np.float32)

    def scores(keep: np.ndarray) -> np.ndarray:
        return served.rank_rows(np.array([0, keep.sum()]), cols[keep], stars[keep])[0]

    everything = scores(np.ones(len(cols), dtype=bool))
    for entry in result["items"]:
        target = served.item_index(entry["item"])
        assert 1 <= len(entry["because"]) <= 3
        for reason in entry["because"]:
            assert reason["effect"] > 0  # only the ratings that raise the item
            assert "similarity" not in reason and reason["item"] in rated_ids(served, "3")
            without = scores(cols != served.item_index(reason["item"]))
            assert reason["effect"] == pytest.approx(everything[target] - without[target], abs=2e-4)
    new_user = rec(planted, "--rate", "1=5", "--rate", "2=4", "--top", "2", "--explain")
    assert all(1 <= len(entry["because"]) <= 2 for entry in new_user["items"])


def test_similar_and_embed_use_the_rankers_item_embedding(planted, tmp_path):
    model, _ = run_store.load_run(planted, "ranks").load_ranker(torch.device("cpu"))
    table = model.table.detach().numpy().astype(np.float64)
    path = tmp_path / "codes.csv"
    note = ok(run_cli(planted, "embed", "-o", path, *RUN)).stderr
    assert "200 dims (ranker item embedding" in note
    codes = read_exported(path)
    np.testing.assert_allclose(codes[[f"code_{k}" for k in range(200)]], table, atol=1e-6)

    served = scorer.open_run(planted, "ranks")
    seen = served.item_seen
    centred = table - table[seen].mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    cosine = unit @ unit[served.item_index("1")]
    candidates = [i for i in np.argsort(-cosine, kind="stable") if seen[i] and i != 0]
    result = ok(run_cli(planted, "similar", "--item", "1", "--top", "3", *RUN, "--format", "json"))
    found = result.json()
    assert found["representation"] == "ranker item embedding"
    assert [e["item"] for e in found["items"]] == [served.items.ids[i] for i in candidates[:3]]
    for entry, index in zip(found["items"], candidates):
        assert entry["similarity"] == pytest.approx(cosine[index], abs=1e-4)


def test_a_lost_serving_file_is_rebuilt_without_a_rating_model(planted):
    before = rec(planted, "--user", "5")
    (planted / "runs" / "ranks" / serving_file.FILENAME).unlink()
    assert rec(planted, "--user", "5") == before
    assert (planted / "runs" / "ranks" / serving_file.FILENAME).is_file()


def test_recommend_imports_neither_torch_nor_pandas(planted, tmp_path):
    args = ["--home", planted, "-q", "recommend", "--user", "5", *RUN]
    assert "heavy: []" in heavy_imports(args, tmp_path)
