"""Commands that read ratings in and show what is stored: ingest, datasets, users."""

from __future__ import annotations

import typer
from rich.table import Table

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app
from aerec_cli.cli.output import ListFormat, OutputFormat
from aerec_cli.errors import AerecError


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
        None,
        "--split",
        help="random, temporal (each user's latest ratings), or for ml-100k u1..u5, ua, ub "
        "\\[default: random].",
    ),
    test_fraction: float = typer.Option(
        None,
        "--test-fraction",
        help="Share of ratings (per user for temporal) that go to test \\[default: 0.1].",
    ),
    test: str = typer.Option(
        None,
        "--test",
        help="Your own split: the test ratings (a file, zip or folder, read like SOURCE), "
        "SOURCE being the train ratings. Ids of both are kept; not with --split.",
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
    rating_scale: str = typer.Option(
        None,
        "--rating-scale",
        metavar="LOW,HIGH",
        help="The ratings' scale, e.g. 1,5; ratings outside it are refused \\[default: the "
        "MovieLens release's, or for another file inferred from its ratings].",
    ),
    force: bool = typer.Option(False, "--force", help="Replace a dataset of the same name."),
    fmt: OutputFormat = output.TABLE_OR_JSON,
):
    """Read MovieLens ratings, split them, and store sparse matrices and id maps.

    With --test, SOURCE is the train split and TEST the test split: your own split.
    """
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
        test=test,
        rating_scale=rating_scale,
    )
    for warning in warnings:
        output.warn(warning)
    _note_inferred_scale(settings, dataset.meta)
    if fmt is OutputFormat.json:
        keys = ("format", "users", "items", "ratings", "train", "test", "rating_scale")
        summary = {"name": dataset.name, "path": str(dataset.path)}
        output.print_json(summary | {key: dataset.meta[key] for key in keys})
        return
    _print_summary(dataset)


def _note_inferred_scale(settings: Settings, meta: dict) -> None:
    """Say a generic file's scale was guessed from its ratings, and how to give it."""
    if meta.get("rating_scale_from") == "ratings":
        low, high = meta["rating_scale"]
        settings.note(
            f"rating scale {low:g}-{high:g}, inferred from the ratings; if the scale is another, "
            "ingest again with --rating-scale LOW,HIGH --force"
        )


def _print_summary(dataset) -> None:
    """The ingest table: what was stored, then the ratings by stars."""
    meta = dataset.meta
    density = meta["ratings"] / max(1, meta["users"] * meta["items"])
    split_info = meta["split"]
    split_text = split_info["method"]
    if "seed" in split_info:
        split_text += f" ({split_info['test_fraction']:g} test, seed {split_info['seed']})"
    elif "test_source" in split_info:
        split_text += f" (test: {split_info['test_source']})"
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
    output.out.print(table)
    total = max(meta["ratings"], 1)
    hist = Table(title="ratings by stars", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("stars", "count", "share", ""):
        hist.add_column(col, justify="right" if col != "" else "left")
    for stars, count in meta["histogram"].items():
        hist.add_row(stars, f"{count:,}", f"{count / total:.1%}", "#" * round(40 * count / total))
    output.out.print(hist)


@app.command()
def datasets(
    ctx: typer.Context,
    delete: str = typer.Option(None, "--delete", metavar="NAME", help="Delete dataset NAME."),
    force: bool = typer.Option(
        False, "--force", help="With --delete: delete it even though runs were trained on it."
    ),
    fmt: OutputFormat = output.TABLE_OR_JSON,
):
    """List the stored datasets (the last one is the default), or delete one."""
    from aerec_cli.cli import manage
    from aerec_cli.storage import dataset_store

    if force and delete is None:
        raise AerecError("--force goes with --delete: aerec datasets --delete NAME --force")
    if delete is not None:
        manage.delete_dataset(ctx.obj, delete, force)
        return
    manage.clean_leftovers(ctx.obj)
    metas, broken = dataset_store.scan_datasets(ctx.obj.home)
    for entry in broken:  # reported, and the others still listed
        output.warn(
            f"dataset {entry.name} is damaged ({entry.problem}); ingest it again with --force"
        )
    if fmt is OutputFormat.json:
        output.print_json(metas)
        return
    if not metas and not broken:
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
    output.out.print(
        output.table(
            None, ["name", "format", "users", "items", "ratings", "split", "created"], rows
        )
    )


@app.command()
def users(
    ctx: typer.Context,
    data: str = output.DATA_OPTION,
    limit: int = typer.Option(20, "--limit", help="How many users to list (0: all)."),
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """List user ids of a dataset with their training rating counts."""
    import numpy as np

    from aerec_cli.storage import dataset_store

    if limit < 0:
        raise AerecError(f"--limit must be 0 or more, not {limit}")
    dataset = dataset_store.load(ctx.obj.home, data)
    counts = np.diff(dataset.train.indptr)
    shown = len(dataset.user_ids) if limit == 0 else min(limit, len(dataset.user_ids))
    records = [
        {"user": str(dataset.user_ids[i]), "train_ratings": int(counts[i])} for i in range(shown)
    ]
    if fmt is ListFormat.json:
        output.print_json(
            {"dataset": dataset.name, "users": len(dataset.user_ids), "rows": records}
        )
        return
    if fmt is ListFormat.csv:
        output.echo_csv(["user", "train_ratings"], records)
        return
    rows = [[r["user"], r["train_ratings"]] for r in records]
    title = f"{dataset.name}: {len(dataset.user_ids):,} users"
    output.out.print(output.table(title, ["user", "train ratings"], rows))
