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
from aerec_cli.storage import atomic, locks, names

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
        sums = self.config.get("sha256")
        expected = sums.get(filename) if isinstance(sums, dict) else None
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise AerecError(
                f"{filename} of run {self.name} is damaged: it does not match the checksum "
                "recorded in its config.json when it was saved; train again"
            )
        return data

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
    def has_ranker(self) -> bool:
        return isinstance(self.config.get("ranker"), dict)

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

        if not (self.path / RESUME_INFO).is_file():
            status = self.metrics.get("status", "finished")
            raise AerecError(f"run {self.name} has no state to resume from (it is {status})")
        data = self.read_checked(RESUME_TENSORS)
        try:
            return load(data), atomic.read_json(self.path / RESUME_INFO)
        except (SafetensorError, OSError, ValueError) as exc:
            raise AerecError(
                f"the resume state of run {self.name} is damaged ({_first_line(exc)}); train again"
            ) from exc

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
    base = names.shortened(dataset, names.MAX_LENGTH - len(suffix) - 4) + suffix
    name, n = base, 2
    while (home / "runs" / name).exists():
        name, n = f"{base}-{n}", n + 1
    return check_run_name(name)


def check_run_name(name: str) -> str:
    return names.check_name(name, "run", "--run")


def save_run(
    home: Path,
    name: str,
    model: RatingAutoencoder,
    config: dict,
    history: list[dict],
    metrics: dict,
    replace: bool = False,
    resume: tuple[dict, dict] | None = None,
    ranker: dict | None = None,
) -> Run:
    """Write a whole run folder at once (staged, then renamed into place).

    ``resume``: the tensors and values that `train --resume` continues from (interrupted
    runs only). ``ranker``: {"tensors": ..., "config": ...} of a run that ranks too.
    """
    from safetensors.torch import save

    target = home / "runs" / check_run_name(name)
    if target.exists() and not replace:
        raise AerecError(f"run {name} already exists; pick another --run name")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors = {WEIGHTS: save(state, metadata={"kind": model.kind})}
    if resume is not None:
        tensors[RESUME_TENSORS] = save(resume[0])
    if ranker is not None:
        tensors[RANKER] = save(ranker["tensors"])
        config = {**config, "ranker": ranker["config"]}
    # Loading checks each tensor file against its digest: damage or tampering is an error.
    sums = {filename: hashlib.sha256(data).hexdigest() for filename, data in tensors.items()}
    config = {**config, "model": model.spec(), "created": _now(), "sha256": sums}
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
        home / "runs",
        name,
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


def list_runs(home: Path) -> list[Run]:
    """Every readable run, oldest first."""
    root = home / "runs"
    atomic.recover_folders(root)  # a replacement cut short between its renames
    runs = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not (folder / CONFIG).is_file():
            continue
        try:
            runs.append(_read_run(folder))
        except AerecError:
            continue
    return sorted(runs, key=lambda r: r.config.get("created", ""))


def load_run(home: Path, name: str | None = None) -> Run:
    if name is None:
        runs = list_runs(home)
        if not runs:
            raise AerecError(f"no trained run in {home}; train one first: aerec train")
        return runs[-1]
    folder = home / "runs" / name
    atomic.recover_folders(home / "runs")
    if not (folder / CONFIG).is_file():
        known = ", ".join(r.name for r in list_runs(home)[-5:]) or "none"
        raise AerecError(f"no run named {name!r} in {home} (latest: {known}); see aerec runs")
    return _read_run(folder)


def _read_run(folder: Path) -> Run:
    try:
        config = atomic.read_json(folder / CONFIG)
        metrics = atomic.read_json(folder / METRICS) if (folder / METRICS).is_file() else {}
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise ValueError("config.json lacks the model")
        if not isinstance(config.get("dataset"), str):
            raise ValueError("config.json lacks the dataset")
        if config.get("orientation") not in ("item", "user"):
            raise ValueError("config.json lacks the orientation")
        if not isinstance(metrics, dict):
            raise ValueError("metrics.json is not an object")
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise AerecError(
            f"run {folder.name} is damaged ({_first_line(exc)}); train it again"
        ) from exc
    return Run(folder.name, folder, config, metrics)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
