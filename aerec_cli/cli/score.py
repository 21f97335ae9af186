"""Commands that score a trained run: recommend, predict, similar, embed, outliers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app, check_scoring_device
from aerec_cli.cli.output import ListFormat
from aerec_cli.errors import AerecError

RECOMMEND_EPILOG = "\n\n".join(
    [
        "Who:",
        "--user ID: a user in the data. Their training ratings are left out unless "
        "--include-rated.",
        "--rate ITEM=STARS (repeatable) or --ratings-file FILE (CSV item,rating with raw item "
        "ids, header optional): a new user, scored without retraining. The run's ranker reads "
        "any number of ratings. For the stars, a user-oriented model "
        "encodes the new rating vector; an item-oriented model fits the new user's output unit "
        "(r_j ~ h_j.w + b on the rated items' last hidden layers h_j) by ridge regression, shrunk "
        "towards the average trained user. Unknown item ids are warned about and dropped. With "
        "no usable rating (or fewer than 3 where the list follows the stars) the list is ranked "
        "by damped popularity, (sum of ratings + 10 x global mean) / (count + 10), and says so.",
        "--all-users: every user's top N, written to -o FILE (.csv, .parquet or .jsonl; columns "
        "user, rank, item, title, genres, score).",
        "--explain: for each item, up to 3 of your ratings that raise it most, by the model the "
        "list follows. By rank: leave-one-out on the ranker, how much lower the item's ranking "
        "score would be without that rating. By stars, user-oriented model: the same on its "
        "predicted stars. By stars, item-oriented model (a user's other ratings are not part of "
        "an item's input): cosine similarity of the two items' encoder codes (centred on the "
        "mean code) x (the rating - the user's mean rating).",
    ]
)


def _because(reasons: list[dict]) -> str:
    """The reasons as the end of a sentence that starts "because": one rated item per line,
    with its number (whose meaning the list's footer states once)."""
    if not reasons:
        return "no one rating of yours: users with ratings like yours favour it"
    lines = [f"{r['title']} {_stars(r['rating'])} ({r['effect']:+.2f})" for r in reasons]
    return "\n".join(("you rated " if k == 0 else "and ") + line for k, line in enumerate(lines))


def _stars(rating: float) -> str:
    return f"{rating:g} star" + ("" if rating == 1 else "s")


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
        help="Write to FILE instead: .csv, .parquet or .jsonl, or - for CSV on stdout (user, "
        "rank, item, title, genres, score[, rating][, because]; the same as --format csv).",
    ),
    order: str = typer.Option(
        "rank",
        "--order",
        help="rank: by the run's ranker (what the user will rate and like; runs trained "
        "with --objective rating fall back to stars); stars: by predicted stars (not for "
        "runs trained with --objective ranking, which predict none).",
    ),
    run: str = output.RUN_OPTION,
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """Top-N items for a user, a new user's ratings, or every user, with predicted stars
    (none for a run trained with --objective ranking)."""
    one_blas_thread(unless=all_users)
    from aerec_cli.scoring import recommendations
    from aerec_cli.storage import exports

    settings: Settings = ctx.obj
    check_scoring_device(settings)
    new_user = bool(rate) or ratings_file is not None
    _check_recommend_modes(
        user=user, new_user=new_user, all_users=all_users, explain=explain, output_file=output_file
    )
    if all_users:
        _recommend_all(
            settings, output_file, top=top, run=run, include_rated=include_rated, order=order
        )
        return
    options = dict(
        top=top,
        run=run,
        include_rated=include_rated,
        explain=explain,
        order=order,
        note=settings.note,
    )
    if new_user:
        result, who = _new_user_listing(settings, rate, ratings_file, options)
    else:
        result = recommendations.recommend_for_user(user, settings.home, **options).to_dict()
        who = f"user {result['user']}"
    listed = dict(include_rated=include_rated, explain=explain)
    if output_file is not None or fmt is ListFormat.csv:
        target = exports.STDOUT if output_file is None else output_file
        n_rows = exports.write_columns(target, _listing_columns(result, **listed))
        if str(target) != exports.STDOUT:
            settings.note(f"wrote {n_rows:,} rows to {output_file}")
    elif fmt is ListFormat.json:
        output.print_json(result)
    else:
        _print_listing(result, f"top {top} for {who}", include_rated=include_rated, explain=explain)


def one_blas_thread(*, unless: bool) -> None:
    """Before numpy's first import, for one user's list (a few small products): OpenBLAS
    then starts no worker threads, whose start and spinning cost more than they save (about
    20 ms of a 0.4 s `recommend`). Where numpy is loaded already, or the user set it, as is."""
    if not unless and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _check_recommend_modes(*, user, new_user, all_users, explain, output_file) -> None:
    """Exactly one of --user, a new user's ratings or --all-users, with the options it takes."""
    from aerec_cli.storage import exports

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


def _new_user_listing(settings: Settings, rate, ratings_file, options: dict) -> tuple[dict, str]:
    """A new user's list (as JSON-ready data) and how the title names that user."""
    from aerec_cli.scoring import recommendations

    pairs = recommendations.read_ratings_file(ratings_file) if ratings_file else []
    if ratings_file and not pairs:
        output.warn(f"ratings file {ratings_file} holds no ratings")
    pairs += [recommendations.parse_rate(text) for text in rate or []]
    listing, warnings = recommendations.recommend_for_new_user(pairs, settings.home, **options)
    for warning in warnings:
        output.warn(warning)
    result = listing.to_dict()
    if result["method"] == "popularity":
        return result, f"a new user by {result['note'].split(';')[0]}"
    return result, f"a new user with {result['ratings_used']} ratings"


def _listing_columns(result: dict, *, include_rated: bool, explain: bool) -> dict[str, list]:
    """One user's list as columns, the same for -o FILE and --format csv."""
    entries = result["items"]
    columns = {
        "user": [result["user"] or ""] * len(entries),
        "rank": list(range(1, len(entries) + 1)),
        "item": [e["item"] for e in entries],
        "title": [e["title"] for e in entries],
        "genres": [e["genres"] for e in entries],
        "score": [e["score"] for e in entries],
    }
    if include_rated:
        columns["rating"] = [e["rating"] for e in entries]
    if explain:
        columns["because"] = [_because(e["because"]).replace("\n", "; ") for e in entries]
    return columns


def _print_listing(result: dict, title: str, *, include_rated: bool, explain: bool) -> None:
    # A run trained with --objective ranking predicts no stars (score None): no such column.
    stars = any(entry["score"] is not None for entry in result["items"])
    columns = ["#", "item", "title", "genres"] + (["stars"] if stars else [])
    columns += ["rated"] if include_rated else []
    rows = []
    for rank, entry in enumerate(result["items"], 1):
        row = [rank, entry["item"], entry["title"], entry["genres"]]
        row += [f"{entry['score']:.2f}"] if stars else []
        if include_rated:
            row.append("" if entry["rating"] is None else f"{entry['rating']:g}")
        if explain:
            popular = result.get("method") == "popularity"
            row.append(
                "it is popular (too few ratings for the model)"
                if popular
                else _because(entry["because"])
            )
        rows.append(row)
    if explain:
        columns.append("because")
    where = f"run {result['run']}, dataset {result['dataset']}"
    output.out.print(output.table(f"{title} ({where})", columns, rows))
    if explain:
        output.out.print(result["explain_method"])


def _recommend_all(settings: Settings, path: Path, **options) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from aerec_cli.scoring import recommendations
    from aerec_cli.storage import exports

    progress = Progress(
        "users", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=output.err, disable=settings.quiet, transient=False,
    )  # fmt: skip
    with progress:
        task = progress.add_task("users", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        served, columns = recommendations.recommend_all_users(
            settings.home, on_progress=advance, note=settings.note, **options
        )
    n_rows = exports.write_columns(path, columns)
    settings.note(
        f"wrote {n_rows:,} rows (top {options['top']} of {served.n_users:,} users, run "
        f"{served.run.name}) "
        f"to {path}"
    )


PREDICT_EPILOG = "\n\n".join(
    [
        "Pairs: --user ID with --item ID (repeat --item for several items), or --pairs FILE: a "
        "CSV of user,item[,rating] with raw ids (header optional; ',', tab or ';' separators).",
        "When the file has a rating column, RMSE and MAE over its pairs are printed too: over "
        "the dataset's test split they equal evaluate's.",
        "A user or item without training ratings gets the bias baseline, as in evaluate.",
    ]
)


@app.command(epilog=PREDICT_EPILOG)
def predict(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", help="Raw user id (see: aerec users)."),
    item: list[str] = typer.Option(
        None, "--item", help="Raw item id to predict for --user (repeat the option)."
    ),
    pairs_file: Path = typer.Option(
        None, "--pairs", help="CSV of user,item[,rating] (raw ids; header optional)."
    ),
    skip_unknown: bool = typer.Option(
        False, "--skip-unknown", help="Skip pairs with unknown ids (counted on stderr)."
    ),
    output_file: Path = typer.Option(
        None,
        "-o",
        "--output",
        help="Write to FILE instead: .csv, .parquet or .jsonl (user, item, title, predicted"
        "[, rating]).",
    ),
    run: str = output.RUN_OPTION,
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """Predicted stars for (user, item) pairs; with given ratings, their RMSE and MAE."""
    from aerec_cli.scoring import predictions
    from aerec_cli.storage import exports

    settings: Settings = ctx.obj
    check_scoring_device(settings)
    if pairs_file is not None and (user is not None or item):
        raise AerecError("use either --pairs FILE or --user ID --item ID, not both")
    if pairs_file is None and (user is None or not item):
        raise AerecError(
            "say which pairs to predict: --user ID with --item ID (repeatable), or --pairs FILE "
            "(CSV of user,item[,rating])"
        )
    if output_file is not None:
        exports.file_format(output_file)  # an unknown extension fails before any work
    if pairs_file is not None:
        pairs = predictions.read_pairs_file(pairs_file)
    else:
        pairs = [(user, i) for i in item]
    result = predictions.predict_pairs(
        settings.home, pairs, run=run, skip_unknown=skip_unknown, note=settings.note
    )
    if result.skipped:
        output.warn(_skipped_line(result))
    accuracy = (
        f"RMSE {result.rmse:.4f}, MAE {result.mae:.4f} over {result.n_rated:,} rated pairs"
        if result.rmse is not None
        else None
    )
    if output_file is not None:
        n_rows = exports.write_columns(output_file, result.columns())
        settings.note(f"wrote {n_rows:,} rows (run {result.run}) to {output_file}")
        if accuracy:
            settings.note(accuracy)
    elif fmt is ListFormat.json:
        output.print_json(result.to_dict())
    elif fmt is ListFormat.csv:
        output.echo_csv(list(result.columns()), [p.to_dict() for p in result.pairs])
        if accuracy:
            settings.note(accuracy)
    else:
        _print_predictions(result, accuracy)


def _skipped_line(result) -> str:
    unknown = [
        f"{kind} {', '.join(ids[:5])}" + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        for kind, ids in (("users", result.unknown_users), ("items", result.unknown_items))
        if ids
    ]
    return (
        f"skipped {result.skipped:,} pair(s) with ids not in dataset {result.dataset}: "
        + "; ".join(unknown)
    )


def _print_predictions(result, accuracy: str | None) -> None:
    rated = result.n_rated > 0
    columns = ["user", "item", "title", "stars"] + (["rating"] if rated else [])
    rows = []
    for pair in result.pairs:
        row = [pair.user, pair.item, pair.title, f"{pair.predicted:.2f}"]
        if rated:
            row.append("" if pair.rating is None else f"{pair.rating:g}")
        rows.append(row)
    output.out.print(output.table(f"predicted stars (run {result.run})", columns, rows))
    if accuracy:
        output.out.print(accuracy)


@app.command()
def similar(
    ctx: typer.Context,
    item: str = typer.Option(..., "--item", help="Raw item id (the MovieLens movie id)."),
    top: int = typer.Option(10, "--top", help="How many items."),
    run: str = output.RUN_OPTION,
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """Items nearest to an item in the model's learned item representation (cosine).

    Item-oriented runs compare the encoder codes of the items' rating vectors; user-oriented
    runs compare the items' rows of the output layer; runs trained with --objective ranking
    compare the items' rows of the ranker's input table (its item embedding).
    """
    from aerec_cli.scoring.items import similar_items

    check_scoring_device(ctx.obj)
    result = similar_items(item, ctx.obj.home, top=top, run=run, note=ctx.obj.note).to_dict()
    if fmt is ListFormat.json:
        output.print_json(result)
    elif fmt is ListFormat.csv:
        output.echo_csv(["item", "title", "genres", "similarity"], result["items"])
    else:
        rows = [
            [rank, e["item"], e["title"], e["genres"], f"{e['similarity']:.3f}"]
            for rank, e in enumerate(result["items"], 1)
        ]
        title = (
            f"items like {result['title']} (item {result['item']}; run {result['run']}, "
            f"cosine of {result['representation']})"
        )
        output.out.print(output.table(title, ["#", "item", "title", "genres", "similarity"], rows))


@app.command()
def embed(
    ctx: typer.Context,
    output_file: Path = typer.Option(
        ..., "-o", "--output", help="File to write: .csv, .parquet or .jsonl."
    ),
    run: str = output.RUN_OPTION,
):
    """Export the learned item codes: columns item, title, code_0 .. code_{k-1}.

    Item-oriented runs: the encoder code of each item's rating vector. User-oriented runs: each
    item's row of the output layer. Runs trained with --objective ranking: each item's row of
    the ranker's input table (its item embedding).
    """
    from aerec_cli.scoring.items import item_embeddings
    from aerec_cli.storage import exports

    exports.file_format(output_file)
    check_scoring_device(ctx.obj)
    served, columns = item_embeddings(ctx.obj.home, run=run, note=ctx.obj.note)
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
        None,
        "--min-ratings",
        help="Only rows with at least this many training ratings \\[default: 20, or the "
        "median count where that is lower: fewer ratings make an RMSE mostly luck].",
    ),
    run: str = output.RUN_OPTION,
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """Users or items whose training ratings the model reconstructs worst (anomalies).

    The whole train split is fed through the model; each row's score is the RMSE of its
    reconstructed training ratings (clipped to the rating scale).
    """
    from aerec_cli.scoring.outliers import find_outliers

    check_scoring_device(ctx.obj)
    found = find_outliers(
        ctx.obj.home, top=top, by=by, run=run, min_ratings=min_ratings, note=ctx.obj.note
    )
    result = found.to_dict()
    key = result["by"]
    fields = [key] + (["title"] if key == "item" else []) + ["ratings", "mean_rating", "rmse"]
    if fmt is ListFormat.json:
        output.print_json(result)
    elif fmt is ListFormat.csv:
        output.echo_csv(fields, result["rows"])
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
            f"(train RMSE {result['train_rmse']:.4f}; {key}s with "
            f"{result['min_ratings']}+ ratings)"
        )
        output.out.print(output.table(title, columns, rows))
