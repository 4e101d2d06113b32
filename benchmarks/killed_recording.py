"""A recording killed with SIGKILL: how much of the wall time do its closed segments keep?

FFmpeg serves a generated 640×480 moving-lesion clip as HTTP MJPEG at 15 fps on 127.0.0.1 (``-re -listen 1``);
``skinedge run --source http://… --record DIR`` enhances it at this machine's real speed; after ``--seconds`` of
frames skinedge gets SIGKILL (no chance to close anything). Then ffprobe reads every closed segment (raw and
enhanced) and the result compares their total duration with the wall time from the first frame to the kill:
the loss must be at most one segment (``--segment-seconds``) plus the frame being enhanced.

    python benchmarks/killed_recording.py --models demo-out/models --seconds 90 --json out.json

Needs Debian's ffmpeg/ffprobe. Extra arguments after ``--`` go to ``skinedge run`` (e.g. ``-- --sr-budget none``).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skinedge.data.video import write_moving_lesion_clip
from skinedge.runtime.sinks.recorder import read_frames
from streams import free_port, listening, probe  # benchmarks/streams.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--seconds", type=float, default=90.0, help="wall time from the first frame to the kill")
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("run_args", nargs="*", help="extra arguments for skinedge run (after --)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skinedge-killed-"))
    clip = work / "clip.avi"
    write_moving_lesion_clip(clip, seconds=20, fps=15, width=640, height=480, seed=7)
    port = free_port()
    url = f"http://127.0.0.1:{port}/feed.mjpg"
    server = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i",
                               str(clip), "-an", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1", url])
    while not listening(port):
        time.sleep(0.05)
    rec, log = work / "rec", work / "skinedge.log"
    command = [sys.executable, "-m", "skinedge.cli", "run", "--source", url, "--models", str(args.models),
               "--no-display", "--record", str(rec), "--segment-seconds", str(args.segment_seconds), *args.run_args]
    with open(log, "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        frames = rec / "frames-00000.jsonl"
        while not (frames.exists() and frames.stat().st_size):
            if run.poll() is not None:
                sys.exit(f"skinedge run exited {run.returncode}:\n{log.read_text()}")
            time.sleep(0.05)
        first_seen = time.time()
        time.sleep(args.seconds)
        run.send_signal(signal.SIGKILL)
        killed = time.time()
        run.wait()
    server.kill()
    records = read_frames(rec)
    segments = [json.loads(line) for line in (rec / "segments.jsonl").read_text().splitlines()]
    for seg in segments:
        seg["ffprobe"] = {s: probe(rec / seg[s]) for s in ("raw", "enhanced")}
    first = records[0]["captured"]
    wall = killed - first
    closed = sum(s["ffprobe"]["raw"]["duration"] for s in segments)
    closed_until = segments[-1]["start"] + segments[-1]["seconds"] if segments else first
    fps = (len(records) - 1) / (records[-1]["captured"] - first) if len(records) > 1 else 0.0
    result = {"command": " ".join(command[2:]), "seconds_requested": args.seconds, "first_frame_seen_after_s":
              round(first_seen - first, 3), "wall_s_first_frame_to_kill": round(wall, 3),
              "frames_enhanced": len(records), "enhanced_fps": round(fps, 2),
              "segments_closed": len(segments), "closed_duration_s_by_ffprobe": round(closed, 3),
              "closed_enhanced_duration_s_by_ffprobe": round(sum(s["ffprobe"]["enhanced"]["duration"]
                                                                 for s in segments), 3),
              "lost_s": round(killed - closed_until, 3), "segment_s": args.segment_seconds,
              "frames_in_closed_segments": sum(s["frames"] for s in segments),
              "open_segment_files": sorted(p.name for p in rec.glob("*.mkv")
                                           if p.name not in {s[k] for s in segments for k in ("raw", "enhanced")}),
              "segments": [{k: s[k] for k in ("segment", "frames", "carried", "seconds")} |
                           {"ffprobe_raw_s": s["ffprobe"]["raw"]["duration"],
                            "ffprobe_enhanced_s": s["ffprobe"]["enhanced"]["duration"]} for s in segments]}
    print(json.dumps(result, indent=1))
    print(f"\n{len(records)} frames enhanced in {wall:.1f} s of wall time ({fps:.1f} frames/s of a 15 frames/s "
          f"stream); {len(segments)} closed segments play {closed:.1f} s by ffprobe ({closed / wall:.1%} of the wall "
          f"time); lost to the kill: {killed - closed_until:.1f} s (the segment in progress; limit "
          f"{args.segment_seconds:g} s + one frame)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
