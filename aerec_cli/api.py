"""The Python face of aerec: every CLI command is a method of :class:`Home` or :class:`Run`,
as sqlite-utils' CLI mirrors its ``Database``. Both call the same library functions as the
CLI, so Python and the command line give the same numbers.

    from aerec_cli import Home

    home = Home("~/aerec")
    home.ingest("ml-100k.zip")
    run = home.train(kind="denoising", epochs=30)
    run.evaluate().rmse
    run.recommend("42", top=10).to_frame()

Results are typed: dataclasses with ``to_dict()`` (the CLI's JSON) and ``to_frame()``
(a pandas DataFrame of their rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aerec_cli.storage import run_store

if TYPE_CHECKING:
    import pandas as pd

    from aerec_cli.scoring.predictions import Predictions
    from aerec_cli.scoring.results import Outliers, Recommendations, SimilarItems
    from aerec_cli.storage.dataset_store import Dataset
    from aerec_cli.training.config import TrainConfig

Progress = Callable[[dict], None]  # called with each epoch's history row


@dataclass
class Evaluation:
    """`aerec evaluate`: rating error and top-k ranking on the test split, with baselines."""

    run: str
    dataset: str
    kind: str  # "ranker" for a run trained with objective="ranking"
    orientation: str
    objective: str  # what the run learnt: "both", "rating" or "ranking"
    # The model's rating error; None for a run trained with objective="ranking" (no stars).
    rmse: float | None
    mae: float | None
    n_test: int
    # Test ratings of users or items unseen in training (bias baseline); None without stars.
    n_fallback: int | None
    baselines: dict[str, dict[str, float]]  # rating baselines: {"bias": {"rmse", "mae"}, ...}
    ranking: dict[str, Any]  # k, relevant, n_users, model and baselines' metrics

    @classmethod
    def from_dict(cls, report: dict) -> Evaluation:
        return cls(**{name: report[name] for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def ranking_frame(self) -> pd.DataFrame:
        """One row per ranker (the model, then the baselines; a skipped EASE has none), one
        column per metric@k."""
        import pandas as pd

        baselines = self.ranking["baselines"]
        rows = {"model": self.ranking["model"]}
        rows |= {name: values for name, values in baselines.items() if values is not None}
        return pd.DataFrame.from_dict(rows, orient="index")


class Run:
    """A trained run (`aerec runs`); its methods are the commands that score it."""

    def __init__(self, home: Home, stored: run_store.Run):
        self.home = home
        self.stored = stored

    def __repr__(self) -> str:
        return f"Run({self.name!r}, kind={self.kind!r}, dataset={self.dataset!r})"

    name = property(lambda self: self.stored.name)
    path = property(lambda self: self.stored.path)
    kind = property(lambda self: self.stored.config["kind"])
    dataset = property(lambda self: self.stored.dataset)
    config = property(lambda self: self.stored.config)
    metrics = property(lambda self: self.stored.metrics)

    def evaluate(
        self, *, k: Sequence[int] | None = None, relevant: float | None = None
    ) -> Evaluation:
        """``k`` defaults to evaluate's cut-offs (10, 20, 100)."""
        from aerec_cli.evaluation import evaluator
        from aerec_cli.evaluation.metrics import DEFAULT_KS

        report = evaluator.evaluate_run(
            self.home.path, self.name, ks=DEFAULT_KS if k is None else k, relevant=relevant
        )
        return Evaluation.from_dict(report)

    def recommend(
        self,
        user: str | None = None,
        *,
        ratings: Iterable[tuple[str, float]] | None = None,
        top: int = 10,
        include_rated: bool = False,
        explain: bool = False,
    ) -> Recommendations:
        """A known user's list (``user``), or a new user's from ``ratings`` (item, stars)."""
        from aerec_cli.errors import AerecError
        from aerec_cli.scoring import recommendations

        options = dict(top=top, run=self.name, include_rated=include_rated, explain=explain)
        if (user is None) == (ratings is None):
            raise AerecError("give either a user id or a new user's ratings, not both")
        if user is not None:
            return recommendations.recommend_for_user(user, self.home.path, **options)
        listing, _ = recommendations.recommend_for_new_user(ratings, self.home.path, **options)
        return listing

    def predict(self, pairs: Iterable[Sequence], *, skip_unknown: bool = False) -> Predictions:
        """Predicted stars for (user, item) or (user, item, rating) pairs of raw ids; with
        ratings, RMSE and MAE over them too."""
        from aerec_cli.scoring.predictions import predict_pairs

        return predict_pairs(self.home.path, pairs, run=self.name, skip_unknown=skip_unknown)

    def recommend_all(self, *, top: int = 10, include_rated: bool = False) -> pd.DataFrame:
        """Every user's top N: columns user, rank, item, title, genres, score."""
        import pandas as pd

        from aerec_cli.scoring import recommendations

        _, columns = recommendations.recommend_all_users(
            self.home.path, top=top, run=self.name, include_rated=include_rated
        )
        return pd.DataFrame(columns)

    def similar(self, item: str, *, top: int = 10) -> SimilarItems:
        from aerec_cli.scoring.items import similar_items

        return similar_items(item, self.home.path, top=top, run=self.name)

    def embed(self) -> pd.DataFrame:
        """The learned item codes: columns item, title, code_0 .. code_{k-1}."""
        import pandas as pd

        from aerec_cli.scoring.items import item_embeddings

        _, columns = item_embeddings(self.home.path, run=self.name)
        return pd.DataFrame(columns)

    def outliers(self, *, by: str | None = None, top: int = 10, min_ratings: int = 1) -> Outliers:
        from aerec_cli.scoring.outliers import find_outliers

        return find_outliers(self.home.path, top=top, by=by, run=self.name, min_ratings=min_ratings)


class Home:
    """An aerec home: the folder that holds datasets and runs (`--home`)."""

    def __init__(self, path: str | Path | None = None):
        from aerec_cli.storage.paths import default_home

        self.path = Path(path).expanduser() if path is not None else default_home()

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    def ingest(self, source: str | Path, **options) -> Dataset:
        """`aerec ingest`: options as the CLI's (name, force, split, test_fraction, seed,
        columns, sep, skip_bad_lines, test). Warnings are in ``dataset.meta["warnings"]``."""
        from aerec_cli.storage import dataset_store

        dataset, _ = dataset_store.ingest(str(source), self.path, **options)
        return dataset

    def datasets(self) -> list[dict]:
        """The stored datasets' metadata, oldest first (the last is the default)."""
        from aerec_cli.storage import dataset_store, manage

        manage.clean(self.path)
        return dataset_store.list_datasets(self.path)

    def dataset(self, name: str | None = None) -> Dataset:
        from aerec_cli.storage import dataset_store

        return dataset_store.load(self.path, name)

    def train(
        self,
        config: TrainConfig | None = None,
        *,
        data: str | None = None,
        run: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        progress: Progress | None = None,
        **settings,
    ) -> Run:
        """`aerec train`: a TrainConfig, or its settings as keywords (kind="denoising",
        epochs=50, corruption=0.4, ...; objective="ranking" trains the ranker alone);
        ``progress`` gets each epoch's history row. Ctrl-C stops after the current epoch and
        keeps a resumable run (AerecError says how to resume), as in the CLI."""
        from aerec_cli.training import session
        from aerec_cli.training.config import TrainConfig

        config = config or TrainConfig.from_dict(settings)
        saved, _ = session.train(
            self.path,
            config,
            data=data,
            run=run,
            device=device,
            threads=threads,
            on_epoch=progress,
        )
        return Run(self, saved)

    def resume(self, run: str, *, device: str = "auto", progress: Progress | None = None) -> Run:
        """`aerec train --resume RUN`: finish an interrupted run with its own settings."""
        from aerec_cli.training import session

        saved, _ = session.train(self.path, resume=run, device=device, on_epoch=progress)
        return Run(self, saved)

    def runs(self) -> list[Run]:
        """Every readable run, oldest first (what interrupted writes left is cleaned first,
        as `aerec runs` does)."""
        from aerec_cli.storage import manage

        manage.clean(self.path)
        return [Run(self, stored) for stored in run_store.list_runs(self.path)]

    def run(self, name: str | None = None) -> Run:
        """Run ``name``, else the pinned run (:meth:`use`), else the latest."""
        return Run(self, run_store.load_run(self.path, name))

    def use(self, run: str | None) -> str | None:
        """`aerec use RUN`: pin ``run`` as the default run; None unpins (`aerec use
        --latest`). Returns the run pinned now (None: the latest run is the default)."""
        from aerec_cli.storage import manage

        if run is None:
            manage.use_latest(self.path)
            return None
        return manage.use(self.path, run).name

    def pinned(self) -> str | None:
        """The pinned run's name, or None."""
        from aerec_cli.storage import pin

        return pin.pinned_run(self.path)

    def delete_run(self, *names: str) -> bool:
        """`aerec runs --delete`: True when the pinned run was among them (now unpinned)."""
        from aerec_cli.storage import manage

        return manage.delete_runs(self.path, list(names))

    def delete_dataset(self, name: str, *, force: bool = False) -> list[str]:
        """`aerec datasets --delete`: refused while runs were trained on it, unless
        ``force``; returns those runs."""
        from aerec_cli.storage import manage

        return manage.delete_dataset(self.path, name, force=force)
