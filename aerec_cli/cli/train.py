"""Commands that train and list runs: train, runs."""

from __future__ import annotations

import typer

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app
from aerec_cli.cli.output import OutputFormat
from aerec_cli.errors import AerecError
from aerec_cli.training.config import TrainConfig

D = TrainConfig()  # the defaults shown in `aerec train --help`


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
    from aerec_cli.training import session

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
    progress = EpochProgress(output.err, enabled=not settings.quiet, verbose=settings.verbose)

    def started(start: session.TrainingStart) -> None:
        settings.note(start.description)
        progress.plan(start.config.epochs, start.config.pretrain_epochs)

    with progress:
        saved, result = session.train(
            settings.home,
            config,
            resume=resume,
            data=data,
            run=run,
            device=settings.device,
            threads=settings.threads,
            on_start=started,
            on_epoch=progress.update,
        )
    if saved is None:  # not rank 0 under torchrun: rank 0 reports and saves
        return
    output.out.print(
        f"run {saved.name}: best validation RMSE {result.best_val_rmse:.4f} at epoch "
        f"{result.best_epoch} ({saved.metrics['epochs_run']} epochs, {result.seconds:.1f} s)"
    )
    output.out.print(f"saved to {saved.path}")


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
    k: str = typer.Option(
        None,
        "--k",
        help="With --compare: top-k cut-offs; the table shows the first, and R@20 and "
        "NDCG@100 when computed \\[default: 10,20,100].",
    ),
    relevant: float = typer.Option(
        None, "--relevant", help="With --compare: stars from which a test rating is relevant."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
):
    """List trained runs with their validation and (once evaluated) test RMSE.

    With --compare, evaluate them and show RMSE, MAE and ranking metrics side by side.
    """
    from aerec_cli.storage import run_store

    if not compare and (names is not None or k is not None or relevant is not None):
        raise AerecError("--runs, --k and --relevant go with --compare: aerec runs --compare ...")
    if compare:
        from aerec_cli.cli.evaluate import compare_runs, parse_names

        chosen = parse_names(names) if names is not None else None
        compare_runs(ctx.obj, chosen, k, relevant, fmt)
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
    if fmt is OutputFormat.json:
        output.print_json(records)
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
    output.out.print(
        output.table(
            None, ["run", "dataset", "kind", "orientation", "val RMSE", "test RMSE", "epochs"], rows
        )
    )
