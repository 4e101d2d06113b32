"""Accuracy gates: a precision variant is measured against the FP32 model on held-out images
with ONNX Runtime, and refused when it loses more than its gate allows.

Segmenter: mean Dice against the ground truth at the network's resolution (the
FP32 model's own masks where a dataset has no truth). SR generator: PSNR/SSIM on
Y inside the lesion and in the band around its border against the HR truth of lesion crops and whole photos
(at the camera's scale, ≤ 512 px, where SR runs), and colour shift: the
mean per-channel difference to the FP32 output inside the lesion, the symptom
users report as "FP16/INT8 turned it pink". Those compare a variant with its own
FP32 model; one check compares with the truth: the lesion's CIEDE2000 ΔE of what
users are shown (the output after the runtime's projection) may exceed plain
bicubic's by at most ``delta_e_over_bicubic_max``, so a model that changes the
lesion's colours is refused whatever its FP32 parent did; and the shown lesion's 2-px checkerboard energy may be
at most ``checkerboard_max`` times the truth's (detail the camera never saw). The SR crops come in both LR
protocols: bicubic ÷4 and the camera's blur, noise and JPEG. On each, the generator's own share (the shown
lesion's PSNR-Y over bicubic + projection, what the product shows without it) may shrink by at most
``share_lost_max`` of FP32's: a PSNR drop limit of tenths of a dB says nothing about a network whose whole share is
tenths of a dB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import onnx
from onnx import helper

from skinedge import metrics, quality
from skinedge.data.degrade import bicubic_upscale, resize_mask
from skinedge.export.onnx_io import run_batched, session
from skinedge.export.samples import LesionCrop
from skinedge.runtime.pipeline.camera_plane import sr_input
from skinedge.runtime.pipeline.projection import Fidelity, project_image


PROTOCOLS = ("bicubic", "camera")  # the SR crops' LR protocols (LesionCrop.protocol)
SHARE_FLOOR_DB = 0.1  # shares under this count as this much: a generator that adds ~nothing may lose a little


@dataclass(frozen=True)
class Gates:
    """Largest accepted losses against FP32 (defaults from the issue; profiles may change them)."""

    fp16_dice_drop: float = 0.005
    fp16_psnr_drop_db: float = 0.1
    int8_dice_drop: float = 0.01
    int8_psnr_drop_db: float = 0.5
    int8_ssim_drop: float = 0.01
    colour_shift_max: float = 2 / 255
    delta_e_over_bicubic_max: float = 0.3
    checkerboard_max: float = 1.5  # the shown lesion's 2-px-period energy over the truth's (skinedge.quality)
    share_lost_max: float = 0.1  # part of FP32's own share (below) a variant may lose, per LR protocol

    def limits(self, net: str, precision: str) -> dict[str, float]:
        kind = "fp16" if precision == "fp16" else "int8"
        if net == "seg":
            return {"dice_drop": getattr(self, f"{kind}_dice_drop")}
        limits = {"psnr_drop_db": getattr(self, f"{kind}_psnr_drop_db"),
                  "border_psnr_drop_db": getattr(self, f"{kind}_psnr_drop_db"), "colour_shift": self.colour_shift_max,
                  "delta_e_over_bicubic": self.delta_e_over_bicubic_max, "checkerboard": self.checkerboard_max}
        if kind == "int8":
            limits["ssim_drop"] = self.int8_ssim_drop
        limits.update({f"share_lost_{p}": self.share_lost_max for p in PROTOCOLS})
        return limits

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class HeldOut:
    """The held-out images, prepared once: segmenter inputs and truth, SR lesion crops."""

    seg_inputs: np.ndarray  # N×3×s×s float32
    seg_truth: list[np.ndarray | None]  # s×s bool per image (None without ground truth)
    crops: list[LesionCrop]
    scale: int
    ids: list[str]

    @cached_property
    def bicubic(self) -> list[np.ndarray]:
        """Each crop's plain bicubic up-scale (uint8): the baselines below start from it."""
        return [bicubic_upscale(c.lr, self.scale) for c in self.crops]

    @cached_property
    def bicubic_delta_e(self) -> float:
        """Plain bicubic's mean lesion ΔE00 to the truth over the crops: the truth gate's baseline, computed once
        (every variant and every retry compares with it)."""
        return float(np.nanmean([metrics.mean_delta_e(b, c.hr, c.mask, self.scale)
                                 for b, c in zip(self.bicubic, self.crops)]))

    @cached_property
    def projected_bicubic_psnr_y(self) -> list[float]:
        """Lesion PSNR-Y per crop of bicubic + the runtime's projection: what the product shows without a
        generator, so the generator's own share is measured over it."""
        return [lesion_psnr_y(shown(b.astype(np.float32) / 255.0, c), c, self.scale)
                for b, c in zip(self.bicubic, self.crops)]


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    total = int(truth.sum()) + int(pred.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(truth, pred).sum()) / total


def seg_truth_at(mask: np.ndarray | None, size: int) -> np.ndarray | None:
    return None if mask is None else resize_mask(mask, size, size)


def seg_metrics(model: onnx.ModelProto, held: HeldOut, reference: np.ndarray | None = None) -> dict:
    """Mean Dice of a segmenter variant; ``reference`` FP32 masks stand in for missing truth."""
    masks = run_batched(session(model), held.seg_inputs)[:, 0] > 0
    scores = []
    for i, (pred, truth) in enumerate(zip(masks, held.seg_truth)):
        truth = truth if truth is not None else (reference[i] if reference is not None else pred)
        scores.append(dice(truth, pred))
    return {"dice": float(np.mean(scores)), "masks": masks}


def sr_outputs(model: onnx.ModelProto, crops: list[LesionCrop]) -> list[np.ndarray]:
    """H×W×3 float outputs in [0, 1], one crop at a time (crops may differ in size)."""
    sess = session(model)
    name, channels = sess.get_inputs()[0].name, int(sess.get_inputs()[0].shape[1])
    feeds = [sr_input(c.lr, channels) for c in crops]
    return [sess.run(None, {name: x})[0][0].transpose(1, 2, 0) for x in feeds]


def lesion_psnr_y(image: np.ndarray, crop: LesionCrop, scale: int) -> float:
    return metrics.psnr(image, crop.hr, border=scale, y_channel=True, mask=crop.mask)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def shown(output: np.ndarray, crop: LesionCrop, fidelity: Fidelity = Fidelity()) -> np.ndarray:
    """What the runtime shows for one crop: the H×W×3 output projected onto the crop's LR pixels, uint8."""
    return _u8(project_image(output, crop.lr.astype(np.float32) / 255.0, fidelity))


def sr_metrics(outputs: list[np.ndarray], held: HeldOut, reference: list[np.ndarray] | None = None) -> dict:
    """Lesion PSNR/SSIM (Y, border = scale) of uint8-rounded outputs, the colour shift to FP32, and the lesion
    ΔE00 to the truth of the shown (projected) outputs and of bicubic."""
    rows = [metrics.sr_scores(_u8(o), c.hr, held.scale, c.mask) for o, c in zip(outputs, held.crops)]
    result = {k: float(np.nanmean([r[f"lesion_{k}"] for r in rows])) for k in ("psnr_y", "ssim_y")}
    result["border_psnr_y"] = float(np.nanmean([r["border_psnr_y"] for r in rows]))
    result["delta_e_raw"] = float(np.nanmean([r["lesion_delta_e"] for r in rows]))
    seen = [shown(o, c) for o, c in zip(outputs, held.crops)]
    result["delta_e"] = float(np.nanmean([metrics.mean_delta_e(v, c.hr, c.mask, held.scale)
                                          for v, c in zip(seen, held.crops)]))
    result["bicubic_delta_e"] = held.bicubic_delta_e
    result["checkerboard"] = float(np.nanmean([quality.checkerboard_ratio(v, c.hr, c.mask)
                                               for v, c in zip(seen, held.crops)] or [np.nan]))
    for protocol in PROTOCOLS:  # the generator's own share: shown output over bicubic + projection, in dB
        shares = [lesion_psnr_y(v, c, held.scale) - b for v, b, c in zip(seen, held.projected_bicubic_psnr_y,
                                                                            held.crops) if c.protocol == protocol]
        shares = [d for d in shares if math.isfinite(d)]
        if shares:
            result[f"share_db_{protocol}"] = float(np.mean(shares))
    if reference is not None:
        diffs = [(o - r)[c.mask] for o, r, c in zip(outputs, reference, held.crops) if c.mask.any()]
        pooled = np.concatenate(diffs) if diffs else np.zeros((1, 3))
        per_channel = pooled.mean(axis=0)
        result["colour_shift_rgb"] = [float(v) for v in per_channel]
        result["colour_shift"] = float(np.abs(per_channel).max())
    return result


def judge(net: str, precision: str, fp32: dict, variant: dict, gates: Gates) -> dict:
    """Compare variant metrics with FP32 metrics under the gate limits; returns the gate record."""
    limits = gates.limits(net, precision)
    measured = {}
    if "dice_drop" in limits:
        measured["dice_drop"] = (fp32["dice"], variant["dice"], fp32["dice"] - variant["dice"])
    if "psnr_drop_db" in limits:
        measured["psnr_drop_db"] = (fp32["psnr_y"], variant["psnr_y"], fp32["psnr_y"] - variant["psnr_y"])
    if "border_psnr_drop_db" in limits and "border_psnr_y" in fp32:  # the ±8 px band around the lesion's border
        measured["border_psnr_drop_db"] = (fp32["border_psnr_y"], variant["border_psnr_y"],
                                           fp32["border_psnr_y"] - variant["border_psnr_y"])
    if "ssim_drop" in limits:
        measured["ssim_drop"] = (fp32["ssim_y"], variant["ssim_y"], fp32["ssim_y"] - variant["ssim_y"])
    if "colour_shift" in limits:
        measured["colour_shift"] = (0.0, variant["colour_shift"], variant["colour_shift"])
    if "checkerboard" in limits and "checkerboard" in variant:  # against the truth: its own energy is 1
        measured["checkerboard"] = (1.0, variant["checkerboard"], variant["checkerboard"])
    for protocol in PROTOCOLS:  # the part of FP32's own share lost, FP32's share floored at SHARE_FLOOR_DB
        key = f"share_db_{protocol}"
        if f"share_lost_{protocol}" in limits and key in fp32 and key in variant:
            lost = (fp32[key] - variant[key]) / max(fp32[key], SHARE_FLOOR_DB)
            measured[f"share_lost_{protocol}"] = (fp32[key], variant[key], lost)
    if "delta_e_over_bicubic" in limits:  # against the truth: bicubic's ΔE in the "fp32" column
        measured["delta_e_over_bicubic"] = (variant["bicubic_delta_e"], variant["delta_e"],
                                            variant["delta_e"] - variant["bicubic_delta_e"])
    checks = [{"name": k, "fp32": a, "variant": b, "loss": d, "limit": limits[k],
               "passed": bool(math.isfinite(d) and d <= limits[k])} for k, (a, b, d) in measured.items()]
    failed = [c for c in checks if not c["passed"]]
    reason = "; ".join(f"{c['name']} {c['loss']:.4g} > {c['limit']:.4g}" for c in failed)
    return {"passed": not failed, "checks": checks, "reason": reason}


# ------------------------------------------------------------------ per-layer cost
SQNR_CAP_DB = 100.0  # "no measurable error"; keeps exact layers finite
def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the named intermediate tensors (their own dtypes)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model).graph
    dtypes = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.output]}
    existing = {o.name for o in model.graph.output}
    produced = {o for n in model.graph.node for o in n.output}
    for name in names:
        if name not in existing and name in dtypes and name in produced:
            model.graph.output.append(helper.make_tensor_value_info(name, dtypes[name], None))
    return model


def layer_costs(fp32: onnx.ModelProto, variant: onnx.ModelProto, samples: list[np.ndarray]) -> list[dict]:
    """Measured cost of each convolution in the variant: SQNR (dB) of its input minus that of its
    output, both against FP32 activations on ``samples``. The largest costs are the layers whose
    reduced precision hurts most, the first to leave in float."""
    convs = [n for n in fp32.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm")]
    names = sorted({t for n in convs for t in (n.input[0], n.output[0])})
    ref_sess, var_sess = session(_with_outputs(fp32, names)), session(_with_outputs(variant, names))
    ref_out = [o.name for o in ref_sess.get_outputs()]
    var_out = [o.name for o in var_sess.get_outputs()]
    signal, noise = {}, {}
    input_name = fp32.graph.input[0].name
    for x in samples:
        ref = dict(zip(ref_out, ref_sess.run(None, {input_name: x[None]})))
        var = dict(zip(var_out, var_sess.run(None, {var_sess.get_inputs()[0].name: x[None]})))
        ref[input_name] = var[input_name] = x[None]
        for name in names:
            if name in ref and name in var:
                a, b = ref[name].astype(np.float64), var[name].astype(np.float64)
                signal[name] = signal.get(name, 0.0) + float((a * a).sum())
                noise[name] = noise.get(name, 0.0) + float(((a - b) ** 2).sum())
    sqnr = {k: min(SQNR_CAP_DB, SQNR_CAP_DB if noise[k] == 0 else 10 * math.log10(max(signal[k], 1e-30) / noise[k]))
            for k in noise}
    rows = [{"node": n.name, "cost_db": sqnr.get(n.input[0], SQNR_CAP_DB) - sqnr[n.output[0]],
             "sqnr_out_db": sqnr[n.output[0]]} for n in convs if n.output[0] in sqnr]
    return sorted(rows, key=lambda r: -r["cost_db"])

