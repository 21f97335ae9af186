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
from aerec_cli.errors import AerecError
from aerec_cli.training.config import TrainConfig

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
        from aerec_cli.training.device import configure_threads, select_device

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
    from aerec_cli.storage.paths import default_home

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
                "because",
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
    from aerec_cli.storage import dataset_store

    settings: Settings = ctx.obj
    settings.note(f"reading {source} ...")
    dataset, warnings = dataset_store.ingest(
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
    from aerec_cli.storage import dataset_store

    metas = dataset_store.list_datasets(ctx.obj.home)
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

    from aerec_cli.storage import dataset_store

    if limit < 0:
        raise AerecError(f"--limit must be 0 or more, not {limit}")
    dataset = dataset_store.load(ctx.obj.home, data)
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
        "min(300, inputs/2); sparse 1.25 x inputs; stacked/deep min(500, inputs/2) and half that].",
    ),
    epochs: int = typer.Option(
        D.epochs, "--epochs", help="Most fine-tuning epochs; early stopping may end sooner."
    ),
    lr: float = typer.Option(D.lr, "--lr", help="Adam learning rate."),
    batch_size: int = typer.Option(D.batch_size, "--batch-size", help="Rating vectors per step."),
    weight_decay: float = typer.Option(
        None,
        "--weight-decay",
        help="L2 strength (AutoRec's lambda) \\[default: 100; stacked and deep 30].",
    ),
    patience: int = typer.Option(
        D.patience,
        "--patience",
        help="Stop after this many epochs without a better validation RMSE.",
    ),
    lr_patience: int = typer.Option(
        D.lr_patience,
        "--lr-patience",
        help="Halve the learning rate after this many epochs without a better validation "
        "RMSE (0: never).",
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
    resume: str = typer.Option(
        None,
        "--resume",
        help="Continue run RUN, stopped by Ctrl-C or SIGTERM, from its last whole epoch "
        "(its own settings are used; other training flags are ignored).",
        metavar="RUN",
    ),
):
    """Train an autoencoder on a dataset's train split and save the run."""
    from aerec_cli.cli.progress import EpochProgress
    from aerec_cli.training import distributed, session

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
        lr_patience=lr_patience,
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
    world, device = distributed.join(settings.torch_device())
    try:
        speaks = world.is_main and not settings.quiet
        if speaks:
            where = f"{world.size} processes" if world.active else str(device)
            what = f"resuming run {resume}" if resume else f"training {kind} ({orientation}-based)"
            settings.note(f"{what} on {where}")
        progress = EpochProgress(
            err, config.epochs, config.pretrain_epochs, speaks, settings.verbose
        )
        with progress, session.stop_on_signals() as stop:
            if resume:
                saved, result = session.resume_run(
                    settings.home, resume, device, progress.update, world, stop
                )
            else:
                saved, result = session.train_run(
                    settings.home, config, device, data, run, progress.update, world, stop
                )
    finally:
        distributed.leave()
    if saved is None:  # not rank 0 under torchrun: rank 0 reports and saves
        return
    out.print(
        f"run {saved.name}: best validation RMSE {result.best_val_rmse:.4f} at epoch "
        f"{result.best_epoch} ({saved.metrics['epochs_run']} epochs, {result.seconds:.1f} s)"
    )
    out.print(f"saved to {saved.path}")


@app.command()
def runs(
    ctx: typer.Context,
    compare: bool = typer.Option(
        False,
        "--compare",
        help="Evaluate the runs (all, or those in --runs) and compare them side by side.",
    ),
    names: str = typer.Option(
        None, "--runs", help="With --compare: the runs to compare, e.g. A,B,C \\[default: all]."
    ),
    k: str = typer.Option(None, "--k", help="With --compare: the top-k cut-off \\[default: 10]."),
    relevant: float = typer.Option(
        None, "--relevant", help="With --compare: stars from which a test rating is relevant."
    ),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """List trained runs with their validation and (once evaluated) test RMSE.

    With --compare, evaluate them and show RMSE, MAE and ranking metrics side by side.
    """
    from aerec_cli.storage import run_store

    if not compare and (names is not None or k is not None or relevant is not None):
        raise AerecError("--runs, --k and --relevant go with --compare: aerec runs --compare ...")
    if compare:
        chosen = _parse_names(names) if names is not None else None
        _compare_runs(ctx.obj, chosen, k or "10", relevant, output)
        return
    found = run_store.list_runs(ctx.obj.home)
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


def _parse_ks(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        ks = [int(part) for part in parts]
    except ValueError:
        ks = []
    if not ks or len(ks) != len(parts):
        raise AerecError(f"--k takes positive integers like 10 or 10,20, not {text!r}")
    for value in ks:
        if value < 1:
            raise AerecError(f"--k must be at least 1, not {value}")
    return list(dict.fromkeys(ks))


def _parse_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise AerecError(f"--runs takes run names separated by commas, not {text!r}")
    return names


RANKING_LABELS = {
    "precision": "P",
    "recall": "R",
    "ndcg": "NDCG",
    "mrr": "MRR",
    "hit_rate": "HR",
    "coverage": "cov",
}


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_evaluation(report: dict) -> None:
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
    ranking = report["ranking"]
    relevant = f"{ranking['relevant']:g}"
    if not ranking["n_users"]:
        out.print(f"no user has a test rating of {relevant} stars or more: no ranking metrics")
        return
    columns = ["model"] + [f"{RANKING_LABELS[m]}@{k}" for k in ranking["k"] for m in RANKING_LABELS]
    rows = []
    for label, values in (
        (f"{report['kind']} ({report['orientation']})", ranking["model"]),
        ("popularity", ranking["baselines"]["popularity"]),
        ("bias baseline", ranking["baselines"]["bias"]),
    ):
        rows.append(
            [label] + [_num(values[f"{m}@{k}"]) for k in ranking["k"] for m in RANKING_LABELS]
        )
    title = (
        f"top-k ranking for {ranking['n_users']:,} users with a test rating >= {relevant} "
        "(candidates: every item not rated in training)"
    )
    out.print(_table(title, columns, rows))


def _print_comparison(reports: list[dict]) -> None:
    """One row per run; the best value of each metric column in bold green (or marked *)."""
    from rich.text import Text

    k = reports[0]["ranking"]["k"][0]
    metrics = [("RMSE", "rmse", min), ("MAE", "mae", min)] + [
        (f"{label}@{k}", f"{m}@{k}", max) for m, label in RANKING_LABELS.items()
    ]

    def value(report: dict, key: str):
        if key in ("rmse", "mae"):
            return report[key]
        return report["ranking"]["model"].get(key) if k in report["ranking"]["k"] else None

    plain = out.color_system is None  # piped or NO_COLOR: mark the best with a star instead
    best = {}
    for _, key, pick in metrics:
        present = [v for v in (value(r, key) for r in reports) if v is not None]
        best[key] = pick(present) if len(reports) > 1 and present else None
    header = ["run", "dataset", "kind", "orientation"] + [label for label, _, _ in metrics]
    rows = []
    for report in reports:
        row = [report["run"], report["dataset"], report["kind"], report["orientation"]]
        for _, key, _ in metrics:
            number = value(report, key)
            if number is not None and number == best[key]:
                row.append(Text(_num(number) + ("*" if plain else ""), style="bold green"))
            else:
                row.append(_num(number) + (" " if plain and len(reports) > 1 else ""))
        rows.append(row)
    relevant = f"{reports[0]['ranking']['relevant']:g}"
    runs_text = f"{len(reports)} run{'s' if len(reports) > 1 else ''}"
    title = f"{runs_text} on the test split (ranking: top {k}, relevant >= {relevant})"
    table = _table(title, header, [])
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if len(reports) > 1:
        out.print(
            "* best in each column (lowest RMSE/MAE, highest otherwise)"
            if plain
            else "best in each column in bold green (lowest RMSE/MAE, highest otherwise)"
        )


def _compare_runs(
    settings: Settings,
    names: list[str] | None,
    k_text: str,
    relevant: float | None,
    output: OutputFormat,
) -> None:
    """Evaluate several runs (all when ``names`` is None) and print them side by side."""
    from aerec_cli.evaluation import evaluator
    from aerec_cli.storage import run_store

    ks = _parse_ks(k_text)
    every = names is None
    if every:
        names = [r.name for r in run_store.list_runs(settings.home)]
        if not names:
            if output is OutputFormat.json:
                _print_json([])
            else:
                settings.note(f"no runs in {settings.home}; train one: aerec train")
            return
    device = settings.torch_device()
    reports, problems = evaluator.evaluate_runs(
        settings.home,
        names,
        device,
        ks,
        relevant,
        skip_broken=every,
        on_run=lambda name: settings.note(f"evaluating {name} ..."),
    )
    for problem in problems:
        err.print(f"warning: skipped {problem}", soft_wrap=True)
    if output is OutputFormat.json:
        _print_json(reports)
    elif reports:
        _print_comparison(reports)


@app.command()
def evaluate(
    ctx: typer.Context,
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    names: str = typer.Option(
        None, "--runs", help="Several runs side by side in one table, e.g. A,B,C."
    ),
    k: str = typer.Option("10", "--k", help="Top-k cut-offs for the ranking metrics, e.g. 10,20."),
    relevant: float = typer.Option(
        None,
        "--relevant",
        help="A test rating of this many stars or more is relevant \\[default: 4].",
    ),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """RMSE/MAE and top-k ranking metrics on the test split, next to baselines."""
    from aerec_cli.evaluation import evaluator

    ks = _parse_ks(k)
    if names is not None:
        if run is not None:
            raise AerecError("use --run NAME for one run or --runs A,B,C for several, not both")
        _compare_runs(ctx.obj, _parse_names(names), k, relevant, output)
        return
    report = evaluator.evaluate_run(ctx.obj.home, run, ctx.obj.torch_device(), ks, relevant)
    if output is OutputFormat.json:
        _print_json(report)
    else:
        _print_evaluation(report)


@app.command()
def plot(
    ctx: typer.Context,
    names: list[str] = typer.Argument(
        None, metavar="RUN", help="Runs to plot \\[default: the latest run]."
    ),
    output: Path = typer.Option(Path("curves.png"), "-o", "--output", help="The PNG to write."),
):
    """Learning curves as a PNG: training loss and validation RMSE per epoch, pretraining.

    Needs matplotlib: pip install 'aerec\\[plot]'.
    """
    from aerec_cli.evaluation import plots

    result = plots.plot_runs(ctx.obj.home, names or [], output)
    out.print(f"wrote {result['path']} ({', '.join(result['runs'])})")


RECOMMEND_EPILOG = "\n\n".join(
    [
        "Who:",
        "--user ID: a user in the data. Their training ratings are left out unless "
        "--include-rated.",
        "--rate ITEM=STARS (repeatable) or --ratings-file FILE (CSV item,rating with raw item "
        "ids, header optional): a new user, scored without retraining. A user-oriented model "
        "encodes the new rating vector; an item-oriented model fits the new user's output unit "
        "(r_j ~ h_j.w + b on the rated items' last hidden layers h_j) by ridge regression, shrunk "
        "towards the average trained user. Unknown item ids are warned about and dropped. With "
        "fewer than 3 usable ratings the list is ranked by damped popularity, (sum of ratings + "
        "10 x global mean) / (count + 10), and says so.",
        "--all-users: every user's top N, written to -o FILE (.csv, .parquet or .jsonl; columns "
        "user, rank, item, title, score).",
        "--explain: for each item, the 3 rated items that weigh most in it, with sign. "
        "User-oriented model: leave-one-out, the change in the item's predicted stars when that "
        "one rating is dropped from the user's input. Item-oriented model (a user's other "
        "ratings are not part of an item's input): cosine similarity of the two items' encoder "
        "codes (centred on the mean code) x (the rating - the user's mean rating).",
    ]
)


def _because(reasons: list[dict]) -> str:
    """One line per reason: title (rating[, code similarity], signed effect)."""
    return "\n".join(
        f"{r['title']} (rated {r['rating']:g}, "
        + (f"similarity {r['similarity']:+.2f}, " if "similarity" in r else "")
        + f"{r['effect']:+.2f})"
        for r in reasons
    )


def _echo_csv(fields: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False)


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _check_device(settings: Settings) -> None:
    """recommend, similar, embed and outliers score with numpy on the CPU (no torch import);
    a --device other than auto or cpu is still checked, so asking for an absent one fails."""
    if settings.device.strip().lower() not in ("auto", "cpu"):
        settings.torch_device()


@app.command(epilog=RECOMMEND_EPILOG)
def recommend(
    ctx: typer.Context,
    user: str = typer.Option(
        None, "--user", help="Raw user id as in the source data (see: aerec users)."
    ),
    rate: list[str] = typer.Option(
        None, "--rate", help="A new user's rating ITEM=STARS, raw item id (repeat the option)."
    ),
    ratings_file: Path = typer.Option(
        None,
        "--ratings-file",
        help="A new user's ratings: CSV of item,rating (raw item ids; header optional).",
    ),
    all_users: bool = typer.Option(
        False, "--all-users", help="Top N of every user, written to -o FILE."
    ),
    top: int = typer.Option(10, "--top", help="How many items (per user)."),
    include_rated: bool = typer.Option(
        False, "--include-rated", help="Keep items the user has rated (their rating is shown)."
    ),
    explain: bool = typer.Option(
        False, "--explain", help="Show the rated items that weigh most in each item (see below)."
    ),
    output_file: Path = typer.Option(
        None,
        "-o",
        "--output",
        help="Write to FILE instead: .csv, .parquet or .jsonl (user, rank, item, title, score).",
    ),
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    output: ListFormat = typer.Option(ListFormat.table, "--format", help="table, json or csv."),
):
    """Top-N items for a user, a new user's ratings, or every user, with predicted stars."""
    from aerec_cli.scoring import recommendations
    from aerec_cli.storage import exports

    settings: Settings = ctx.obj
    if top < 1:
        raise AerecError(f"--top must be at least 1, not {top}")
    _check_device(settings)
    new_user = bool(rate) or ratings_file is not None
    modes = [m for m, on in (("--user", user is not None), ("--rate/--ratings-file", new_user),
                             ("--all-users", all_users)) if on]  # fmt: skip
    if len(modes) > 1:
        raise AerecError(f"use only one of {' and '.join(modes)}: they pick whose list to make")
    if not modes:
        raise AerecError(
            "say whose list to make: --user ID, a new user's ratings (--rate ITEM=STARS or "
            "--ratings-file FILE), or --all-users -o FILE"
        )
    if output_file is not None:
        exports.file_format(output_file)  # an unknown extension fails before any work
    if all_users and output_file is None:
        raise AerecError(
            "--all-users writes a file: add -o FILE ending in .csv, .parquet or .jsonl"
        )
    if all_users and explain:
        raise AerecError(
            "--explain works for one user at a time (--user or --rate), not --all-users"
        )

    if all_users:
        _recommend_all(settings, output_file, top, run, include_rated)
        return
    if new_user:
        pairs = recommendations.read_ratings_file(ratings_file) if ratings_file else []
        if ratings_file and not pairs:
            _warn(f"ratings file {ratings_file} holds no ratings")
        pairs += [recommendations.parse_rate(text) for text in rate or []]
        result, warnings = recommendations.recommend_for_new_user(
            pairs, settings.home, top, run, include_rated, explain, settings.note
        )
        for warning in warnings:
            _warn(warning)
        if result["method"] == "popularity":
            who = f"a new user by {result['note'].split(';')[0]}"
        else:
            who = f"a new user with {result['ratings_used']} ratings"
    else:
        result = recommendations.recommend_for_user(
            user, settings.home, None, top, run, include_rated, explain, settings.note
        )
        who = f"user {result['user']}"
    if output_file is not None:
        columns = {
            "user": [result["user"] or ""] * len(result["items"]),
            "rank": list(range(1, len(result["items"]) + 1)),
            "item": [e["item"] for e in result["items"]],
            "title": [e["title"] for e in result["items"]],
            "score": [e["score"] for e in result["items"]],
        }
        n_rows = exports.write_columns(output_file, columns)
        settings.note(f"wrote {n_rows:,} rows to {output_file}")
        return
    if output is ListFormat.json:
        _print_json(result)
        return
    fields = ["item", "title", "genres", "score"] + (["rating"] if include_rated else [])
    if output is ListFormat.csv:
        rows = result["items"]
        if explain:
            fields.append("because")
            rows = [{**e, "because": _because(e["because"]).replace("\n", "; ")} for e in rows]
        _echo_csv(fields, rows)
        return
    columns = ["#", "item", "title", "genres", "stars"] + (["rated"] if include_rated else [])
    rows = []
    for rank, entry in enumerate(result["items"], 1):
        row = [rank, entry["item"], entry["title"], entry["genres"], f"{entry['score']:.2f}"]
        if include_rated:
            row.append("" if entry["rating"] is None else f"{entry['rating']:g}")
        if explain:
            row.append(_because(entry["because"]))
        rows.append(row)
    if explain:
        columns.append("because")
    out.print(_table(f"top {top} for {who} (run {result['run']})", columns, rows))
    if explain:
        out.print(f"because: {result['explain_method']}")


def _recommend_all(settings: Settings, path: Path, top: int, run, include_rated: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from aerec_cli.scoring import recommendations
    from aerec_cli.storage import exports

    progress = Progress(
        "users", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=settings.quiet, transient=False,
    )  # fmt: skip
    with progress:
        task = progress.add_task("users", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        served, columns = recommendations.recommend_all_users(
            settings.home, top, run, include_rated, advance, settings.note
        )
    n_rows = exports.write_columns(path, columns)
    settings.note(
        f"wrote {n_rows:,} rows (top {top} of {served.n_users:,} users, run {served.run.name}) "
        f"to {path}"
    )


@app.command()
def similar(
    ctx: typer.Context,
    item: str = typer.Option(..., "--item", help="Raw item id (the MovieLens movie id)."),
    top: int = typer.Option(10, "--top", help="How many items."),
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    output: ListFormat = typer.Option(ListFormat.table, "--format", help="table, json or csv."),
):
    """Items nearest to an item in the model's learned item representation (cosine).

    Item-oriented runs compare the encoder codes of the items' rating vectors; user-oriented
    runs compare the items' rows of the output layer.
    """
    from aerec_cli.scoring import recommendations

    _check_device(ctx.obj)
    result = recommendations.similar_items(item, ctx.obj.home, top, run, ctx.obj.note)
    if output is ListFormat.json:
        _print_json(result)
    elif output is ListFormat.csv:
        _echo_csv(["item", "title", "genres", "similarity"], result["items"])
    else:
        rows = [
            [rank, e["item"], e["title"], e["genres"], f"{e['similarity']:.3f}"]
            for rank, e in enumerate(result["items"], 1)
        ]
        title = (
            f"items like {result['title']} (item {result['item']}; run {result['run']}, "
            f"cosine of {result['representation']})"
        )
        out.print(_table(title, ["#", "item", "title", "genres", "similarity"], rows))


@app.command()
def embed(
    ctx: typer.Context,
    output_file: Path = typer.Option(
        ..., "-o", "--output", help="File to write: .csv, .parquet or .jsonl."
    ),
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
):
    """Export the learned item codes: columns item, title, code_0 .. code_{k-1}.

    Item-oriented runs: the encoder code of each item's rating vector. User-oriented runs: each
    item's row of the output layer.
    """
    from aerec_cli.scoring import recommendations
    from aerec_cli.storage import exports

    exports.file_format(output_file)
    _check_device(ctx.obj)
    served, columns = recommendations.item_embeddings(ctx.obj.home, run, ctx.obj.note)
    n_rows = exports.write_columns(output_file, columns)
    ctx.obj.note(
        f"wrote {n_rows:,} items x {len(columns) - 2} dims ({served.item_code_name}, run "
        f"{served.run.name}) to {output_file}"
    )


@app.command()
def outliers(
    ctx: typer.Context,
    top: int = typer.Option(10, "--top", help="How many rows."),
    by: str = typer.Option(
        None,
        "--by",
        help="user or item \\[default: the run's orientation: item for item-oriented runs].",
    ),
    min_ratings: int = typer.Option(
        1, "--min-ratings", help="Only rows with at least this many training ratings."
    ),
    run: str = typer.Option(None, "--run", help="Run name \\[default: the latest]."),
    output: ListFormat = typer.Option(ListFormat.table, "--format", help="table, json or csv."),
):
    """Users or items whose training ratings the model reconstructs worst (anomalies).

    The whole train split is fed through the model; each row's score is the RMSE of its
    reconstructed training ratings (clipped to the rating scale).
    """
    from aerec_cli.scoring import recommendations

    _check_device(ctx.obj)
    result = recommendations.outliers(ctx.obj.home, top, by, run, min_ratings, ctx.obj.note)
    key = result["by"]
    fields = [key] + (["title"] if key == "item" else []) + ["ratings", "mean_rating", "rmse"]
    if output is ListFormat.json:
        _print_json(result)
    elif output is ListFormat.csv:
        _echo_csv(fields, result["rows"])
    else:
        rows = [
            [rank, r[key]]
            + ([r["title"]] if key == "item" else [])
            + [r["ratings"], f"{r['mean_rating']:.2f}", f"{r['rmse']:.4f}"]
            for rank, r in enumerate(result["rows"], 1)
        ]
        columns = ["#", key] + (["title"] if key == "item" else []) + ["ratings", "mean", "RMSE"]
        title = (
            f"{key}s reconstructed worst by run {result['run']} "
            f"(train RMSE {result['train_rmse']:.4f})"
        )
        out.print(_table(title, columns, rows))


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()


if __name__ == "__main__":
    main()
