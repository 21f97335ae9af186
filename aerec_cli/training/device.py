"""Pick the torch device: CUDA, then Apple MPS, then CPU, unless the user names one."""

from __future__ import annotations

import os
import re
import time

import torch

from aerec_cli.errors import AerecError
from aerec_cli.training.config import available_cpus, check_threads

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def select_device(spec: str | None = "auto") -> torch.device:
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if match := re.fullmatch(r"cuda(?::(\d+))?", spec):
        if not torch.cuda.is_available():
            raise AerecError(
                f"--device {spec}: no CUDA GPU is available to this torch build; "
                "use --device cpu or --device auto"
            )
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise AerecError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device("cuda", index)
    if spec == "mps":
        if not _mps_available():
            raise AerecError("--device mps: Apple MPS is not available here; use --device auto")
        return torch.device("mps")
    raise AerecError(f"--device {spec!r} is not a device; choose {DEVICE_CHOICES}")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def configure_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (None: :func:`idle_cpus`)."""
    check_threads(threads)
    threads = threads or idle_cpus()
    torch.set_num_threads(threads)
    return threads


def idle_cpus() -> int:
    """The CPUs this process may use less those other work keeps busy when it starts, at
    least one.

    torch's threads wait for each other at every operation: where another process keeps a
    core busy, one descheduled thread stalls them all. On 2 shared cores an ML-1M epoch took
    8 s with 2 threads and 2-3 s with 1 (the same losses); on idle cores 2 threads are faster.
    """
    cpus = available_cpus()
    return max(1, min(cpus, cpus - int(busy_cpus() + 0.5)))


def busy_cpus(samples: int = 5, pause: float = 0.02) -> float:
    """Threads of other work running now: the fewest runnable threads Linux counts over a
    few samples (/proc/loadavg), less this process's own. The load average would lag: a
    process that ended a minute ago (ingest before train) still weighs in it. Elsewhere the
    1-minute load average; none known: 0."""
    try:
        counts = []
        for k in range(samples):
            with open("/proc/loadavg", encoding="ascii") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]))
            if k + 1 < samples:
                time.sleep(pause)
        return max(0.0, min(counts) - 1.0)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
