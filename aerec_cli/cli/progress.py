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
        self.epochs = self.pretrain_epochs = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val RMSE {task.fields[val]}"),
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

    def plan(self, epochs: int, pretrain_epochs: int) -> None:
        """The bars' totals: the run's own settings (a resumed run's, not the defaults)."""
        self.epochs, self.pretrain_epochs = epochs, pretrain_epochs
        self.active = self.enabled

    def update(self, row: dict) -> None:
        if not self.active:
            return
        phase = (row["phase"], row.get("layer", ""))
        if phase != self.phase:
            self.phase = phase
            label = "train" if row["phase"] == "train" else f"{row['phase']} layer {row['layer']}"
            total = self.epochs if row["phase"] == "train" else self.pretrain_epochs
            self.task = self.progress.add_task(label, total=total, loss="-", val="-")
        val = row.get("val_rmse")
        if self.verbose:  # one line per epoch too, for logs
            self.progress.console.print(
                f"{row['phase']} {row['layer']} epoch {row['epoch']}: loss {row['train_loss']:.4f}"
                + ("" if val in (None, "") else f", val RMSE {val:.4f}")
                + f" ({row['seconds']:.2f} s)"
            )
        self.progress.update(
            self.task,
            completed=row["epoch"],
            loss=f"{row['train_loss']:.4f}",
            val="-" if val in (None, "") else f"{val:.4f}",
        )
