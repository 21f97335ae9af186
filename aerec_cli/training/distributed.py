"""Training across processes with DistributedDataParallel, as launched by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. Each process loads the dataset itself, trains
on its share of every batch's rows, and DDP averages the gradients (gloo on CPU, nccl on
CUDA). Only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from aerec_cli.errors import AerecError


@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's share of a batch of rows (every process gets a turn in order)."""
        return rows[self.rank :: self.size] if self.active else rows

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value)
        return value


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun set up; the device becomes this process's own GPU."""
    if not launched_by_torchrun():
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise AerecError(f"cannot join the torchrun process group ({exc})") from exc
    return World(dist.get_rank(), dist.get_world_size()), device


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
