"""Scoring and export half of ``benchmarks/sr_real.py`` (kept apart so the trainer stays short).

Held-out images = the split's test ids. HR = the working copy's image (``--hr-side`` px), LR = bicubic ÷4 of
HR; each generator super-resolves the whole LR image (eval mode, torch, CPU), then the runtime's projection
(``skinedge.runtime.pipeline.projection``, default settings) makes the "with projection" row. Scores inside the true
lesion and in its ±8 px border band (``skinedge.metrics``), as differences to bicubic, mean over images.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from skinedge import metrics
from skinedge.data import open_dataset
from skinedge.data.degrade import bicubic_resize, bicubic_upscale
from skinedge.data.splits import read_split
from skinedge.evaluate import project_rgb, segment
from skinedge.export.exporter import ExportConfig, export_models
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.models.load import load_generator, load_segmenter
from skinedge.train.sr import super_resolve

SCALE = 4
KEYS = ("lesion_psnr_y", "lesion_ssim_y", "lesion_delta_e", "border_psnr_y", "border_delta_e")


def _curve(run: Path) -> list[dict]:
    """(step, seconds, val lesion PSNR-Y gain over bicubic) per validation of a training run."""
    import json

    log = run / "sr-pretrain-log.jsonl"
    if not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [{"step": r["step"], "seconds": r["seconds"],
             "val_lesion_psnr_gain": round(r["val"]["lesion_psnr_y"] - r["val"]["bicubic_lesion_psnr_y"], 3)}
            for r in rows if "lesion_psnr_y" in r.get("val", {})]


def score_generators(items, runs: dict[str, Path]) -> dict:
    """Mean (method − bicubic) of KEYS, and bicubic's own means, for every generator, raw and projected, and for
    bicubic itself projected (so the generator's own share of a gain is visible)."""
    cases = []
    for item in items:
        hr = item.image[: item.image.shape[0] // SCALE * SCALE, : item.image.shape[1] // SCALE * SCALE]
        mask = item.mask[: hr.shape[0], : hr.shape[1]]
        lr = bicubic_resize(hr, hr.shape[1] // SCALE, hr.shape[0] // SCALE)
        cases.append((hr, mask, lr, metrics.sr_scores(bicubic_upscale(lr, SCALE), hr, SCALE, mask)))
    result = {"bicubic": {k: statistics.fmean(c[3][k] for c in cases) for k in KEYS}}
    ibp = [metrics.sr_scores(project_rgb(bicubic_upscale(lr, SCALE), lr, Fidelity()), hr, SCALE, mask)
           for hr, mask, lr, _ in cases]  # classic iterative back-projection: what the projection gives alone
    result["bicubic+projection"] = {k: statistics.fmean(r[k] - c[3][k] for r, c in zip(ibp, cases)) for k in KEYS}
    for name, run in runs.items():
        path = run / "sr-pretrain-best.pt"
        if not path.is_file():
            continue
        generator, payload = load_generator(path, "cpu")
        for suffix, fidelity in (("", None), ("+projection", Fidelity())):
            gains = {k: [] for k in KEYS}
            for hr, mask, lr, base in cases:
                with torch.no_grad():
                    out = super_resolve(generator, lr[None], torch.device("cpu"))[0]
                if fidelity is not None:
                    out = project_rgb(out, lr, fidelity)
                row = metrics.sr_scores(out, hr, SCALE, mask)
                for k in KEYS:
                    gains[k].append(row[k] - base[k])
            result[name + suffix] = {k: statistics.fmean(v) for k, v in gains.items()}
            result[name + suffix]["median_lesion_psnr_gain"] = statistics.median(gains["lesion_psnr_y"])
        result[name] = {**result[name], "steps": payload.get("progress", {}).get("step"),
                        "checkpoint": str(path), "curve": _curve(run)}
    return result


def dice_on(items, checkpoint: Path) -> float:
    """Mean Dice of a segmenter on the HR images against the expert masks (as ``eval``'s Table 1)."""
    model, payload = load_segmenter(checkpoint, "cpu")
    size = int(payload["io"]["size"])
    return statistics.fmean(metrics.segmentation_scores(item.mask, segment(model, item.image, size,
                                                                           torch.device("cpu")))["dice"]
                            for item in items)


def score_and_export(args, spec: str, split: Path) -> dict:
    dataset = open_dataset(spec)
    test = list(dataset.subset(read_split(split).parts["test"]))
    runs = {"paper generator": args.work / "sr-paper", "with bicubic skip": args.work / "sr-skip"}
    result = {"dataset": spec, "held_out_images": len(test), "hr_side": args.hr_side,
              "sr": score_generators(test, runs)}
    seg = args.work / "seg" / "seg-best.pt"
    if seg.is_file():
        result["seg_dice_real"] = dice_on(test, seg)
    if args.synthetic_seg:
        result["seg_dice_synthetic_only"] = dice_on(test, args.synthetic_seg)
        result["seg_dice_synthetic_only_all96"] = dice_on(list(dataset), args.synthetic_seg)
    if args.out and seg.is_file():
        scored = [(result["sr"][n + "+projection"]["lesion_psnr_y"], n) for n in runs if n in result["sr"]]
        best = max(scored)[1]
        export_models(ExportConfig(seg, runs[best] / "sr-pretrain-best.pt", args.out, spec, overwrite=True))
        result["exported"] = {"models": str(args.out), "sr": best}
    return result
