"""The memory a training run needs, estimated before anything is allocated: a run that cannot
fit is refused with the figure and the memory available, rather than failing in the allocator
with a traceback or growing until the kernel kills it (`--hidden 1000000000`).

Everything is float32. With P the autoencoder's parameters, a run holds:

- the weights, their gradients, Adam's two moments and one weight-sized temporary (5P);
- the best weights so far, and their replacement while it is copied (2P);
- a batch's activations, and the rows of the output layer its ratings pick (or the dense
  output, whichever the network computes);
- the training ratings, on the device;
- at the end, the saved run: the resumable state or a copy of the weights, as safetensors
  bytes beside the tensors (6P), and the serving file's arrays;
- with --ensemble N, the finished members and the network of their mean (2N - 1 times P),
  and N times the saved weights and the serving file's layers;
- the ranker (models/ranker.py), trained while the autoencoder is still held: the Mult-DAE
  with its Adam state and a batch's scores over every item, and EASE's item x item matrices.

The parts that live in main memory (saving, the serving file, EASE) are checked against it,
the others against the training device's free memory (the same pool on the CPU and MPS).
"""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import scipy.sparse as sp
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models import ease, kinds
from aerec_cli.models.batches import oriented
from aerec_cli.training import ranking
from aerec_cli.training.config import TrainConfig

FLOAT = 4  # bytes of a float32
DEVICE, HOST = True, False  # where a part lives
BATCH = "a batch's activations"


def parameters(sizes: list[int]) -> int:
    """Parameters of the autoencoder on layer sizes [inputs, *hidden]: the encoder, its
    mirror in the decoder and the linear output layer (models/autoencoders.py)."""
    encoder = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    decoder = sum(b * a + a for a, b in zip(sizes[1:-1], sizes[2:]))
    return encoder + decoder + sizes[1] * sizes[0] + sizes[0]


def needs(
    config: TrainConfig, matrix: sp.csr_matrix, *, n_items: int, processes: int = 1
) -> list[tuple[str, int, bool]]:
    """(what, bytes, on the device?) of a run of ``config`` on ``matrix``, the train split in
    the run's orientation (rows are reconstructed); ``n_items``: the items, for the ranker."""
    n_rows, n_inputs = matrix.shape
    kind = kinds.get(config.kind)
    hidden = config.hidden or kind.hidden.sizes(n_inputs)
    kind.check_hidden(hidden, n_inputs)  # a size the kind refuses for this data says so first
    p = parameters([n_inputs, *hidden])
    rows = min(max(config.batch(matrix.nnz), 512), n_rows)  # 512: the validation's batches
    entries = math.ceil(matrix.nnz / max(n_rows, 1) * rows)
    units = sum(hidden) + sum(hidden[:-1])  # encoder and decoder layers
    output = min(rows * n_inputs, entries * hidden[0])
    members = config.ensemble  # the saved network holds them all side by side
    served = members * (p + n_items * hidden[0])
    parts = [
        ("the weights, their gradients and Adam's state", 5 * p * FLOAT, DEVICE),
        ("the best weights so far", 2 * p * FLOAT, DEVICE),
        (BATCH, (3 * rows * units + 2 * output) * FLOAT, DEVICE),
        ("the training ratings", matrix.nnz * 12 + n_rows * 8, DEVICE),
        ("saving the run", 6 * members * p * FLOAT, HOST),
        ("the serving file", 2 * served * FLOAT + matrix.nnz * 12, HOST),
    ]
    if members > 1:
        held = (2 * members - 1) * p * FLOAT  # the finished members, then their mean
        parts.append(("the ensemble's members and their mean", held, DEVICE))
    if processes > 1:
        parts.append(("DistributedDataParallel's gradient buckets", p * FLOAT, DEVICE))
    if config.ranks:
        dae = 2 * n_items * ranking.HIDDEN
        scores = 3 * ranking.BATCH_USERS * n_items
        parts.append(("the ranker's network", (6 * dae + scores) * FLOAT, DEVICE))
        if n_items <= ease.MAX_ITEMS:  # its fit holds about four item x item matrices
            parts.append(("the ranker's EASE", 2 * ease.memory_bytes(n_items), HOST))
    return parts


def check_fits(
    config: TrainConfig, train: sp.csr_matrix, device: torch.device, *, processes=1
) -> None:
    """Refuse, before anything is allocated, a run on ``train`` (users x items) that cannot
    fit in memory."""
    matrix = oriented(train, config.orientation)
    parts = needs(config, matrix, n_items=train.shape[1], processes=processes)
    batch = config.batch(matrix.nnz)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        _check([p for p in parts if p[2] is DEVICE], free, f"memory on {device}", config, batch)
        parts = [p for p in parts if p[2] is HOST]
    # Processes of one torchrun on this machine each hold their own copy.
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if processes > 1 else 1
    _check(
        [(what, size * local, where) for what, size, where in parts],
        available(),
        "memory",
        config,
        batch,
    )


def _check(parts, free: int | None, where: str, config: TrainConfig, batch: int) -> None:
    total = sum(size for _, size, _ in parts)
    if free is None or total <= free:
        return
    largest = sorted(parts, key=lambda part: -part[1])[:2]
    detail = "; ".join(f"{what} {size_text(size)}" for what, size, _ in largest)
    smaller = (
        f"a smaller --hidden (now {','.join(map(str, config.hidden))})"
        if config.hidden
        else "a --hidden below the kind's default for this data"
    )
    if any(what == BATCH for what, _, _ in largest):
        smaller += f" or --batch-size (now {batch})"
    raise AerecError(
        f"this run needs about {size_text(total)} of {where} (the largest parts: {detail}), "
        f"but {size_text(free)} is available: pick {smaller}, or train on a machine with more"
    )


def available() -> int | None:
    """Main memory this process may still take: what the system can give without swapping,
    within the control group's limit; None where neither can be read (no check then)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            found.append(int(Path(limit).read_text()) - int(Path(usage).read_text()))
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
    if not found:
        try:  # elsewhere (macOS): the physical memory, an upper bound
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            return None
    return max(0, min(found))


def size_text(size: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"


def keep_freed_memory() -> None:
    """Ask glibc to keep large freed blocks instead of handing them back to the OS.

    Every step frees and reallocates tensors the size of the weights; by default each is
    mmap'ed afresh and page-faulted in, which on ML-25M-sized inputs cost more time than the
    arithmetic. Elsewhere (macOS, musl) this is a no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks below 1 GiB come from the heap
    libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD: keep up to 2 GiB of freed heap
