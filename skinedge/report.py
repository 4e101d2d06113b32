"""Write an evaluation as report.json, report.md and a self-contained report.html.

The paper's own numbers are printed beside ours: they are claims made on
other data with another protocol, shown for orientation, not as targets met.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge.atomic import write_bytes_atomic, write_json_atomic
from skinedge.data.imageio import encode_png
from skinedge.data.sheet import OUTLINE_RGB, mask_outline

PAPER_SEG = {"isic2018": (0.915, 0.844, 0.923, 0.907), "ph2": (0.927, 0.865, 0.935, 0.919),
             "derm7pt": (0.903, 0.824, 0.911, 0.895)}                 # Dice, IoU, precision, recall
PAPER_SR = {"isic2018": (28.73, 0.842, 0.125), "ph2": (29.15, 0.857, 0.118),
            "derm7pt": (28.41, 0.835, 0.132)}                       # PSNR, SSIM, LPIPS
PAPER_METHODS = {"bicubic": (25.41, 0.712, 0.245), "srgan_only": (27.83, 0.798, 0.157),
                 "seg_bicubic": (26.12, 0.735, 0.218), "skinsegmentsrgan": (29.05, 0.851, 0.121)}
METHOD_NAMES = {"bicubic": "Bicubic", "srgan_only": "SRGAN-only", "srgan_projected": "SRGAN-only + projection",
                "seg_bicubic": "Seg+Bicubic", "skinsegmentsrgan": "SkinSegmentSRGAN (paper's composition)",
                "skinedge": "skinedge (real surround, projection, bicubic background)"}
FIDELITY_KEYS = (("lesion_psnr_y", 2), ("lesion_ssim_y", 3), ("lesion_delta_e", 2), ("border_psnr_y", 2),
                 ("border_delta_e", 2))
PRED_RGB = (255, 60, 200)


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_tables(report: dict) -> list[str]:
    """The three tables as Markdown lines."""
    t, kind = report["tables"], report["kind"]
    lines = ["## Table 1 — segmentation (test split, full resolution)", ""]
    seg = t["segmentation"]
    rows = []
    if seg:
        rows.append(["skinedge, this run"] + [_f(seg[k]) for k in ("dice", "iou", "precision", "recall",
                                                                   "threshold_jaccard")])
    for name, values in PAPER_SEG.items():
        rows.append([f"paper, {name}" + (" ◀" if name == kind else "")] + [_f(v) for v in values] + ["–"])
    lines += _table(["", "Dice", "IoU", "Precision", "Recall", "Thr. Jaccard (0.65)"], rows)
    m = t["methods"]
    lines += ["", f"## Table 2 — super-resolution ×{report['scale']} (Y channel, border {report['scale']})", ""]
    keys = (("psnr_y", 2), ("ssim_y", 3), ("lpips", 3)) + FIDELITY_KEYS
    rows = [[label] + [_f(m[method].get(k), d) for k, d in keys]
            for label, method in (("SR generator, this run", "srgan_only"),
                                  ("SR generator + projection, this run", "srgan_projected"),
                                  ("Bicubic, this run", "bicubic")) if method in m]
    rows += [[f"paper, {name}" + (" ◀" if name == kind else "")] + [_f(v, d) for v, d in zip(vals, (2, 3, 3))]
             + ["–"] * len(FIDELITY_KEYS) for name, vals in PAPER_SR.items()]
    lines += _table(["", "PSNR (dB)", "SSIM", "LPIPS", "PSNR in lesion", "SSIM in lesion", "ΔE00 in lesion",
                     "PSNR border ±8 px", "ΔE00 border"], rows)
    gain = m["srgan_only"].get("psnr_y", math.nan) - m["bicubic"].get("psnr_y", math.nan)
    lines += ["", f"SR generator minus bicubic: {_f(gain, 2)} dB PSNR-Y (paper claims +3.2 dB on average)."]
    lines += ["", "## Table 3 — combined pipeline (4× outputs from the LR image)", ""]
    rows = []
    for method in m:
        ours, paper = m[method], PAPER_METHODS.get(method, (None, None, None))
        rows.append([METHOD_NAMES[method], _f(ours.get("psnr_y"), 2), _f(ours.get("ssim_y")),
                     _f(ours.get("lpips")), *(_f(ours.get(k), d) for k, d in FIDELITY_KEYS),
                     _f(paper[0], 2), _f(paper[1]), _f(paper[2])])
    lines += _table(["Method", "PSNR", "SSIM", "LPIPS", "PSNR in lesion", "SSIM in lesion", "ΔE00 in lesion",
                     "PSNR border ±8 px", "ΔE00 border", "paper PSNR", "paper SSIM", "paper LPIPS"], rows)
    return lines + ["", *verdict(m)]


def verdict(methods: dict) -> list[str]:
    """Plain sentences: is skinedge's output at least bicubic's in the lesion and along its border?"""
    ours, bic = methods.get("skinedge"), methods.get("bicubic")
    if not ours or not bic or "lesion_psnr_y" not in ours:
        return []
    gain = ours["lesion_psnr_y"] - bic["lesion_psnr_y"]
    colour = ours["lesion_delta_e"] - bic["lesion_delta_e"]
    border = ours["border_psnr_y"] - bic["border_psnr_y"]
    ok = gain >= 0 and colour <= 0 and border >= 0
    why = ""
    if not ok and "srgan_only" in methods:
        alone = methods["srgan_only"]["lesion_psnr_y"] - bic["lesion_psnr_y"]
        why = (f" Why: the SR generator alone is {alone:+.2f} dB against bicubic in the lesion; the projection "
               f"brings it to {gain:+.2f} dB and the camera's colour, but cannot add detail the generator did not "
               "learn.")
    return [f"skinedge vs bicubic in the lesion: {gain:+.2f} dB PSNR-Y, ΔE00 {colour:+.2f}; along the border "
            f"(±8 px): {border:+.2f} dB. " + ("At least bicubic on all three." if ok else
                                              "Not better than bicubic on every count." + why)]


def _header(report: dict) -> list[str]:
    return [f"- dataset: `{report['dataset']}` — {report['test_images']} test images "
            f"({report['with_masks']} with masks); split: {report['split']}",
            f"- LR: degradation `{report['degradation']}`, ×{report['scale']}; SR checkpoint phase: "
            f"{report.get('sr_phase')}; masking keeps {report.get('context_px')} LR px of context; "
            f"skinedge rows: {report.get('fidelity', 'no projection')}",
            f"- checkpoints: seg `{report['checkpoints']['seg']}`, sr `{report['checkpoints']['sr']}`",
            f"- {report['lpips']}",
            "- protocol: docs/protocol.md; the paper's numbers come from its own data and protocol",
            *[f"- note: {n}" for n in report["notes"]]]


def _crop_box(case, side: int = 256) -> tuple[int, int, int]:
    mask = case.truth if case.truth is not None and case.truth.any() else case.pred_mask
    h, w = case.hr.shape[:2]
    side = min(side, h, w)
    if mask is None or not mask.any():
        return (h - side) // 2, (w - side) // 2, side
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    return int(np.clip(cy - side // 2, 0, h - side)), int(np.clip(cx - side // 2, 0, w - side)), side


def _png_data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _panel(image: np.ndarray, box, outline: np.ndarray | None, colour) -> np.ndarray:
    top, left, side = box
    crop = image[top:top + side, left:left + side].copy()
    if outline is not None:
        crop[mask_outline(outline[top:top + side, left:left + side], 1)] = colour
    return crop


def case_panels(case) -> list[tuple[str, np.ndarray]]:
    """(title, image) pairs of one case, all cropped to the same lesion-centred box."""
    box = _crop_box(case)
    lr_up = np.asarray(Image.fromarray(case.lr).resize(case.hr.shape[1::-1], Image.NEAREST))
    panels = [("LR input (nearest)", _panel(lr_up, box, None, None)),
              ("Original (HR), true mask", _panel(case.hr, box, case.truth, OUTLINE_RGB))]
    for method, image in case.outputs.items():
        outline = case.pred_mask if method in ("seg_bicubic", "skinsegmentsrgan", "skinedge") else None
        panels.append((METHOD_NAMES[method], _panel(image, box, outline, PRED_RGB)))
    return panels


def zoom_panels(case, side: int = 64) -> list[tuple[str, np.ndarray]]:
    """A close-up on the true lesion border (where halos and colour shifts show): HR | bicubic | skinedge |
    |skinedge − HR| ×4 (mean over RGB, grey)."""
    if "skinedge" not in case.outputs:
        return []
    mask = case.truth if case.truth is not None and case.truth.any() else case.pred_mask
    h, w = case.hr.shape[:2]
    side = min(side, h, w)
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        top = int(np.clip(ys.min() - side // 2, 0, h - side))  # the lesion's top edge, at its leftmost column there
        left = int(np.clip(xs[ys == ys.min()].mean() - side // 2, 0, w - side))
    else:
        top, left = (h - side) // 2, (w - side) // 2
    box = (top, left, side)
    ours = case.outputs["skinedge"]
    diff = np.clip(np.abs(ours.astype(np.int16) - case.hr.astype(np.int16)).mean(axis=2) * 4, 0, 255)
    diff = np.repeat(diff.astype(np.uint8)[:, :, None], 3, axis=2)
    return [("zoom: original (HR)", _panel(case.hr, box, None, None)),
            ("zoom: bicubic", _panel(case.outputs["bicubic"], box, None, None)),
            ("zoom: skinedge", _panel(ours, box, None, None)),
            ("zoom: |skinedge − HR| ×4", _panel(diff, box, None, None))]


def write_report(report: dict, out: Path) -> dict[str, Path]:
    """Write report.json/.md/.html into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in report.items() if k != "cases"}
    data["paper"] = {"segmentation": PAPER_SEG, "sr": PAPER_SR, "methods": PAPER_METHODS}
    write_json_atomic(out / "report.json", _jsonable(data))
    md = ["# skinedge evaluation", "", *_header(report), "", *markdown_tables(report), ""]
    write_bytes_atomic(out / "report.md", "\n".join(md).encode())
    write_bytes_atomic(out / "report.html", _html(report, md).encode())
    return {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}


def _jsonable(value):
    if isinstance(value, np.generic):  # numpy scalars (float32 scores, bool_ flags) as their Python values
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _md_table_to_html(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report: dict, md: list[str]) -> str:
    parts, block = [], []
    for line in md[1:]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            parts.append(_md_table_to_html(block))
            block = []
        if line.startswith("## "):
            parts.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            parts.append(f"<div class=meta>{html.escape(line[2:]).replace('`', '')}</div>")
        elif line:
            parts.append(f"<p>{html.escape(line)}</p>")
    if block:
        parts.append(_md_table_to_html(block))
    parts.append("<h2>Cases (lesion-centred crops; green = true mask, magenta = predicted mask)</h2>")
    for case in report["cases"]:
        figures = "".join(f"<figure><img src='{_png_data_uri(img)}'><figcaption>{html.escape(title)}"
                          f"</figcaption></figure>" for title, img in case_panels(case))
        zoom = "".join(f"<figure><img src='{_png_data_uri(img)}'><figcaption>{html.escape(title)}"
                       f"</figcaption></figure>" for title, img in zoom_panels(case))
        parts.append(f"<h3>{html.escape(case.id)}</h3><div class=row>{figures}</div>"
                     + (f"<div class=row>{zoom}</div>" if zoom else ""))
    style = ("body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child,th:first-child"
             "{text-align:left}.meta{color:#555;font-size:90%}.row{display:flex;gap:8px;flex-wrap:wrap}"
             "figure{margin:0}img{width:192px;height:192px;image-rendering:pixelated;border:1px solid #999}"
             "figcaption{font-size:80%;text-align:center;max-width:192px}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>skinedge evaluation</title>"
            f"<style>{style}</style></head><body><h1>skinedge evaluation</h1>{''.join(parts)}</body></html>")
