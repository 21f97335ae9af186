"""Commands that train and list runs: train, runs."""

from __future__ import annotations

import dataclasses
from typing import Literal

import typer

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app
from aerec_cli.cli.kind_flags import GENERATED, KindsCommand, with_kind_flags
from aerec_cli.cli.output import ListFormat
from aerec_cli.errors import AerecError
from aerec_cli.training.config import TrainConfig

D = TrainConfig()  # the defaults shown in `aerec train --help`
OBJECTIVE_HELP = (
    "both: the kind's autoencoder for predicted stars, then a ranker for top-N lists "
    "(Mult-DAE + EASE; recommend orders by it). rating: the autoencoder alone (lists follow "
    "its stars). ranking: the ranker alone, fast, with no predicted stars (predict and "
    "outliers need them); --kind, --orientation and the autoencoder's other flags do not "
    "apply and are refused."
)
ORIENTATION_HELP = (
    "item (I-AutoRec: reconstruct each item's ratings), user (U-AutoRec), or both: one network "
    "of each, their stars blended with a weight fitted on the validation slice (about twice "
    "the training time)."
)
ENSEMBLE_HELP = (
    "Train this many rating networks (different initialisations) and serve their mean: a "
    "lower RMSE for N times the training (see the README's Ensembles)."
)
VAL_SLICES_HELP = (
    "With --ensemble: every network holds out the run's validation slice (shared), or each "
    "its own (own: together they fit every training rating, for a lower RMSE; the validation "
    "RMSE is then each network's on its own slice)."
)
RANK_EPOCHS_HELP = "Most ranker epochs; it stops early when validation NDCG@10 stops improving."

# What `aerec runs` lists of each run (JSON keys, CSV columns).
RUN_FIELDS = (
    "run",
    "dataset",
    "kind",
    "orientation",
    "val_rmse",
    "test_rmse",
    "epochs",
    "created",
    "pinned",
)


# The flags marked GENERATED, the "Kind options" panel and the epilog's list of kinds come
# from the kind registry (models/kinds.py; see kind_flags.py).
@app.command(cls=KindsCommand)
@with_kind_flags
def train(
    ctx: typer.Context,
    data: str = output.DATA_OPTION,
    kind: str = GENERATED,
    orientation: Literal["item", "user", "both"] = typer.Option(
        D.orientation,
        "--orientation",
        help=ORIENTATION_HELP,
        parser=str,  # the choices label the help; TrainConfig.check refuses others
    ),
    hidden: list[int] = GENERATED,
    epochs: int = typer.Option(
        D.epochs, "--epochs", help="Most fine-tuning epochs; early stopping may end sooner."
    ),
    lr: float = typer.Option(D.lr, "--lr", help="Adam learning rate."),
    batch_size: int = typer.Option(
        D.batch_size,
        "--batch-size",
        help="Rating vectors per step \\[default: 256; 512 from 20M fitted ratings on].",
    ),
    weight_decay: float = GENERATED,
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
    ensemble: int = typer.Option(D.ensemble, "--ensemble", help=ENSEMBLE_HELP),
    val_slices: Literal["shared", "own"] = typer.Option(
        D.val_slices, "--val-slices", help=VAL_SLICES_HELP, parser=str
    ),
    objective: str = typer.Option(D.objective, "--objective", help=OBJECTIVE_HELP),
    rank_epochs: int = typer.Option(D.rank_epochs, "--rank-epochs", help=RANK_EPOCHS_HELP),
    kind_options: dict = GENERATED,
    run: str = typer.Option(None, "--run", help="Run name \\[default: DATASET-KIND-TIME]."),
    resume: str = typer.Option(
        None,
        "--resume",
        help="Continue run RUN, stopped by Ctrl-C or SIGTERM, from its last whole epoch "
        "(its own settings are used; other training flags are ignored).",
        metavar="RUN",
    ),
):
    """Train an autoencoder and a ranker (see --objective) on a dataset's train split and
    save the run."""
    settings: Settings = ctx.obj
    # A resumed run keeps its own settings: the flags are not read.
    config = None if resume else _config_from_flags(locals(), seed=settings.seed)
    saved, result = _train_with_progress(settings, config, resume=resume, data=data, run=run)
    if saved is None:  # not rank 0 under torchrun: rank 0 reports and saves
        return
    for warning in result.warnings:
        output.warn(warning)
    _report(saved)


def _config_from_flags(flags: dict, *, seed: int) -> TrainConfig:
    """The TrainConfig of `train`'s flags (its parameters are named after the settings)."""
    names = {field.name for field in dataclasses.fields(TrainConfig)} - {"seed", "options"}
    settings = {name: flags[name] for name in names} | {"hidden": flags["hidden"] or []}
    return TrainConfig(**settings, seed=seed, options=flags["kind_options"])


def _report(saved) -> None:
    """What training achieved: the best validation RMSE, or for a run trained with
    --objective ranking (no rating model) its ranker's validation NDCG@10."""
    metrics = saved.metrics
    spent = f"({metrics['epochs_run']} epochs, {metrics['train_seconds']:.1f} s)"
    blend = metrics.get("blend")
    # --val-slices own: no slice is unseen by the whole, so each network is measured on its own.
    own_slices = saved.config["train"].get("val_slices") == "own"
    if blend:
        output.out.print(
            f"run {saved.name}: validation RMSE {metrics['val_rmse']:.4f} for the blend of "
            f"the item-based networks ({blend['val_rmse_item']:.4f}, weight "
            f"{blend['item_weight']:.2f}) and the user-based ones ({blend['val_rmse_user']:.4f})"
            f"{', each pair on its own slice' if own_slices else ''} {spent}"
        )
    elif "members" in metrics:
        own = [member["val_rmse"] for member in metrics["members"]]
        whose = "networks, each on its own slice" if own_slices else "networks' mean"
        output.out.print(
            f"run {saved.name}: validation RMSE {metrics['val_rmse']:.4f} for {len(own)} "
            f"{whose} (each {min(own):.4f} to {max(own):.4f}) {spent}"
        )
    else:
        best = (
            f"best validation RMSE {metrics['val_rmse']:.4f} at epoch"
            if saved.has_model
            else f"best validation NDCG@10 {metrics['val_ndcg@10']:.4f} at ranker epoch"
        )
        output.out.print(f"run {saved.name}: {best} {metrics['best_epoch']} {spent}")
    output.out.print(f"saved to {saved.path}")


def _train_with_progress(settings: Settings, config: TrainConfig | None, **where):
    """session.train with progress bars on stderr, sized once training says what it runs."""
    from aerec_cli.cli.progress import EpochProgress, Plan
    from aerec_cli.training import session

    progress = EpochProgress(output.err, enabled=not settings.quiet, verbose=settings.verbose)

    def started(start: session.TrainingStart) -> None:
        settings.note(start.description)
        config, resumed = start.config, start.resumed or {}
        # An ensemble's best so far is its member in training's (the last one listed).
        best = (resumed.get("members") or [resumed])[-1].get("val_rmse")
        progress.plan(
            Plan(
                epochs=config.epochs,
                pretrain_epochs=config.pretrain_epochs,
                rank_epochs=config.rank_epochs * config.ranks,
                patience=config.patience,
                best_epoch=int(resumed.get("best_epoch") or 0),
                best_rmse=best if isinstance(best, (int, float)) else None,
                members=config.ensemble * (2 if config.orientation == "both" else 1),
            )
        )

    with progress:
        return session.train(
            settings.home,
            config,
            device=settings.device,
            threads=settings.threads,
            on_start=started,
            on_epoch=progress.update,
            **where,
        )


@app.command()
def runs(
    ctx: typer.Context,
    compare: bool = typer.Option(
        False,
        "--compare",
        help="Compare the runs (all, or those in --runs) side by side, one table per dataset; "
        "a run's last `evaluate` is reused where it used the same --k and --relevant.",
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
    delete: str = typer.Option(
        None, "--delete", metavar="NAME[,NAME]", help="Delete these runs (unpinning them)."
    ),
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """List trained runs with their validation and (once evaluated) test RMSE; the pinned
    run (aerec use) is marked *. --delete deletes runs.

    With --compare, show RMSE, MAE and ranking metrics side by side, evaluating only the runs
    whose last `evaluate` does not answer the same question.
    """
    from aerec_cli.cli import manage
    from aerec_cli.cli.evaluate import parse_names
    from aerec_cli.storage import run_store

    if not compare and (names is not None or k is not None or relevant is not None):
        raise AerecError("--runs, --k and --relevant go with --compare: aerec runs --compare ...")
    if compare and delete is not None:
        raise AerecError("--delete cannot go with --compare")
    if compare:
        from aerec_cli.cli.evaluate import compare_runs

        chosen = parse_names(names) if names is not None else None
        compare_runs(ctx.obj, chosen, k, relevant, fmt, reuse_stored=True)
        return
    if delete is not None:
        manage.delete_runs(ctx.obj, parse_names(delete))
        return
    manage.clean_leftovers(ctx.obj)
    found, broken = run_store.scan_runs(ctx.obj.home)
    pinned = _pinned_note(ctx.obj, {r.name for r in found})
    for entry in broken:  # reported, and the others still listed
        output.warn(f"run {entry.name} is damaged ({entry.problem}); train it again")
    records = [
        {  # RUN_FIELDS, in order
            "run": r.name,
            "dataset": r.dataset,
            "kind": r.config["kind"],
            "orientation": r.config["orientation"],
            "val_rmse": r.metrics.get("val_rmse"),
            "test_rmse": r.metrics.get("test", {}).get("rmse"),
            "epochs": r.metrics.get("epochs_run"),
            "created": r.config.get("created", "")[:19],
            "pinned": r.name == pinned,
        }
        for r in found
    ]
    if fmt is ListFormat.json:
        output.print_json(records)
        return
    if fmt is ListFormat.csv:
        output.echo_csv(list(RUN_FIELDS), records)
        return
    if not records and not broken:
        ctx.obj.note(f"no runs in {ctx.obj.home}; train one: aerec train")
        return
    _print_runs(ctx.obj, records, pinned)


def _print_runs(settings, records: list[dict], pinned: str | None) -> None:
    """The `aerec runs` table, the pinned run marked *."""
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [
        [
            r["run"] + (" *" if r["pinned"] else ""),
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
    if pinned is not None:
        settings.note(f"* pinned (the default --run): {pinned}; aerec use --latest unpins it")


def _pinned_note(settings, names: set[str]) -> str | None:
    """The pinned run; a pin to a run that is gone is warned about (the listing goes on)."""
    from aerec_cli.storage import pin

    try:
        pinned = pin.pinned_run(settings.home)
    except AerecError as exc:
        output.warn(exc.message)
        return None
    if pinned is not None and pinned not in names:
        output.warn(
            f"the pinned run {pinned} no longer exists or is damaged; aerec use --latest unpins it"
        )
        return None
    return pinned
