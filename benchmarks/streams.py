"""What the live benchmarks share: a free port, FFmpeg serving a clip as an HTTP MJPEG camera, ffprobe."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc (a test connection would use up ffmpeg's
    single ``-listen 1`` client)."""
    return any(line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port
               for line in Path("/proc/net/tcp").read_text().splitlines()[1:])


class HttpCamera:
    """FFmpeg serving ``clip`` in a loop as HTTP MJPEG at its real rate (``-re -listen 1``)."""

    def __init__(self, clip: Path, port: int):
        self.clip, self.port, self.proc = clip, port, None
        self.url = f"http://127.0.0.1:{port}/feed.mjpg"

    def start(self, timeout: float = 15) -> "HttpCamera":
        self.proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                                      "-i", str(self.clip), "-an", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg",
                                      "-listen", "1", self.url], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.perf_counter() + timeout
        while not listening(self.port):
            if time.perf_counter() > end:
                raise RuntimeError(f"ffmpeg did not listen on port {self.port} within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(10)


def probe(file: Path) -> dict:
    """ffprobe's duration (s) and packet count of a video file."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                          "format=duration:stream=nb_read_packets", "-of", "json", str(file)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    info = json.loads(out)
    return {"duration": float(info["format"]["duration"]), "packets": int(info["streams"][0]["nb_read_packets"])}
