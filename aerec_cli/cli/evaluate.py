"""Commands that measure runs on the test split: evaluate, plot."""

from __future__ import annotations

from pathlib import Path

import typer

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app, check_scoring_device
from aerec_cli.cli.output import ListFormat
from aerec_cli.errors import AerecError


def parse_ks(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        ks = [int(part) for part in parts]
    except ValueError:
        ks = []
    if not ks or len(ks) != len(parts):
        raise AerecError(f"--k takes positive integers like 10 or 10,20, not {text!r}")
    from aerec_cli.evaluation.metrics import check_ks

    return check_ks(ks)


def parse_names(text: str) -> list[str]:
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


# Beside every metric at the first k, the default tables add the usual top-N pair of the
# literature (recall@20 and NDCG@100: Liang et al. 2018, Steck 2019), when computed.
HEADLINE = ("recall@20", "ndcg@100")


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _label(key: str) -> str:
    metric, k = key.split("@")
    return f"{RANKING_LABELS[metric]}@{k}"


def ranking_keys(ks: list[int], *, every_k: bool = False) -> list[str]:
    """The metric@k columns of a table: every metric at the first k, then every metric at
    each other k (``every_k``, for cut-offs the user asked for) or only HEADLINE's present."""
    keys = [f"{metric}@{ks[0]}" for metric in RANKING_LABELS]
    if every_k:
        return keys + [f"{metric}@{k}" for k in ks[1:] for metric in RANKING_LABELS]
    present = {f"{metric}@{k}" for k in ks for metric in RANKING_LABELS}
    return keys + [key for key in HEADLINE if key in present and key not in keys]


def model_label(report: dict) -> str:
    """The model's row in evaluate's tables: its kind and orientation, or "ranker" for a run
    trained with --objective ranking (a ranker alone, of no kind)."""
    if report.get("objective") == "ranking":
        return "ranker"
    return f"{report['kind']} ({report['orientation']})"


def _ranking_rows(report: dict) -> list[tuple[str, dict]]:
    """(label, metrics) of the model, then each baseline fitted (EASE only if not skipped)."""
    ranking = report["ranking"]
    baselines = ranking["baselines"]
    rows = [
        (model_label(report), ranking["model"]),
        *(
            [(f"{report['kind']}, by stars", ranking["model_by_stars"])]
            if "model_by_stars" in ranking
            else []
        ),
        ("popularity", baselines["popularity"]),
        ("bias baseline", baselines["bias"]),
    ]
    if baselines.get("ease") is not None:
        rows.append((f"EASE (λ={ranking['ease_lambda']:g})", baselines["ease"]))
    return rows


def _print_evaluation(report: dict, *, every_k: bool = False) -> None:
    stars = report["rmse"] is not None  # None: a run trained with --objective ranking
    rows = [
        [model_label(report)]
        + ([f"{report['rmse']:.4f}", f"{report['mae']:.4f}"] if stars else ["n/a", "n/a"])
    ]
    labels = {"global_mean": "global mean", "bias": "bias baseline"}
    for key, scores in report["baselines"].items():
        rows.append([labels[key], f"{scores['rmse']:.4f}", f"{scores['mae']:.4f}"])
    title = f"run {report['run']} on {report['dataset']}: {report['n_test']:,} test ratings"
    output.out.print(output.table(title, ["model", "RMSE", "MAE"], rows))
    if not stars:
        output.out.print(
            "the ranker predicts no stars (trained with --objective ranking): no RMSE or MAE"
        )
    if report["n_fallback"]:
        output.out.print(
            f"{report['n_fallback']:,} test ratings of users or items unseen in training "
            "were predicted by the bias baseline"
        )
    ranking = report["ranking"]
    relevant = f"{ranking['relevant']:g}"
    if not ranking["n_users"]:
        output.out.print(
            f"no user has a test rating of {relevant} stars or more: no ranking metrics"
        )
        return
    keys = ranking_keys(ranking["k"], every_k=every_k)
    rows = [[name] + [_num(values[key]) for key in keys] for name, values in _ranking_rows(report)]
    title = (
        f"top-k ranking for {ranking['n_users']:,} users with a test rating >= {relevant} "
        "(candidates: every item not rated in training)"
    )
    output.out.print(output.table(title, ["model"] + [_label(key) for key in keys], rows))
    if ranking.get("ease_skipped"):
        output.out.print(f"EASE skipped: {ranking['ease_skipped']}")
    elif ranking.get("ease_lambda") is not None:
        from aerec_cli.evaluation.ease_baseline import VAL_FRACTION

        output.out.print(
            f"EASE's λ={ranking['ease_lambda']:g}: the best NDCG@10 on a {VAL_FRACTION:.0%} "
            "validation slice of the train split"
        )


def _print_comparison(reports: list[dict]) -> None:
    """One table per dataset (figures on different test splits do not compare), its runs
    with the best of each column marked, then the dataset's baselines."""
    for group in _by_dataset(reports).values():
        _print_dataset_comparison(group)


def _comparison_metrics(report: dict) -> list[tuple[str, str, object]]:
    return [("RMSE", "rmse", min), ("MAE", "mae", min)] + [
        (_label(key), key, max) for key in ranking_keys(report["ranking"]["k"])
    ]


def _print_dataset_comparison(reports: list[dict]) -> None:
    from rich.text import Text

    metrics = _comparison_metrics(reports[0])

    def value(report: dict, key: str):
        if key in ("rmse", "mae"):
            return report.get(key)
        return report["ranking"]["model"].get(key)

    plain = output.out.color_system is None  # piped or NO_COLOR: mark the best with a star instead
    best = {}
    for _, key, pick in metrics:
        present = [v for v in (value(r, key) for r in reports) if v is not None]
        best[key] = pick(present) if len(reports) > 1 and present else None
    header = ["run", "kind", "orientation"] + [label for label, _, _ in metrics]
    table = output.table(_comparison_title(reports), header, [])
    for report in reports:
        row = [report["run"], report["kind"], report["orientation"]]
        for _, key, _ in metrics:
            number = value(report, key)
            if number is not None and number == best[key]:
                row.append(Text(_num(number) + ("*" if plain else ""), style="bold green"))
            else:
                row.append(_num(number) + (" " if plain and len(reports) > 1 else ""))
        table.add_row(*row)
    for name, figures in _baseline_rows(reports[0]):
        table.add_row(name, "-", "-", *[_num(figures.get(key)) for _, key, _ in metrics])
    output.out.print(table)
    if len(reports) > 1:
        output.out.print(
            "* best run in each column (lowest RMSE/MAE, highest otherwise)"
            if plain
            else "best run in each column in bold green (lowest RMSE/MAE, highest otherwise)"
        )


def _comparison_title(reports: list[dict]) -> str:
    ranking = reports[0]["ranking"]
    runs = f"{len(reports)} run{'s' if len(reports) > 1 else ''}"
    return (
        f"{runs} on the test split of {reports[0]['dataset']} "
        f"(ranking: top {ranking['k'][0]}, relevant >= {ranking['relevant']:g}), baselines below"
    )


def _baseline_rows(report: dict) -> list[tuple[str, dict]]:
    """The dataset's baselines as rows: their rating and ranking figures where they have them."""
    rating, ranking = report["baselines"], report["ranking"]["baselines"]
    rows = [
        ("global mean", rating.get("global_mean") or {}),
        ("bias baseline", {**(rating.get("bias") or {}), **(ranking.get("bias") or {})}),
        ("popularity", ranking.get("popularity") or {}),
    ]
    if ranking.get("ease"):
        rows.append((f"EASE (λ={report['ranking']['ease_lambda']:g})", ranking["ease"]))
    return rows


def compare_runs(
    settings: Settings,
    names: list[str] | None,
    k_text: str | None,
    relevant: float | None,
    fmt: ListFormat,
    *,
    reuse_stored: bool = False,
) -> None:
    """Evaluate several runs (all when ``names`` is None) and print them side by side, one
    table per dataset. ``reuse_stored``: take the report of a run's last `evaluate` where it
    answers the same question (`aerec runs --compare`)."""
    from aerec_cli.evaluation import evaluator
    from aerec_cli.evaluation.metrics import DEFAULT_KS
    from aerec_cli.storage import run_store

    ks = parse_ks(k_text) if k_text is not None else list(DEFAULT_KS)
    every = names is None
    if every:
        names = [r.name for r in run_store.list_runs(settings.home)]
        if not names:
            if fmt is ListFormat.json:
                output.print_json([])
            elif fmt is not ListFormat.csv:
                settings.note(f"no runs in {settings.home}; train one: aerec train")
            return
    check_scoring_device(settings)
    reports, problems = evaluator.evaluate_runs(
        settings.home,
        names,
        ks=ks,
        relevant=relevant,
        skip_broken=every,
        reuse_stored=reuse_stored,
        on_run=lambda name: settings.note(f"evaluating {name} ..."),
        note=settings.note,
    )
    for problem in problems:
        output.err.print(f"warning: skipped {problem}", soft_wrap=True)
    if fmt is ListFormat.json:
        output.print_json(reports)
    elif fmt is ListFormat.csv:
        echo_reports_csv(reports)
    elif reports:
        _print_comparison(reports)


def echo_reports_csv(reports: list[dict]) -> None:
    """Reports as CSV: one row per run (and its lists by stars), then each dataset's
    baselines; every metric at every k as its own column."""
    rows: list[dict] = []
    for group in _by_dataset(reports).values():
        for report in group:
            base = {"run": report["run"], "dataset": report["dataset"]}
            rows.append({**base, "model": model_label(report), "rmse": report["rmse"],
                         "mae": report["mae"], **report["ranking"]["model"]})  # fmt: skip
            if "model_by_stars" in report["ranking"]:
                by_stars = report["ranking"]["model_by_stars"]
                rows.append({**base, "model": f"{report['kind']}, by stars", **by_stars})
        dataset = {"run": "", "dataset": group[0]["dataset"]}
        rows += [
            {**dataset, "model": name, **figures} for name, figures in _baseline_rows(group[0])
        ]
    fields = ["run", "dataset", "model", "rmse", "mae"]
    fields += [key for row in rows for key in row if key not in fields]
    output.echo_csv(list(dict.fromkeys(fields)), rows)


def _by_dataset(reports: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for report in reports:
        groups.setdefault(report["dataset"], []).append(report)
    return groups


@app.command()
def evaluate(
    ctx: typer.Context,
    run: str = output.RUN_OPTION,
    names: str = typer.Option(
        None, "--runs", help="Several runs side by side in one table, e.g. A,B,C."
    ),
    k: str = typer.Option(
        None,
        "--k",
        help="Top-k cut-offs for the ranking metrics, e.g. 10,20 \\[default: 10,20,100; "
        "the table shows every metric at 10, and R@20 and NDCG@100].",
    ),
    relevant: float = typer.Option(
        None,
        "--relevant",
        help="A test rating of this many stars or more is relevant \\[default: 4].",
    ),
    fmt: ListFormat = output.TABLE_JSON_OR_CSV,
):
    """RMSE/MAE and top-k ranking metrics on the test split, next to baselines."""
    from aerec_cli.evaluation import evaluator
    from aerec_cli.evaluation.metrics import DEFAULT_KS

    ks = parse_ks(k) if k is not None else list(DEFAULT_KS)
    if names is not None:
        if run is not None:
            raise AerecError("use --run NAME for one run or --runs A,B,C for several, not both")
        compare_runs(ctx.obj, parse_names(names), k, relevant, fmt)
        return
    check_scoring_device(ctx.obj)
    report = evaluator.evaluate_run(ctx.obj.home, run, ks=ks, relevant=relevant, note=ctx.obj.note)
    if fmt is ListFormat.json:
        output.print_json(report)
    elif fmt is ListFormat.csv:
        echo_reports_csv([report])
    else:
        _print_evaluation(report, every_k=k is not None)


@app.command()
def plot(
    ctx: typer.Context,
    names: list[str] = typer.Argument(
        None, metavar="RUN", help="Runs to plot \\[default: the latest run]."
    ),
    png: Path = typer.Option(Path("curves.png"), "-o", "--output", help="The PNG to write."),
):
    """Learning curves as a PNG: training loss and validation RMSE per epoch, pretraining.

    Needs matplotlib: pip install 'aerec\\[plot]'.
    """
    from aerec_cli.evaluation import plots

    result = plots.plot_runs(ctx.obj.home, names or [], png)
    output.out.print(f"wrote {result['path']} ({', '.join(result['runs'])})")
