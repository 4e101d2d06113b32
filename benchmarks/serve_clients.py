"""Served frames per second of ``skinedge serve`` with 1 and with 4 concurrent tritonclient clients.

    python benchmarks/serve_clients.py --models demo-out/models --frames 48 [--serve-python .venv-serve/bin/python]

Starts ``skinedge serve`` (its own environment: PyTriton pins numpy<2) on free ports, waits until ready, sends
the same generated 640×480 frames once from one HTTP client, then split over four concurrent clients, and
prints frames/s and latency percentiles for each; the server is stopped with SIGINT at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.http as http

from skinedge.data.video import moving_lesion_frames

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, frame: np.ndarray) -> float:
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    tensor = http.InferInput("IMAGE", [1, *frame.shape], "UINT8")
    tensor.set_data_from_numpy(frame[None])
    start = time.perf_counter()
    client.infer("skinedge", [tensor])
    return (time.perf_counter() - start) * 1000


def run(port: int, frames: list[np.ndarray], clients: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for frame in frames[k::clients]:
            ms = ask(port, frame)
            with lock:
                latencies.append(ms)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    pct = lambda q: round(float(np.percentile(latencies, q)), 1)  # noqa: E731
    return {"clients": clients, "frames": len(frames), "seconds": round(seconds, 2),
            "frames_per_s": round(len(frames) / seconds, 2), "latency_p50_ms": pct(50), "latency_p99_ms": pct(99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--serve-python", type=Path, default=ROOT / ".venv-serve" / "bin" / "python")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frames = list(moving_lesion_frames(seconds=args.frames / 15, fps=15, width=640, height=480, seed=4))
    port, grpc_port = free_port(), free_port()
    log = Path(tempfile.mkdtemp(prefix="skinedge-serve-bench-")) / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(args.serve_python), "-m", "skinedge.cli", "serve", "--models",
                                   str(args.models), "--backend", args.backend, "--precision", args.precision,
                                   "--http-port", str(port), "--grpc-port", str(grpc_port), "--max-queue", "64"],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            client = http.InferenceServerClient(f"127.0.0.1:{port}")
            while True:
                try:
                    if client.is_model_ready("skinedge"):
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.5)
                if server.poll() is not None:
                    raise SystemExit(log.read_text())
            ask(port, frames[0])  # warm-up
            rows = [run(port, frames, 1), run(port, frames, 4)]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(60)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "backend": args.backend, "precision": args.precision, "frame": "640x480 generated moving lesion",
              "rows": rows, "four_over_one": round(rows[1]["frames_per_s"] / rows[0]["frames_per_s"], 2)}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
