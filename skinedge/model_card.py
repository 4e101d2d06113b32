"""``MODEL_CARD.md``: what a models directory is for, what it learned from, and how well it does on held-out photos.

Written by ``train all`` from its state (data, split, budget, steps) and the held-out report of the deployed
variants (:mod:`skinedge.evaluate_models`). Its first line is the one-line summary ``enhance`` and ``run`` print.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from skinedge.atomic import write_bytes_atomic
from skinedge.evaluate_models import METHODS, PROTOCOLS, SCORES
from skinedge.runtime.manifest import MODEL_CARD as CARD
from skinedge.runtime.manifest import card_summary as summary_of
NAMES = {"bicubic": "bicubic", "bicubic_projection": "bicubic + projection", "generator": "generator alone",
         "generator_projection": "generator + projection", "shown": "**shown output**"}


def _f(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _provenance(work: Path) -> list[str]:
    lines = []
    try:
        sets = json.loads((work / "fingerprint.json").read_text())["sets"]
        pool = json.loads((work / "pool.json").read_text())["sets"]
    except (OSError, ValueError, KeyError):
        return ["(training data record missing)"]
    specs = {p["label"]: p["spec"] for p in pool}
    for s in sets:
        manifest = Path(specs.get(s["label"], ":").split(":", 1)[1]) / "MANIFEST.tsv"
        where = f"; provenance per image: `{manifest}`" if manifest.is_file() else ""
        lines.append(f"- `{s['label']}` (`{specs.get(s['label'])}`): {s['images']} images, {s['masks']} expert masks, "
                     f"median {s['median_size'][0]}×{s['median_size'][1]} px, lesion fraction median "
                     f"{s['lesion_fraction']['median']}{where}")
    lines.append("- Licence: ISIC challenge data (CC0 / CC-BY-NC by collection, credited to the ISIC archive): "
                 "research and evaluation. Check each set's own terms before any other use.")
    return lines


def metrics_section(report: dict) -> list[str]:
    """The held-out tables (segmentation, SR per protocol, skin tone) as Markdown lines."""
    lines = ["## Held-out metrics (the deployed variants, through the runtime)",
              f"Photos at ≤ {report.get('side')} px, expert masks; projection: {report.get('fidelity')}.", ""]
    seg = report["segmentation"]
    lines += ["| segmentation | n | Dice | IoU | Dice, flip-averaged |", "|---|---:|---:|---:|---:|",
              f"| whole photos | {seg['whole_photos']['n']} | {_f(seg['whole_photos']['dice'], 3)} | "
              f"{_f(seg['whole_photos']['iou'], 3)} | {_f(seg['whole_photos']['dice_flip_tta'], 3)} |"]
    for s, v in seg["by_set"].items():
        lines.append(f"| `{s}` | {v['n']} | {_f(v['dice'], 3)} | {_f(v['iou'], 3)} | {_f(v['dice_flip_tta'], 3)} |")
    if "sr" in report:
        for p, (about, _) in PROTOCOLS.items():
            lines += ["", f"SR on {report['sr_images']} whole photos, LR protocol ({p}): {about}", "",
                      "| output | lesion PSNR-Y | SSIM-Y | ΔE00 | border PSNR-Y | border ΔE00 | checkerboard |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for m in METHODS:
                r = report["sr"][p][m]
                lines.append(f"| {NAMES[m]} | {_f(r['lesion_psnr_y'])} | {_f(r['lesion_ssim_y'], 4)} | "
                             f"{_f(r['lesion_delta_e'])} | {_f(r['border_psnr_y'])} | {_f(r['border_delta_e'])} | "
                             f"{_f(r['checkerboard'])} |")
            g = report["gains"][p]
            lines.append("")
            lines.append(f"Shown vs bicubic {_f(g['shown_vs_bicubic']['mean'])} dB (median "
                         f"{_f(g['shown_vs_bicubic']['median'])}); vs bicubic + projection "
                         f"{_f(g['shown_vs_bicubic_projection']['mean'])} dB; projection's effect on the generator "
                         f"{_f(g['generator_projection_vs_generator']['mean'])} dB ("
                         f"{g['generator_projection_vs_generator']['below_zero']} of "
                         f"{g['generator_projection_vs_generator']['n']} photos below).")
        lines.append("")
        lines.append("Checkerboard: the lesion's 2-px-period energy of the output over the truth's (1 = as the "
                     "camera's scene; the gate is 1.5).")
    lines += ["", "## By skin tone (individual typology angle of the skin around the lesion)", "",
              "| group | photos | Dice | SR photos | camera LR: shown − bicubic (dB) "
              "| bicubic LR: shown − bicubic+proj. (dB) |",
              "|---|---:|---:|---:|---:|---:|"]
    for group, v in report.get("skin_tone", {}).items():
        lines.append(f"| {group} | {v['n']} | {_f(v['dice'], 3)} | {v['sr_n']} | {_f(v.get('b_shown_vs_bicubic'))} | "
                     f"{_f(v.get('a_shown_vs_bicubic_projection'))} |")
    lines.append("")
    lines.append("ISIC is mostly light skin: groups with few photos say little; the counts are the point.")
    return lines


def card_text(report: dict, state: dict, work: Path) -> str:
    done = state.get("done", {})
    budget = state.get("budget", {})
    fingerprint = work / "fingerprint.json"
    plan = json.loads(fingerprint.read_text()).get("plan", {}) if fingerprint.is_file() else {}
    seg_cfg = done.get("seg", {})
    sr_cfg = done.get("sr", {})
    lines = [f"# {report.get('summary', 'skinedge models')}", "",
             "## Intended use",
             "A visual aid for looking at skin lesions: it finds the lesion and shows it enlarged 4× with detail "
             "the camera's pixels support. **It is not a diagnosis** and must not be used as one; every output is "
             "marked AI-enhanced and names these models.", "",
             "## Training data", *_provenance(work), "",
             "## Split",
             f"Group split by image id within each set, seed {state.get('identity', {}).get('seed', 0)} "
             f"(`train/split.json`); the held-out part draws from every set:"]
    for label, c in done.get("split", {}).get("counts", {}).items():
        lines.append(f"- `{label}`: train {c['train']}, val {c['val']}, test {c['test']}")
    lines += ["", "## Training",
              f"- Budget {budget.get('total', '?')} min: {budget.get('before_training', '?')} reading and caching "
              f"the data, {budget.get('seg', '?')} segmenter, {budget.get('sr', '?')} SR generator.",
              f"- Segmenter: U-Net, {plan.get('seg_encoder', '?')} encoder (random init), "
              f"{plan.get('seg_size', '?')}², "
              f"{seg_cfg.get('steps', '?')} steps in {_f(seg_cfg.get('seconds', math.nan) / 60, 1)} min; "
              f"validation Dice {_f(seg_cfg.get('best', {}).get('dice'), 3)}.",
              f"- SR generator: 16 residual blocks, bicubic skip, ICNR, L1, HR crops {plan.get('sr_crop', '?')}², "
              f"{sr_cfg.get('steps', '?')} steps in {_f(sr_cfg.get('seconds', math.nan) / 60, 1)} min; LR "
              f"{1 - plan.get('clean_share', 0):.0%} camera-like, {plan.get('clean_share', 0):.0%} bicubic.",
              f"- Device: {state.get('device', '?')}. Variants served: {report.get('variants', '?')} "
              f"({report.get('backend', '?')}).", "",
              *metrics_section(report)]
    f = report.get("failures", {})
    lines += ["", "## Known failure modes (held-out examples)"]
    lines.append("- Segmentation below Dice 0.8: " + (", ".join(f"`{i}` ({d})" for i, d in f.get("segmentation", []))
                                                       or "none among the held-out whole photos") + ".")
    lines.append("- Camera LR, shown output furthest below bicubic in the lesion (dB): "
                 + (", ".join(f"`{i}` ({d:+.2f})" for i, d in f.get("sr_camera", [])) or "none") + ".")
    lines.append("- Checkerboard above 1.5× the truth's: " + (", ".join(f"`{i}` ({d})" for i, d in
                                                                      f.get("checkerboard", [])) or "none") + ".")
    lines.append("- Trained on dermoscopy only: clinical (non-dermoscopic) photos, nails, mucosa and very dark skin "
                 "are outside what these models have seen.")
    return "\n".join(lines) + "\n"


def write_card(models: Path, report: dict, state: dict, work: Path) -> str:
    text = card_text(report, state, work)
    write_bytes_atomic(Path(models) / CARD, text.encode("utf-8"))
    return text


__all__ = ["CARD", "card_text", "summary_of", "write_card", "SCORES"]
