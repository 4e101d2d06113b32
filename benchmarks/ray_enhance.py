"""Images per second of ``enhance --ray`` against plain ``enhance``: same images, same models, one run.

    python benchmarks/ray_enhance.py --models demo-out/models --images 48 --size 256 [--json out.json]

Plain ``enhance`` runs first (one process, one session, the backend's own threads on every core), then
``enhance --ray`` on a local cluster (one worker per core, one session each): its time is given with and without
starting the cluster (``ray.init`` to the first result). Both write to fresh folders; the PNGs are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from skinedge.data.generate import write_synthetic
from skinedge.runtime.enhance import enhance_command
from skinedge.runtime.scale.ray_enhance import enhance_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skinedge-ray-bench-"))
    write_synthetic(work / "synth", count=args.images, size=args.size, seed=21)
    images = str(work / "synth" / "images")
    quiet = lambda s: None  # noqa: E731
    start = time.perf_counter()
    enhance_command([images], args.models, work / "plain", args.backend, args.precision, log=quiet)
    plain_s = time.perf_counter() - start
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    enhance_ray([images], args.models, work / "ray", backend=args.backend, precision=args.precision,
                log=lambda s: lines.append((time.perf_counter(), s)))
    ray_s = time.perf_counter() - start
    first = next(t for t, s in lines if s.startswith(("ok ", "FAIL")))
    last = max(t for t, s in lines if s.startswith(("ok ", "FAIL")))
    same = all((work / "plain" / p.name).read_bytes() == p.read_bytes() for p in (work / "ray").glob("*.png"))
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "images": args.images, "size": args.size, "backend": args.backend, "precision": args.precision,
              "plain_s": round(plain_s, 2), "plain_images_per_s": round(args.images / plain_s, 2),
              "ray_s_with_cluster_start": round(ray_s, 2), "ray_images_per_s": round(args.images / ray_s, 2),
              "ray_s_first_to_last_result": round(last - first, 2),
              "ray_images_per_s_steady": round((args.images - 1) / max(last - first, 1e-9), 2),
              "ray_over_plain": round(plain_s / ray_s, 2), "outputs_identical": same}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
