"""``skinedge bench``: per-stage latency, throughput and memory of the pipeline per backend, precision and mode.

Every (backend, precision, mode) opens its own runners, runs ``warmup`` frames
that are not counted, then ``frames`` frames timed one by one (p50/p95/p99 of
each stage of :class:`~skinedge.runtime.pipeline.host.Pipeline` and of the wall time
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
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

import skinedge
from skinedge.errors import SkinedgeError
from skinedge.runtime.backends import BACKENDS
from skinedge.runtime.bench.env import device_memory, environment, peak_rss_mb, reset_peak_rss, status_mb
from skinedge.runtime.bench.report import FORMAT, FORMAT_VERSION, STAGES, format_table, plot_bench, validate_bench
from skinedge.runtime.manifest import PRECISIONS, load_models
from skinedge.runtime.live.flicker import FlickerMeter
from skinedge.runtime.live.display import TwoLoopDisplay
from skinedge.runtime.live.reuse import TemporalReuse
from skinedge.runtime.live.sr_loop import SRLoop
from skinedge.runtime.pipeline.budget import BudgetControl, parse_budget, set_budget_measured
from skinedge.runtime.pipeline.host import MODES, Pipeline, check_frame
from skinedge.runtime.session import open_session

BASELINE = ("torch", "fp32")
TORCH_PRECISIONS = ("fp32", "fp16", "pruned.fp32")
VALID_PRECISIONS = ("auto", *PRECISIONS, *(f"pruned.{p}" for p in PRECISIONS))
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
        sr_budget: ``auto`` (measured per configuration for ``target_fps``), None (no cap) or LR pixels; the
            torch FP32 baseline always runs without one (the paper's pipeline).
        target_fps: what ``auto`` budgets are sized for.
        live_seconds: length of the generated moving-lesion clip the live rows run (0: none).
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
    sr_budget: int | str | None = "auto"
    target_fps: float = 10.0
    live_seconds: float = 0.0


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
    scope = "config" if reset_peak_rss() else "process"
    rss_before = status_mb("VmRSS")
    start, pipeline = time.perf_counter(), None
    try:
        session = open_session(models, backend, precision, cfg.engines, mode, manifest=manifest)
        opened, pipeline, where = session.opened, session.pipeline, session.where
        pipeline.__enter__()
        budget = _budget(pipeline, None if (backend, precision) == BASELINE else cfg.sr_budget, cfg, frames[0])
        load_s = time.perf_counter() - start
        pick = lambda i: frames[i % len(frames)]  # noqa: E731
        for i in range(cfg.warmup):
            budget[2](pipeline(pick(i)))
        timings, roi_px, reduced = {s: [] for s in STAGES}, [], []
        for i in range(cfg.frames):
            t0 = time.perf_counter()
            result = pipeline(pick(i))
            timings["wall"].append((time.perf_counter() - t0) * 1000)
            budget[2](result)
            for s in STAGES[:-1]:
                timings[s].append(float(result.timings_ms.get(s, 0.0)))
            if result.found and result.roi is not None:
                roi_px.append(float(result.roi[2] * result.roi[3]))
                reduced.append(float(result.sr_input_scale))
        t0 = time.perf_counter()
        for i in range(cfg.frames):
            budget[2](pipeline(pick(i)))
        fps = cfg.frames / max(time.perf_counter() - t0, 1e-9)
        device_mb, device_scope = device_memory(opened.backend)
        memory = {"rss_before_mb": rss_before, "rss_mb": status_mb("VmRSS"), "peak_rss_mb": peak_rss_mb(),
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
        **_budget_now(pipeline, budget),
        "sr_input_scale": _stats(reduced) if reduced else None,
        "load_s": round(load_s, 3), "latency_ms": {s: _stats(v) for s, v in timings.items()},
        "throughput_fps": round(fps, 3), "memory": memory, "ratio_to_torch_fp32": None,
        "load_average_after": round(os.getloadavg()[0], 2)}


def _budget(pipeline, budget, cfg: BenchConfig, frame: np.ndarray) -> tuple[int | None, str, Callable]:
    """Set a host pipeline's SR budget for this row: (LR pixels or None, the line saying why, what each result
    is shown to: an ``auto`` budget is kept to the frame time as ``run`` keeps it, by :class:`BudgetControl`)."""
    if not isinstance(pipeline, Pipeline):
        return None, "no SR budget on the GPU pipeline yet", lambda result: None
    line, measured = set_budget_measured(pipeline, budget, cfg.target_fps, frame.shape[:2])
    control = BudgetControl(pipeline, measured) if measured is not None else None
    return pipeline.sr_budget, line, control or (lambda result: None)


def _budget_now(pipeline, budget: tuple) -> dict[str, Any]:
    """The row's budget as it ended (``auto``: after the control), where it started and its range."""
    control = budget[2]
    end = pipeline.sr_budget if isinstance(pipeline, Pipeline) else None
    spread = (f"; kept to the frame time: {control.lowest}–{control.highest} LR px over the row"
              if isinstance(control, BudgetControl) else "")
    return {"sr_budget": end, "budget": budget[1] + spread, "sr_budget_probed": budget[0]}


LIVE_STRATEGIES = ("per-frame", "reuse", "two loops")


def measure_live(models: Path, manifest: dict, backend: str, precision: str, clip: list[np.ndarray],
                 cfg: BenchConfig, strategy: str) -> dict[str, Any]:
    """One live row on the moving-lesion clip: one loop (``per-frame``, or with temporal ``reuse``) runs the
    frames back to back; ``two loops`` gets them at the clip's 30 fps, as a camera hands them, since its display
    step takes every frame and its SR loop the rest of the time. Per-frame latency, frames/s, the SR age shown
    (two loops) and flicker against a bicubic up-scale."""
    session = open_session(models, backend, precision, cfg.engines, "roi", manifest=manifest)
    with session.pipeline as pipeline, ExitStack() as stack:
        budget = _budget(pipeline, cfg.sr_budget, cfg, clip[0])
        host = isinstance(pipeline, Pipeline)
        step, sr_loop = pipeline, None
        if strategy == "reuse" and host:
            step = TemporalReuse(pipeline)
        elif strategy == "two loops" and host:
            pipeline.camera_resolution = True
            sr_loop = stack.enter_context(SRLoop(pipeline))
            step = TwoLoopDisplay(pipeline, sr_loop)
        budget[2](step(clip[0]))  # warm-up, not counted
        meter, latency, ages, segmented, computed = FlickerMeter(), [], [], 0, 0
        start = time.perf_counter()
        for k, frame in enumerate(clip):
            if sr_loop is not None:  # the camera's pace
                time.sleep(max(0.0, start + k / 30.0 - time.perf_counter()))
            t0 = time.perf_counter()
            result = step(frame)
            budget[2](result)
            latency.append((time.perf_counter() - t0) * 1000)
            segmented += bool(result.segmented)
            computed += bool(result.found and result.computed)
            if result.sr_age_ms is not None:
                ages.append(result.sr_age_ms)
            meter.add(frame, result)
        seconds = time.perf_counter() - start
        if sr_loop is not None:
            segmented, computed = sr_loop.counts["segmented"], sr_loop.counts["computed"]
    return {"backend": backend, "precision": precision, "resolved_backend": session.opened.backend,
            "variants": dict(session.opened.variants), "strategy": strategy if host else "per-frame",
            "reuse": strategy == "reuse" and host, "frames": len(clip),
            **_budget_now(pipeline, budget), "latency_ms": _stats(latency),
            "fps": round(len(clip) / seconds, 3), "segmented": segmented, "computed": computed,
            "sr_age_ms": _stats(ages) if ages else None, "flicker": meter.summary(),
            "note": ("frames handed at 30 fps; " if sr_loop is not None else "")
            + "frames/s includes the flicker metric's own time"}


def run_live_rows(cfg: BenchConfig, manifest: dict, rows_done: list[dict], log: Callable[[str], None]
                  ) -> dict[str, Any] | None:
    """The live rows: ``auto``/``auto`` (else the first configuration after the baseline that ran), on a
    generated moving-lesion clip, without and with temporal reuse."""
    from skinedge.data.video import moving_lesion_frames

    configs = [(r["backend"], r["precision"]) for r in rows_done
               if r["status"] == "ok" and (r["backend"], r["precision"]) != BASELINE]
    configs.sort(key=lambda c: c != ("auto", "auto"))  # what `run` does by default, when it was measured
    if cfg.live_seconds <= 0 or not configs:
        return None
    clip = list(moving_lesion_frames(seconds=cfg.live_seconds, fps=30.0, width=640, height=480, seed=cfg.seed))
    backend, precision = configs[0]
    rows = []
    for strategy in LIVE_STRATEGIES:
        try:
            row = measure_live(Path(cfg.models), manifest, backend, precision, clip, cfg, strategy)
        except (SkinedgeError, ImportError) as exc:
            log(f"live {backend} {precision}: skipped: {exc}")
            return None
        rows.append(row)
        f, age = row["flicker"], row["sr_age_ms"]
        log(f"live {backend} {precision} {strategy}: {row['fps']:.2f} frames/s, latency p50 "
            f"{row['latency_ms']['p50']:.1f} ms, p99 {row['latency_ms']['p99']:.1f} ms, "
            + (f"SR age p50 {age['p50']:.0f} ms, p95 {age['p95']:.0f} ms, " if age else "")
            + f"flicker {f['flicker_enhanced']:.2f} vs bicubic {f['flicker_bicubic']:.2f}; generator on "
            f"{row['computed']} of {row['frames']} frames")
    return {"clip": f"generated hand-held dermatoscope closing in on a lesion, 640×480, 30 fps, "
                    f"{cfg.live_seconds:g} s ({len(clip)} frames), seed {cfg.seed}", "rows": rows}


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every configuration × mode of ``cfg``; returns the document
    :data:`~skinedge.runtime.bench.report.BENCH_SCHEMA` describes."""
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
    live = run_live_rows(cfg, manifest, rows, log)
    env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if "torch" in sys.modules:
        env["torch_threads"] = int(sys.modules["torch"].get_num_threads())
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "skinedge_version": skinedge.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "",
            "settings": {"models": str(cfg.models), "configs": [list(c) for c in cfg.configs], "modes": list(cfg.modes),
                         "frames": cfg.frames, "warmup": cfg.warmup, "data": cfg.data,
                         "size": None if cfg.data else cfg.size, "engines": str(cfg.engines) if cfg.engines else None,
                         "source": source, "baseline": list(BASELINE),
                         "sr_budget": cfg.sr_budget, "target_fps": cfg.target_fps, "live_seconds": cfg.live_seconds,
                         "note": "latency: per frame after warm-up; total = sum of the pipeline's stages, wall = time "
                                 "around the pipeline call; throughput: frames / wall time of a separate back-to-back "
                                 "loop; ratio_to_torch_fp32 = torch fp32 p50 total / this row's (same mode); the "
                                 "baseline runs without an SR budget (the paper's pipeline), the other rows with "
                                 "theirs (sr_budget, sr_input_scale)"},
            "environment": env, "results": rows, "live": live}


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
                  plot_path: str | Path | None, no_baseline: bool, log: Callable[[str], None] = print,
                  sr_budget: str | int | None = "auto", target_fps: float = 10.0, live_seconds: float = 3.0) -> dict:
    """``skinedge bench``: measure, print the table, write ``--json`` (atomically) and ``--plot``; returns the document.

    Empty ``backends``/``precisions``/``modes`` mean auto / auto / roi.
    """
    from skinedge.atomic import write_json_atomic

    backends, precisions, modes = backends or ["auto"], precisions or ["auto"], modes or ["roi"]
    budget = parse_budget(sr_budget)
    if target_fps <= 0 or live_seconds < 0:
        raise SkinedgeError(f"--target-fps must be positive and --live-seconds ≥ 0, got {target_fps} and "
                            f"{live_seconds}")
    configs = expand_configs(backends, precisions, not no_baseline, log)
    if not configs:
        raise SkinedgeError("nothing to measure: every backend/precision pair was invalid (see above)")
    cfg = BenchConfig(Path(models), configs, list(modes), frames, warmup, data, size,
                      Path(engines) if engines else None, sr_budget=budget, target_fps=target_fps,
                      live_seconds=live_seconds)
    doc = run_bench(cfg, log)
    words = ["skinedge bench", f"--models {models}", *(f"--backend {b}" for b in backends),
             *(f"--precision {p}" for p in precisions), *(f"--mode {m}" for m in modes),
             f"--frames {frames}", f"--warmup {warmup}", f"--data {data}" if data else f"--size {size}",
             f"--engines {engines}" if engines else "", "--no-baseline" if no_baseline else "",
             f"--sr-budget {sr_budget}", f"--target-fps {target_fps:g}", f"--live-seconds {live_seconds:g}",
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
