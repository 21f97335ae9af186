"""A rich progress display for training epochs (stderr), fed by the training callbacks.

It stays silent until training says what it will do (``plan``, from ``on_start``): under
torchrun only rank 0 is told, so the other processes print nothing.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    def __init__(self, console: Console, *, enabled: bool = True, verbose: bool = False):
        self.console = console
        self.enabled = enabled
        self.verbose = verbose and enabled
        self.active = False
        self.epochs = self.pretrain_epochs = self.rank_epochs = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[val]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = None
        self.phase = None

    def __enter__(self) -> EpochProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def plan(self, epochs: int, pretrain_epochs: int, rank_epochs: int = 0) -> None:
        """The bars' totals: the run's own settings (a resumed run's, not the defaults)."""
        self.epochs, self.pretrain_epochs = epochs, pretrain_epochs
        self.rank_epochs = rank_epochs
        self.active = self.enabled

    def update(self, row: dict) -> None:
        if not self.active:
            return
        phase = (row["phase"], row.get("layer", ""))
        if phase != self.phase:
            self.phase = phase
            label = row["phase"] + (f" layer {row['layer']}" if row.get("layer") else "")
            totals = {"train": self.epochs, "rank": self.rank_epochs}
            total = totals.get(row["phase"], self.pretrain_epochs)
            self.task = self.progress.add_task(label, total=total, loss="-", val="")
        val = _validation(row)
        if self.verbose:  # one line per epoch too, for logs
            self.progress.console.print(
                f"{row['phase']} {row['layer']} epoch {row['epoch']}: loss {row['train_loss']:.4f}"
                + (f", {val}" if val else "")
                + f" ({row['seconds']:.2f} s)"
            )
        fields = {"loss": f"{row['train_loss']:.4f}"} | ({"val": val} if val else {})
        self.progress.update(self.task, completed=row["epoch"], **fields)


def _validation(row: dict) -> str:
    """The epoch's validation figure, if it has one: RMSE (autoencoder) or NDCG@10 (ranker)."""
    for key, label in (("val_rmse", "val RMSE"), ("val_ndcg", "val NDCG@10")):
        if row.get(key) not in (None, ""):
            return f"{label} {row[key]:.4f}"
    return ""
