"""One training phase, whatever the network: epochs of steps, validation every
epoch, ``<name>-last.pt`` (resumable) and ``<name>-best.pt`` checkpoints, a
JSON-lines log, and the stop rules (budget, NaN, Ctrl-C).

Ctrl-C sets a flag that is read between optimizer steps, so the checkpoint it
leaves is always a consistent state; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from skinedge.errors import SkinedgeError
from skinedge.models.checkpoint import load_state, save_checkpoint
from skinedge.progress import progress_bar
from skinedge.train.loop import (Budget, Runtime, TrainingStopped, agree, barrier, epoch_batches,
                                 is_better, steps_per_epoch, unwrap)


@dataclass
class Phase:
    """Everything a phase needs; ``step`` does forward, backward and optimizer step.

    Attributes:
        name: file prefix (``seg``, ``sr-pretrain``, ``sr-gan``).
        kind: checkpoint kind (``seg`` or ``sr``).
        step: (batch indices, epoch, global step) → losses for the progress bar/log.
        validate: () → metrics on the validation split (rank 0 only).
        key: the metric that picks the best checkpoint (higher is better).
        modules / optimizers: what goes into the checkpoint, by name; ``modules["model"]``
            is the network the checkpoint is *of* (``arch`` rebuilds it).
        sections: plain data stored in every checkpoint (config, data, io).
    """

    name: str
    kind: str
    n_items: int
    batch: int
    epochs: int
    step: Callable[[list[int], int, int], dict[str, float]]
    validate: Callable[[], dict[str, float]]
    key: str
    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    arch: dict
    sections: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    schedule: str = "constant"


SCHEDULES = ("constant", "cosine")


def apply_schedule(phase: Phase, share: float) -> None:
    """Set every optimizer's learning rate for ``share`` of the budget spent, 0..1 (cosine: from the initial
    rate to 1% of it)."""
    if phase.schedule == "constant":
        return
    factor = max(0.01, 0.5 * (1.0 + math.cos(math.pi * min(max(share, 0.0), 1.0))))
    for opt in phase.optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


@contextmanager
def interrupt_flag():
    """Yield a dict whose ``stop`` turns True on the first Ctrl-C (main thread only)."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        flag["stop"] = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C aborts at once

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _state(phase: Phase, with_optimizers: bool) -> dict:
    state = {name: unwrap(m).state_dict() for name, m in phase.modules.items()}
    if with_optimizers:
        state.update({f"opt_{name}": o.state_dict() for name, o in phase.optimizers.items()})
        state["torch_rng"] = torch.get_rng_state()  # dropout draws continue as if never stopped
    return state


def restore(phase: Phase, payload: dict, path: Path) -> dict:
    """Load modules and optimizers of a ``-last.pt`` payload; return its progress."""
    for name, module in phase.modules.items():
        load_state(unwrap(module), payload["state"][name], path, name)
    for name, opt in phase.optimizers.items():
        opt.load_state_dict(payload["state"][f"opt_{name}"])
    if "torch_rng" in payload["state"]:
        torch.set_rng_state(payload["state"]["torch_rng"])
    return payload["progress"]


def run_phase(phase: Phase, rt: Runtime, out: Path, budget: Budget,
              progress: dict | None = None) -> dict[str, Any]:
    """Train one phase; returns ``{"best": metrics, "last": metrics, "steps": n}``.

    Args:
        progress: the ``progress`` section of a checkpoint to resume from
            (modules/optimizers already restored with :func:`restore`).
    """
    if phase.schedule not in SCHEDULES:
        raise SkinedgeError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {phase.schedule!r}")
    spe = steps_per_epoch(phase.n_items, phase.batch, rt)
    state = progress or {"epoch": 0, "step": 0, "best": None, "best_metrics": {}, "history": []}
    last, best = out / f"{phase.name}-last.pt", out / f"{phase.name}-best.pt"
    total = budget.total(phase.epochs * spe)
    started = time.monotonic()
    trained_before = float(state.get("elapsed_s", 0.0))  # wall time of earlier runs of this phase (resume)

    def save(path: Path, metrics: dict, full: bool) -> None:
        if rt.main:
            save_checkpoint(path, phase.kind, phase.arch, _state(phase, full), progress=state,
                            metrics=metrics, **phase.sections)

    with interrupt_flag() as interrupted, progress_bar(total, phase.name, rt.main) as update:
        update(state["step"])
        while state["epoch"] < phase.epochs:
            losses: dict[str, float] = {}
            stopped = False
            for indices in epoch_batches(phase.n_items, phase.batch, state["epoch"], phase.seed, rt,
                                         skip=state["step"] - state["epoch"] * spe):
                # steps or wall time, whichever runs out first: a --max-minutes run still anneals to its end
                apply_schedule(phase, max(state["step"] / max(total, 1), budget.time_share(rt)))
                losses = phase.step(indices, state["epoch"], state["step"])
                state["step"] += 1
                update(state["step"], epoch=state["epoch"] + 1, **losses)
                if agree(interrupted["stop"] or budget.exhausted(state["step"]), rt):
                    stopped = True
                    break
            if not stopped or state["step"] == (state["epoch"] + 1) * spe:
                state["epoch"] += 1
            metrics = phase.validate() if rt.main else {}
            state["elapsed_s"] = round(trained_before + time.monotonic() - started, 1)
            record = {"epoch": state["epoch"], "step": state["step"], "train": losses, "val": metrics,
                      "seconds": round(time.monotonic() - started, 1), "elapsed_s": state["elapsed_s"]}
            state["history"].append(record)
            if rt.main:
                with (out / f"{phase.name}-log.jsonl").open("a") as log:
                    log.write(json.dumps(record) + "\n")
            if rt.main and is_better(metrics.get(phase.key, float("nan")), state["best"]):
                state["best"], state["best_metrics"] = metrics[phase.key], metrics
                save(best, metrics, full=False)
            save(last, metrics, full=True)
            barrier(rt)
            if interrupted["stop"]:
                raise TrainingStopped(f"interrupted at step {state['step']}: resumable checkpoint "
                                      f"{last}; continue with --resume", exit_code=130)
            if stopped:
                break
    return {"best": state["best_metrics"], "last": state["history"][-1]["val"] if state["history"] else {},
            "steps": state["step"]}
