"""``backend auto`` / ``precision auto`` on a CPU: per network, the fastest (backend, variant) the gates allow,
*measured* on this machine at the runtime's input sizes.

Why measure instead of ranking: which form wins depends on the CPU and the network. On this project's x86
CPUs the SR generator is ~3× faster as OpenVINO INT8 than as ONNX Runtime FP32 while ONNX Runtime's own INT8
is slower than its FP32; the segmenter is fastest on ONNX Runtime. So seg and SR may end up on different
backends in one pipeline.

Candidates: every variant whose gate passed (``status: ok``) that a CPU backend runs — ONNX Runtime: FP32
and ``int8-cpu`` (pruned or not); OpenVINO (when installed): FP32 and ``int8-ov``. Each is timed on the
segmenter's fixed input and the SR generator at :data:`SR_PROBE` (median of a few runs after a warm-up).
Timings are cached per file hash, input size, thread count and CPU model in ``$XDG_CACHE_HOME/skinedge``
(``~/.cache/skinedge``), so the next start on this machine chooses in milliseconds.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.atomic import write_json_atomic
from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Runner
from skinedge.runtime.backends.onnxruntime import physical_cores
from skinedge.runtime.manifest import network, variant_path

SR_PROBE = 96  # LR side: a typical budgeted ROI on a CPU
RUNS = 3
METHOD = 2  # in the cache key: bumped when how a runner runs changes (2: OpenVINO pads SR inputs to fast sizes)
RUNS_BY_BACKEND = {"onnxruntime": ("fp32", "int8-cpu"), "openvino": ("fp32", "int8-ov")}


@dataclass(frozen=True)
class Choice:
    backend: str
    variant: str
    ms: float  # at the probe input
    cached: bool


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "skinedge" / "speed.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_cache() -> dict:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict) -> None:
    try:
        write_json_atomic(cache_file(), data)
    except OSError:  # a read-only home: measure again next time
        pass


def candidates(manifest: dict, net: str, available: tuple[str, ...]) -> list[tuple[str, str]]:
    """(backend, variant) pairs a CPU backend in ``available`` can run for ``net``, gate passed."""
    out = []
    for variant, entry in network(manifest, net)["variants"].items():
        if entry.get("status") != "ok":
            continue
        for backend in available:
            if variant.split(".")[-1] in RUNS_BY_BACKEND[backend]:
                out.append((backend, variant))
    return out


def probe_input(manifest: dict, net: str) -> np.ndarray:
    """The input the runtime gives ``net``: the segmenter's fixed shape, the SR generator at the probe side."""
    shape = network(manifest, net)["input"]["shape"]
    side = (int(shape[2]), int(shape[3])) if net == "seg" else (SR_PROBE, SR_PROBE)
    return np.random.default_rng(0).random((1, int(shape[1]), *side), dtype=np.float32)


def time_runner(runner: Runner, name: str, x: np.ndarray) -> float:
    """Median ms of :data:`RUNS` runs after one warm-up; the runner is activated and deactivated here."""
    with runner:
        runner.infer({name: x})
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            runner.infer({name: x})
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def choose(models_dir: Path, manifest: dict, net: str, available: tuple[str, ...],
           make_runner: Callable[[str, Path, str], Runner], log: Callable[[str], None] | None = None) -> Choice:
    """The fastest candidate for ``net`` (see the module docstring)."""
    pairs = candidates(manifest, net, available)
    if not pairs:
        raise SkinedgeError(f"{models_dir}: no {net} variant that passed its gate runs on {' or '.join(available)}")
    x = probe_input(manifest, net)
    name = network(manifest, net)["input"]["name"]
    cache, key_tail = _read_cache(), (f"{'x'.join(map(str, x.shape))}|{physical_cores()}t|{cpu_model()}"
                                  f"|m{METHOD}")
    timed: dict[tuple[str, str], tuple[float, bool]] = {}
    for backend, variant in pairs:
        entry = network(manifest, net)["variants"][variant]
        key = f"{backend}|{entry.get('sha256', variant)}|{key_tail}"
        if key in cache:
            timed[(backend, variant)] = (float(cache[key]), True)
            continue
        path = variant_path(models_dir, manifest, net, variant, verify=True)
        ms = time_runner(make_runner(backend, path, net), name, x)
        cache[key] = round(ms, 3)
        timed[(backend, variant)] = (ms, False)
    _write_cache(cache)
    (backend, variant), (ms, cached) = min(timed.items(), key=lambda kv: kv[1][0])
    if log is not None:
        listing = ", ".join(f"{v} on {b} {t:.1f}" for (b, v), (t, _) in sorted(timed.items(), key=lambda kv: kv[1]))
        whence = "from the cache of earlier runs on this CPU" if all(c for _, c in timed.values()) else "here"
        log(f"{net}: measured {whence} at {'x'.join(map(str, x.shape[2:]))} (ms): {listing}")
    return Choice(backend, variant, ms, cached)
