"""The live view against the truth: per-frame SR, today's temporal reuse, the two-loop display and bicubic.

A generated hand-held dermatoscope clip is rendered at 4× (the truth, :class:`skinedge.data.video.HRClip`) and
degraded to the camera's 640×480 (blur, ÷4, noise), then written as the camera sends it (MJPEG, 30 fps). Each
strategy plays it in real time through the live loop (:func:`skinedge.runtime.live.loop.run_live`, frames the
loop cannot keep up with are dropped, as a camera's are) with the frame function ``skinedge run`` builds
(:func:`skinedge.runtime.live.command.live_pipeline`), in one process on one set of models:

- ``per-frame SR``: one loop, every shown frame segmented and super-resolved (``--no-sr-loop --no-reuse``);
- ``reuse``: one loop with temporal reuse (``--no-sr-loop``, today's default before two loops);
- ``two loops``: the display at the camera's rate, SR on its own thread (``skinedge run``'s default), with the
  SR loop's networks on 1 thread (the display loop on the other core) and on 2;
- ``bicubic``: the plain up-scale of the camera's pixels, scored on each strategy's own shown views (the
  "bicubic" columns: paired, same frames, same regions, same size).

Every shown view is kept and scored after the run against the truth's same region (the view's size: the truth
area-reduced to it): lesion PSNR-Y and ΔE00 inside the true lesion, with the bicubic up-scale of the same
camera pixels to the same size scored beside it (so each row's gain is paired). Timing: display fps (shown
frames/s), end-to-end latency p50/p99 (capture → view), SR age p50/p95, frames dropped, flicker.

    python benchmarks/live_display.py --models demo-out/models [--seconds 10] [--json OUT.json] [--md OUT.md]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from skinedge import metrics
from skinedge.data.video import HRClip
from skinedge.runtime.bench.env import environment
from skinedge.runtime.live.command import LiveSettings, live_pipeline
from skinedge.runtime.live.loop import run_live
from skinedge.runtime.live.sources import open_source
from skinedge.runtime.manifest import load_models
from skinedge.runtime.session import open_session

STRATEGIES = {
    "per-frame SR": LiveSettings(reuse=False, sr_loop=False),
    "reuse": LiveSettings(reuse=True, sr_loop=False),
    "two loops, SR on 1 thread": LiveSettings(sr_loop=True, sr_threads=1),
    "two loops, SR on 2 threads": LiveSettings(sr_loop=True, sr_threads=2),
}
MJPEG_QUALITY = 85


class Keep:
    """A sink that keeps what each shown frame was: its index, ROI, view and SR age (scored after the run)."""

    def __init__(self):
        self.shown: list[tuple[int, tuple, np.ndarray, float | None]] = []

    def show(self, raw, result, stats) -> None:
        if result is not None and result.found and result.roi is not None:
            self.shown.append((int(stats["frame"]), tuple(result.roi), result.image, result.sr_age_ms))

    def close(self) -> None:
        pass


def write_camera_clip(clip: HRClip, path: Path) -> list[np.ndarray]:
    """The LR frames as the camera sends them (MJPEG AVI); returns them decoded, as the loop will see them."""
    h, w = clip.plan.height // clip.scale, clip.plan.width // clip.scale
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), clip.fps, (w, h))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, MJPEG_QUALITY)
    for i in range(len(clip)):
        writer.write(clip.lr(i))
    writer.release()
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def score(clip: HRClip, camera: list[np.ndarray], kept: list) -> dict:
    """Mean lesion PSNR-Y / ΔE00 of the shown views and of the bicubic up-scale of the same camera pixels."""
    rows = []
    by_frame: dict[int, list] = {}
    for item in kept:
        by_frame.setdefault(item[0], []).append(item)
    for index, items in sorted(by_frame.items()):
        hr, truth = clip.hr(index), clip.truth(index)
        for _, (x0, y0, w, h), view, _age in items:
            s = clip.scale
            region = hr[y0 * s:(y0 + h) * s, x0 * s:(x0 + w) * s]
            lesion = truth[y0 * s:(y0 + h) * s, x0 * s:(x0 + w) * s]
            oh, ow = view.shape[:2]
            if not lesion.any():
                continue
            if (oh, ow) != region.shape[:2]:  # the view is of a reduced ROI (the SR budget): the truth at its size
                region = cv2.resize(region, (ow, oh), interpolation=cv2.INTER_AREA)
                lesion = cv2.resize(lesion.astype(np.uint8) * 255, (ow, oh), interpolation=cv2.INTER_AREA) >= 128
            bicubic = cv2.resize(camera[index][y0:y0 + h, x0:x0 + w], (ow, oh), interpolation=cv2.INTER_CUBIC)
            rgb = lambda a: np.ascontiguousarray(a[:, :, ::-1])  # noqa: E731
            row = {}
            for name, out in (("shown", view), ("bicubic", bicubic)):
                row[f"{name}_psnr_y"] = metrics.psnr(rgb(out), rgb(region), 255, 4, y_channel=True, mask=lesion)
                row[f"{name}_delta_e"] = metrics.mean_delta_e(rgb(out), rgb(region), lesion, 4)
            rows.append(row)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]} if rows else {}
    return {"scored": len(rows), **mean,
            "gain_psnr_y": round(mean["shown_psnr_y"] - mean["bicubic_psnr_y"], 3) if rows else None}


def run_strategy(settings: LiveSettings, models: Path, manifest: dict, clip_path: Path,
                 hold_intervals: float | None = None) -> tuple:
    lines: list[str] = []
    keep = Keep()
    with ExitStack() as stack:
        source = stack.enter_context(open_source(str(clip_path)))
        session = open_session(models, "auto", "auto", None, "roi", log=lines.append, manifest=manifest)
        pipeline = stack.enter_context(session.pipeline)
        frame_fn = live_pipeline(pipeline, settings, lines.append, stack)
        if hold_intervals is not None and getattr(frame_fn, "hold_intervals", None):
            frame_fn.hold_intervals = hold_intervals
        summary = run_live(source, frame_fn, [keep], None, None, lines.append, realtime=True,
                           backend=session.opened.backend, variants=session.opened.variants)
    return summary, keep.shown, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"), help="camera frame size")
    parser.add_argument("--only", action="append", choices=list(STRATEGIES), help="run only these strategies")
    parser.add_argument("--hold-intervals", type=float, action="append",
                        help="two loops: the presentation delay's ceiling in frame intervals (repeat to compare; "
                             "default: the code's)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    manifest = load_models(args.models)
    started = time.perf_counter()
    width, height = args.size
    clip = HRClip(args.seconds, 30.0, width, height, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="skinedge-live-display-") as tmp:
        path = Path(tmp) / "camera.avi"
        camera = write_camera_clip(clip, path)
        print(f"clip: {len(camera)} frames {width}×{height} (truth ×4), made in {time.perf_counter() - started:.0f} s",
              flush=True)
        runs = [(name, hold) for name in args.only or list(STRATEGIES)
                for hold in (args.hold_intervals if STRATEGIES[name].sr_loop and args.hold_intervals else [None])]
        for name, hold in runs:
            summary, kept, lines = run_strategy(STRATEGIES[name], args.models, manifest, path, hold)
            scores = score(clip, camera, kept)
            label = name if hold is None else f"{name}, hold ≤ {hold:g} intervals"
            row = {"strategy": label, "settings": vars(STRATEGIES[name]) | {"budget": str(STRATEGIES[name].budget)},
                   "display_fps": summary["fps"], "frames": summary["frames"], "dropped": summary["dropped"],
                   "latency_p50_ms": summary["latency_p50_ms"], "latency_p99_ms": summary["latency_p99_ms"],
                   "p99_over_p50": round(summary["latency_p99_ms"] / max(summary["latency_p50_ms"], 1e-9), 2),
                   "sr_age_p50_ms": summary.get("sr_age_p50_ms"), "sr_age_p95_ms": summary.get("sr_age_p95_ms"),
                   "sr_shown": summary.get("sr_shown"), "segmented": summary["segmented"],
                   "computed": summary["computed"], "flicker": summary["flicker"], **scores,
                   "log": [x for x in lines if x.startswith(("backend", "SR budget", "SR loop", "two loops"))]}
            rows.append(row)
            print(f"{label}: {row['display_fps']:.1f} fps shown, latency p50 {row['latency_p50_ms']:.0f} / p99 "
                  f"{row['latency_p99_ms']:.0f} ms, SR age p50 {row['sr_age_p50_ms']} / p95 {row['sr_age_p95_ms']}"
                  f" ms; lesion PSNR-Y {scores.get('shown_psnr_y')} (bicubic {scores.get('bicubic_psnr_y')}), "
                  f"ΔE00 {scores.get('shown_delta_e')} (bicubic {scores.get('bicubic_delta_e')}) over "
                  f"{scores['scored']} views", flush=True)
    doc = {"benchmark": "live_display", "clip": {"seconds": args.seconds, "fps": 30.0, "size": [width, height],
                                                 "truth_scale": 4, "seed": args.seed, "mjpeg_quality": MJPEG_QUALITY,
                                                 "degradation": repr(clip.degradation)},
           "models": str(args.models), "environment": environment(), "rows": rows,
           "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    if args.md:
        args.md.write_text(markdown(doc))
    print(markdown(doc))


def markdown(doc: dict) -> str:
    lines = ["| strategy | display fps | latency p50 / p99 ms | p99/p50 | SR age p50 / p95 ms | lesion PSNR-Y "
             "(bicubic, same views) | ΔE00 (bicubic) | flicker (bicubic) | dropped |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        f = r["flicker"] or {}
        age = (f"{r['sr_age_p50_ms']:.0f} / {r['sr_age_p95_ms']:.0f}" if r.get("sr_shown") else "–")
        lines.append(f"| {r['strategy']} | {r['display_fps']:.1f} | {r['latency_p50_ms']:.0f} / "
                     f"{r['latency_p99_ms']:.0f} | {r['p99_over_p50']:.2f} | {age} | {r.get('shown_psnr_y')} "
                     f"({r.get('bicubic_psnr_y')}) | {r.get('shown_delta_e')} ({r.get('bicubic_delta_e')}) | "
                     f"{f.get('flicker_enhanced', '–')} ({f.get('flicker_bicubic', '–')}) | {r['dropped']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
