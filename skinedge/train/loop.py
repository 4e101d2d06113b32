"""What the seg and SR training loops share: device, seeding, DDP, batching,
progress, NaN guard and the interrupt/resume contract.

Runs unchanged under ``torchrun --nproc_per_node=N``: when ``WORLD_SIZE`` > 1 the
process group is started (NCCL on CUDA, gloo on CPU), every rank takes its own
slice of each epoch's permutation, and only rank 0 validates, prints and writes.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from skinedge.errors import SkinedgeError


class TrainingStopped(SkinedgeError):
    """Training stopped early (NaN loss, interrupt); the last good checkpoint is kept."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Runtime:
    """Where this process trains and which rank it is."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present else CPU; ``cuda`` without a GPU is a clear error."""
    if name not in ("auto", "cpu", "cuda"):
        raise SkinedgeError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise SkinedgeError("--device cuda: no CUDA GPU is visible to PyTorch (use --device cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def start_runtime(device_name: str) -> Runtime:
    """Start DDP when launched by torchrun, else a single process."""
    device = pick_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, rank, world)


def stop_runtime(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def wrap_ddp(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    """DistributedDataParallel when distributed, the model itself otherwise."""
    if not rt.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def steps_per_epoch(n_items: int, batch: int, rt: Runtime) -> int:
    """Optimizer steps per epoch: each rank sees n/world items in batches (last one dropped)."""
    per_rank = n_items // rt.world
    return max(1, per_rank // batch)


def epoch_batches(n_items: int, batch: int, epoch: int, seed: int, rt: Runtime,
                  skip: int = 0) -> Iterator[list[int]]:
    """This rank's batches of one epoch: a seeded permutation, sliced per rank.

    ``skip`` leaves out the first batches (already trained before an interrupt),
    so a resumed run sees the same data as an uninterrupted one.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    mine = order[rt.rank::rt.world][: n_items // rt.world]
    for step in range(skip, steps_per_epoch(n_items, batch, rt)):
        chunk = mine[step * batch:(step + 1) * batch]
        if len(chunk) == 0:
            break
        yield chunk.tolist()


def check_finite(loss: torch.Tensor, step: int, last_checkpoint: str) -> None:
    """Stop with a clear message on a NaN/inf loss; the last good checkpoint is kept."""
    if not torch.isfinite(loss).all():
        raise TrainingStopped(f"loss became {loss.item()} at step {step + 1}: stopped; the last good "
                              f"checkpoint is {last_checkpoint}. Try a lower learning rate.")


class Budget:
    """Stops training after ``max_steps`` optimizer steps or ``max_minutes`` of wall time."""

    def __init__(self, max_steps: int | None, max_minutes: float | None):
        self.max_steps = max_steps
        self.started = time.monotonic()
        self.deadline = None if max_minutes is None else self.started + 60 * max_minutes

    def time_share(self, rt: Runtime | None = None) -> float:
        """Share of the wall-time budget spent (0 without one); the same on every rank (the largest), so the
        ranks' learning rates never differ."""
        if self.deadline is None:
            return 0.0
        share = min(1.0, (time.monotonic() - self.started) / max(self.deadline - self.started, 1e-9))
        if rt is None or not rt.distributed:
            return share
        import torch.distributed as dist

        t = torch.tensor([share])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def exhausted(self, steps_done: int) -> bool:
        if self.max_steps is not None and steps_done >= self.max_steps:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def total(self, planned: int) -> int:
        return planned if self.max_steps is None else min(planned, self.max_steps)


def is_better(value: float, best: float | None) -> bool:
    return not math.isnan(value) and (best is None or value > best)


def agree(flag: bool, rt: Runtime) -> bool:
    """True on every rank if it is True on any (so ranks stop at the same step)."""
    if not rt.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
