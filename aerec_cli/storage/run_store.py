"""Runs on disk: ``HOME/runs/RUN/`` with weights in safetensors and everything else as JSON/CSV.

Nothing here ever unpickles: tensors come from safetensors, the rest from JSON and CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, integrity, locks, paths, pin, verified
from aerec_cli.training.config import ORIENTATIONS

if TYPE_CHECKING:  # torch loads only where weights are read or written (fast `recommend`)
    import torch

    from aerec_cli.models.autoencoders import RatingAutoencoder

WEIGHTS, CONFIG, HISTORY, METRICS = (
    "model.safetensors",
    "config.json",
    "history.csv",
    "metrics.json",
)
# The ranker of a run trained for top-N lists too (models/ranker.py): its network ("dae.*")
# and EASE's item x item weights ("ease").
RANKER = "ranker.safetensors"
# Left by an interrupted run, for `aerec train --resume RUN`; a finished run has neither.
RESUME_TENSORS, RESUME_INFO = "resume.safetensors", "resume.json"


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    metrics: dict

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    def history(self) -> list[dict]:
        with open(self.path / HISTORY, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def read_checked(self, filename: str) -> bytes:
        """A tensor file of this run, checked against the sha256 that config.json recorded
        when the run was saved (runs saved before checksums existed are not checked)."""
        try:
            data = (self.path / filename).read_bytes()
        except OSError as exc:
            raise AerecError(
                f"{filename} of run {self.name} cannot be read ({exc.strerror or exc}); the run "
                "is damaged: train again"
            ) from exc
        expected = self._recorded_sha256(filename)
        if expected is not None:
            if hashlib.sha256(data).hexdigest() != expected:
                if self._replaced():
                    raise AerecError(
                        f"run {self.name} was saved again while it was read (train --resume "
                        "finished it); run the command again"
                    )
                raise AerecError(
                    f"{filename} of run {self.name} is damaged: it does not match the checksum "
                    "recorded in its config.json when it was saved; train again"
                )
            verified.note(self.path / filename, expected)
        return data

    def trained_on(self, version: str) -> bool:
        """Whether this run was trained on the dataset version ``version`` (its digest)."""
        return self.config.get("dataset_meta_sha256") == version

    def require_trained_on(self, version: str) -> None:
        """An error, unless this run's dataset is still the version it was trained on."""
        if not self.trained_on(version):
            raise AerecError(
                f"dataset {self.dataset} was re-ingested after run {self.name} was trained on "
                f"it; train again: aerec train --data {self.dataset}"
            )

    def check(self, filename: str) -> None:
        """Raise as :meth:`read_checked` does if the file is damaged, without reading it when
        it is unchanged since its digest last matched (storage/verified.py)."""
        expected = self._recorded_sha256(filename)
        if expected is None or not verified.unchanged(self.path / filename, expected):
            self.read_checked(filename)

    def _recorded_sha256(self, filename: str) -> str | None:
        sums = self.config.get("sha256")
        expected = sums.get(filename) if isinstance(sums, dict) else None
        return expected if isinstance(expected, str) else None

    def _replaced(self) -> bool:
        """The run on disk is no longer the version this object was read from."""
        try:
            return _read_run(self.path).config != self.config
        except AerecError:
            return True

    def load_model(self, device: torch.device) -> RatingAutoencoder:
        from safetensors import SafetensorError
        from safetensors.torch import load

        from aerec_cli.models.autoencoders import build_model

        data = self.read_checked(WEIGHTS)
        try:
            model = build_model(self.config["model"])
            state = load(data)
            model.load_state_dict(state, strict=True)
        except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise AerecError(
                f"the weights of run {self.name} cannot be loaded ({_first_line(exc)}); "
                "the checkpoint is damaged or does not match its config: train again"
            ) from exc
        return model.to(device).eval()

    @property
    def has_model(self) -> bool:
        """Whether the run has a rating autoencoder (model.safetensors): every run but those
        trained with --objective ranking."""
        return isinstance(self.config.get("model"), dict)

    @property
    def has_ranker(self) -> bool:
        return isinstance(self.config.get("ranker"), dict)

    @property
    def objective(self) -> str:
        """What the run learnt, from what it holds: "both", "rating" (runs from before rankers
        too) or "ranking"."""
        if not self.has_model:
            return "ranking"
        return "both" if self.has_ranker else "rating"

    @property
    def tensor_file(self) -> str:
        """The tensor file that scoring treats as the run's source of truth: the rating
        autoencoder's weights, or the ranker's in a run without them."""
        return WEIGHTS if self.has_model else RANKER

    def load_ranker(self, device: torch.device):
        """(the Mult-DAE, EASE's weights as numpy or None) of a run that has a ranker."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        from aerec_cli.models.ranker import MultinomialRanker

        data = self.read_checked(RANKER)
        try:
            tensors = load(data)
            model = MultinomialRanker(**self.config["ranker"]["model"])
            model.load_state_dict(
                {k[4:]: v for k, v in tensors.items() if k.startswith("dae.")}, strict=True
            )
        except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise AerecError(
                f"the ranker of run {self.name} cannot be loaded ({_first_line(exc)}); "
                "the run is damaged: train again"
            ) from exc
        ease = tensors["ease"].numpy() if "ease" in tensors else None
        return model.to(device).eval(), ease

    def load_resume(self) -> tuple[dict, dict]:
        """The tensors and values an interrupted run resumes from."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        self.check_resumable()
        data = self.read_checked(RESUME_TENSORS)
        try:
            tensors, info = load(data), atomic.read_json(self.path / RESUME_INFO)
            problem = _resume_problem(info)
            if problem is not None:
                raise ValueError(problem)
        except (SafetensorError, OSError, ValueError) as exc:
            raise AerecError(
                f"the resume state of run {self.name} is damaged ({_first_line(exc)}); train again"
            ) from exc
        return tensors, info

    def check_resumable(self) -> None:
        """An interrupted run has resume.json; any other is an error saying what it is."""
        if not (self.path / RESUME_INFO).is_file():
            status = self.metrics.get("status", "finished")
            raise AerecError(f"run {self.name} has no state to resume from (it is {status})")

    def update_metrics(self, **entries) -> str | None:
        """Record ``entries`` (e.g. test=report) in metrics.json, if this run is still the
        version that was read; returns None when recorded, else why not (for a warning).

        A reader (evaluate) works on the version it read, and may finish after a trainer has
        saved a newer one (`train --resume`); writing then would put stale numbers, status
        and epoch count into the newer run. So the write takes the run's lock (no trainer is
        saving it meanwhile), reads the run again and merges into what is there now.
        """
        busy = f"run {self.name} is being trained; its metrics were not updated"
        try:
            with locks.name_lock(self.path.parent, self.name, busy, wait=METRICS_WAIT):
                now = _read_run(self.path) if (self.path / CONFIG).is_file() else None
                if now is None or _version(now) != _version(self):
                    return (
                        f"run {self.name} changed while it was evaluated (saved again, e.g. by "
                        "train --resume, or removed): these results of its earlier version "
                        "were not recorded in it; evaluate it again"
                    )
                metrics = {**now.metrics, **entries}
                atomic.write_json(self.path / METRICS, metrics)
        except AerecError as exc:
            return exc.message
        except OSError as exc:  # the disk is full, say: metrics.json is as it was
            why, remedy = atomic.write_failure(exc)
            return (
                f"the metrics of run {self.name} could not be updated ({why}); the run is "
                f"unchanged: {remedy}"
            )
        self.metrics = metrics
        return None


# How long recording metrics waits for the run's lock: another reader's write takes
# milliseconds, while a trainer holds it for the whole training (and then its numbers would be
# stale anyway).
METRICS_WAIT = 2.0


def _version(run: Run) -> tuple:
    """What tells two saved versions of a run apart: when it was saved and its weights."""
    return run.config.get("created"), json.dumps(run.config.get("sha256"), sort_keys=True)


def new_run_name(home: Path, dataset: str, kind: str) -> str:
    """DATASET-KIND-TIME, with the dataset's part cut short where the whole would be too long
    to store (room is kept for a "-N" that tells apart runs started in the same second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-{kind}-{stamp}"
    base = paths.shortened(dataset, paths.MAX_NAME["run"] - len(suffix) - 4) + suffix
    name, n = base, 2
    while (home / "runs" / name).exists():
        name, n = f"{base}-{n}", n + 1
    return check_run_name(name)


def check_run_name(name: str) -> str:
    return paths.check_name(name, "run")


def save_run(
    home: Path,
    name: str,
    model: RatingAutoencoder | None,
    config: dict,
    history: list[dict],
    metrics: dict,
    replace: bool = False,
    resume: tuple[dict | None, dict] | None = None,
    ranker: dict | None = None,
) -> Run:
    """Write a whole run folder at once (staged, then renamed into place).

    ``model``: the rating autoencoder, None for a run trained with --objective ranking.
    ``resume``: the tensors (None: nothing to continue from, the run restarts) and values that
    `train --resume` reads (interrupted runs only). ``ranker``: {"tensors": ..., "config":
    ...} of a run that ranks. A run holds at least one of the two models.
    """
    from safetensors.torch import save

    if model is None and ranker is None:
        raise ValueError("a run needs a rating model, a ranker or both")
    target = paths.writable_folder(home, "runs") / check_run_name(name)
    if target.exists() and not replace:
        raise AerecError(f"run {name} already exists; pick another --run name")
    tensors = {}
    if model is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors[WEIGHTS] = save(state, metadata={"kind": model.kind})
        config = {**config, "model": model.spec()}
    if resume is not None and resume[0] is not None:
        tensors[RESUME_TENSORS] = save(resume[0])
    if ranker is not None:
        tensors[RANKER] = save(ranker["tensors"])
        config = {**config, "ranker": ranker["config"]}
    # Loading checks each tensor file against its digest: damage or tampering is an error.
    sums = {filename: hashlib.sha256(data).hexdigest() for filename, data in tensors.items()}
    config = {**config, "created": _now(), "sha256": sums}
    with atomic.staged_folder(target, replace=replace) as folder:
        for filename, data in tensors.items():
            atomic.write_bytes(folder / filename, data)
        atomic.write_json(folder / CONFIG, config)
        atomic.write_text(folder / HISTORY, _history_csv(history))
        atomic.write_json(folder / METRICS, metrics)
        if resume is not None:
            atomic.write_json(folder / RESUME_INFO, resume[1])
    return Run(name, target, config, metrics)


def run_lock(home: Path, name: str):
    """Held while training into run NAME: a second process is refused, not interleaved."""
    return locks.name_lock(
        paths.writable_folder(home, "runs"),
        check_run_name(name),
        f"run {name} is being trained by another aerec process; wait for it to end or pick "
        "another --run name",
    )


def _history_csv(history: list[dict]) -> str:
    fields = list(dict.fromkeys(key for row in history for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


def scan_runs(home: Path) -> tuple[list[Run], list[integrity.Damaged]]:
    """(every readable run, oldest first; the damaged ones)."""
    root = paths.store_folder(home, "runs")
    atomic.recover_folders(root)  # a replacement cut short between its renames
    runs, broken = [], []
    for folder in integrity.stored_entries(root):
        try:
            runs.append(_read_run(folder))
        except DamagedRun as exc:
            config = folder / CONFIG
            order = (config if config.exists() else folder).stat().st_mtime_ns
            broken.append(integrity.Damaged(folder.name, exc.reason, order))
    return sorted(runs, key=_created), broken


def list_runs(home: Path) -> list[Run]:
    """Every readable run, oldest first."""
    return scan_runs(home)[0]


def _created(run: Run) -> int:
    """When a run was saved, in ns (config.json's "created"; its file's time if unset)."""
    try:
        return int(datetime.fromisoformat(run.config["created"]).timestamp() * 1e9)
    except (KeyError, TypeError, ValueError):
        return (run.path / CONFIG).stat().st_mtime_ns


def load_run(home: Path, name: str | None = None) -> Run:
    """Run ``name``, else the pinned run (`aerec use`), else the latest; a damaged latest or
    a missing or damaged pinned run is an error that names it (never another run instead)."""
    if name is None and (pinned := pin.pinned_run(home)) is not None:
        return _load_pinned(home, pinned)
    if name is None:
        runs, broken = scan_runs(home)
        newest = max(broken, key=lambda d: d.order, default=None)
        if newest is not None and (not runs or newest.order > _created(runs[-1])):
            raise AerecError(
                f"the latest run, {newest.name}, is damaged ({newest.problem}); train it "
                "again, or pick another with --run NAME (see: aerec runs)"
            )
        if not runs:
            raise AerecError(f"no trained run in {home}; train one first: aerec train")
        return runs[-1]
    root = paths.store_folder(home, "runs")
    folder = root / check_run_name(name)
    atomic.recover_folders(root)
    if not (folder / CONFIG).is_file():
        known = ", ".join(r.name for r in list_runs(home)[-5:]) or "none"
        raise AerecError(f"no run named {name!r} in {home} (latest: {known}); see aerec runs")
    return _read_run(folder)


def _load_pinned(home: Path, name: str) -> Run:
    fix = (
        "unpin it with aerec use --latest, pin another with aerec use RUN, or pick one with "
        "--run NAME"
    )
    root = paths.store_folder(home, "runs")
    atomic.recover_folders(root)
    if not (root / name).is_dir():
        raise AerecError(f"the pinned run {name} no longer exists in {home}; {fix}")
    try:
        return _read_run(root / name)
    except DamagedRun as exc:
        raise AerecError(f"the pinned run {name} is damaged ({exc.reason}); {fix}") from exc


def _read_run(folder: Path) -> Run:
    """The run in ``folder``: config.json and metrics.json of one version, checked."""
    try:
        files = atomic.read_files(folder, [CONFIG], optional=[METRICS])
        config = json.loads(files[CONFIG])
        metrics = json.loads(files[METRICS]) if METRICS in files else {}
        problem = _config_problem(config) or _metrics_problem(metrics)
        if problem is not None:
            raise ValueError(problem)
    except atomic.FolderChanged:
        return _read_run(folder)  # saved again meanwhile: read the new version
    except FileNotFoundError as exc:
        raise DamagedRun(folder.name, f"it has no {CONFIG}") from exc
    except (OSError, ValueError) as exc:
        raise DamagedRun(folder.name, _first_line(exc)) from exc
    return Run(folder.name, folder, config, metrics)


class DamagedRun(AerecError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"run {name} is damaged ({reason}); train it again")
        self.reason = reason


def _config_problem(config) -> str | None:
    # A ranking-only run (--objective ranking) has its ranker and no rating model.
    if not isinstance(config, dict) or not any(
        isinstance(config.get(key), dict) for key in ("model", "ranker")
    ):
        return "config.json lacks the model"
    dataset = config.get("dataset")
    if not isinstance(dataset, str):
        return "config.json lacks the dataset"
    try:
        paths.check_name(dataset, "dataset")  # a hand-edited "../x" must not leave datasets/
    except AerecError as exc:
        return f"config.json: {exc.message}"
    if config.get("orientation") not in ORIENTATIONS:
        return "config.json lacks the orientation"
    if not isinstance(config.get("kind"), str) or not isinstance(config.get("train"), dict):
        return "config.json lacks the kind or the training settings"
    if not isinstance(config.get("created", ""), str):
        return "config.json's 'created' is not a time"
    return None


def _metrics_problem(metrics) -> str | None:
    """What `aerec runs` and the commands read from metrics.json, of the wrong type."""
    if not isinstance(metrics, dict):
        return "metrics.json is not an object"
    for key in ("val_rmse", "best_val_rmse"):
        if not _number_or_none(metrics.get(key)):
            return f"metrics.json's {key!r} is not a number"
    epochs = metrics.get("epochs_run")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)):
        return "metrics.json's 'epochs_run' is not a whole number"
    test = metrics.get("test", {})
    if not isinstance(test, dict) or not _number_or_none(test.get("rmse")):
        return "metrics.json's 'test' is not the test split's metrics"
    if not isinstance(metrics.get("status", ""), str):
        return "metrics.json's 'status' is not text"
    return None


def _resume_problem(info) -> str | None:
    """resume.json holds what Trainer.restore reads, of the right types."""
    if not isinstance(info, dict):
        return "resume.json is not an object"
    for key in ("epoch", "best_epoch"):
        if not isinstance(info.get(key), int) or isinstance(info.get(key), bool):
            return f"resume.json's {key!r} is not a whole number"
    for key in ("best_rmse", "seconds"):
        if not _number_or_none(info.get(key)) or info.get(key) is None:
            return f"resume.json's {key!r} is not a number"
    if not isinstance(info.get("history"), list) or not isinstance(info.get("adam_groups"), list):
        return "resume.json lacks the history or the optimiser's settings"
    finished = info.get("ensemble", {"history": [], "members": []})
    if not (
        isinstance(finished, dict)
        and isinstance(finished.get("history"), list)
        and isinstance(finished.get("members"), list)
        and all(isinstance(member, dict) for member in finished["members"])
    ):
        return "resume.json's 'ensemble' lacks the finished members' history"
    return None


def _number_or_none(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
