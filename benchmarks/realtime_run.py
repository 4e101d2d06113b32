"""``skinedge run`` in real time on a generated 640×480 clip of a hand-held dermatoscope closing in on a lesion.

The clip (``skinedge data video``: zoom, drift, hand tremor, two ~1 s pauses, sensor noise) is written to a
temporary folder and played with ``--realtime`` (frames the pipeline cannot keep up with are dropped, as a
camera's would be), headless, through :func:`skinedge.runtime.live.command.run_command` — the function the CLI
calls — once per setting, in one process on one set of models:

- ``default``: what ``skinedge run`` does (auto backends, auto SR budget for ``--target-fps``, two loops);
- ``one loop, reuse``: ``--no-sr-loop``: temporal reuse, the default before two loops;
- ``no reuse``: one loop, the auto budget, every frame segmented and super-resolved;
- ``no budget, no reuse``: the paper's pipeline on the same backends (every ROI at full size).

Reported per setting: processed frames/s, end-to-end latency p50/p95/p99 (capture → result), p99/p50, frames
dropped, segmenter and generator runs, and flicker (mean |Δ| of consecutive aligned views, enhanced vs a
bicubic up-scale; :mod:`skinedge.runtime.live.flicker`).

    python benchmarks/realtime_run.py --models demo-out/models [--seconds 10] [--json OUT.json] [--md OUT.md]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from skinedge.data.video import write_moving_lesion_clip
from skinedge.runtime.bench.env import environment
from skinedge.runtime.live.command import run_command

SETTINGS = {
    "default": {},
    "one loop, reuse": {"sr_loop": False},
    "no reuse": {"sr_loop": False, "reuse": False},
    "no budget, no reuse": {"sr_loop": False, "reuse": False, "sr_budget": "none"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--target-fps", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", choices=list(SETTINGS), help="run only these settings")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="skinedge-realtime-") as tmp:
        clip = Path(tmp) / "clip.avi"
        info = write_moving_lesion_clip(clip, args.seconds, 30.0, 640, 480, args.seed)
        for name in args.only or list(SETTINGS):
            lines: list[str] = []
            started = time.perf_counter()
            summary = run_command(None, str(clip), args.models, realtime=True, no_display=True,
                                  target_fps=args.target_fps, log=lines.append, **SETTINGS[name])
            print(f"== {name} ({time.perf_counter() - started:.1f} s)\n" + "\n".join(lines), flush=True)
            rows.append({"setting": name, "options": SETTINGS[name], "summary": summary,
                         "log": [line for line in lines if line.startswith(("backend", "SR budget", "seg:", "sr:"))]})
    doc = {"what": __doc__.split("\n\n")[0], "clip": info, "target_fps": args.target_fps, "models": str(args.models),
           "command": f"python benchmarks/realtime_run.py --models {args.models} --seconds {args.seconds:g}",
           "load_average_after": os.getloadavg()[0], "environment": environment(), "rows": rows}
    table = markdown(doc)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    if args.md:
        args.md.write_text(table + "\n", encoding="utf-8")


def markdown(doc: dict) -> str:
    lines = [f"`{doc['command']}` — {doc['clip']['frames']} frames, 640×480, 30 fps, played with --realtime",
             "", "| setting | frames/s | latency p50 ms | p95 | p99 | p99/p50 | dropped | segmenter runs | generator "
             "runs | flicker enhanced | flicker bicubic | excess |", "|---|" + "---:|" * 11]
    for row in doc["rows"]:
        s = row["summary"]
        f = {k: (v if v is not None else float("nan")) for k, v in s["flicker"].items()}
        ratio = s["latency_p99_ms"] / s["latency_p50_ms"] if s["latency_p50_ms"] else float("nan")
        lines.append(f"| {row['setting']} | {s['fps']:.1f} | {s['latency_p50_ms']:.0f} | {s['latency_p95_ms']:.0f} | "
                     f"{s['latency_p99_ms']:.0f} | {ratio:.2f} | {s['dropped']} | {s['segmented']}/{s['frames']} | "
                     f"{s['computed']}/{s['frames']} | {f['flicker_enhanced']:.2f} | {f['flicker_bicubic']:.2f} | "
                     f"{f['flicker_excess']:+.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
