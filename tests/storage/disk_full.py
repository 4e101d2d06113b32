"""Run inside ``unshare -rm`` (a private mount namespace where we are root): a real ``skinedge run`` records onto a
small tmpfs made here, the disk is filled until it is full, then freed. Prints one JSON line for the test
(tests/test_storage.py) to judge: the recording states seen on /stats.json, the frames the live view counted
while recording was paused, and ffprobe/ffmpeg's verdict on every closed segment.

    unshare -rm python tests/storage/disk_full.py MODELS CLIP WORK_DIR
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(models: str, clip: str, work: str) -> None:
    mount = Path(work) / "tmpfs"
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    rec, port = mount / "rec", free_port()
    log = open(Path(work) / "skinedge.log", "w")
    run = subprocess.Popen([sys.executable, "-m", "skinedge.cli", "run", "--source", clip, "--realtime",
                            "--models", models, "--backend", "onnxruntime", "--precision", "fp32", "--no-display",
                            "--serve", f"127.0.0.1:{port}", "--record", str(rec), "--segment-seconds", "1"],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seen, out = [], {}

    def stats() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2) as r:
                s = json.loads(r.read())
        except OSError:
            s = {}
        if s.get("recording") and (not seen or seen[-1] != s["recording"]):
            seen.append(s["recording"])
        return s

    def wait(what: str, predicate, timeout: float = 60) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            if run.poll() is not None:
                raise SystemExit(f"skinedge run exited {run.returncode} while waiting for {what}")
            s = stats()
            if s and predicate(s):
                return s
            time.sleep(0.1)
        raise SystemExit(f"timed out waiting for {what}")

    def closed() -> int:
        index = rec / "segments.jsonl"
        return len(index.read_text().splitlines()) if index.exists() else 0

    try:
        wait("two closed segments", lambda s: closed() >= 2)
        filler = mount / "filler"
        with open(filler, "wb") as fh:  # fill the disk up to the last block
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        paused = wait("recording paused", lambda s: s["recording"].startswith("recording paused: disk full"))
        time.sleep(3)
        later = stats()
        out["frames_while_paused"] = later["frame"] - paused["frame"]
        out["state_while_paused"] = later["recording"]
        out["closed_before_freeing"] = closed()
        filler.unlink()
        wait("recording resumed", lambda s: s["recording"] == "recording")
        resumed_at = closed()
        wait("two more closed segments", lambda s: closed() >= resumed_at + 2)
    finally:
        run.send_signal(signal.SIGINT)
        out["exit"] = run.wait(60)
        log.close()
    segments = [json.loads(line) for line in (rec / "segments.jsonl").read_text().splitlines()]
    for seg in segments:
        for stream in ("raw", "enhanced"):
            file = rec / seg[stream]
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                                    str(file)], capture_output=True, text=True, timeout=30)
            decode = subprocess.run(["ffmpeg", "-v", "error", "-i", str(file), "-f", "null", "-"],
                                    capture_output=True, text=True, timeout=60)
            seg[f"{stream}_duration"] = float(json.loads(probe.stdout)["format"]["duration"])
            seg[f"{stream}_errors"] = (probe.stderr + decode.stderr).strip()
    out.update(states=seen, segments=segments, files=sorted(p.name for p in rec.iterdir()),
               log=(Path(work) / "skinedge.log").read_text(errors="replace"))
    subprocess.run(["umount", str(mount)], check=False)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
