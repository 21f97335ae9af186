"""`make bench`: accuracy and speed of aerec on ../shared/data, written to BENCHMARKS.md.

Every aerec figure comes from the CLI itself, each command in its own process, timed whole
(wall clock) with its peak resident memory. Surprise's SVD and SVD++ and aerec's baselines
run on exactly the same stored train/test splits. Rows whose data file is absent are skipped
and say so.

    python benchmarks/bench.py [--data ../shared/data] [--out BENCHMARKS.md] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aerec_cli.models import kinds
from aerec_cli.training.config import OBJECTIVES, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
KINDS = list(kinds.KINDS)  # every declared kind, in declaration order
DEFAULT_KIND = TrainConfig.kind
SPARSE_AT_ML1M = (
    "`sparse` is left out at ML-1M scale unless `--ml1m-kinds` names it: its overcomplete layer "
    "(7,552 units for 6,040 inputs) made 133 epochs take 1,890 s of training on 2 cores "
    "(2026-12-01, partly beside other work), against 86 s for the default kind's 150."
)
# Run a command and report its wall time and peak RSS (the wrapper's only child is the command).
MEASURE = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "w = time.perf_counter() - t; "
    "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; "
    "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:], "
    "'wall': w, 'rss_mb': m}))"
)


class Bench:
    def __init__(self, data: Path, home: Path, log, resume: bool = False):
        self.data, self.home, self.log, self.resume = data, home, log, resume
        self.ingested: set[str] = set()  # datasets stored by this bench: reused, not redone

    def aerec(self, *args: str, seed: int = 0) -> dict:
        """Run `aerec ARGS` in a fresh process; returns rc, stdout, wall seconds, peak RSS MB."""
        command = [sys.executable, "-m", "aerec_cli", "--home", str(self.home), "-q"]
        command += ["--seed", str(seed), *args]
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
        )
        measured = json.loads(result.stdout)
        if measured["rc"] != 0:
            raise RuntimeError(f"aerec {' '.join(args)} failed: {measured['err']}")
        return measured

    def ingest(self, source: Path, name: str, split: str = "random", seed: int = 0) -> dict:
        stored = (self.home / "datasets" / name / "meta.json").exists()
        if stored and (self.resume or name in self.ingested):
            return {"out": "{}", "wall": float("nan"), "rss_mb": float("nan")}
        self.ingested.add(name)
        return self.aerec(
            "ingest",
            str(source),
            "--name",
            name,
            "--split",
            split,
            "--force",
            "--format",
            "json",
            seed=seed,
        )

    def train_and_evaluate(
        self,
        dataset: str,
        kind: str,
        orientation: str,
        seed: int,
        objective: str = "both",
        flags: tuple[str, ...] = (),
    ) -> dict:
        """One run (``flags``: more `train` flags, e.g. ("--ensemble", "5")), evaluated."""
        variant = "".join(f"-{flag.strip('-')}" for flag in flags)  # --hidden 500: -hidden-500
        run = f"{dataset}-{kind}-{orientation}-{objective}{variant}-s{seed}"
        folder = self.home / "runs" / run
        # A run finished earlier in this bench (another table) or by an interrupted one.
        if (folder / "metrics.json").exists():
            metrics = json.loads((folder / "metrics.json").read_text())
            if "test" in metrics:  # finished by an earlier, interrupted `make bench`
                return self._row(
                    metrics,
                    json.loads((folder / "bench.json").read_text())
                    if (folder / "bench.json").exists()
                    else {},
                )
        # The ranker alone has no kind or orientation: `train` refuses those flags with it.
        model = [] if objective == "ranking" else ["--kind", kind, "--orientation", orientation]
        args = ["train", "--data", dataset, *model, "--objective", objective, *flags]
        args += ["--run", run]
        trained = self.aerec(*args, seed=seed)
        self.aerec("evaluate", "--run", run, "--format", "json")
        measured = {"wall": trained["wall"], "rss_mb": trained["rss_mb"]}
        (folder / "bench.json").write_text(json.dumps(measured))
        return self._row(json.loads((folder / "metrics.json").read_text()), measured)

    @staticmethod
    def _row(metrics: dict, measured: dict) -> dict:
        report = metrics["test"]
        return {
            "rmse": report.get("rmse"),  # none for a run without a rating model
            "mae": report.get("mae"),
            "bias": report["baselines"]["bias"],
            "global_mean": report["baselines"]["global_mean"],
            "epochs": metrics["epochs_run"],
            "train_s": metrics["train_seconds"],
            "wall_s": measured.get("wall", float("nan")),
            "rss_mb": measured.get("rss_mb", float("nan")),
            "ranking": report["ranking"],
        }


# --- Surprise on the same splits ------------------------------------------------------------


def surprise_scores(home: Path, dataset: str, seed: int, algorithms: list[str]) -> dict:
    """RMSE/MAE of Surprise algorithms trained on a stored dataset's exact train split."""
    try:
        import surprise
    except ImportError:
        return {}
    from aerec_cli.storage import dataset_store

    ds = dataset_store.load(home, dataset)
    low, high = ds.rating_scale
    users, items = ds.user_ids, ds.item_ids

    def triples(matrix):
        coo = matrix.tocoo()
        return [(users[u], items[i], float(r)) for u, i, r in zip(coo.row, coo.col, coo.data)]

    reader = surprise.Reader(rating_scale=(low, high))
    frame = __import__("pandas").DataFrame(triples(ds.train), columns=["u", "i", "r"])
    trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
    testset = triples(ds.test)
    scores = {}
    for name in algorithms:
        algo = {"SVD": surprise.SVD, "SVD++": surprise.SVDpp}[name](random_state=seed)
        started = time.perf_counter()
        algo.fit(trainset)
        predictions = algo.test(testset)
        seconds = time.perf_counter() - started
        scores[name] = {
            "rmse": surprise.accuracy.rmse(predictions, verbose=False),
            "mae": surprise.accuracy.mae(predictions, verbose=False),
            "seconds": seconds,
        }
    return scores


# --- report -----------------------------------------------------------------------------


def fmt(value, digits=4) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def mean_spread(values: list[float], digits=4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{cpu}; {len(os.sched_getaffinity(0))} CPUs usable; {memory:.0f} GiB RAM; GPU: {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


# --- sections ---------------------------------------------------------------------------


def accuracy_section(
    bench,
    title,
    source,
    split,
    seeds,
    kinds,
    orientations,
    surprise_algos,
    *,
    objective: str = "both",
    variants: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
):
    """Rows per kind x orientation over seeds, plus baselines and Surprise on the same splits.

    ``variants``: more rows of the default kind, each a label, an orientation and its other
    `train` flags.
    ``objective``: the runs' (rating skips the ranker, whose lists these rows do not read;
    the autoencoder, trained first, is the same)."""
    out = [f"### {title}", ""]
    if not source.exists():
        return out + [f"Skipped: {source} is absent.", ""], {}
    per_config: dict[tuple, list[dict]] = {}
    baselines = {"global mean": [], "bias baseline": []}
    surprise_runs: dict[str, list[dict]] = {}
    configs = [(kind, orientation, ()) for kind in kinds for orientation in orientations(kind)]
    configs += [(DEFAULT_KIND, orientation, flags) for _, orientation, flags in variants]
    labels = {flags: label for label, _, flags in variants}
    for seed in seeds:
        name = f"{source.stem}-{split}-s{seed}"
        bench.ingest(source, name, split, seed)
        for kind, orientation, flags in configs:
            result = bench.train_and_evaluate(name, kind, orientation, seed, objective, flags)
            key = (labels[flags], orientation) if flags else (kind, orientation)
            per_config.setdefault(key, []).append(result)
            bench.log(f"{title} seed {seed}: {key} RMSE {result['rmse']:.4f}")
        baselines["global mean"].append(result["global_mean"])
        baselines["bias baseline"].append(result["bias"])
        for algo, score in surprise_scores(bench.home, name, seed, surprise_algos).items():
            surprise_runs.setdefault(algo, []).append(score)
            bench.log(f"{title} seed {seed}: Surprise {algo} RMSE {score['rmse']:.4f}")
    rows = []
    for (kind, orientation), results in per_config.items():
        rows.append(
            [
                f"aerec {kind}"
                + (" (default)" if kind == DEFAULT_KIND and orientation == "item" else ""),
                orientation,
                mean_spread([r["rmse"] for r in results]),
                mean_spread([r["mae"] for r in results]),
                fmt(statistics.mean(r["epochs"] for r in results), 0),
                fmt(statistics.mean(r["train_s"] for r in results), 1),
                fmt(max(r["rss_mb"] for r in results), 0),
            ]
        )
    for algo, results in surprise_runs.items():
        rows.append(
            [
                f"Surprise {algo}",
                "-",
                mean_spread([r["rmse"] for r in results]),
                mean_spread([r["mae"] for r in results]),
                "-",
                fmt(statistics.mean(r["seconds"] for r in results), 1),
                "-",
            ]
        )
    for label, results in baselines.items():
        rows.append(
            [
                label,
                "-",
                mean_spread([r["rmse"] for r in results]),
                mean_spread([r["mae"] for r in results]),
                "-",
                "-",
                "-",
            ]
        )
    rows.sort(key=lambda row: float(row[2].split(" ")[0]))
    header = ["model", "orientation", "test RMSE", "test MAE", "epochs", "train s", "peak MB"]
    seeds_note = (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean ± std"
        if len(seeds) > 1
        else f"seed {seeds[0]}"
    )
    out += [f"Split: {split}; {seeds_note}. Sorted by test RMSE.", "", table(header, rows), ""]
    summary = {
        "per_config": {k: statistics.mean(r["rmse"] for r in v) for k, v in per_config.items()},
        "surprise": {k: statistics.mean(r["rmse"] for r in v) for k, v in surprise_runs.items()},
    }
    return out, summary


RANKING_COLUMNS = ("ndcg@10", "recall@20", "ndcg@100")


def ranking_section(bench, title, source, seeds, kinds, check=True):
    """Top-N quality per kind x objective (item orientation), popularity and EASE beside it:
    the protocol of `aerec evaluate` (relevant = a test rating of 4 or more; candidates =
    every item unrated in training; EASE's lambda chosen on a validation slice).

    Each kind is trained once per seed with the default objective (both); its `rating` row is
    the same run's lists by predicted stars (`evaluate`'s "by stars"), since `--objective
    rating` trains the same autoencoder and skips the ranker: :func:`check_rating_objective`
    checks this on one seed. The ranker alone (`--objective ranking`) does not depend on the
    kind: one row."""
    out = [f"### {title}", ""]
    if not source.exists():
        return out + [f"Skipped: {source} is absent.", ""]
    rows, reference, ndcg = [], {"popularity": [], "ease": []}, {}
    names = [f"{source.stem}-random-s{seed}" for seed in seeds]
    for name, seed in zip(names, seeds):
        bench.ingest(source, name, "random", seed)
    for kind in kinds:
        results = [bench.train_and_evaluate(n, kind, "item", s) for n, s in zip(names, seeds)]
        for seed, result in zip(seeds, results):
            bench.log(f"{title} seed {seed}: {kind} NDCG@10 "
                      f"{result['ranking']['model']['ndcg@10']:.4f}")  # fmt: skip
        if kind == kinds[0]:
            for base in reference:
                reference[base] = [r["ranking"]["baselines"].get(base) for r in results]
        walls = fmt(statistics.mean(r["wall_s"] for r in results), 1)
        for objective, key in (("both", "model"), ("rating", "model_by_stars")):
            ndcg[kind, objective] = statistics.mean(r["ranking"][key]["ndcg@10"] for r in results)
        rows.append(_ranking_row(f"aerec {kind}", "both", results, "model", walls))
        rows.append(_ranking_row(f"aerec {kind}", "rating", results, "model_by_stars", "-"))
    if "ranking" in OBJECTIVES:
        alone = [
            bench.train_and_evaluate(n, DEFAULT_KIND, "item", s, "ranking")
            for n, s in zip(names, seeds)
        ]
        walls = fmt(statistics.mean(r["wall_s"] for r in alone), 1)
        rows.append(_ranking_row("aerec (ranker alone)", "ranking", alone, "model", walls))
    for base, per_seed in reference.items():
        if all(per_seed):
            metrics = [[entry[m] for entry in per_seed] for m in RANKING_COLUMNS]
            rows.append([base, "-"] + [mean_spread(values) for values in metrics] + ["-", "-"])
    header = ["model", "objective", "NDCG@10", "R@20", "NDCG@100", "test RMSE", "train wall s"]
    note = f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}), mean ± std"
    # The rating rows rest on `--objective rating` training the same autoencoder: checked
    # once (ML-100K; tests/scoring/test_ranking.py checks it too).
    checked = [check_rating_objective(bench, names[0], seeds[0]), ""] if check else []
    goals = _ranking_goals(ndcg, reference)
    return out + [f"Random 90/10; {note}.", "", table(header, rows), "", *checked, *goals]


def _ranking_goals(ndcg: dict, reference: dict) -> list[str]:
    """Issue H's goals: the no-flag run >= 1.05 x EASE, every kind above popularity."""
    if not all(reference["popularity"]) or not all(reference["ease"]):
        return []
    ease = statistics.mean(r["ndcg@10"] for r in reference["ease"])
    popularity = statistics.mean(r["ndcg@10"] for r in reference["popularity"])
    default = ndcg.get((DEFAULT_KIND, "both"))
    lines = []
    if default is not None:
        ratio = default / ease
        verdict = "met" if ratio >= 1.05 else "NOT met"
        lines.append(
            f"- No-flag run: NDCG@10 {default:.4f} = {ratio:.3f} x EASE's {ease:.4f} "
            f"(goal >= 1.05 x): {verdict}."
        )
    for objective in ("both", "rating"):
        low_kind, low = min(
            ((k, v) for (k, o), v in ndcg.items() if o == objective), key=lambda kv: kv[1]
        )
        verdict = "met" if low > popularity else "NOT met"
        lines.append(
            f"- Every kind above popularity ({popularity:.4f}) with objective {objective}: "
            f"lowest {low_kind} {low:.4f}: {verdict}."
        )
    return lines + [""]


def _ranking_row(label, objective, results, key, walls) -> list:
    metrics = [[r["ranking"][key][m] for r in results] for m in RANKING_COLUMNS]
    rmse = [r["rmse"] for r in results if r["rmse"] is not None]
    return (
        [label, objective]
        + [mean_spread(values) for values in metrics]
        + [mean_spread(rmse) if rmse and objective != "ranking" else "-", walls]
    )


def check_rating_objective(bench, dataset: str, seed: int) -> str:
    """Train the default kind with `--objective rating` and compare it with the default run's
    stars: the `rating` rows above rest on their being the same."""
    both = bench.train_and_evaluate(dataset, DEFAULT_KIND, "item", seed)
    alone = bench.train_and_evaluate(dataset, DEFAULT_KIND, "item", seed, "rating")
    pairs = [
        ("test RMSE", both["rmse"], alone["rmse"]),
        ("NDCG@10 by stars", both["ranking"]["model_by_stars"]["ndcg@10"],
         alone["ranking"]["model"]["ndcg@10"]),
    ]  # fmt: skip
    same = all(abs(a - b) < 1e-6 for _, a, b in pairs)
    figures = "; ".join(f"{name} {a:.4f} vs {b:.4f}" for name, a, b in pairs)
    verdict = "the same" if same else "NOT the same: the rating rows above are not exact"
    return (
        f"Check, {DEFAULT_KIND} seed {seed}: `--objective rating` alone and the default run's "
        f"lists by stars are {verdict} ({figures}; `--objective rating` took "
        f"{alone['wall_s']:.1f} s whole process)."
    )


def speed_section(bench, sources: dict[str, Path]) -> tuple[list[str], dict]:
    out = ["### Speed (whole process: wall time and peak RSS)", ""]
    rows, walls = [], {}
    for label, source in sources.items():
        if not source.exists():
            out.append(f"Skipped {label}: {source} is absent.")
            continue
        name = f"speed-{label}"
        shutil.rmtree(bench.home / "runs" / name, ignore_errors=True)  # always timed afresh
        steps = [
            ("ingest", ["ingest", str(source), "--name", name, "--force", "--format", "json"]),
            ("train (no flags)", ["train", "--data", name, "--run", name]),
            ("evaluate", ["evaluate", "--run", name, "--format", "json"]),
            (
                "recommend --user 42 --top 10",
                ["recommend", "--run", name, "--user", "42", "--format", "json"],
            ),
            (
                "recommend --all-users --top 10",
                ["recommend", "--run", name, "--all-users", "-o", str(bench.home / f"{name}.csv")],
            ),
        ]
        for step, args in steps:
            measured = bench.aerec(*args)
            walls[(label, step)] = measured["wall"]
            rows.append([label, step, fmt(measured["wall"], 2), fmt(measured["rss_mb"], 0)])
            bench.log(f"speed {label} {step}: {measured['wall']:.1f} s")
    out += [table(["data", "command", "wall s", "peak MB"], rows), ""]
    return out, walls


def epoch_seconds(run_folder: Path) -> float:
    with open(run_folder / "history.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["phase"] == "train"]
    return statistics.mean(float(r["seconds"]) for r in rows)


def scale_section(bench, ml25m_dir: Path, ml1m: Path, scale: float) -> tuple[list[str], dict]:
    """ML-25M-shaped synthetic data: ingest, epochs and recommend at scale; GPU epochs."""
    out = ["### ML-25M-shaped synthetic file", ""]
    source = ml25m_source(bench, ml25m_dir, scale)
    size_mb = (source / "ratings.csv").stat().st_size / 1024**2
    name = "ml25m"
    shutil.rmtree(bench.home / "runs" / name, ignore_errors=True)
    ingested = bench.ingest(source, name)
    meta = json.loads(ingested["out"])
    bench.log(f"ml25m ingest: {ingested['wall']:.0f} s, {ingested['rss_mb']:.0f} MB")
    # The autoencoder's epochs (issue K); the ranker is another model, timed in the top-N bench.
    trained = bench.aerec(
        "train", "--data", name, "--objective", "rating", "--epochs", "2", "--patience", "2",
        "--run", name,
    )  # fmt: skip
    per_epoch = epoch_seconds(bench.home / "runs" / name)
    bench.log(f"ml25m train: {per_epoch:.0f} s per epoch, {trained['rss_mb']:.0f} MB")
    first_user = (bench.home / "datasets" / name / "users.csv").read_text().split()[1]
    recommended = bench.aerec("recommend", "--run", name, "--user", first_user, "--format", "json")
    rows = [
        ["ingest", f"{ingested['wall']:.1f}", f"{ingested['rss_mb']:.0f}"],
        [
            "train --objective rating, 2 epochs (default kind, CPU)",
            f"{trained['wall']:.1f}",
            f"{trained['rss_mb']:.0f}",
        ],
        ["  seconds per epoch", f"{per_epoch:.1f}", "-"],
        [
            f"recommend --user {first_user} --top 10",
            f"{recommended['wall']:.2f}",
            f"{recommended['rss_mb']:.0f}",
        ],
    ]
    out += [
        f"{meta['users']:,} users, {meta['items']:,} items, {meta['ratings']:,} ratings "
        f"(ratings.csv {size_mb:,.0f} MB, made by `benchmarks/make_ml25m.py`"
        + (f" --scale {scale}" if scale != 1 else "")
        + ").",
        "",
        table(["step (whole process)", "wall s", "peak MB"], rows),
        "",
    ]
    figures = {
        "ingest_s": ingested["wall"],
        "ingest_mb": ingested["rss_mb"],
        "epoch_s": per_epoch,
        "train_mb": trained["rss_mb"],
    }
    out += gpu_note(bench, {"ml-1m-synthetic": ml1m, "ML-25M-shaped": source})
    return out, figures


def ml25m_source(bench, ml25m_dir: Path, scale: float) -> Path:
    """The ML-25M-shaped folder, made once by benchmarks/make_ml25m.py and kept."""
    source = ml25m_dir / "ml-25m-synthetic"
    if not (source / "ratings.csv").exists():
        started = time.perf_counter()
        script = str(ROOT / "benchmarks" / "make_ml25m.py")
        command = [sys.executable, script, "--out", str(ml25m_dir), "--scale", str(scale)]
        subprocess.run([*command, "--quiet"], check=True)
        bench.log(f"generated {source} in {time.perf_counter() - started:.0f} s")
    return source


# `make bench-gpu`: epochs per data set, enough to compare speed and validation RMSE.
GPU_EPOCHS = {"ML-100K": 20, "ML-1M": 20, "ML-25M-shaped": 3}


def gpu_section(bench, sources: dict[str, Path], device: str) -> list[str]:
    """Per data set, on ``device``: seconds per epoch, the validation RMSE those epochs reach,
    the whole `train` process, and peak memory (RSS and the GPU's)."""
    rows = []
    for label, source in sources.items():
        if not source.exists():
            rows.append([label, f"skipped: {source} is absent"] + ["-"] * 6)
            continue
        name = f"{device.replace(':', '')}-{label.lower()}"
        bench.ingest(source, name)
        epochs = str(GPU_EPOCHS.get(label, 3))
        args = ["--device", device, "train", "--data", name, "--objective", "rating"]
        args += ["--epochs", epochs, "--patience", epochs, "--run", name]
        started = time.perf_counter()
        trained = bench.aerec(*args)
        bench.log(f"{label} on {device}: {time.perf_counter() - started:.0f} s")
        folder = bench.home / "runs" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        gpu_mb = metrics.get("gpu_peak_mb")
        rows.append([
            label, epochs, f"{epoch_seconds(folder):.3f}", f"{metrics['val_rmse']:.4f}",
            f"{trained['wall']:.1f}", f"{metrics['train_seconds']:.1f}",
            f"{trained['rss_mb']:.0f}", "-" if gpu_mb is None else str(gpu_mb),
        ])  # fmt: skip
    header = ["data", "epochs", "s/epoch", "val RMSE", "train wall s", "epochs s", "peak RSS MB"]
    return [table([*header, "peak GPU MB"], rows), ""]


def gpu_report(args, bench, data: Path, started: float) -> None:
    """`make bench-gpu`: the GPU rows, written to --out (benchmarks/gpu.md)."""
    import torch

    device = args.gpu_device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("make bench-gpu needs a CUDA GPU: none is available to this torch")
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    sources = {
        "ML-100K": data / "ml-100k.zip",
        "ML-1M": data / "ml-1m.zip",
        "ML-25M-shaped": ml25m_source(bench, Path(args.ml25m), args.ml25m_scale),
    }
    body = gpu_section(bench, sources, device)
    command = "make bench-gpu" + (f" (--gpu-device {device})" if device != "cuda" else "")
    header = [
        "# GPU benchmarks",
        "",
        f"Made by `{command}` (`python benchmarks/bench.py --gpu-only`) on "
        f"{time.strftime('%Y-%m-%d')} in {(time.time() - started) / 60:.1f} min.",
        "",
        f"Machine: {machine()}; device: {name}.",
        "",
        "Each row is `aerec --device DEVICE train --objective rating --epochs N --patience N` "
        "(the default kind), whole process; `epochs s` is the training loop.",
        "",
    ]
    Path(args.out).write_text("\n".join([*header, *body]) + "\n")
    bench.log(f"wrote {args.out}")


def gpu_note(bench, sources: dict[str, Path]) -> list[str]:
    """The full bench's GPU rows: those of `make bench-gpu` where CUDA is at hand."""
    import torch

    out = ["### GPU", ""]
    if not torch.cuda.is_available():
        note = "No CUDA GPU on this machine: `make bench-gpu` makes the GPU rows where one is."
        return out + [note, ""]
    return out + gpu_section(bench, sources, "cuda")


def search_section() -> list[str]:
    files = sorted((ROOT / "benchmarks").glob("search-*.csv"))
    out = ["## Hyperparameter search (validation slice only)", ""]
    if not files:
        return out + ["No search recorded (run benchmarks/search.py).", ""]
    out += [
        "Made with `benchmarks/search.py` (see the Makefile's `search` target): each setting is",
        "trained on the train split less its 5% validation slice, and only the validation RMSE",
        "is recorded; the test split is never read. A setting lists what it changed from the",
        "defaults of its time: rows without `lr_patience` ran without learning-rate decay (the",
        "option came last, chosen by the `lr_patience` rows). Best setting per kind and file:",
        "",
    ]
    rows = []
    for path in files:
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle))
        best: dict[str, dict] = {}
        for record in records:
            kind = json.loads(record["config"])["kind"]
            if kind not in best or float(record["val_rmse"]) < float(best[kind]["val_rmse"]):
                best[kind] = record
        for kind, record in best.items():
            config = {k: v for k, v in json.loads(record["config"]).items() if k != "kind"}
            rows.append([path.name, kind, f"`{json.dumps(config)}`", record["val_rmse"]])
        out.append(f"- `{path.name}`: {len(records)} fits")
    out += ["", table(["file", "kind", "best setting", "val RMSE"], rows), ""]
    return out


def goals_section(results: dict, walls: dict) -> list[str]:
    check = _met
    rows = []
    u1 = results.get("u1", {}).get("per_config", {})
    if u1:
        best = min(u1.values())
        rows.append(["ML-100K u1: best setting <= 0.889", fmt(best), check(best <= 0.889)])
    rnd = results.get("random", {})
    if rnd.get("per_config"):
        configs = rnd["per_config"]
        best = min(configs.values())
        default = configs.get((DEFAULT_KIND, "item"))
        rows.append(
            ["ML-100K random, 5 seeds: best setting <= 0.865", fmt(best), check(best <= 0.865)]
        )
        if default is not None:
            rows.append(
                [
                    "ML-100K random: `aerec train` (no flags) <= 0.890",
                    fmt(default),
                    check(default <= 0.890),
                ]
            )
        svd = rnd.get("surprise", {}).get("SVD")
        if svd is not None:
            worst_item = max(v for (k, o), v in configs.items() if o == "item")
            rows.append(
                [
                    "ML-100K random: every kind (item) beats Surprise SVD " + fmt(svd),
                    fmt(worst_item),
                    check(worst_item < svd),
                ]
            )
            worst_any = max(configs.values())
            rows.append(
                [
                    "ML-100K random: every kind, both orientations, beats Surprise SVD",
                    fmt(worst_any),
                    check(worst_any < svd),
                ]
            )
    rows += ml1m_goal_rows(results.get("ml1m", {}))
    for label, limit in (("ml-100k", 60), ("ml-1m-synthetic", 300)):
        wall = walls.get((label, "train (no flags)"))
        if wall is not None:
            rows.append(
                [
                    f"{label}: `aerec train` (no flags) < {limit} s",
                    fmt(wall, 1),
                    check(wall < limit),
                ]
            )
    big = results.get("scale")
    if big:
        rows += [
            [
                "ML-25M-shaped: ingest <= 120 s",
                fmt(big["ingest_s"], 0),
                check(big["ingest_s"] <= 120),
            ],
            [
                "ML-25M-shaped: ingest <= 8 GiB",
                f"{big['ingest_mb'] / 1024:.1f} GiB",
                check(big["ingest_mb"] <= 8 * 1024),
            ],
            [
                "ML-25M-shaped: an epoch <= 180 s (CPU)",
                fmt(big["epoch_s"], 0),
                check(big["epoch_s"] <= 180),
            ],
            [
                "ML-25M-shaped: training under 12 GiB",
                f"{big['train_mb'] / 1024:.1f} GiB",
                check(big["train_mb"] < 12 * 1024),
            ],
        ]
    for label in ("ml-100k", "ml-1m-synthetic"):
        wall = walls.get((label, "recommend --user 42 --top 10"))
        if wall is not None and label == "ml-1m-synthetic":
            rows.append(
                [
                    f"{label}: `recommend --user 42 --top 10` <= 0.5 s",
                    fmt(wall, 2),
                    check(wall <= 0.5),
                ]
            )
        wall = walls.get((label, "recommend --all-users --top 10"))
        if wall is not None and label == "ml-1m-synthetic":
            rows.append(
                [
                    f"{label}: `recommend --all-users --top 10` <= 10 s",
                    fmt(wall, 1),
                    check(wall <= 10),
                ]
            )
    return ["## Goals", "", table(["goal", "measured", "status"], rows), ""]


# The most accurate setting found on ML-1M's validation slice (benchmarks/search-ml1m-random.csv:
# 500 hidden units 0.8219 against 0.8251 for the default 300; then the mean of 5 networks).
ML1M_BEST = ("denoising --hidden 500 --ensemble 5", "item", ("--hidden", "500", "--ensemble", "5"))
# ... and on ML-100K's (README "Both orientations"; benchmarks/search-ml100k-both.csv and
# search-ml100k-val-slices.csv).
ML100K_BEST = (
    "denoising --ensemble 5 --val-slices own",
    "both",
    ("--ensemble", "5", "--val-slices", "own"),
)


def ml1m_goal_rows(results: dict) -> list[list[str]]:
    """Issue J's goals on ML-1M random 90/10 (mean over the seeds) and the SVD comparison."""
    rows, random = [], results.get("random", {})
    configs, svd = random.get("per_config", {}), random.get("surprise", {}).get("SVD")
    default = configs.get((DEFAULT_KIND, "item"))
    if default is None:
        return rows
    best = min(configs.values())
    rows.append(
        ["ML-1M random: `aerec train` (no flags) <= 0.830", fmt(default), _met(default <= 0.830)]
    )
    rows.append(["ML-1M random: best setting <= 0.825", fmt(best), _met(best <= 0.825)])
    if svd is not None:
        rows.append(
            [
                f"ML-1M random: default beats Surprise SVD {fmt(svd)}",
                fmt(default),
                _met(default < svd),
            ]
        )
    return rows


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ml1m_accuracy(bench, data: Path, seeds: list[int]) -> tuple[list[str], dict]:
    """The real ML-1M: the default run and the best setting found on validation, beside
    Surprise SVD and the baselines; random 90/10 over ``seeds``, and the temporal split."""
    source = data / "ml-1m.zip"
    out, results = [], {}
    for split, split_seeds, title in (
        ("random", seeds, "ML-1M, random 90/10"),
        ("temporal", [0], "ML-1M, temporal split (each user's latest 10% is the test)"),
    ):
        section, results[split] = accuracy_section(
            bench,
            title,
            source,
            split,
            split_seeds,
            [DEFAULT_KIND],
            lambda kind: ["item"],
            ["SVD"],
            objective="rating",
            variants=(ML1M_BEST,),
        )
        out += section
    return out + [
        "The aerec rows train `--objective rating`: the autoencoder the default run trains",
        "first, without the ranker after it, so their RMSE is the default run's. Surprise",
        "SVD++ is left out: on ML-1M it needs well over an hour per fit on 2 cores. The other",
        "kinds' ML-1M RMSE is in the top-N tables (`benchmarks/topn.md`).",
        "",
    ], results


def ranking_tables(
    bench, data: Path, seeds: list[int], quick: bool, ml1m_kinds: list[str] | None = None
) -> list[str]:
    """ML-100K: every kind x objective over ``seeds``; ML-1M: every kind but sparse (or
    ``ml1m_kinds``) x objective, seed 0 (the default kind only with --quick)."""
    ml100k = ranking_section(bench, "ML-100K", data / "ml-100k.zip", seeds, KINDS)
    every = [kind for kind in KINDS if kind != "sparse"]
    chosen = [DEFAULT_KIND] if quick else (ml1m_kinds or every)
    ml1m = ranking_section(bench, "ML-1M", data / "ml-1m.zip", [0], chosen, check=False)
    if not quick and "sparse" not in chosen:
        ml1m += [SPARSE_AT_ML1M, ""]
    left_out = [kind for kind in every if kind not in chosen]
    if left_out and not quick:
        ml1m += [f"Left out at ML-1M this time (`--ml1m-kinds`): {', '.join(left_out)}.", ""]
    return ml100k + ml1m


def write_part(args, title: str, lines: list[str], log) -> None:
    """A part of the benchmarks in its own file (--out), saying the command that made it."""
    made = "python benchmarks/bench.py " + " ".join(sys.argv[1:])  # as it was run
    header = [title, "", f"Made by `{made}` on {time.strftime('%Y-%m-%d')}.", ""]
    Path(args.out).write_text("\n".join([*header, f"Machine: {machine()}.", "", *lines]) + "\n")
    log(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "aerec-bench"))
    parser.add_argument("--quick", action="store_true", help="1 seed, item orientation only")
    parser.add_argument(
        "--ml25m",
        default=str(Path(tempfile.gettempdir()) / "aerec-ml25m"),
        help="where the ML-25M-shaped file is made once and kept",
    )
    parser.add_argument("--ml25m-scale", type=float, default=1.0)
    parser.add_argument(
        "--ranking-only",
        action="store_true",
        help="only the top-N tables (ML-100K, ML-1M), written to --out",
    )
    parser.add_argument(
        "--ml1m-kinds", help="the kinds of the ML-1M top-N table, e.g. basic,denoising"
    )
    parser.add_argument(
        "--ml1m-accuracy-only",
        action="store_true",
        help="only the ML-1M accuracy tables (random over the seeds, temporal), to --out",
    )
    parser.add_argument(
        "--gpu-only",
        action="store_true",
        help="only the GPU rows (make bench-gpu): ML-100K, ML-1M, ML-25M-shaped, to --out",
    )
    parser.add_argument("--gpu-device", default="cuda", help="with --gpu-only (cpu: a dry run)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs an interrupted bench finished in --home (their peak MB is lost)",
    )
    args = parser.parse_args()
    data, home = Path(args.data), Path(args.home)
    if not args.resume:
        shutil.rmtree(home, ignore_errors=True)  # every figure from a fresh store
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:7.0f} s] {message}", file=sys.stderr, flush=True)

    bench = Bench(data, home, log, args.resume)
    if args.gpu_only:
        gpu_report(args, bench, data, started)
        return
    seeds = [0] if args.quick else [0, 1, 2, 3, 4]
    if args.ml1m_accuracy_only:
        section, results = ml1m_accuracy(bench, data, seeds)
        goals = table(["goal", "measured", "status"], ml1m_goal_rows(results))
        write_part(args, "# ML-1M accuracy", [goals, "", *section], log)
        return
    ml1m_kinds = args.ml1m_kinds.split(",") if args.ml1m_kinds else None
    ranking = ranking_tables(bench, data, seeds, args.quick, ml1m_kinds)
    if args.ranking_only:
        write_part(args, "# Top-N benchmarks", ranking, log)
        return
    both = (lambda kind: ["item"]) if args.quick else (lambda kind: ["item", "user"])
    ml100k, ml1m = data / "ml-100k.zip", data / "ml-1m-synthetic.zip"
    results, body = {}, []
    # Speed first, on an idle machine, before the long accuracy runs.
    speed, walls = speed_section(bench, {"ml-100k": ml100k, "ml-1m-synthetic": ml1m})
    surprise, best = ["SVD", "SVD++"], (ML100K_BEST,)
    section, results["random"] = accuracy_section(
        bench,
        "ML-100K, random 90/10",
        ml100k,
        "random",
        seeds,
        KINDS,
        both,
        surprise,
        variants=best,
    )
    body += section
    section, results["u1"] = accuracy_section(
        bench,
        "ML-100K, predefined u1 split",
        ml100k,
        "u1",
        [0],
        KINDS,
        both,
        surprise,
        variants=best,
    )
    body += section
    section, results["ml1m"] = ml1m_accuracy(bench, data, seeds)
    body += section
    scale, results["scale"] = scale_section(bench, Path(args.ml25m), ml1m, args.ml25m_scale)
    command = "make bench" + (" (--quick)" if args.quick else "")
    report = [
        "# Benchmarks",
        "",
        f"Made by `{command}` (`python benchmarks/bench.py`) on {time.strftime('%Y-%m-%d')}, "
        f"in {(time.time() - started) / 60:.0f} min"
        + (
            " (with `--resume`: rows whose peak MB is `-` were finished by an earlier, "
            "interrupted run and reused)."
            if args.resume
            else "."
        ),
        "",
        f"Machine: {machine()}.",
        "",
        "Every aerec row is the CLI with default flags except `--kind`/`--orientation`, in its own",
        "process; `train s` is the training loop, `peak MB` the training process's peak RSS.",
        "Surprise (scikit-surprise, default parameters) and the baselines use the same stored",
        "train/test split. Test RMSE is measured once per run, after training; nothing is tuned",
        "on it.",
        "",
        *goals_section(results, walls),
        "## Top-N lists",
        "",
        *ranking,
        "## Accuracy",
        "",
        *body,
        "## Speed",
        "",
        *speed,
        *scale,
        *search_section(),
    ]
    Path(args.out).write_text("\n".join(report) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
