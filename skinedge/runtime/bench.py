"""``skinedge bench``: per-stage latency, throughput and memory of the pipeline per backend, precision and mode.

Every (backend, precision, mode) opens its own runners, runs ``warmup`` frames
that are not counted, then ``frames`` frames timed one by one (p50/p95/p99 of
each stage of :class:`~skinedge.runtime.pipeline.Pipeline` and of the wall time
around the call), then the same frames again back to back for throughput
(frames / wall time of that loop). Peak RSS is per configuration where Linux
lets us reset the high-water mark (``/proc/self/clear_refs``), else since the
process started (``memory.peak_scope`` says which). The baseline is the torch
backend at FP32; each row's ``ratio_to_torch_fp32`` is the baseline's p50 total
over its own, in the same mode (> 1: faster than the baseline). A configuration
that cannot run here (no such variant, no TensorRT, no torch) is a ``skipped``
row with the reason; one that breaks while running is ``failed`` with the error.

No torch at import: the torch backend is imported by ``open_runners`` only
when a torch configuration is opened.
"""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

import skinedge
from skinedge.errors import SkinedgeError
from skinedge.runtime.models import PRECISIONS, load_models
from skinedge.runtime.pipeline import MODES, check_frame
from skinedge.runtime.select import BACKENDS, open_pipeline, open_runners

FORMAT, FORMAT_VERSION = "skinedge-bench", 1
STAGES = ("preprocess", "seg", "mask", "sr", "composite", "total", "wall")
BASELINE = ("torch", "fp32")
TORCH_PRECISIONS = ("fp32", "fp16", "pruned.fp32")
VALID_PRECISIONS = ("auto", *PRECISIONS, *(f"pruned.{p}" for p in PRECISIONS))
STATUSES = ("ok", "skipped", "failed")
VERSIONS = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "cuda-python", "cuda-bindings", "pillow")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")
MAX_DISTINCT_FRAMES = 32


@dataclass
class BenchConfig:
    """What to measure.

    Args:
        models: models directory (``skinedge export``/``calibrate``).
        configs: (backend, precision) pairs, measured in this order.
        modes: pipeline modes, ``roi`` and/or ``full``.
        frames: timed frames per row (≥ 1); the throughput loop runs as many again.
        warmup: untimed frames before them (≥ 0).
        data: dataset spec ``KIND:PATH`` (its first items are the frames), or None for generated frames.
        size: side of generated frames in pixels (ignored with ``data``).
        engines: TensorRT engines folder (``skinedge build-engines``), for the tensorrt backend.
        seed: seed of generated frames.
    """

    models: Path
    configs: list[tuple[str, str]] = field(default_factory=lambda: [BASELINE, ("onnxruntime", "auto")])
    modes: list[str] = field(default_factory=lambda: ["roi"])
    frames: int = 20
    warmup: int = 3
    data: str | None = None
    size: int = 256
    engines: Path | None = None
    seed: int = 123


# ------------------------------------------------------------------- frames
def load_frames(cfg: BenchConfig, work: Path) -> tuple[list[np.ndarray], str]:
    """uint8 BGR H×W×3 frames (at most 32 distinct, cycled) and a line saying where they came from."""
    from skinedge.data import open_dataset

    count = max(1, min(cfg.frames + cfg.warmup, MAX_DISTINCT_FRAMES))
    if cfg.data is None:
        from skinedge.data.generate import write_synthetic

        write_synthetic(work / "frames", count=count, size=cfg.size, seed=cfg.seed)
        dataset = open_dataset(f"synthetic:{work / 'frames'}")
        source = f"generated {cfg.size}×{cfg.size}, seed {cfg.seed}"
    else:
        dataset, source = open_dataset(cfg.data), cfg.data
    if len(dataset) == 0:
        raise SkinedgeError(f"{cfg.data} holds no images; give --data a dataset with images, or leave it out")
    frames = [np.ascontiguousarray(dataset[i].image[:, :, ::-1]) for i in range(min(count, len(dataset)))]
    for frame in frames:
        check_frame(frame)  # a frame the pipeline refuses is the user's to fix, not a skipped configuration
    return frames, f"{source} ({len(frames)} distinct frames, cycled)"


# ------------------------------------------------------------------- memory, environment
def _status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the RSS high-water mark (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _device_memory(backend: str) -> tuple[float | None, str | None]:
    """(MB, what it measures) on a GPU; (None, None) on the CPU or when it cannot be read."""
    try:
        if backend == "torch" and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            return round(sys.modules["torch"].cuda.max_memory_allocated() / 2**20, 1), "torch peak allocated"
        if backend == "tensorrt":
            from cuda.bindings import runtime

            err, free, total = runtime.cudaMemGetInfo()
            if int(err) == 0:
                return round((total - free) / 2**20, 1), "device-wide used (cudaMemGetInfo)"
    except Exception:  # noqa: BLE001 - no driver, no GPU: memory is simply not reported
        pass
    return None, None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> dict[str, Any]:
    info = _read("/proc/cpuinfo")
    model = re.search(r"^(?:model name|Processor|cpu model)\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", info, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model.group(1).strip() if model else (platform.processor() or platform.machine()),
            "machine": platform.machine(), "cores": os.cpu_count() or 1, "usable_cores": usable or 1,
            "flags": sorted(flags.intersection(CPU_FLAGS))}


def _gpu() -> dict[str, Any] | None:
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return None
    try:
        from cuda.bindings import driver

        if int(driver.cuInit(0)[0]) != 0:
            return None
        err, count = driver.cuDeviceGetCount()
        if int(err) != 0 or count < 1:
            return None
        err, raw = driver.cuDeviceGetName(256, driver.cuDeviceGet(0)[1])
        name = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).split("\x00")[0].strip()
        return {"name": name, "count": int(count)}
    except Exception:  # noqa: BLE001 - no driver library, no device
        return None


def _jetson() -> dict[str, Any] | None:
    """Board, L4T release and power mode on a Jetson; None elsewhere."""
    model, release = _read("/proc/device-tree/model"), _read("/etc/nv_tegra_release")
    if "jetson" not in model.lower() and not release:
        return None
    mode, mode_id, source = None, None, None
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
            found = re.search(r"NV Power Mode:\s*(\S+)\s*(\d+)?", out)
            if found:
                mode, mode_id, source = found.group(1), found.group(2), "nvpmodel -q"
        except (OSError, subprocess.SubprocessError):
            pass
    if mode is None:
        status = re.search(r"pmode:(\d+)", _read("/var/lib/nvpmodel/status"))
        if status:
            mode_id, source = status.group(1), "/var/lib/nvpmodel/status"
            named = re.search(rf"POWER_MODEL\s+ID={int(mode_id)}\s+NAME=(\S+?)\s*>", _read("/etc/nvpmodel.conf"))
            mode = named.group(1) if named else None
    return {"model": model or None, "l4t": release.splitlines()[0] if release else None, "power_mode": mode,
            "power_mode_id": int(mode_id) if mode_id is not None else None, "power_mode_source": source}


def environment() -> dict[str, Any]:
    """CPU, GPU, versions and (on a Jetson) power mode of this machine; imports neither torch nor TensorRT."""
    versions = {name: _version(name) for name in VERSIONS}
    versions["python"], versions["skinedge"] = platform.python_version(), skinedge.__version__
    if versions["tensorrt"] is None and "tensorrt" in sys.modules:  # JetPack's apt bindings carry no metadata
        versions["tensorrt"] = str(sys.modules["tensorrt"].__version__)
    return {"cpu": _cpu(), "gpu": _gpu(), "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "jetson": _jetson(), "load_average": [round(x, 2) for x in os.getloadavg()]}


# ------------------------------------------------------------------- measuring
def _stats(values: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "mean": round(float(np.mean(values)), 3)}


def _row(backend: str, precision: str, mode: str, status: str, reason: str | None = None) -> dict[str, Any]:
    return {"backend": backend, "precision": precision, "mode": mode, "status": status, "reason": reason}


def measure(models: Path, manifest: dict, backend: str, precision: str, mode: str, frames: list[np.ndarray],
            cfg: BenchConfig) -> dict[str, Any]:
    """One row: open the runners, warm up, time ``cfg.frames`` frames, then a back-to-back loop for throughput."""
    gc.collect()  # what the previous row left behind
    scope = "config" if _reset_peak_rss() else "process"
    rss_before = _status_mb("VmRSS")
    start, pipeline = time.perf_counter(), None
    try:
        opened = open_runners(models, manifest, backend, precision, cfg.engines)
        pipeline, where = open_pipeline(opened, manifest, mode)
        pipeline.__enter__()
        load_s = time.perf_counter() - start
        pick = lambda i: frames[i % len(frames)]  # noqa: E731
        for i in range(cfg.warmup):
            pipeline(pick(i))
        timings, roi_px = {s: [] for s in STAGES}, []
        for i in range(cfg.frames):
            t0 = time.perf_counter()
            result = pipeline(pick(i))
            timings["wall"].append((time.perf_counter() - t0) * 1000)
            for s in STAGES[:-1]:
                timings[s].append(float(result.timings_ms.get(s, 0.0)))
            if result.found and result.roi is not None:
                roi_px.append(float(result.roi[2] * result.roi[3]))
        t0 = time.perf_counter()
        for i in range(cfg.frames):
            pipeline(pick(i))
        fps = cfg.frames / max(time.perf_counter() - t0, 1e-9)
        device_mb, device_scope = _device_memory(opened.backend)
        memory = {"rss_before_mb": rss_before, "rss_mb": _status_mb("VmRSS"), "peak_rss_mb": _peak_rss_mb(),
                  "peak_scope": scope, "device_mb": device_mb, "device_scope": device_scope}
    except (SkinedgeError, ImportError) as exc:  # not available here: no such variant, no TensorRT, no torch
        return _row(backend, precision, mode, "skipped", str(exc).strip() or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - one broken configuration must not lose the others' numbers
        return _row(backend, precision, mode, "failed", f"{type(exc).__name__}: {str(exc).strip()[:300]}")
    finally:
        if pipeline is not None:
            pipeline.__exit__(None, None, None)
    return _row(backend, precision, mode, "ok") | {
        "resolved_backend": opened.backend, "why": opened.why, "pipeline": where,
        "variants": dict(opened.variants),
        "tile": int(opened.tile), "max_batch": int(opened.max_batch), "frames": cfg.frames,
        "warmup": cfg.warmup, "frames_with_lesion": len(roi_px), "roi_px": _stats(roi_px) if roi_px else None,
        "load_s": round(load_s, 3), "latency_ms": {s: _stats(v) for s, v in timings.items()},
        "throughput_fps": round(fps, 3), "memory": memory, "ratio_to_torch_fp32": None,
        "load_average_after": round(os.getloadavg()[0], 2)}


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every configuration × mode of ``cfg``; returns the document :data:`BENCH_SCHEMA` describes."""
    if cfg.frames < 1 or cfg.warmup < 0:
        raise SkinedgeError(f"--frames must be ≥ 1 and --warmup ≥ 0, got {cfg.frames} and {cfg.warmup}")
    bad = [m for m in cfg.modes if m not in MODES]
    if bad or not cfg.modes:
        raise SkinedgeError(f"unknown mode(s) {bad or cfg.modes}; choose from {', '.join(MODES)}")
    manifest = load_models(cfg.models)
    env = environment()
    rows = []
    with tempfile.TemporaryDirectory(prefix="skinedge-bench-") as tmp:
        frames, source = load_frames(cfg, Path(tmp))
        log(f"frames: {source}; {cfg.warmup} warm-up + {cfg.frames} timed + {cfg.frames} back-to-back per row")
        for backend, precision in cfg.configs:
            for mode in cfg.modes:
                row = measure(Path(cfg.models), manifest, backend, precision, mode, frames, cfg)
                rows.append(row)
                if row["status"] == "ok":
                    log(f"{backend} {precision} {mode}: p50 total {row['latency_ms']['total']['p50']:.1f} ms, "
                        f"{row['throughput_fps']:.2f} frames/s (seg {row['variants']['seg']}, "
                        f"sr {row['variants']['sr']})")
                else:
                    log(f"{backend} {precision} {mode}: {row['status']}: {row['reason']}")
    base = {r["mode"]: r["latency_ms"]["total"]["p50"] for r in rows
            if (r["backend"], r["precision"]) == BASELINE and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok" and base.get(r["mode"]) and r["latency_ms"]["total"]["p50"] > 0:
            r["ratio_to_torch_fp32"] = round(base[r["mode"]] / r["latency_ms"]["total"]["p50"], 3)
    env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if "torch" in sys.modules:
        env["torch_threads"] = int(sys.modules["torch"].get_num_threads())
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "skinedge_version": skinedge.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "",
            "settings": {"models": str(cfg.models), "configs": [list(c) for c in cfg.configs], "modes": list(cfg.modes),
                         "frames": cfg.frames, "warmup": cfg.warmup, "data": cfg.data,
                         "size": None if cfg.data else cfg.size, "engines": str(cfg.engines) if cfg.engines else None,
                         "source": source, "baseline": list(BASELINE),
                         "note": "latency: per frame after warm-up; total = sum of the pipeline's stages, wall = time "
                                 "around the pipeline call; throughput: frames / wall time of a separate back-to-back "
                                 "loop; ratio_to_torch_fp32 = torch fp32 p50 total / this row's (same mode)"},
            "environment": env, "results": rows}


# ------------------------------------------------------------------- schema
_NUM = {"type": "number", "minimum": 0}
_OPT_NUM = {"type": ["number", "null"], "minimum": 0}
_OPT_STR = {"type": ["string", "null"]}
_STATS = {"type": "object", "required": ["p50", "p95", "p99", "mean"],
          "properties": {k: _NUM for k in ("p50", "p95", "p99", "mean")}}
_RESULT = {
    "type": "object",
    "required": ["backend", "precision", "mode", "status", "reason"],
    "properties": {
        "backend": {"enum": list(BACKENDS)}, "precision": {"type": "string"}, "mode": {"enum": list(MODES)},
        "status": {"enum": list(STATUSES)}, "reason": _OPT_STR, "resolved_backend": {"type": "string"},
        "pipeline": {"type": "string", "pattern": "^(gpu|host): "},
        "variants": {"type": "object", "required": ["seg", "sr"], "additionalProperties": {"type": "string"}},
        "tile": {"type": "integer", "minimum": 1}, "max_batch": {"type": "integer", "minimum": 1},
        "frames": {"type": "integer", "minimum": 1}, "warmup": {"type": "integer", "minimum": 0},
        "frames_with_lesion": {"type": "integer", "minimum": 0}, "load_s": _NUM,
        "roi_px": _STATS | {"type": ["object", "null"]}, "load_average_after": _NUM,
        "latency_ms": {"type": "object", "required": list(STAGES), "additionalProperties": _STATS},
        "throughput_fps": _NUM, "ratio_to_torch_fp32": _OPT_NUM,
        "memory": {"type": "object", "required": ["rss_mb", "peak_rss_mb", "peak_scope", "device_mb"],
                   "properties": {"rss_before_mb": _OPT_NUM, "rss_mb": _OPT_NUM, "peak_rss_mb": _NUM,
                                  "device_mb": _OPT_NUM, "device_scope": _OPT_STR,
                                  "peak_scope": {"enum": ["config", "process"]}}},
    },
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"required": ["variants", "frames", "frames_with_lesion", "latency_ms", "throughput_fps", "memory",
                          "ratio_to_torch_fp32"]},
    "else": {"properties": {"reason": {"type": "string", "minLength": 1}}},
}
BENCH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "skinedge bench results",
    "type": "object",
    "required": ["format", "format_version", "skinedge_version", "created", "command", "settings", "environment",
                 "results"],
    "properties": {
        "format": {"const": FORMAT}, "format_version": {"type": "integer", "minimum": 1},
        "skinedge_version": {"type": "string"}, "created": {"type": "string"}, "command": {"type": "string"},
        "settings": {"type": "object", "required": ["models", "configs", "modes", "frames", "warmup", "source"],
                     "properties": {"frames": {"type": "integer", "minimum": 1},
                                    "warmup": {"type": "integer", "minimum": 0},
                                    "modes": {"type": "array", "minItems": 1, "items": {"enum": list(MODES)}},
                                    "configs": {"type": "array", "items": {"type": "array", "minItems": 2,
                                                                           "items": {"type": "string"}}}}},
        "environment": {"type": "object", "required": ["cpu", "gpu", "python", "versions", "jetson"],
                        "properties": {"cpu": {"type": "object", "required": ["model", "cores"],
                                               "properties": {"cores": {"type": "integer", "minimum": 1}}},
                                       "gpu": {"type": ["object", "null"]}, "jetson": {"type": ["object", "null"]},
                                       "versions": {"type": "object", "additionalProperties": _OPT_STR}}},
        "results": {"type": "array", "items": _RESULT},
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
    return isinstance(value, _TYPES[kind])


def _check(value: Any, schema: dict, path: str, errors: list[str]) -> None:
    """The draft 2020-12 keywords BENCH_SCHEMA uses: type, const, enum, minimum, minLength, minItems,
    required, properties, additionalProperties, items, if/then/else."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__} {value!r:.60}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}, got {value!r:.60}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r:.60} is not one of {schema['enum']}")
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        errors.append(f"{path}: must be a non-empty string")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            if "items" in schema:
                _check(item, schema["items"], f"{path}[{i}]", errors)
    if isinstance(value, dict):
        errors.extend(f"{path}: missing required key {k!r}" for k in schema.get("required", []) if k not in value)
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _check(v, props[k], f"{path}.{k}", errors)
            elif isinstance(extra, dict):
                _check(v, extra, f"{path}.{k}", errors)
            elif extra is False:
                errors.append(f"{path}: unexpected key {k!r}")
    if "if" in schema:
        probe: list[str] = []
        _check(value, schema["if"], path, probe)
        branch = schema.get("then") if not probe else schema.get("else")
        if branch:
            _check(value, branch, path, errors)


def validate_bench(obj: Any) -> list[str]:
    """Problems of a bench document against :data:`BENCH_SCHEMA` and p50 ≤ p95 ≤ p99; empty when it is valid."""
    errors: list[str] = []
    _check(obj, BENCH_SCHEMA, "$", errors)
    results = obj.get("results") if isinstance(obj, dict) else None
    for i, row in enumerate(results if isinstance(results, list) else []):
        latency = row.get("latency_ms") if isinstance(row, dict) else None
        for stage, st in (latency.items() if isinstance(latency, dict) else ()):
            q = [st.get(k) for k in ("p50", "p95", "p99")] if isinstance(st, dict) else []
            if len(q) == 3 and all(_is(x, "number") for x in q) and not q[0] <= q[1] <= q[2]:
                errors.append(f"$.results[{i}].latency_ms.{stage}: needs p50 ≤ p95 ≤ p99, got {q}")
    return errors


# ------------------------------------------------------------------- table, plot
def _label(row: dict) -> str:
    return f"{row['backend']} {row['precision']} {row['mode']}"


def format_table(doc: dict) -> str:
    """A Markdown table (reads fine in a terminal too): p50 per stage (ms), p95/p99/mean total, throughput, ratio
    and peak RSS; rows that did not run are listed under it with their reason."""
    head = ["backend", "precision", "mode", "seg / sr variant", *(f"{s} p50" for s in STAGES[:5]), "total p50",
            "p95", "p99", "mean", "frames/s", "× torch fp32", "peak RSS MB", "GPU MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(head) - 4)]
    skipped = []
    for r in doc["results"]:
        if r["status"] != "ok":
            skipped.append(f"- {r['status']}: {_label(r)}: {r['reason']}")
            continue
        lat, ratio = r["latency_ms"], r["ratio_to_torch_fp32"]
        gpu = str(r.get("pipeline", "")).startswith("gpu")
        cells = [r["backend"] + (" (GPU stages)" if gpu else ""), r["precision"], r["mode"],
                 f"{r['variants']['seg']} / {r['variants']['sr']}",
                 *(f"{lat[s]['p50']:.1f}" for s in STAGES[:6]), f"{lat['total']['p95']:.1f}",
                 f"{lat['total']['p99']:.1f}", f"{lat['total']['mean']:.1f}", f"{r['throughput_fps']:.2f}",
                 "—" if ratio is None else f"{ratio:.2f}", f"{r['memory']['peak_rss_mb']:.0f}",
                 "—" if r["memory"]["device_mb"] is None else f"{r['memory']['device_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ([""] + skipped if skipped else []))


def _nice_step(longest: float) -> float:
    """An axis tick step of 1, 2 or 5 × 10^k giving at most 8 ticks up to ``longest``."""
    power = 10 ** np.floor(np.log10(longest / 2))
    return float(next(power * m for m in (1, 2, 5, 10) if longest / (power * m) <= 8))


COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (90, 90, 90)]


def plot_bench(doc: dict, path: str | Path, width: int = 1100) -> None:
    """PNG: one horizontal bar per row, stacked p50 stage latencies (ms), with frames/s and the ratio at its end."""
    from PIL import Image, ImageDraw

    from skinedge.atomic import write_bytes_atomic

    rows, parts = doc["results"], STAGES[:5]
    left, right, top, bar, gap = 250, 230, 70, 22, 8
    height = top + max(1, len(rows)) * (bar + gap) + 50
    longest = max([r["latency_ms"]["total"]["p50"] for r in rows if r["status"] == "ok"] + [1.0])
    step = _nice_step(longest)
    scale = (width - left - right) / (np.ceil(longest / step) * step)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    text = lambda xy, words, fill=(0, 0, 0): draw.text(xy, words.replace("×", "x"), fill=fill)  # noqa: E731
    env = doc["environment"]
    text((10, 8), f"skinedge bench: p50 latency per stage (ms), {doc['settings']['source']}; "
         "bars: each stage's p50, label: the total's p50")
    text((10, 24), f"CPU {env['cpu']['model']} ({env['cpu']['cores']} cores)"
         + (f", GPU {env['gpu']['name']}" if env.get("gpu") else ""))
    x = left
    for i, s in enumerate(parts):
        draw.rectangle([x, 44, x + 12, 56], fill=COLOURS[i])
        text((x + 16, 44), s)
        x += 110
    axis_y = top + len(rows) * (bar + gap)
    tick = 0.0
    while left + tick * scale <= width - right + 1:
        xx = left + tick * scale
        draw.line([xx, top - 4, xx, axis_y], fill=(220, 220, 220))
        text((xx - 10, axis_y + 6), f"{tick:g}")
        tick += step
    text((left, axis_y + 24), "milliseconds per frame (p50)")
    for j, r in enumerate(rows):
        y = top + j * (bar + gap)
        text((10, y + 5), _label(r), fill=(0, 0, 0) if r["status"] == "ok" else (150, 150, 150))
        if r["status"] != "ok":
            text((left + 4, y + 5), f"{r['status']}: {r['reason']}"[:110], fill=(150, 150, 150))
            continue
        x = float(left)
        for i, s in enumerate(parts):
            w = r["latency_ms"][s]["p50"] * scale
            if w > 0:
                draw.rectangle([x, y, x + w, y + bar], fill=COLOURS[i])
            x += w
        ratio = r["ratio_to_torch_fp32"]
        text((x + 6, y + 5), f"{r['latency_ms']['total']['p50']:.1f} ms, {r['throughput_fps']:.1f} fps"
             + ("" if ratio is None else f", {ratio:.2f}× torch fp32"))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


# ------------------------------------------------------------------- the command
def expand_configs(backends: list[str], precisions: list[str], baseline: bool = True,
                   log: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """The cross product of backends × precisions without the pairs that cannot exist (torch runs only the
    checkpoints: fp32, fp16 on a GPU, pruned.fp32), the torch fp32 baseline first when ``baseline``."""
    for b in backends:
        if b not in BACKENDS:
            raise SkinedgeError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    for p in precisions:
        if p not in VALID_PRECISIONS:
            raise SkinedgeError(f"unknown precision {p!r}; choose from {', '.join(VALID_PRECISIONS)}")
    configs = [BASELINE] if baseline else []
    for b in backends:
        for p in precisions:
            p = "fp32" if (b, p) == ("torch", "auto") else p
            if b == "torch" and p not in TORCH_PRECISIONS:
                log(f"not measured: torch {p} (the torch backend runs the checkpoints: fp32, fp16 on a GPU, "
                    "pruned.fp32)")
            elif (b, p) not in configs:
                configs.append((b, p))
    return configs


def bench_command(models: str | Path, backends: list[str], precisions: list[str], modes: list[str], frames: int,
                  warmup: int, data: str | None, size: int, engines: str | Path | None, json_path: str | Path | None,
                  plot_path: str | Path | None, no_baseline: bool, log: Callable[[str], None] = print) -> dict:
    """``skinedge bench``: measure, print the table, write ``--json`` (atomically) and ``--plot``; returns the document.

    Empty ``backends``/``precisions``/``modes`` mean onnxruntime / auto / roi.
    """
    from skinedge.atomic import write_json_atomic

    backends, precisions, modes = backends or ["onnxruntime"], precisions or ["auto"], modes or ["roi"]
    configs = expand_configs(backends, precisions, not no_baseline, log)
    if not configs:
        raise SkinedgeError("nothing to measure: every backend/precision pair was invalid (see above)")
    cfg = BenchConfig(Path(models), configs, list(modes), frames, warmup, data, size,
                      Path(engines) if engines else None)
    doc = run_bench(cfg, log)
    words = ["skinedge bench", f"--models {models}", *(f"--backend {b}" for b in backends),
             *(f"--precision {p}" for p in precisions), *(f"--mode {m}" for m in modes),
             f"--frames {frames}", f"--warmup {warmup}", f"--data {data}" if data else f"--size {size}",
             f"--engines {engines}" if engines else "", "--no-baseline" if no_baseline else "",
             f"--json {json_path}" if json_path else "", f"--plot {plot_path}" if plot_path else ""]
    doc["command"] = " ".join(w for w in words if w)
    problems = validate_bench(doc)
    if problems:  # a bug of ours, not the user's: say so, still write what was measured
        log("warning: the results do not match BENCH_SCHEMA: " + "; ".join(problems[:5]))
    log("\n" + format_table(doc) + "\n")
    if json_path:
        write_json_atomic(json_path, doc)
        log(f"written: {json_path}")
    if plot_path:
        plot_bench(doc, plot_path)
        log(f"written: {plot_path}")
    return doc
