"""Training progress on stderr, fed by the training callbacks: rich bars on a terminal, a plain
line every few epochs or seconds otherwise (a log file, CI, a pipe).

It stays silent until training says what it will do (``plan``, from ``on_start``): under
torchrun only rank 0 is told, so the other processes print nothing.

A bar's total is the last epoch the phase can reach: fine-tuning stops ``patience`` epochs
after its best one, so its total follows the best epoch so far rather than sitting at --epochs,
and a phase that ends early is shown whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Plain lines (stderr not a terminal): one at a phase's first epoch, then one every
# EVERY_EPOCHS epochs or EVERY_SECONDS seconds, whichever comes first, and one at its end.
EVERY_EPOCHS = 10
EVERY_SECONDS = 10.0


@dataclass
class Plan:
    """What a training runs: the run's own settings (a resumed run's, not the defaults) and,
    for a resumed run, where it stands."""

    epochs: int
    pretrain_epochs: int = 0
    rank_epochs: int = 0
    patience: int | None = None  # None: no early stopping (the bar's total is --epochs)
    best_epoch: int = 0
    best_rmse: float | None = None
    members: int = 1  # --ensemble: the networks trained in turn, each with its own bars


@dataclass
class _Phase:
    label: str
    name: str
    total: int
    started: float
    first_epoch: int
    task: object = None
    last_row: dict | None = None
    printed_epoch: int = 0
    printed_at: float = 0.0


class EpochProgress:
    def __init__(self, console: Console, *, enabled: bool = True, verbose: bool = False):
        self.console = console
        self.enabled = enabled
        self.verbose = verbose and enabled
        self.plain = enabled and not console.is_terminal
        self.active = False
        self.plan_: Plan | None = None
        self.best: tuple[int, float | None] = (0, None)  # (epoch, RMSE) of fine-tuning
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[val]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled or self.plain,
            transient=False,
        )
        self.phase: _Phase | None = None

    def __enter__(self) -> EpochProgress:
        self.progress.start()
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:  # a finished training: its last phase is whole
            self._end_phase()
        self.progress.stop()

    def plan(self, plan: Plan) -> None:
        self.plan_ = plan
        self.best = (plan.best_epoch, plan.best_rmse)
        self.active = self.enabled

    def update(self, row: dict) -> None:
        if not self.active:
            return
        key = f"{row.get('member', '')} {row['phase']} {row.get('layer', '')}".strip()
        if self.phase is None or key != self.phase.name:
            new_member = self.phase is not None and row.get("member") != (
                self.phase.last_row or {}
            ).get("member")
            self._end_phase()
            if new_member:
                self.best = (0, None)  # a new member: its own early stopping
            self._start_phase(row, key)
        phase = self.phase
        phase.last_row = row
        if row["phase"] == "train":
            self._track_best(row)
            phase.total = self._train_total(row["epoch"])
        val = _validation(row)
        if self.verbose:  # one line per epoch, for logs
            self.console.print(
                (f"member {row['member']} " if row.get("member") else "")
                + f"{row['phase']} {row['layer']} epoch {row['epoch']}: "
                + f"loss {row['train_loss']:.4f}"
                + (f", {val}" if val else "")
                + f" ({row['seconds']:.2f} s)",
                soft_wrap=True,  # one line per epoch, however narrow the console
            )
        elif self.plain and self._line_due(phase, row["epoch"]):
            self._print_line(phase, row)
        fields = {"loss": f"{row['train_loss']:.4f}"} | ({"val": val} if val else {})
        self.progress.update(phase.task, total=phase.total, completed=row["epoch"], **fields)

    # -- phases

    def _start_phase(self, row: dict, key: str) -> None:
        plan = self.plan_
        label = row["phase"] + (f" layer {row['layer']}" if row.get("layer") else "")
        if row.get("member"):
            label = f"member {row['member']}/{plan.members} {label}"
        totals = {"train": plan.epochs, "rank": plan.rank_epochs}
        total = totals.get(row["phase"], plan.pretrain_epochs)
        now = time.monotonic()
        self.phase = _Phase(label, key, total, now, row["epoch"], printed_at=now)
        self.phase.task = self.progress.add_task(label, total=total, loss="-", val="")

    def _end_phase(self) -> None:
        """The phase is over: its bar shows whole, and a plain log gets its last line."""
        phase = self.phase
        if phase is None or phase.last_row is None:
            return
        done = phase.last_row["epoch"]
        phase.total = done
        self.progress.update(phase.task, total=done, completed=done)
        if self.plain and not self.verbose and phase.printed_epoch != done:
            self._print_line(phase, phase.last_row)

    def _track_best(self, row: dict) -> None:
        value = row.get("val_rmse")
        if isinstance(value, (int, float)) and (
            self.best[1] is None or value < self.best[1] - 1e-6
        ):
            self.best = (row["epoch"], float(value))

    def _train_total(self, epoch: int) -> int:
        """The last epoch fine-tuning can reach: ``patience`` after the best one so far."""
        plan = self.plan_
        if plan.patience is None:
            return plan.epochs
        return max(epoch, min(plan.epochs, self.best[0] + plan.patience))

    # -- plain lines

    @staticmethod
    def _line_due(phase: _Phase, epoch: int) -> bool:
        if phase.printed_epoch == 0:
            return True
        waited = time.monotonic() - phase.printed_at
        return epoch - phase.printed_epoch >= EVERY_EPOCHS or waited >= EVERY_SECONDS

    def _print_line(self, phase: _Phase, row: dict) -> None:
        epoch = row["epoch"]
        parts = [f"loss {row['train_loss']:.4f}"]
        if val := _validation(row):
            parts.append(val)
        if row["phase"] == "train" and self.best[1] is not None:
            parts.append(f"best {self.best[1]:.4f} at epoch {self.best[0]}")
        done = epoch - phase.first_epoch + 1
        left = phase.total - epoch
        if left > 0 and done > 0:
            seconds = (time.monotonic() - phase.started) / done * left
            # Early stopping may end fine-tuning and the ranker sooner.
            bound = "about" if row["phase"] == "pretrain" else "at most"
            parts.append(f"{bound} {_clock(seconds)} left")
        line = f"{phase.label} epoch {epoch}/{phase.total}: " + ", ".join(parts)
        self.console.print(line, soft_wrap=True)
        phase.printed_epoch, phase.printed_at = epoch, time.monotonic()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _validation(row: dict) -> str:
    """The epoch's validation figure, if it has one: RMSE (autoencoder) or NDCG@10 (ranker)."""
    for key, label in (("val_rmse", "val RMSE"), ("val_ndcg", "val NDCG@10")):
        if row.get(key) not in (None, ""):
            return f"{label} {row[key]:.4f}"
    return ""
