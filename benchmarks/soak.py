"""Soak: ``skinedge run`` for a long while the way a device runs it, watched for anything that grows.

``skinedge run`` runs as its own process against FFmpeg serving a generated clip as an HTTP MJPEG camera
(``-re -listen 1``), killed and restarted every ``--restart-every`` seconds, with recording on (and
``--record-keep`` when the code under test has it) and the web viewer behind a token: one authenticated viewer
watches the stream all along, a second one comes and goes. Every ``--sample-every`` seconds the benchmark reads
the process's RSS, open file descriptors and threads (``/proc``), the recording's size on disk and the viewer's
``/stats.json``. At the end: slopes after the warm-up (least squares), every camera restart against the
reconnects the run counted, and every closed segment's duration by ffprobe against the wall time it covers.

    python benchmarks/soak.py --models demo-out/models --minutes 30 --json soak.json --plot soak.png
    python benchmarks/soak.py --models demo-out/models --minutes 30 --code /tmp/old-checkout  # older code
    python benchmarks/soak.py --models M --minutes 3 --warmup-minutes 1 --restart-every 30 --check  # CI

With ``--check`` it exits 1 on a clear leak (RSS slope over ``--max-rss-slope`` MB per 10 min or, for a short
run, the peak growing over ``--max-rss-growth`` MB, file
descriptors or threads growing, a restart not reconnected, a segment that does not play its wall time ±1 %).
Needs Debian's ffmpeg and ffprobe; the plot needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from skinedge.data.video import write_moving_lesion_clip
from streams import HttpCamera, free_port, probe  # benchmarks/streams.py

REPO = Path(__file__).resolve().parents[1]


class Viewer(threading.Thread):
    """An authenticated client of ``/stream.mjpg`` that counts the JPEG parts it receives; reconnects when the
    stream breaks. ``visit_s`` > 0: leaves after that long and comes back ``visit_s`` later (viewer churn)."""

    def __init__(self, port: int, token: str, visit_s: float = 0.0):
        super().__init__(daemon=True)
        self.url, self.token, self.visit_s = f"http://127.0.0.1:{port}/stream.mjpg", token, visit_s
        self.frames = self.connects = self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {self.token}"})
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=10) as stream:
                    self.connects += 1
                    while not self.stop.is_set():
                        chunk = stream.read1(65536)
                        if not chunk:
                            break
                        self.frames += chunk.count(b"Content-Type: image/jpeg")
                        if self.visit_s and time.monotonic() - started > self.visit_s:
                            break
            except OSError:
                self.errors += 1
            self.stop.wait(self.visit_s or 1.0)


def stats(port: int, token: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/stats.json",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return {}


def proc_sample(pid: int) -> dict:
    """RSS (MB), open file descriptors and threads of a running process, from /proc."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.glob("*") if p.is_file()) / 1e6 if path.exists() else 0.0


def slope_per_10min(t_s: list[float], values: list[float]) -> float:
    """Least-squares slope, in units per 10 minutes."""
    if len(t_s) < 3:
        return float("nan")
    return float(np.polyfit(np.asarray(t_s) / 600.0, np.asarray(values, float), 1)[0])


def slope_spread(t_s: list[float], values: list[float]) -> dict:
    """How sure the slope is, per 10 minutes: the least-squares standard error (samples taken as independent, so
    a lower bound) and Theil–Sen's median of pairwise slopes (RSS jumps by tens of MB as glibc's heaps grow and
    shrink; a few jumps near either end move least squares, not the median)."""
    t, v = np.asarray(t_s) / 600.0, np.asarray(values, float)
    if len(t) < 4:
        return {"slope_se_per_10min": float("nan"), "theil_sen_per_10min": float("nan")}
    fit = np.polyfit(t, v, 1)
    residual = v - np.polyval(fit, t)
    se = np.sqrt((residual @ residual) / (len(t) - 2) / ((t - t.mean()) ** 2).sum())
    i, j = np.triu_indices(len(t), 1)
    keep = t[j] > t[i]
    pairwise = (v[j] - v[i])[keep] / (t[j] - t[i])[keep]
    return {"slope_se_per_10min": round(float(se), 3), "theil_sen_per_10min": round(float(np.median(pairwise)), 3)}


def has_option(code: Path, option: str) -> bool:
    help_text = subprocess.run([sys.executable, "-m", "skinedge.cli", "run", "--help"], capture_output=True,
                               text=True, env=code_env(code), cwd=tempfile.gettempdir(), timeout=120).stdout
    return option in help_text


def code_env(code: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(code), "COLUMNS": "200"}


def segments_play_their_wall_time(rec: Path) -> list[dict]:
    """Each closed segment still on disk: its wall time (segments.jsonl) and ffprobe's duration of both files."""
    index = rec / "segments.jsonl"
    rows = []
    for line in index.read_text().splitlines() if index.exists() else []:
        seg = json.loads(line)
        durations = {s: probe(rec / seg[s])["duration"] for s in ("raw", "enhanced")}
        worst = max(abs(d - seg["seconds"]) / seg["seconds"] for d in durations.values()) if seg["seconds"] else 0
        rows.append({"segment": seg["segment"], "seconds": seg["seconds"], **durations, "off": round(worst, 5)})
    return rows


def summarize(samples: list[dict], warmup_s: float) -> dict:
    late = [s for s in samples if s["t_s"] >= warmup_s]
    t = [s["t_s"] for s in late]
    out = {"samples_after_warmup": len(late)}
    for key in ("rss_mb", "fds", "threads", "disk_mb"):
        values = [s[key] for s in late]
        out[key] = {"slope_per_10min": round(slope_per_10min(t, values), 3),
                    "min": min(values, default=None), "max": max(values, default=None)}
    out["rss_mb"].update(slope_spread(t, [s["rss_mb"] for s in late]))
    third = max(1, len(late) // 3)
    for key in ("rss_mb", "fds", "threads"):  # flat: the last third never goes above what the first third reached
        out[key]["growth"] = (max(s[key] for s in late[-third:]) - max(s[key] for s in late[:third])) if late else 0
    return out


def plot(samples: list[dict], restarts: list[float], warmup_s: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    for ax, (key, label) in zip(axes, [("rss_mb", "RSS (MB)"), ("fds", "open fds"), ("threads", "threads"),
                                       ("disk_mb", "recording on disk (MB)")]):
        ax.plot(t, [s[key] for s in samples], lw=1.2)
        ax.set_ylabel(label)
        ax.axvspan(0, warmup_s / 60, color="0.9", lw=0)
        for r in restarts:
            ax.axvline(r / 60, color="tab:red", lw=0.4, alpha=0.5)
        ax.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=10)
    axes[-1].set_xlabel("minutes (grey: warm-up; red: camera killed and restarted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--restart-every", type=float, default=60.0, help="seconds between camera restarts")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--record-keep", default="200MB", help="passed to skinedge run when its code has it")
    parser.add_argument("--size", default="640x480", help="the camera's frame size")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--code", type=Path, default=REPO, help="checkout of skinedge to run (default: this one)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 on a clear leak")
    parser.add_argument("--max-rss-slope", type=float, default=0.5, help="MB per 10 min, with --check")
    parser.add_argument("--max-rss-growth", type=float, default=None,
                        help="MB the last third's peak may exceed the first third's, with --check: the check a "
                             "short run can make (a few minutes of slope are swamped by the heap's sawtooth)")
    parser.add_argument("run_args", nargs="*", help="extra arguments for skinedge run (after --)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill → the same clean stop as Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (also when started in the background)
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="skinedge-soak-"))
    clip = work / "clip.avi"
    write_moving_lesion_clip(clip, seconds=20, fps=args.fps, width=width, height=height, seed=11)
    token = secrets.token_urlsafe(32)
    token_file = work / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    code = args.code.resolve()
    keep = ["--record-keep", args.record_keep] if args.record_keep and has_option(code, "--record-keep") else []
    camera, port, rec = HttpCamera(clip, free_port()), free_port(), work / "rec"
    command = [sys.executable, "-m", "skinedge.cli", "run", "--source", camera.url, "--models", str(args.models),
               "--no-display", "--serve", f"127.0.0.1:{port}", "--token-file", str(token_file), "--record",
               str(rec), "--segment-seconds", str(args.segment_seconds), *keep, *args.run_args]
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"soak {args.minutes:g} min of {code} ({commit}), camera {args.size} at {args.fps:g} fps restarted "
          f"every {args.restart_every:g} s; work in {work}", flush=True)
    camera.start()
    log = open(work / "skinedge.log", "w")
    run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=code_env(code), cwd=work)
    viewers = [Viewer(port, token), Viewer(port, token, visit_s=15.0)]
    samples, restarts, last = [], [], {}
    started = time.monotonic()
    try:
        while not stats(port, token).get("shown"):  # the first frame: the clock starts here
            if run.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit(f"skinedge run did not show a frame:\n{(work / 'skinedge.log').read_text()}")
            time.sleep(0.5)
        for v in viewers:
            v.start()
        t0 = next_sample = next_restart = time.monotonic()
        next_restart += args.restart_every
        while (now := time.monotonic()) - t0 < args.minutes * 60:
            if run.poll() is not None:
                raise SystemExit(f"skinedge run exited {run.returncode}:\n{(work / 'skinedge.log').read_text()}")
            if now >= next_restart:  # the camera goes away (power, cable, network) and comes back 2 s later
                camera.kill()
                time.sleep(2.0)
                camera.start()
                restarts.append(now - t0)
                next_restart += args.restart_every
            elif not camera.running():  # ffmpeg's -listen 1 ends when its client leaves: serve again
                camera.start()
            if now >= next_sample:
                last = stats(port, token) or last
                samples.append({"t_s": round(now - t0, 1), **proc_sample(run.pid), "disk_mb": folder_mb(rec),
                                "frame": last.get("frame"), "fps": last.get("fps"),
                                "reconnects": last.get("reconnects"), "state": last.get("state"),
                                "recording": last.get("recording"), "viewer_frames": viewers[0].frames})
                s = samples[-1]
                print(f"{s['t_s'] / 60:5.1f} min  RSS {s['rss_mb']:.1f} MB  fds {s['fds']}  threads {s['threads']}"
                      f"  disk {s['disk_mb']:.0f} MB  frame {s['frame']}  reconnects {s['reconnects']}", flush=True)
                next_sample += args.sample_every
            time.sleep(0.2)
        time.sleep(5.0)  # the last restart's reconnect
        last = stats(port, token) or last
    finally:
        for v in viewers:
            v.stop.set()
        if run.poll() is None:  # SIGTERM, as systemd stops it (a background job may ignore SIGINT)
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                run.kill()
        camera.kill()
        log.close()
    segments = segments_play_their_wall_time(rec)
    summary = summarize(samples, args.warmup_minutes * 60)
    result = {
        "command": " ".join(command[3:]), "code": str(code), "commit": commit, "minutes": args.minutes,
        "warmup_minutes": args.warmup_minutes, "camera": f"{args.size} at {args.fps:g} fps, HTTP MJPEG (ffmpeg)",
        "exit": run.returncode, "stopped_by": "SIGTERM (exit 143 is a clean stop)", "restarts": len(restarts),
        "reconnects": last.get("reconnects"),
        "frames_shown": last.get("frame"), "viewer_frames": viewers[0].frames, "viewer_connects": viewers[0].connects,
        "churn_viewer_visits": viewers[1].connects, "record_keep": keep[1] if keep else None,
        "segments_kept": len(segments), "segments_off_max": max((s["off"] for s in segments), default=None),
        **summary, "samples": samples, "segments": segments,
        "log_tail": (work / "skinedge.log").read_text(errors="replace")[-3000:],
    }
    failures = []
    if not summary["rss_mb"]["slope_per_10min"] <= args.max_rss_slope:
        failures.append(f"RSS grows {summary['rss_mb']['slope_per_10min']:.2f} MB/10 min (> {args.max_rss_slope})")
    if args.max_rss_growth is not None and not summary["rss_mb"]["growth"] <= args.max_rss_growth:
        failures.append(f"RSS peak grows {summary['rss_mb']['growth']:.1f} MB after the warm-up "
                        f"(> {args.max_rss_growth:g})")
    for key in ("fds", "threads"):
        if summary[key]["growth"] > 2:
            failures.append(f"{key} grow by {summary[key]['growth']} after the warm-up")
    if result["reconnects"] != len(restarts):
        failures.append(f"{len(restarts)} camera restarts, {result['reconnects']} reconnects")
    if any(s["off"] > 0.01 for s in segments):
        failures.append("a segment does not play its wall time ±1 %")
    result["failures"] = failures
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(samples, restarts, args.warmup_minutes * 60, f"skinedge run soak: {commit}, {args.minutes:g} min, "
             f"camera restarted {len(restarts)}x", args.plot)
    rss = summary["rss_mb"]
    print(f"RSS slope {rss['slope_per_10min']:+.3f} MB/10 min (± {rss['slope_se_per_10min']:.3f} s.e.; Theil–Sen "
          f"{rss['theil_sen_per_10min']:+.3f}) after {args.warmup_minutes:g} min "
          f"({rss['min']:.1f}-{rss['max']:.1f} MB, peak growth {rss['growth']:+.1f}); fds {summary['fds']['min']}-"
          f"{summary['fds']['max']} (growth {summary['fds']['growth']}), threads {summary['threads']['min']}-"
          f"{summary['threads']['max']} (growth {summary['threads']['growth']}); disk "
          f"{summary['disk_mb']['max']:.0f} MB max; {len(restarts)} restarts, {result['reconnects']} reconnects; "
          f"{len(segments)} segments kept, worst off {result['segments_off_max']}; frames shown "
          f"{result['frames_shown']}, viewer got {result['viewer_frames']}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
