"""Typed results of the scoring commands: what Python callers get back.

``to_dict`` gives the JSON that the CLI prints (``--format json``); ``to_frame`` a pandas
DataFrame of the rows, for analysis. pandas is imported only there, so the fast
`recommend` path does not load it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)


@dataclass
class Reason:
    """A rated item that weighs in a recommendation, with its signed effect on the score."""

    item: str
    title: str
    rating: float
    effect: float
    similarity: float | None = None  # item-oriented runs: cosine of the two item codes

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.similarity is None:
            del out["similarity"]
        return out


@dataclass
class Recommended:
    """One recommended item: its predicted stars (``score``; None for a run trained with
    --objective ranking, which predicts none) and, on request, the user's own rating
    (``include_rated``) and the reasons (``explain``)."""

    item: str
    title: str
    genres: str
    score: float | None
    rating: float | None = None
    because: list[Reason] = field(default_factory=list)


@dataclass
class Recommendations:
    """A top-N list for a known user (``user`` set) or a new one (``user`` None)."""

    run: str
    method: str  # "model", or "popularity" for a new user with too few usable ratings
    items: list[Recommended]
    user: str | None = None
    ratings_used: int | None = None  # new users: ratings the model could use
    note: str | None = None  # how a popularity list was made
    explain_method: str | None = None  # set when the reasons were asked for
    include_rated: bool = False
    dataset: str | None = None  # the run's dataset (said with the run: either may be a default)

    def to_dict(self) -> dict:
        out: dict = {"user": self.user, "run": self.run, "dataset": self.dataset}
        out["method"] = self.method
        if self.user is None:
            out["ratings_used"] = self.ratings_used
        out["items"] = [self._entry(entry) for entry in self.items]
        if self.note is not None:
            out["note"] = self.note
        if self.explain_method is not None:
            out["explain_method"] = self.explain_method
        return out

    def _entry(self, entry: Recommended) -> dict:
        out = {k: getattr(entry, k) for k in ("item", "title", "genres", "score")}
        if self.include_rated:
            out["rating"] = entry.rating
        if self.explain_method is not None:
            out["because"] = [reason.to_dict() for reason in entry.because]
        return out

    def to_frame(self):
        rows = self.to_dict()["items"]
        return _frame([{"rank": rank, **row} for rank, row in enumerate(rows, 1)])


@dataclass
class SimilarItem:
    item: str
    title: str
    genres: str
    similarity: float


@dataclass
class SimilarItems:
    """The items nearest to ``item`` in the run's learned item representation."""

    item: str
    title: str
    run: str
    representation: str
    items: list[SimilarItem]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_frame(self):
        return _frame([asdict(entry) for entry in self.items])


@dataclass
class Outlier:
    """A user or item whose training ratings the model reconstructs badly."""

    id: str
    ratings: int
    mean_rating: float
    rmse: float
    title: str | None = None  # items only


@dataclass
class Outliers:
    run: str
    by: str  # "user" or "item"
    train_rmse: float
    min_ratings: int
    rows: list[Outlier]

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("run", "by", "train_rmse", "min_ratings")}
        out["rows"] = [self._row(row) for row in self.rows]
        return out

    def _row(self, row: Outlier) -> dict:
        out: dict = {self.by: row.id}
        if self.by == "item":
            out["title"] = row.title
        out.update(ratings=row.ratings, mean_rating=row.mean_rating, rmse=row.rmse)
        return out

    def to_frame(self):
        return _frame(self.to_dict()["rows"])
