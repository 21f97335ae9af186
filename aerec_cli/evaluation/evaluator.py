"""`aerec evaluate`: a run's accuracy on its dataset's test split (see metrics.py), side by
side with baselines fitted on the same train split, recorded in the run's metrics.

The run is scored by the same numpy scorer as `recommend` and `predict` (scoring/scorer.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.evaluation import ease_baseline
from aerec_cli.evaluation.metrics import (
    DEFAULT_KS,
    bias_ranker,
    check_ks,
    default_relevant,
    mae,
    popularity_ranker,
    ranking_metrics,
    rmse,
)
from aerec_cli.models.baselines import BiasBaseline, GlobalMean
from aerec_cli.scoring.scorer import Scorer, open_run
from aerec_cli.storage import dataset_store, integrity, run_store


def check_relevant(relevant: float | None, dataset: dataset_store.Dataset) -> float:
    """The relevance threshold; by default 4 stars (the top star if the scale ends below 4)."""
    low, high = dataset.rating_scale
    if relevant is None:
        return default_relevant(dataset.rating_scale)
    if not (np.isfinite(relevant) and low <= relevant <= high):
        raise AerecError(
            f"--relevant must be within the rating scale of dataset {dataset.name} "
            f"({low:g}-{high:g}), not {relevant:g}"
        )
    return float(relevant)


# --- loading and evaluating runs -----------------------------------------------------------


@dataclass
class Loaded:
    """A run opened for scoring, with its dataset (for the test split)."""

    run: run_store.Run
    dataset: dataset_store.Dataset
    scorer: Scorer


def load_for_scoring(
    home: Path,
    run_name: str | None,
    *,
    dataset: dataset_store.Dataset | None = None,
    note: Callable[[str], None] | None = None,
) -> Loaded:
    """Open a run with the numpy scorer every command uses, and load its dataset (or reuse
    ``dataset`` when it is the run's)."""
    served = open_run(home, run_name, note)
    run = served.run
    if dataset is None or dataset.name != run.dataset:
        dataset = dataset_store.load(home, run.dataset)
    run.require_trained_on(dataset.meta_hash)
    return Loaded(run, dataset, served)


@dataclass
class _Reference:
    """What every run on one dataset is compared with: computed once per dataset (EASE's
    lambda search included), so `evaluate --runs A,B` fits the baselines once."""

    dataset: dataset_store.Dataset
    relevant: float
    ks: list[int]
    rating: dict[str, dict[str, float]] = field(default_factory=dict)
    n_users: int = 0
    ranking: dict[str, dict | None] = field(default_factory=dict)
    ease: dict = field(default_factory=dict)  # ease_lambda, ease_validation, ease_skipped

    @classmethod
    def build(
        cls,
        dataset: dataset_store.Dataset,
        relevant: float | None,
        ks: list[int],
        *,
        note: Callable[[str], None] | None = None,
    ) -> _Reference:
        relevant = check_relevant(relevant, dataset)
        test = dataset.test.tocoo()
        if test.nnz == 0:
            raise AerecError(
                f"dataset {dataset.name} has an empty test split; ingest it with a split"
            )
        users, items, actual = test.row, test.col, test.data.astype(np.float64)
        low, high = dataset.rating_scale
        bias = BiasBaseline.fit(dataset.train)
        ref = cls(dataset, relevant, ks)
        for name, baseline in (("global_mean", GlobalMean.fit(dataset.train)), ("bias", bias)):
            guess = np.clip(baseline.predict(users, items), low, high)
            ref.rating[name] = {
                "rmse": round(rmse(guess, actual), 6),
                "mae": round(mae(guess, actual), 6),
            }
        rankers = {"popularity": popularity_ranker(dataset.train), "bias": bias_ranker(bias)}
        ease = ease_baseline.fit_baseline(dataset.train, relevant, note=note)
        if ease.model is not None:
            rankers["ease"] = ease.model.scores
        ref.n_users, ref.ranking = ranking_metrics(
            rankers, dataset.train, dataset.test, relevant, ks
        )
        ref.ranking.setdefault("ease", None)  # skipped: null, with the reason beside it
        ref.ease = {
            "ease_lambda": None if ease.lam is None else ease_baseline.as_json(ease.lam),
            "ease_validation": ease_baseline.validation_json(ease.validation),
            "ease_skipped": ease.skipped,
        }
        return ref


def _evaluate_loaded(
    loaded: Loaded, ref: _Reference, note: Callable[[str], None] | None = None
) -> dict:
    dataset, scorer = loaded.dataset, loaded.scorer
    test = dataset.test.tocoo()
    users, items, actual = test.row, test.col, test.data.astype(np.float64)
    # A run trained with --objective ranking predicts no stars: its RMSE, MAE and fallback
    # count are null (the rating baselines are still reported beside them).
    stars = {"rmse": None, "mae": None, "n_fallback": None}
    if scorer.rates:
        predicted = scorer.predict(users, items)
        stars = {
            "rmse": round(rmse(predicted, actual), 6),
            "mae": round(mae(predicted, actual), 6),
            "n_fallback": int((~(scorer.user_seen[users] & scorer.item_seen[items])).sum()),
        }
    # The lists `recommend` makes: by the ranker where the run has one, else by the raw
    # (unclipped) stars, since clipping would tie every item predicted above the top star.
    listers = {"model": scorer.list_scores}
    by_stars = scorer.ranks and scorer.rates
    if by_stars:  # and the lists `recommend --order stars` makes, by the stars alone
        listers["model_by_stars"] = scorer.star_list_scores
    _, model_ranking = ranking_metrics(listers, dataset.train, dataset.test, ref.relevant, ref.ks)
    relevant = ref.relevant
    report = {
        "run": loaded.run.name,
        "dataset": dataset.name,
        "kind": loaded.run.config["kind"],
        "orientation": loaded.run.config["orientation"],
        "objective": loaded.run.objective,
        "rmse": stars["rmse"],
        "mae": stars["mae"],
        "n_test": int(test.nnz),
        "n_fallback": stars["n_fallback"],
        "baselines": {name: dict(scores) for name, scores in ref.rating.items()},
        "ranking": {
            "k": list(ref.ks),
            "relevant": int(relevant) if float(relevant).is_integer() else relevant,
            "n_users": ref.n_users,
            "model": model_ranking["model"],
            **({"model_by_stars": model_ranking["model_by_stars"]} if by_stars else {}),
            "baselines": {
                name: None if values is None else dict(values)
                for name, values in ref.ranking.items()
            },
            **ref.ease,
        },
    }
    unrecorded = loaded.run.update_metrics(test=report)
    if unrecorded and note is not None:
        note(f"warning: {unrecorded}")
    return report


def evaluate_run(
    home: Path,
    run_name: str | None = None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    relevant: float | None = None,
    note: Callable[[str], None] | None = None,
) -> dict:
    """Rating and ranking metrics on the saved test split, plus baselines.

    Records them in the run's metrics (``metrics.json``, under "test").
    """
    ks = check_ks(ks)
    loaded = load_for_scoring(home, run_name, note=note)
    reference = _Reference.build(loaded.dataset, relevant, ks, note=note)
    return _evaluate_loaded(loaded, reference, note)


def evaluate_runs(
    home: Path,
    run_names: Sequence[str],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    relevant: float | None = None,
    skip_broken: bool = False,
    reuse_stored: bool = False,
    on_run: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[str]]:
    """Evaluate several runs; runs on one dataset share its load and its baselines.

    Every name is checked before any work starts. With ``skip_broken``, a run that cannot
    be evaluated (its dataset deleted or re-ingested, its weights damaged) is left out and
    its problem returned; otherwise the first such problem stops everything. With
    ``reuse_stored``, a run whose last `evaluate` used these cut-offs and threshold on its
    dataset as it is now is not evaluated again (:func:`stored_report`).
    Returns (reports in the given order, problems).
    """
    ks = check_ks(ks)
    runs = [run_store.load_run(home, name) for name in dict.fromkeys(run_names)]
    references: dict[str, _Reference] = {}
    reports, problems = [], []
    for run in runs:
        stored = stored_report(home, run, ks, relevant) if reuse_stored else None
        if stored is not None:
            reports.append(stored)
            continue
        if on_run:
            on_run(run.name)
        try:
            ref = references.get(run.dataset)
            loaded = load_for_scoring(home, run.name, dataset=ref.dataset if ref else None)
            if ref is None:
                ref = _Reference.build(loaded.dataset, relevant, ks, note=note)
                references[run.dataset] = ref
            reports.append(_evaluate_loaded(loaded, ref, note))
        except AerecError as exc:
            if not skip_broken:
                raise
            problems.append(f"run {run.name}: {exc.message}")
    return reports, problems


def stored_report(
    home: Path, run: run_store.Run, ks: Sequence[int], relevant: float | None
) -> dict | None:
    """The report the run's last `evaluate` saved, if it answers the same question: the same
    cut-offs and relevance threshold, on the dataset version the run was trained on (a run
    changes only by `train --resume`, which clears its test report)."""
    report = run.metrics.get("test")
    if not isinstance(report, dict) or not isinstance(report.get("ranking"), dict):
        return None
    ranking = report["ranking"]
    scale = run.config.get("rating_scale")
    wanted = relevant
    if wanted is None and isinstance(scale, list) and len(scale) == 2:
        wanted = default_relevant((float(scale[0]), float(scale[1])))
    if ranking.get("k") != list(ks) or wanted is None or ranking.get("relevant") != wanted:
        return None
    try:
        meta = (home / "datasets" / run.dataset / "meta.json").read_bytes()
    except OSError:
        return None
    if not run.trained_on(integrity.version_digest(meta)):
        return None
    return report
