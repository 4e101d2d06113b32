"""``skinedge eval --models``: the deployed variants scored through the runtime, as the device runs them.

For each held-out photo (HR = the photo at ≤ ``side`` px on the long side, a multiple of 4; the lesion mask is
the expert's):

- segmentation: the runtime's segmenter on the HR photo (its preprocessing, logits resized to the photo, > 0),
  Dice and IoU, with and without test-time flip averaging (the mean of the logits of the photo and its mirror);
- SR, on whole photos, for both LR protocols — (a) bicubic ÷4, the paper's; (b) the camera's blur, noise and
  JPEG (``Degradation()``) — five outputs against HR: bicubic; bicubic + projection; the generator alone;
  the generator + projection; and the *shown* output (``enhance --mode full``: the runtime's own mask, SR of
  the lesion region, projection, composite). Lesion PSNR-Y, SSIM-Y and ΔE00, border-band PSNR-Y and ΔE00, and
  the checkerboard ratio (the lesion's 2-px-period energy against the truth's, :mod:`skinedge.quality`);
- skin tone: the individual typology angle of the healthy skin around the lesion, and its group.

No torch: it runs wherever the runtime runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from skinedge import metrics, quality
from skinedge.data import open_dataset
from skinedge.data.degrade import CAMERA_SIDE, Degradation, bicubic_upscale, degrade, fit_long_side
from skinedge.data.pool import SEPARATOR
from skinedge.data.splits import read_split, recorded_or_new_split
from skinedge.errors import SkinedgeError
from skinedge.runtime.manifest import load_models, network
from skinedge.runtime.pipeline import reference
from skinedge.runtime.pipeline.camera_plane import sr_channels, sr_input
from skinedge.runtime.pipeline.mask import largest_component
from skinedge.runtime.pipeline.projection import Fidelity, project_image
from skinedge.runtime.session import open_session

PROTOCOLS = {"a": ("bicubic ÷4 (the paper's)", Degradation.bicubic_only(4)),
             "b": ("the camera's: blur, noise, JPEG", Degradation(scale=4))}
METHODS = ("bicubic", "bicubic_projection", "generator", "generator_projection", "shown")
SCORES = ("lesion_psnr_y", "lesion_ssim_y", "lesion_delta_e", "border_psnr_y", "border_delta_e", "checkerboard")


@dataclass
class ModelsEvalConfig:
    models: Path
    data: str
    out: Path
    split: Path | None = None
    backend: str = "auto"
    precision: str = "auto"
    limit: int | None = None
    side: int = CAMERA_SIDE
    fidelity: Fidelity | None = None
    whole_sets: list[str] | None = None  # sets of whole photos (None: those not all square; every set if none is)


def _test_ids(cfg: ModelsEvalConfig, manifest: dict) -> tuple[list[str], str]:
    if cfg.split:
        return read_split(cfg.split).parts["test"], f"--split {cfg.split}"
    dataset = open_dataset(cfg.data)
    split, path = recorded_or_new_split(dataset, network(manifest, "seg").get("source", {}).get("data"))
    return split.parts["test"], (f"the models' split {path}" if path else "a new seeded split (seed 0)")


def hr_photo(image: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo at ≤ ``side`` px on the long side (Lanczos), mod-cropped to 4, and its mask."""
    return fit_long_side(image, mask, side, 4)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


class Scorer:
    """The runners of one opened session, used the ways the report needs."""

    def __init__(self, pipeline, manifest: dict, fidelity: Fidelity):
        self.pipeline, self.fidelity = pipeline, fidelity
        seg, sr = network(manifest, "seg"), network(manifest, "sr")
        self.seg_io, self.sr_io = seg, sr
        self.size = int(seg["input"]["shape"][2])

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        x = reference.preprocess(np.ascontiguousarray(rgb[:, :, ::-1]), self.size, self.seg_io["input"]["mean"],
                                 self.seg_io["input"]["std"])
        out = self.pipeline.seg.infer({self.seg_io["input"]["name"]: x})[self.seg_io["output"]["name"]][0, 0]
        return np.asarray(Image.fromarray(out.astype(np.float32)).resize(rgb.shape[1::-1], Image.BILINEAR))

    def masks(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plain, flip-averaged) lesion masks at the photo's size, the largest blob kept when the runtime keeps
        only it (:class:`~skinedge.runtime.pipeline.mask.MaskSettings`)."""
        plain = self.logits(rgb)
        mirrored = self.logits(np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1]
        settings = getattr(self.pipeline, "settings", None)
        keep = largest_component if settings is None or settings.largest_only else (lambda m: m)
        return keep(plain > 0), keep((plain + mirrored) / 2 > 0)

    def generator(self, lr: np.ndarray) -> np.ndarray:
        """The generator's output as it leaves the network: H×W×3 float32 in [0, 1]."""
        x = sr_input(lr, sr_channels(self.sr_io))
        out = self.pipeline.sr.infer({self.sr_io["input"]["name"]: x})[self.sr_io["output"]["name"]]
        return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)

    def project(self, sr: np.ndarray, lr: np.ndarray) -> np.ndarray:
        """``sr`` (uint8, or float in [0, 1] as the generator gives it, so it is rounded once, as the pipeline's
        shown output is) made consistent with ``lr``; uint8."""
        unit = sr / np.float32(255) if sr.dtype == np.uint8 else sr.astype(np.float32)
        return _to_uint8(project_image(unit, lr / np.float32(255), self.fidelity))

    def shown(self, lr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.pipeline(np.ascontiguousarray(lr[:, :, ::-1])).image[:, :, ::-1])


def _sr_rows(scorer: Scorer, hr: np.ndarray, truth: np.ndarray, seed: int) -> dict:
    rows = {}
    for name, (_, how) in PROTOCOLS.items():
        lr = degrade(hr, how, seed=seed)
        bic = bicubic_upscale(lr, 4)
        raw = scorer.generator(lr)  # projected from the float output: one rounding, as in the shown output
        outputs = {"bicubic": bic, "bicubic_projection": scorer.project(bic, lr), "generator": _to_uint8(raw),
                   "generator_projection": scorer.project(raw, lr), "shown": scorer.shown(lr)}
        for method, out in outputs.items():
            row = metrics.sr_scores(out, hr, 4, truth)
            row["checkerboard"] = quality.checkerboard_ratio(out, hr, truth)
            rows[f"{name}/{method}"] = {k: row[k] for k in SCORES}
    return rows


def evaluate_models(cfg: ModelsEvalConfig, log: Callable[[str], None] = print) -> dict:
    """Score every held-out photo; returns the report (see :func:`summarise`)."""
    manifest = load_models(cfg.models)
    ids, source = _test_ids(cfg, manifest)
    if not ids:
        raise SkinedgeError(f"the test part of {cfg.data} is empty ({source}): nothing to evaluate")
    dataset = open_dataset(cfg.data).subset(ids[: cfg.limit] if cfg.limit else ids)
    if not dataset.has_masks:
        raise SkinedgeError(f"{cfg.data} has no lesion masks: the held-out metrics need them")
    fidelity = cfg.fidelity or Fidelity()
    session = open_session(cfg.models, cfg.backend, cfg.precision, mode="full", fidelity=fidelity, log=log,
                           manifest=manifest)
    per_image = []
    whole_sets = cfg.whole_sets if cfg.whole_sets is not None else _whole_sets(dataset)
    from skinedge.progress import progress_bar

    with session.pipeline as pipeline, progress_bar(len(dataset), "held-out photos") as update:
        scorer = Scorer(pipeline, manifest, fidelity)
        for index, ref in enumerate(dataset.refs):
            try:
                item = ref.load()
            except SkinedgeError as exc:
                log(f"skipped {exc}")
                continue
            if item.mask is None:
                continue
            hr, truth = hr_photo(item.image, item.mask, cfg.side)
            plain, flipped = scorer.masks(hr)
            scores = metrics.segmentation_scores(truth, plain)
            label = _set(item.id)
            whole = label in whole_sets
            ita = quality.ita_degrees(hr, truth)
            row = {"id": item.id, "set": label,
                   "whole_photo": whole, "lesion_fraction": float(truth.mean()), "ita": ita,
                   "skin_tone": quality.ita_group(ita),
                   **{k: scores[k] for k in ("dice", "iou")},
                   "dice_flip_tta": metrics.segmentation_scores(truth, flipped)["dice"]}
            if whole and truth.any():
                row["sr"] = _sr_rows(scorer, hr, truth, index)
            per_image.append(row)
            update(index + 1)
    report = summarise(per_image)
    report.update({"models": str(cfg.models), "data": cfg.data, "split": source, "side": cfg.side,
                   "backend": session.opened.backend, "variants": session.opened.describe(),
                   "fidelity": fidelity.describe(),
                   "protocols": {k: v[0] for k, v in PROTOCOLS.items()}, "images": per_image})
    return report


def _set(item_id: str) -> str:
    return item_id.split(SEPARATOR, 1)[0] if SEPARATOR in item_id else ""


def _whole_sets(dataset) -> list[str]:
    """Sets whose photos are not all square (centre crops are); every set when none is."""
    shapes: dict[str, set[bool]] = {}
    for ref in dataset.refs:
        try:
            with Image.open(ref.image_path) as image:
                shapes.setdefault(_set(ref.id), set()).add(image.size[0] == image.size[1])
        except Exception:  # noqa: BLE001 - an unreadable photo is reported when it is scored
            continue
    whole = [label for label, square in shapes.items() if square != {True}]
    return whole or list(shapes)


def _mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return float(statistics.fmean(values)) if values else math.nan


def sr_table(rows: list[dict]) -> dict:
    """Per protocol and method: mean of each score over the photos with SR rows."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for protocol in PROTOCOLS:
        table[protocol] = {m: {s: _mean([r["sr"][f"{protocol}/{m}"][s] for r in rows]) for s in SCORES}
                           for m in METHODS}
    return table


# dB: how far uint8 rounding alone moves a photo's lesion PSNR-Y. The camera's chroma with the generator's luma
# (exactly the generator's luma before rounding) scattered −0.019 … +0.015 dB around the generator alone on 114
# camera-LR ISIC photos, so "below" by less than this is the rounding of three channels, not the projection.
ROUNDING_DB = 0.02


def gains(rows: list[dict], protocol: str, method: str, against: str, score: str = "lesion_psnr_y") -> dict:
    """Mean and median of ``method`` − ``against``; how many photos are below zero, and below by more than
    :data:`ROUNDING_DB`."""
    diffs = [r["sr"][f"{protocol}/{method}"][score] - r["sr"][f"{protocol}/{against}"][score] for r in rows]
    diffs = [d for d in diffs if d == d]
    if not diffs:
        return {"mean": math.nan, "median": math.nan, "below_zero": 0, "below_rounding": 0, "n": 0}
    return {"mean": float(np.mean(diffs)), "median": float(np.median(diffs)),
            "below_zero": int(sum(d < 0 for d in diffs)), "below_rounding": int(sum(d < -ROUNDING_DB for d in diffs)),
            "n": len(diffs)}


def summarise(per_image: list[dict]) -> dict:
    """Means per set and for the whole photos, SR tables, gains, skin-tone groups and failure cases."""
    whole = [r for r in per_image if r["whole_photo"]]
    sr_rows = [r for r in whole if "sr" in r]
    seg = {"whole_photos": {k: _mean([r[k] for r in whole]) for k in ("dice", "iou", "dice_flip_tta")},
           "by_set": {s: {"n": sum(r["set"] == s for r in per_image),
                          **{k: _mean([r[k] for r in per_image if r["set"] == s]) for k in ("dice", "iou",
                                                                                             "dice_flip_tta")}}
                      for s in sorted({r["set"] for r in per_image})}}
    seg["whole_photos"]["n"] = len(whole)
    out = {"segmentation": seg, "sr_images": len(sr_rows)}
    if sr_rows:
        out["sr"] = sr_table(sr_rows)
        out["gains"] = {p: {"shown_vs_bicubic": gains(sr_rows, p, "shown", "bicubic"),
                            "shown_vs_bicubic_projection": gains(sr_rows, p, "shown", "bicubic_projection"),
                            "generator_projection_vs_generator": gains(sr_rows, p, "generator_projection",
                                                                       "generator"),
                            "generator_projection_vs_bicubic_projection": gains(
                                sr_rows, p, "generator_projection", "bicubic_projection")} for p in PROTOCOLS}
    tones: dict[str, dict] = {}
    for group in [g for g, _, _ in quality.ITA_GROUPS] + ["unknown"]:
        members = [r for r in whole if r["skin_tone"] == group]
        if not members:
            continue
        with_sr = [r for r in members if "sr" in r]
        tones[group] = {"n": len(members), "dice": _mean([r["dice"] for r in members]),
                        "sr_n": len(with_sr)}
        if with_sr:
            tones[group]["b_shown_vs_bicubic"] = gains(with_sr, "b", "shown", "bicubic")["mean"]
            tones[group]["a_shown_vs_bicubic_projection"] = gains(with_sr, "a", "shown", "bicubic_projection")["mean"]
    out["skin_tone"] = tones
    worst_dice = sorted(whole, key=lambda r: r["dice"])[:5]
    out["failures"] = {
        "segmentation": [(r["id"], round(r["dice"], 3)) for r in worst_dice if r["dice"] < 0.8],
        "sr_camera": [(r["id"], round(r["sr"]["b/shown"]["lesion_psnr_y"] - r["sr"]["b/bicubic"]["lesion_psnr_y"], 2))
                      for r in sorted(sr_rows, key=lambda r: r["sr"]["b/shown"]["lesion_psnr_y"]
                                      - r["sr"]["b/bicubic"]["lesion_psnr_y"])[:5]],
        "checkerboard": [(r["id"], round(r["sr"]["b/shown"]["checkerboard"], 2))
                         for r in sorted(sr_rows, key=lambda r: -_nan0(r["sr"]["b/shown"]["checkerboard"]))[:5]
                         if _nan0(r["sr"]["b/shown"]["checkerboard"]) > 1.5],
    }
    out["summary"] = summary_line(out)
    return out


def _nan0(v: float) -> float:
    return 0.0 if v != v else v


def summary_line(report: dict) -> str:
    seg = report["segmentation"]["whole_photos"]
    text = f"held-out whole photos: Dice {seg['dice']:.3f} (n={seg['n']})"
    if "gains" in report:
        b = report["gains"]["b"]["shown_vs_bicubic"]["mean"]
        a = report["gains"]["a"]["shown_vs_bicubic_projection"]["mean"]
        text += (f"; lesion PSNR-Y of the shown output: camera LR {b:+.2f} dB vs bicubic, bicubic LR {a:+.2f} dB vs "
                 f"bicubic + projection (n={report['sr_images']})")
    return text


def write_models_report(report: dict, folder: Path, card: str = "") -> dict[str, Path]:
    """``report.json`` (everything, per photo) and ``report.md`` (the card, then one row per photo)."""
    from skinedge.atomic import write_bytes_atomic, write_json_atomic
    from skinedge.report import _jsonable

    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "report.json", _jsonable(report))
    rows = ["| id | set | Dice | Dice (flip) | ITA° | tone | (a) shown − bic.+proj. | (b) shown − bicubic |",
            "|---|---|---:|---:|---:|---|---:|---:|"]
    for r in report["images"]:
        a = b = "–"
        if "sr" in r:
            a = f"{r['sr']['a/shown']['lesion_psnr_y'] - r['sr']['a/bicubic_projection']['lesion_psnr_y']:+.2f}"
            b = f"{r['sr']['b/shown']['lesion_psnr_y'] - r['sr']['b/bicubic']['lesion_psnr_y']:+.2f}"
        rows.append(f"| `{r['id']}` | {r['set']} | {r['dice']:.3f} | {r['dice_flip_tta']:.3f} | "
                    f"{r['ita']:.0f} | {r['skin_tone']} | {a} | {b} |")
    text = (card or "") + "\n## Every held-out photo\n\n" + "\n".join(rows) + "\n"
    write_bytes_atomic(folder / "report.md", text.encode("utf-8"))
    return {"json": folder / "report.json", "md": folder / "report.md"}

