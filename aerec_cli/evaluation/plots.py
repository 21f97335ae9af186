"""Learning curves of runs as a PNG, read from each run's ``history.csv``.

matplotlib is an optional extra (``pip install 'aerec[plot]'``). It is used through its
object-oriented API with the Agg canvas, so no window or GUI backend is ever involved.

The figure has one panel for the training loss and one for the validation RMSE per
fine-tuning epoch (one line per run, the best epoch marked). When a run was pretrained
(stacked, deep), a lower panel shows the pretraining reconstruction error of each layer in
turn, each layer's epochs in their own shaded band.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, run_store

INSTALL = "pip install 'aerec[plot]'"


@dataclass
class Curves:
    """One run's history, split into fine-tuning and pretraining epochs."""

    run: str
    label: str
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    # layer -> (epochs, reconstruction error), in pretraining order
    pretrain: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict)

    @property
    def best(self) -> tuple[int, float] | None:
        if not self.val_rmse:
            return None
        value = min(self.val_rmse)
        return self.epochs[self.val_rmse.index(value)], value


def read_curves(run: run_store.Run) -> Curves:
    try:
        rows = run.history()
    except OSError as exc:
        raise AerecError(f"run {run.name} has no readable history.csv; train it again") from exc
    curves = Curves(run.name, f"{run.name} ({run.config['kind']}, {run.config['orientation']})")
    try:
        for row in rows:
            if row.get("phase") == "pretrain":
                epochs, errors = curves.pretrain.setdefault(int(row["layer"]), ([], []))
                epochs.append(int(row["epoch"]))
                errors.append(float(row["train_loss"]))
            elif row.get("phase") == "train":
                curves.epochs.append(int(row["epoch"]))
                curves.train_loss.append(float(row["train_loss"]))
                curves.val_rmse.append(float(row["val_rmse"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AerecError(f"run {run.name} has a damaged history.csv; train it again") from exc
    if not curves.epochs and not run.has_model:
        raise AerecError(
            f"run {run.name} was trained with --objective ranking: it has no rating-model "
            "epochs to plot (its ranker's epochs are in its history.csv)"
        )
    if not curves.epochs:
        raise AerecError(f"run {run.name} has no training epochs in its history to plot")
    return curves


def check_output(path: Path) -> Path:
    if path.suffix.lower() != ".png":
        raise AerecError(f"-o must name a .png file, e.g. -o curves.png, not {str(path)!r}")
    if path.is_dir():
        raise AerecError(f"-o {str(path)!r} is a folder; name a .png file")
    if not path.parent.is_dir():  # checked before drawing; a typo must not create folders
        raise AerecError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise AerecError(f"aerec plot needs matplotlib, which is not installed: {INSTALL}") from exc
    return Figure, FigureCanvasAgg, FuncFormatter


def plot_runs(home: Path, names: Sequence[str], output: Path) -> dict:
    """Draw the learning curves of ``names`` (default: the latest run) into ``output``."""
    output = check_output(Path(output))
    if names:
        runs = [run_store.load_run(home, name) for name in dict.fromkeys(names)]
    else:
        runs = [run_store.load_run(home, None)]
    curves = [read_curves(run) for run in runs]
    # Bad runs are reported first, whether or not the optional matplotlib is installed.
    Figure, FigureCanvasAgg, FuncFormatter = _matplotlib()
    pretrained = [c for c in curves if c.pretrain]

    figure = Figure(figsize=(11, 7.6 if pretrained else 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2 if pretrained else 1, 2)
    loss_ax, val_ax = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    colors = [f"C{i % 10}" for i in range(len(curves))]
    for color, c in zip(colors, curves):
        loss_ax.plot(c.epochs, c.train_loss, color=color, label=c.label)
        best_epoch, best_rmse = c.best
        val_ax.plot(c.epochs, c.val_rmse, color=color, label=c.label)
        val_ax.plot(
            [best_epoch],
            [best_rmse],
            "o",
            color=color,
            label=f"best {best_rmse:.4f} at epoch {best_epoch}",
        )
    loss_ax.set(title="training loss (fine-tuning)", xlabel="epoch", ylabel="loss")
    val_ax.set(title="validation RMSE (fine-tuning)", xlabel="epoch", ylabel="RMSE (stars)")
    if all(v > 0 for c in curves for v in c.train_loss):
        loss_ax.set_yscale("log")  # the first epochs' loss would flatten the rest
        for axis in (loss_ax.yaxis.set_major_formatter, loss_ax.yaxis.set_minor_formatter):
            axis(FuncFormatter(lambda value, _: f"{value:g}"))
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
    val_ax.legend(fontsize="small")
    if len(curves) > 1 or pretrained:
        loss_ax.legend(fontsize="small")
    if pretrained:
        _pretraining_panel(figure.add_subplot(grid[1, :]), curves, colors)
    title = "learning curves: " + ", ".join(c.run for c in curves)
    figure.suptitle(title if len(title) <= 120 else f"learning curves of {len(curves)} runs")

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    try:
        atomic.write_bytes(output, buffer.getvalue(), export=True)
    except OSError as exc:
        raise AerecError(f"cannot write {output} ({exc.strerror or exc})") from exc
    return {"path": str(output), "runs": [c.run for c in curves]}


def _pretraining_panel(ax, curves: list[Curves], colors: list[str]) -> None:
    """Each layer's pretraining epochs one after the other, one shaded band per layer.

    A layer's band is as wide as the longest pretraining of that layer among the runs, so
    every run's layer l falls in band l.
    """
    widths: dict[int, int] = {}
    for c in curves:
        for layer, (epochs, _) in c.pretrain.items():
            widths[layer] = max(widths.get(layer, 0), max(epochs))
    starts, offset = {}, 0
    for layer in sorted(widths):
        starts[layer] = offset
        ax.axvspan(offset + 0.5, offset + widths[layer] + 0.5, color=f"C{layer % 2 + 7}", alpha=0.1)
        ax.text(
            offset + (widths[layer] + 1) / 2,
            1.0,
            f"layer {layer}",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize="small",
        )
        offset += widths[layer]
    for color, c in zip(colors, curves):
        for layer, (epochs, errors) in c.pretrain.items():
            xs = [starts[layer] + e for e in epochs]
            ax.plot(xs, errors, "o-", color=color, markersize=3, label=f"{c.run}, layer {layer}")
    ax.set(xlabel="pretraining epoch (layers in turn)", ylabel="reconstruction error")
    ax.set_title("pretraining, layer by layer", pad=16)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
