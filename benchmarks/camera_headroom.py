"""Camera LR: how much of its loss is there to win back, and which runtime levers reach it?

Issue 20's camera target asks the shown lesion PSNR-Y to beat bicubic of the camera LR (``Degradation()``: blur,
noise, JPEG 70–95) by 0.3 dB. For the validation whole photos of a ``train all`` run (``MODELS/train/split.json``;
never the held-out part; those whose lesion covers at least 1 % of the photo), HR at the camera's scale, LR =
``degrade(HR, seed=k)`` with k the photo's place among them (``eval --models`` degrades the same way, its seeds
numbered over the held-out part), this prints the mean (median) lesion PSNR-Y gain over bicubic of that LR for:

- **headroom**: bicubic of an LR made without one of the camera's steps (or without all three), same seed: what a
  perfect undoing of that step would give before any SR;
- the models' generator (``sr.onnx``, FP32, ONNX Runtime) with its camera plane at 0 … 1, and the best plane per
  photo (an oracle: the most a better plane estimate could give);
- the generator's output projected into the LR's JPEG quantisation cells (luma, 8×8 DCT on the grid from the
  frame's corner, ``--cell-steps`` back-projection steps), with the *true* quality (``degrade``'s record): an oracle
  of what the quantisation tables of an MJPEG camera's bitstream could add;
- the mean of the generators of this and other models directories (``--with``): does variance limit it?

Nothing from the data set is written; only numbers.

    python benchmarks/camera_headroom.py MODELS [--with MODELS2 ...] [--limit N] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from skinedge import metrics
from skinedge.data import open_dataset
from skinedge.data.degrade import CAMERA_SIDE, Degradation, bicubic_upscale, degrade, fit_long_side
from skinedge.data.splits import read_split
from skinedge.runtime.pipeline.camera_plane import with_plane
from skinedge.runtime.pipeline.noise import DCT
from skinedge.runtime.pipeline.projection import LUMA, down, up

CAMERA = Degradation()
WITHOUT = {"blur": Degradation(blur_sigma=None), "noise": Degradation(noise_sigma=None),
           "jpeg": Degradation(jpeg_quality=None), "all three": Degradation.bicubic_only(4)}
PLANES = (0.0, 0.25, 0.5, 0.75, 1.0)


class Generator:
    """One models directory's ``sr.onnx`` on the CPU; ``planes`` tells whether it takes the camera plane."""

    def __init__(self, models: Path):
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(str(models / "sr.onnx"), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.planes = self.input.shape[1] == 4

    def __call__(self, lr: np.ndarray, plane: float = 1.0) -> np.ndarray:
        """uint8 h×w×3 → float32 1×3×H×W in [0, 1]."""
        x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / np.float32(255)
        out = self.session.run(None, {self.input.name: with_plane(x, plane) if self.planes else x})[0]
        return np.clip(out, 0.0, 1.0)


def luma_table(quality: int) -> np.ndarray:
    """The 8×8 luma quantisation table PIL (libjpeg) writes at ``quality``, in natural order."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).quantization[0], np.float32).reshape(8, 8)


def _blocks(y: np.ndarray) -> np.ndarray:
    """h×w (multiples of 8) → (h/8)×(w/8)×8×8 blockwise DCT (JPEG's orthonormal one)."""
    h, w = y.shape
    return DCT @ y.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) @ DCT.T


def _unblocks(c: np.ndarray) -> np.ndarray:
    hb, wb = c.shape[:2]
    return (DCT.T @ c @ DCT).transpose(0, 2, 1, 3).reshape(hb * 8, wb * 8)


def into_cells(sr: np.ndarray, lr: np.ndarray, table: np.ndarray, steps: int) -> np.ndarray:
    """``sr`` (1×3×H×W) corrected in luma until its down-scale's DCT lies in the LR's quantisation cells.

    Each step: the DCT of Y(down(sr)) − 128 is clipped to each coefficient's cell around the LR's (snapped to the
    table), and the correction, back in pixels, is enlarged bicubically onto all three channels (luma only). Only
    whole 8×8 blocks are constrained (libjpeg pads partial ones).
    """
    x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / np.float32(255)
    h, w = lr.shape[:2]
    hb, wb = h // 8 * 8, w // 8 * 8
    centre = np.round(_blocks(np.tensordot(LUMA, x[0], 1)[:hb, :wb] * 255 - 128) / table) * table
    low, high = centre - table / 2, centre + table / 2
    out = sr.copy()
    for _ in range(steps):
        d = _blocks(np.tensordot(LUMA, down(out, h, w)[0], 1)[:hb, :wb] * 255 - 128)
        delta = np.zeros((1, 1, h, w), np.float32)
        delta[0, 0, :hb, :wb] = _unblocks(np.clip(d, low, high) - d) / 255
        out += up(np.repeat(delta, 3, axis=1), *sr.shape[2:])
    return np.clip(out, 0.0, 1.0)


def u8(x: np.ndarray) -> np.ndarray:
    """1×3×H×W float in [0, 1] → H×W×3 uint8, rounded once as the runtime's shown output is."""
    return np.clip(np.floor(x[0].transpose(1, 2, 0) * 255 + 0.5), 0, 255).astype(np.uint8)


def validation_photos(models: Path, min_lesion: float = 0.01):
    """(seed, HR, mask) of each validation whole photo of the ``train all`` run in ``models`` whose lesion covers
    at least ``min_lesion`` of it, HR at the camera's scale; the seed counts the photos read (skipped ones too)."""
    train = models / "train"
    ids = [i for i in read_split(train / "split.json").parts["val"] if "crop512" not in i]  # whole photos
    for seed, item in enumerate(open_dataset(f"pool:{train / 'pool.json'}").subset(ids)):
        hr, mask = fit_long_side(item.image, item.mask, CAMERA_SIDE, 4)
        if mask.mean() >= min_lesion:
            yield seed, hr, mask


def lesion_psnr_y(image: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> float:
    return metrics.psnr(image, hr, border=4, y_channel=True, mask=mask)


def score_photo(hr, mask, seed: int, generators: list[Generator], cell_steps: int) -> dict[str, float]:
    """Every row's lesion PSNR-Y gain over bicubic of this photo's camera LR."""
    def psnr(image):
        return lesion_psnr_y(image, hr, mask)

    drawn: dict = {}
    lr = degrade(hr, CAMERA, seed=seed, drawn=drawn)
    base = psnr(bicubic_upscale(lr, 4))
    row = {f"headroom: without {name}": psnr(bicubic_upscale(degrade(hr, how, seed=seed), 4)) - base
           for name, how in WITHOUT.items()}
    main = generators[0]
    planes = PLANES if main.planes else (1.0,)
    outputs = {p: main(lr, p) for p in planes}
    for p, out in outputs.items():
        row[f"generator, plane {p:g}" if main.planes else "generator"] = psnr(u8(out)) - base
    row["generator, best plane per photo (oracle)"] = max(row[k] for k in row if k.startswith("generator"))
    row["generator into JPEG cells (true quality, oracle)"] = psnr(
        u8(into_cells(outputs[1.0], lr, luma_table(drawn["jpeg_quality"]), cell_steps))) - base
    if len(generators) > 1:
        mean = sum(g(lr, 1.0) for g in generators) / len(generators)
        row[f"mean of {len(generators)} generators"] = psnr(u8(mean)) - base
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path)
    ap.add_argument("--with", dest="others", type=Path, nargs="*", default=[],
                    help="more models directories whose generators are averaged with this one's")
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    ap.add_argument("--cell-steps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    generators = [Generator(m) for m in [args.models, *args.others]]
    rows = []
    for seed, hr, mask in validation_photos(args.models):
        rows.append(score_photo(hr, mask, seed, generators, args.cell_steps))
        if args.limit and len(rows) >= args.limit:
            break
    if not rows:
        print("no validation whole photo with a lesion", file=sys.stderr)
        return 1
    summary = {k: {"mean": statistics.fmean(r[k] for r in rows), "median": statistics.median(r[k] for r in rows)}
               for k in rows[0]}
    print(f"{len(rows)} validation whole photos of {args.models}, camera LR; lesion PSNR-Y gain over its bicubic:")
    for name, s in summary.items():
        print(f"  {name:52s} {s['mean']:+.3f} dB (median {s['median']:+.3f})")
    if args.json:
        args.json.write_text(json.dumps({"photos": len(rows), "rows": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
