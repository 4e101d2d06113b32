"""Does the noise-aware projection (``Fidelity(noise="auto")``) keep bicubic's lesion PSNR on camera-like LR frames?

For each real dermoscopy image of the dev set (``../shared/data/isic2017-dev290``; never copied into the
repository, only the numbers are written): HR = the image at ``--side`` px on the long side (PIL Lanczos), cropped
to a multiple of 4, and the expert lesion mask. Two LR protocols, seeded by the image's index ``i``:

- ``bicubic``: ``degrade(hr, Degradation.bicubic_only(), seed=i)`` (the classic SR protocol);
- ``camera``: ``degrade(hr, Degradation(), seed=i)`` (blur σ 0.2–1.2, bicubic ÷4, noise σ 0–4, JPEG 70–95).

Outputs, each scored by ``metrics.sr_scores(out, hr, 4, mask)["lesion_psnr_y"]`` and reported as the gain over
plain bicubic of the same LR (``bicubic_upscale``), mean and median over images:

- ``bicubic + chroma only``: ``Fidelity(0)``: no step, colour from the frame (what a projection that stops before
  its first step returns: the float round trip alone);
- ``bicubic + projection (off)``: the full projection, ``Fidelity(noise="off")`` (what the CUDA kernel computes);
- ``bicubic + projection (auto)``: the discrepancy principle, ``Fidelity(noise="auto")`` (the default);
- camera only, a *denoised* input: the bicubic of the LR blurred by a 3×3 Gaussian (σ 0.8), alone and projected
  (off / auto); the gain of the projected over that input is reported as well (auto must not lower it).

Also: the noise estimate per protocol (σ, blockiness, floor, the share of frames with a floor of 0) and the time
of ``noise.estimate`` on a 160×120 LR (single thread). The constants of ``noise.py`` and ``projection.py`` were
calibrated on images 60–289 of the sorted dev set; the default ``--start 0 --limit 60`` scores images the
calibration never saw.

    python benchmarks/projection_noise.py [--limit 60] [--start 0] [--side 512]
        [--json benchmarks/results/projection-noise.json]

Skips (exit 0, one line) when the dev set is absent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge import metrics
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade
from skinedge.evaluate import project_rgb
from skinedge.filters import filter_separable, gaussian_kernel1d
from skinedge.runtime.pipeline import noise, projection
from skinedge.runtime.pipeline.projection import Fidelity

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2017-dev290"
IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SCALE = 4
OFF, AUTO, CHROMA_ONLY = Fidelity(noise="off"), Fidelity(noise="auto"), Fidelity(0)
PROTOCOLS = {"bicubic": Degradation.bicubic_only(), "camera": Degradation()}


def pairs(root: Path, side: int, start: int, limit: int):
    """(HR uint8 RGB, true mask) of the sorted dev set's images start … start+limit, HR cropped to ×4."""
    for path in sorted((root / IMAGES).glob("*.jpg"))[start:start + limit]:
        image = Image.open(path).convert("RGB")
        f = side / max(image.size)
        size = (round(image.size[0] * f), round(image.size[1] * f))
        hr = np.asarray(image.resize(size, Image.LANCZOS))
        mask = np.asarray(Image.open(root / MASKS / f"{path.stem}_segmentation.png").convert("L")
                          .resize(size, Image.NEAREST)) > 127
        h, w = hr.shape[0] // SCALE * SCALE, hr.shape[1] // SCALE * SCALE
        yield np.ascontiguousarray(hr[:h, :w]), mask[:h, :w]


def lesion_psnr(out: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> float:
    return metrics.sr_scores(out, hr, SCALE, mask)["lesion_psnr_y"]


def denoised(lr: np.ndarray) -> np.ndarray:
    """The LR under a 3×3 Gaussian (σ 0.8): a light denoiser, uint8."""
    smooth = filter_separable(lr, gaussian_kernel1d(0.8, 1), mode="reflect")
    return np.clip(np.rint(smooth), 0, 255).astype(np.uint8)


def planar(lr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / np.float32(255)


def score(hr: np.ndarray, mask: np.ndarray, lr: np.ndarray, camera: bool) -> dict[str, float]:
    """Lesion PSNR-Y gains over bicubic (dB) of one LR, and its noise estimate."""
    bicubic = bicubic_upscale(lr, SCALE)
    base = lesion_psnr(bicubic, hr, mask)
    row = {name: lesion_psnr(project_rgb(bicubic, lr, fid), hr, mask) - base
           for name, fid in (("chroma_only", CHROMA_ONLY), ("off", OFF), ("auto", AUTO))}
    if camera:
        x = bicubic_upscale(denoised(lr), SCALE)
        row["denoised"] = lesion_psnr(x, hr, mask) - base
        for name, fid in (("off", OFF), ("auto", AUTO)):
            row[f"denoised_{name}"] = lesion_psnr(project_rgb(x, lr, fid), hr, mask) - base
            row[f"denoised_{name}_vs_input"] = row[f"denoised_{name}"] - row["denoised"]
    level = noise.estimate(planar(lr))
    row.update(sigma=level.sigma, blockiness=level.blockiness, floor=level.floor, lesion_psnr_bicubic=base)
    return row


def estimate_ms(hr: np.ndarray, repeats: int = 200) -> float:
    """Best time of ``noise.estimate`` on a 160×120 camera LR of ``hr`` (ms, NumPy on one thread)."""
    hr640 = np.asarray(Image.fromarray(hr).resize((640, 480), Image.LANCZOS))
    lr = planar(degrade(hr640, Degradation(), seed=0))
    noise.estimate(lr)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats // 5):
            noise.estimate(lr)
        best = min(best, (time.perf_counter() - t) / (repeats // 5))
    return best * 1000.0


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEV_SET)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "projection-noise.json")
    args = ap.parse_args()
    if not (args.data / IMAGES).is_dir():
        print(f"skip: no dev set at {args.data}")
        return 0
    rows: dict[str, list[dict]] = {name: [] for name in PROTOCOLS}
    first = None
    for i, (hr, mask) in enumerate(pairs(args.data, args.side, args.start, args.limit)):
        first = hr if first is None else first
        for name, how in PROTOCOLS.items():
            rows[name].append(score(hr, mask, degrade(hr, how, seed=args.start + i), name == "camera"))
        print(f"\r{i + 1} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if first is None:
        print(f"skip: no images in {args.data / IMAGES}")
        return 0
    keys = {"bicubic": ["chroma_only", "off", "auto"],
            "camera": ["chroma_only", "off", "auto", "denoised", "denoised_off", "denoised_auto",
                       "denoised_off_vs_input", "denoised_auto_vs_input"]}
    result = {
        "what": "lesion PSNR-Y gain over plain bicubic (dB), real dermoscopy, HR at --side px, x4",
        "images": {"start": args.start, "count": len(rows["bicubic"]), "side": args.side,
                   "calibration_images": "60-289 of the sorted dev set (constants of noise.py and projection.py)"},
        "constants": {**{k: getattr(noise, k) for k in ("PERCENTILE", "PERCENTILE_BIAS", "TEXTURE_VAR", "STEP_CLIP",
                                                         "BLOCK_GAIN", "DEAD_ZONE")},
                      "THRESHOLD": projection.THRESHOLD, "STOP": projection.STOP},
        "estimate_ms_160x120": estimate_ms(first),
        "protocols": {},
    }
    for name, rs in rows.items():
        result["protocols"][name] = {
            "gain": {k: summary([r[k] for r in rs]) for k in keys[name]},
            "noise": {k: summary([r[k] for r in rs]) for k in ("sigma", "blockiness", "floor")},
            "floor_zero_share": float(np.mean([r["floor"] == 0.0 for r in rs])),
            "lesion_psnr_bicubic": summary([r["lesion_psnr_bicubic"] for r in rs]),
            "per_image": {k: [round(r[k], 4) for r in rs] for k in keys[name] + ["floor"]},
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(rows['bicubic'])} images from #{args.start}, {args.side} px; lesion PSNR-Y gain over bicubic, dB "
          f"(mean / median / min)")
    print(f"{'protocol':9s} {'output':34s} {'mean':>7s} {'median':>7s} {'min':>7s}")
    for name, p in result["protocols"].items():
        for k, s in p["gain"].items():
            print(f"{name:9s} {k:34s} {s['mean']:+7.3f} {s['median']:+7.3f} {s['min']:+7.3f}")
        n = p["noise"]
        print(f"{name:9s} noise: sigma {n['sigma']['mean']:.2f}, blockiness {n['blockiness']['mean']:.2f}, floor "
              f"{n['floor']['mean']:.2f} grey levels (mean); floor 0 on {p['floor_zero_share']:.0%} of frames")
    print(f"noise.estimate on a 160x120 LR: {result['estimate_ms_160x120']:.2f} ms; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
