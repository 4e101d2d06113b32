"""``skinedge train all``: the stages, their budget, and resume.

``OUT`` becomes a models directory (``models.json``, ONNX variants, ``MODEL_CARD.md``, ``report/``); the training
run lives in ``OUT/train/`` (pool, split, checkpoints, logs; the decoded cache is removed when the run ends).
``OUT/train/state.json`` records the run's settings and each finished stage: running the same command again
continues where it stopped and never repeats a finished stage.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from skinedge.atomic import write_json_atomic
from skinedge.errors import SkinedgeError

STAGES = ("fingerprint", "split", "cache", "seg", "sr", "export", "calibrate", "report")
SEG_SHARE = 0.70  # of the training minutes left after the cache; the generator gets the rest. At 55 % (a 60-min run
# on the shared sets, c31c0e0) the generator's camera-LR validation gain was flat over the last half of its 23.5 min
# (+0.09 dB at 11.5 min, +0.11 at the end) while the segmenter's Dice still rose at 28.7 min and sat at the 0.90 mark
STATE = "state.json"


@dataclass
class AllConfig:
    """Options of ``train all`` (see the CLI for their help)."""

    data: list[str]
    out: Path
    minutes: float = 60.0
    device: str = "auto"
    seed: int = 0
    workers: int | None = None  # DataLoader workers; None: 1 on a CPU (its cores train), more beside a GPU
    gate_images: int = 24
    calibration_images: int = 32
    keep_cache: bool = False

    def identity(self) -> dict:
        """What must match for a rerun to continue this run (the budget and workers may change nothing)."""
        return {"data": list(self.data), "seed": self.seed}


@dataclass
class State:
    path: Path
    doc: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path, cfg: AllConfig) -> "State":
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("identity") != cfg.identity():
                raise SkinedgeError(f"{path.parent.parent} holds a train-all run of other data or seed "
                                    f"({doc.get('identity')}): choose another --out")
            return cls(path, doc)
        return cls(path, {"identity": cfg.identity(), "minutes": cfg.minutes, "done": {}})

    def done(self, stage: str) -> bool:
        return stage in self.doc["done"]

    def finish(self, stage: str, seconds: float, **facts) -> None:
        self.doc["done"][stage] = {"seconds": round(seconds, 1), **facts}
        write_json_atomic(self.path, self.doc)

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)


def train_all(cfg: AllConfig, log: Callable[[str], None] = print) -> dict:
    """Run (or continue) every stage; returns the state document."""
    from skinedge.train.all import stages

    if cfg.minutes <= 0:
        raise SkinedgeError(f"--minutes must be positive, got {cfg.minutes}")
    if not cfg.data:
        raise SkinedgeError("give at least one --data SPEC")
    work = cfg.out / "train"
    if cfg.out.exists() and not cfg.out.is_dir():
        raise SkinedgeError(f"--out {cfg.out} is a file, not a folder")
    if cfg.out.is_dir() and any(cfg.out.iterdir()) and not (work / STATE).is_file():
        raise SkinedgeError(f"{cfg.out} is not empty and holds no train-all run: choose a new --out "
                            "(nothing there is overwritten)")
    if not (work / STATE).is_file():
        from skinedge.data import open_dataset

        for spec in cfg.data:  # a typo is one line before anything is written
            open_dataset(spec)
    work.mkdir(parents=True, exist_ok=True)
    state = State.open(work / STATE, cfg)
    state.save()  # from here on the folder is recognisably a train-all run, even if the first stage fails
    if state.doc.get("minutes") != cfg.minutes:
        log(f"continuing a run budgeted at {state.doc['minutes']} min (--minutes {cfg.minutes} ignored)")
    ctx = stages.Context(cfg, work, state, log)
    for stage in STAGES:
        if state.done(stage):
            log(f"[{stage}] finished earlier ({state.doc['done'][stage]['seconds']:.0f} s): not repeated")
            continue
        started = time.monotonic()
        log(f"[{stage}] {stages.ABOUT[stage]}")
        facts = getattr(stages, f"stage_{stage}")(ctx) or {}
        state.finish(stage, time.monotonic() - started, **facts)
    if not cfg.keep_cache and (work / "cache").is_dir():
        shutil.rmtree(work / "cache", ignore_errors=True)
    took = sum(d["seconds"] for d in state.doc["done"].values()) / 60
    log(f"models directory ready: {cfg.out} (card: {cfg.out / 'MODEL_CARD.md'}); the stages took {took:.1f} min "
        f"of the {state.doc['minutes']} budgeted")
    return state.doc
