"""The `aerec` command line: parses options, calls the library, prints. No work happens here.

Results go to stdout; progress, warnings and errors go to stderr. A problem the user can fix
(AerecError, or a bad option) is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from aerec_cli import __version__
from aerec_cli.config import TrainConfig
from aerec_cli.errors import AerecError

D = TrainConfig()  # the defaults shown in `aerec train --help`

# Piped output gets a wide console so tables are not cut at 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)


class AerecGroup(TyperGroup):
    """Turns AerecError and click usage errors into one line on stderr and an exit code."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        try:
            result = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except AerecError as exc:
            _fail(exc.message, exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except Exception as exc:
            # Click's usage errors (vendored inside newer Typer, so matched by shape).
            if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
                raise
            if not exc.format_message():  # no-args-is-help: the help is already shown
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            _fail(f"{exc.format_message()}{hint}", exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int):
    flat = " ".join(message.split())
    print(f"error: {flat}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=AerecGroup,
    help="aerec: rating prediction and top-N recommendation with autoencoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Settings:
    home: Path
    device: str
    seed: int
    threads: int | None
    verbose: bool
    quiet: bool

    def torch_device(self):
        from aerec_cli.device import configure_threads, select_device

        configure_threads(self.threads)
        return select_device(self.device)

    def note(self, message: str) -> None:
        if not self.quiet:
            err.print(message)


def _version(value: bool):
    if value:
        typer.echo(f"aerec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path = typer.Option(
        None,
        "--home",
        envvar="AEREC_HOME",
        help="Where datasets and runs live "
        "\\[default: the user data dir, e.g. ~/.local/share/aerec].",
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        envvar="AEREC_DEVICE",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, initialisation and shuffling."),
    threads: int = typer.Option(
        None, "--threads", help="CPU threads \\[default: the CPUs this process may use]."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Print more detail to stderr."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print no progress to stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    from aerec_cli.store import default_home

    if threads is not None and threads < 1:
        raise AerecError(f"--threads must be at least 1, not {threads}")
    ctx.obj = Settings((home or default_home()).expanduser(), device, seed, threads, verbose, quiet)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class ListFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _table(title: str | None, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(
            col,
            justify="left"
            if col
            in {
                "title",
                "genres",
                "run",
                "dataset",
                "kind",
                "name",
                "item",
                "path",
                "format",
                "orientation",
                "method",
            }
            else "right",
        )
    for row in rows:
        table.add_row(*[str(v) for v in row])
    return table


# --- ingest ------------------------------------------------------------------------------


@app.command()
def ingest(
    ctx: typer.Context,
    source: str = typer.Argument(
        ...,
        help="MovieLens zip, folder or ratings file; a known name (ml-100k, ml-1m, ml-10m, "
        "ml-20m, ml-25m, ml-32m, ml-latest-small) to download; or 'sample'.",
    ),
    name: str = typer.Option(None, "--name", help="Dataset name \\[default: from the source]."),
    split: str = typer.Option(
        "random",
        "--split",
        help="random, temporal (each user's latest ratings), or for ml-100k u1..u5, ua, ub.",
    ),
    test_fraction: float = typer.Option(
        0.1, "--test-fraction", help="Share of ratings (per user for temporal) that go to test."
    ),
    columns: str = typer.Option(
        None,
        "--columns",
        help="Generic CSV: user,item,rating[,timestamp] as header names or 0-based positions.",
    ),
    sep: str = typer.Option(
        None,
        "--sep",
        help="Generic CSV: the separator (e.g. ',', '\\t', '::') \\[default: sniffed].",
    ),
    skip_bad_lines: bool = typer.Option(
        False, "--skip-bad-lines", help="Skip malformed lines instead of stopping."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a dataset of the same name."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """Read MovieLens ratings, split them, and store sparse matrices and id maps."""
    from aerec_cli import store

    settings: Settings = ctx.obj
    settings.note(f"reading {source} ...")
    dataset, warnings = store.ingest(
        source,
        settings.home,
        name,
        force,
        split,
        test_fraction,
        settings.seed,
        columns,
        sep,
        skip_bad_lines,
    )
    for warning in warnings:
        err.print(f"warning: {warning}")
    meta = dataset.meta
    summary = {
        "name": dataset.name,
        "path": str(dataset.path),
        "format": meta["format"],
        "users": meta["users"],
        "items": meta["items"],
        "ratings": meta["ratings"],
        "train": meta["train"],
        "test": meta["test"],
        "rating_scale": meta["rating_scale"],
    }
    if output is OutputFormat.json:
        _print_json(summary)
        return
    density = meta["ratings"] / max(1, meta["users"] * meta["items"])
    split_info = meta["split"]
    split_text = split_info["method"] + (
        f" ({split_info['test_fraction']:g} test, seed {split_info['seed']})"
        if "seed" in split_info
        else ""
    )
    rows = [
        ["dataset", dataset.name],
        ["path", str(dataset.path)],
        ["format", meta["format"]],
        ["users", f"{meta['users']:,}"],
        ["items", f"{meta['items']:,}"],
        ["ratings", f"{meta['ratings']:,}"],
        ["density", f"{density:.2%}"],
        ["split", split_text],
        ["train / test", f"{meta['train']:,} / {meta['test']:,}"],
        ["rating scale", f"{meta['rating_scale'][0]:g}-{meta['rating_scale'][1]:g}"],
    ]
    table = Table(show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for row in rows:
        table.add_row(*row)
    out.print(table)
    total = max(meta["ratings"], 1)
    hist = Table(title="ratings by stars", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("stars", "count", "share", ""):
        hist.add_column(col, justify="right" if col != "" else "left")
    for stars, count in meta["histogram"].items():
        hist.add_row(stars, f"{count:,}", f"{count / total:.1%}", "#" * round(40 * count / total))
    out.print(hist)


@app.command()
def datasets(
    ctx: typer.Context,
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """List the stored datasets (the last one is the default)."""
    from aerec_cli import store

    metas = store.list_datasets(ctx.obj.home)
    if output is OutputFormat.json:
        _print_json(metas)
        return
    if not metas:
        ctx.obj.note(f"no datasets in {ctx.obj.home}; try: aerec ingest sample")
        return
    rows = [
        [
            m["name"],
            m["format"],
            f"{m['users']:,}",
            f"{m['items']:,}",
            f"{m['ratings']:,}",
            m["split"]["method"],
            m["created"][:19],
        ]
        for m in metas
    ]
    out.print(
        _table(None, ["name", "format", "users", "items", "ratings", "split", "created"], rows)
    )


@app.command()
def users(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="Dataset name \\[default: the latest]."),
    limit: int = typer.Option(20, "--limit", help="How many users to list (0: all)."),
):
    """List user ids of a dataset with their training rating counts."""
    import numpy as np

    from aerec_cli import store

    if limit < 0:
        raise AerecError(f"--limit must be 0 or more, not {limit}")
    dataset = store.load(ctx.obj.home, data)
    counts = np.diff(dataset.train.indptr)
    shown = len(dataset.user_ids) if limit == 0 else min(limit, len(dataset.user_ids))
    rows = [[dataset.user_ids[i], int(counts[i])] for i in range(shown)]
    out.print(
        _table(f"{dataset.name}: {len(dataset.user_ids):,} users", ["user", "train ratings"], rows)
    )


# --- train -------------------------------------------------------------------------------


def _parse_sizes(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise AerecError(f"--hidden takes integers like 500 or 500,250, not {text!r}") from exc


KINDS_EPILOG = """Kinds:\n
basic: undercomplete, one sigmoid bottleneck smaller than the input, linear output (AutoRec).\n
sparse: overcomplete layer; a KL penalty pulls each unit's mean activation to --sparsity-target.\n
denoising: observed inputs masked (--corruption) or jittered (--noise); loss on clean ratings.\n
contractive: adds --contraction-weight x the squared Frobenius norm of the encoder's Jacobian.\n
stacked: two or more layers, each pretrained greedily as a shallow autoencoder, then fine-tuned.\n
deep: a stack of RBMs pretrained by contrastive divergence, unrolled, then fine-tuned."""


@app.command(epilog=KINDS_EPILOG)
def train(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="Dataset name \\[default: the latest]."),
    kind: str = typer.Option(
        D.kind,
        "--kind",
        help="basic | sparse | denoising | contractive | stacked | deep (see below).",
    ),
    orientation: str = typer.Option(
        D.orientation,
        "--orientation",
        help="item (I-AutoRec: reconstruct each item's ratings) or user (U-AutoRec).",
    ),
    hidden: str = typer.Option(
        None,
        "--hidden",
        help="Layer sizes, e.g. 500 or 500,250 \\[default: basic/denoising/contractive "
        "min(300, inputs/2); sparse 1.25 x inputs; stacked/deep two layers, e.g. 500,250].",
    ),
    epochs: int = typer.Option(
        D.epochs, "--epochs", help="Most fine-tuning epochs; early stopping may end sooner."
    ),
    lr: float = typer.Option(D.lr, "--lr", help="Adam learning rate."),
    batch_size: int = typer.Option(D.batch_size, "--batch-size", help="Rating vectors per step."),
    weight_decay: float = typer.Option(
        D.weight_decay, "--weight-decay", help="L2 strength (AutoRec's lambda)."
    ),
    patience: int = typer.Option(
        D.patience,
        "--patience",
        help="Stop after this many epochs without a better validation RMSE.",
    ),
    val_fraction: float = typer.Option(
        D.val_fraction, "--val-fraction", help="Share of train ratings held out for validation."
    ),
    sparsity_target: float = typer.Option(
        D.sparsity_target,
        "--sparsity-target",
        help="sparse: target mean activation of each hidden unit.",
        rich_help_panel="Kind options",
    ),
    sparsity_weight: float = typer.Option(
        D.sparsity_weight,
        "--sparsity-weight",
        help="sparse: weight of the KL sparsity penalty.",
        rich_help_panel="Kind options",
    ),
    corruption: float = typer.Option(
        D.corruption,
        "--corruption",
        help="denoising: share of observed input ratings hidden (mask noise).",
        rich_help_panel="Kind options",
    ),
    noise: str = typer.Option(
        D.noise,
        "--noise",
        help="denoising: mask, gaussian or mask+gaussian.",
        rich_help_panel="Kind options",
    ),
    noise_std: float = typer.Option(
        D.noise_std,
        "--noise-std",
        help="denoising: std (stars) of Gaussian noise on observed ratings.",
        rich_help_panel="Kind options",
    ),
    contraction_weight: float = typer.Option(
        D.contraction_weight,
        "--contraction-weight",
        help="contractive: weight of the Jacobian penalty.",
        rich_help_panel="Kind options",
    ),
    pretrain_epochs: int = typer.Option(
        D.pretrain_epochs,
        "--pretrain-epochs",
        help="stacked/deep: pretraining epochs per layer (0: none).",
        rich_help_panel="Kind options",
    ),
    cd_steps: int = typer.Option(
        D.cd_steps,
        "--cd-steps",
        help="deep: Gibbs steps of contrastive divergence (CD-k).",
        rich_help_panel="Kind options",
    ),
    run: str = typer.Option(None, "--run", help="Run name \\[default: DATASET-KIND-TIME]."),
):
    """Train an autoencoder on a dataset's train split and save the run."""
    from aerec_cli import training
    from aerec_cli.progress import EpochProgress

    settings: Settings = ctx.obj
    config = TrainConfig(
        kind=kind,
        orientation=orientation,
        hidden=_parse_sizes(hidden),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        patience=patience,
        val_fraction=val_fraction,
        seed=settings.seed,
        sparsity_target=sparsity_target,
        sparsity_weight=sparsity_weight,
        corruption=corruption,
        noise=noise,
        noise_std=noise_std,
        contraction_weight=contraction_weight,
        pretrain_epochs=pretrain_epochs,
        cd_steps=cd_steps,
    )
    config.check()
    device = settings.torch_device()
    settings.note(f"training {kind} ({orientation}-based) on {device}")
    progress = EpochProgress(
        err, config.epochs, config.pretrain_epochs, not settings.quiet, settings.verbose
    )
    with progress:
        saved, result = training.train_run(
            settings.home, config, device, data, run, progress.update
        )
    out.print(
        f"run {saved.name}: best validation RMSE {result.best_val_rmse:.4f} at epoch "
        f"{result.best_epoch} ({saved.metrics['epochs_run']} epochs, {result.seconds:.1f} s)"
    )
    out.print(f"saved to {saved.path}")


@app.command()
def runs(
    ctx: typer.Context,
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """List trained runs with their validation and (once evaluated) test RMSE."""
    from aerec_cli import checkpoints

    found = checkpoints.list_runs(ctx.obj.home)
    records = [
        {
            "run": r.name,
            "dataset": r.dataset,
            "kind": r.config["kind"],
            "orientation": r.config["orientation"],
            "val_rmse": r.metrics.get("val_rmse"),
            "test_rmse": r.metrics.get("test", {}).get("rmse"),
            "epochs": r.metrics.get("epochs_run"),
            "created": r.config.get("created", "")[:19],
        }
        for r in found
    ]
    if output is OutputFormat.json:
        _print_json(records)
        return
    if not records:
        ctx.obj.note(f"no runs in {ctx.obj.home}; train one: aerec train")
        return
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [
        [
            r["run"],
            r["dataset"],
            r["kind"],
            r["orientation"],
            fmt(r["val_rmse"]),
            fmt(r["test_rmse"]),
            r["epochs"],
        ]
        for r in records
    ]
    out.print(
        _table(
            None, ["run", "dataset", "kind", "orientation", "val RMSE", "test RMSE", "epochs"], rows
        )
    )


# --- evaluate and recommend ---------------------------------------------------------------


@app.command()
def evaluate(
    ctx: typer.Context,
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """RMSE and MAE on the test split, with global-mean and bias baselines side by side."""
    from aerec_cli import evaluation

    report = evaluation.evaluate_run(ctx.obj.home, run, ctx.obj.torch_device())
    if output is OutputFormat.json:
        _print_json(report)
        return
    rows = [
        [
            f"{report['kind']} ({report['orientation']})",
            f"{report['rmse']:.4f}",
            f"{report['mae']:.4f}",
        ]
    ]
    labels = {"global_mean": "global mean", "bias": "bias baseline"}
    for key, scores in report["baselines"].items():
        rows.append([labels[key], f"{scores['rmse']:.4f}", f"{scores['mae']:.4f}"])
    title = f"run {report['run']} on {report['dataset']}: {report['n_test']:,} test ratings"
    out.print(_table(title, ["model", "RMSE", "MAE"], rows))
    if report["n_fallback"]:
        out.print(
            f"{report['n_fallback']:,} test ratings of users or items unseen in training "
            "were predicted by the bias baseline"
        )


@app.command()
def recommend(
    ctx: typer.Context,
    user: str = typer.Option(
        ..., "--user", help="Raw user id as in the source data (see: aerec users)."
    ),
    top: int = typer.Option(10, "--top", help="How many items."),
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    output: ListFormat = typer.Option(ListFormat.table, "--format", help="table, json or csv."),
):
    """Top-N items the user has not rated, with titles and predicted stars."""
    from aerec_cli import recommendation

    if top < 1:
        raise AerecError(f"--top must be at least 1, not {top}")
    result = recommendation.recommend_for_user(user, ctx.obj.home, ctx.obj.torch_device(), top, run)
    if output is ListFormat.json:
        _print_json(result)
    elif output is ListFormat.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["item", "title", "genres", "score"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(result["items"])
        typer.echo(buffer.getvalue(), nl=False)
    else:
        rows = [
            [i + 1, r["item"], r["title"], r["genres"], f"{r['score']:.2f}"]
            for i, r in enumerate(result["items"])
        ]
        out.print(
            _table(
                f"top {top} for user {user} (run {result['run']})",
                ["#", "item", "title", "genres", "stars"],
                rows,
            )
        )


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()


if __name__ == "__main__":
    main()
