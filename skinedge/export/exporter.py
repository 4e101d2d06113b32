"""``skinedge export``: both checkpoints → FP32 ONNX files and ``models.json``.

Each graph is exported with the TorchScript exporter (opset 17; BN folds into
the convolutions in eval mode, dropout disappears), simplified with onnxslim
(the EfficientNet "same" padding arithmetic folds into Conv pads), checked
(``onnx.checker`` full, strict shape inference, TensorRT's parser op list), and
compared with PyTorch through ONNX Runtime on real images. Files are written
atomically and the manifest last, so a failed export leaves the previous models.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

import skinedge
from skinedge.atomic import write_json_atomic
from skinedge.errors import SkinedgeError
from skinedge.export.onnx_io import check_model, save_onnx, session, sha256_file
from skinedge.export.onnx_rules import unsupported_ops
from skinedge.export.samples import dataset_parts, lesion_crop, mask_from_logits, seg_input
from skinedge.models.srgan import IMAGENET_MEAN, IMAGENET_STD
from skinedge.runtime.pipeline.camera_plane import CAMERA, CAMERA_FLOOR, CLEAN, sr_input
from skinedge.runtime.manifest import FORMAT, FORMAT_VERSION, MANIFEST, variant_file

OPSET = 17
SEG_INPUT, SEG_OUTPUT = "image", "logits"
SR_INPUT, SR_OUTPUT = "lr", "sr"
FOLDED_AWAY = ("BatchNormalization", "Dropout")
CAMERA_PLANE = {"channel": 3, "camera": CAMERA, "clean": CLEAN,
                "set_from": f"the LR's noise estimate: camera when its floor is >= {CAMERA_FLOOR} grey levels"}


class ClampedGenerator(nn.Module):
    """The generator with its inference clamp to [0, 1] inside the graph (one Clip, fused by TensorRT)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.generator(lr).clamp(0.0, 1.0)


def to_onnx(module: nn.Module, example: torch.Tensor, names: tuple[str, str], dynamic: dict, what: str
            ) -> onnx.ModelProto:
    """Export, simplify and check one network; raises SkinedgeError if the graph is unfit."""
    import onnxslim

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[names[0]], output_names=[names[1]], dynamic_axes=dynamic,
                          do_constant_folding=True)
    model = onnxslim.slim(onnx.load_from_string(buffer.getvalue()))
    model.producer_name, model.producer_version = "skinedge", skinedge.__version__
    left = sorted({n.op_type for n in model.graph.node} & set(FOLDED_AWAY))
    if left:
        raise SkinedgeError(f"{what}: {', '.join(left)} survived export (not folded); is the model in eval mode?")
    model = check_model(model, what)
    bad = unsupported_ops(model)
    if bad:
        raise SkinedgeError(f"{what}: ops TensorRT's ONNX parser does not support: {bad}")
    return model


def export_segmenter(model: nn.Module, size: int, what: str = "segmenter") -> onnx.ModelProto:
    """The segmenter with a dynamic batch at its fixed size×size input."""
    return to_onnx(model, torch.zeros(1, 3, size, size), (SEG_INPUT, SEG_OUTPUT),
                   {SEG_INPUT: {0: "batch"}, SEG_OUTPUT: {0: "batch"}}, what)


def export_generator(generator: nn.Module, what: str = "SR generator") -> onnx.ModelProto:
    """The clamped generator with dynamic batch, height and width (3 input channels, 4 with a camera plane)."""
    channels = getattr(generator, "in_channels", 3)
    return to_onnx(ClampedGenerator(generator), torch.zeros(1, channels, 16, 16), (SR_INPUT, SR_OUTPUT),
                   {SR_INPUT: {0: "batch", 2: "height", 3: "width"},
                    SR_OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}, what)


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max abs error and PSNR (data range 1) between two outputs in [0, 1]."""
    diff = reference.astype(np.float64) - candidate.astype(np.float64)
    mse = float(np.mean(diff ** 2))
    return {"max_abs": float(np.abs(diff).max()), "psnr_db": math.inf if mse == 0 else -10 * math.log10(mse)}


@dataclass
class ExportConfig:
    seg: Path
    sr: Path
    out: Path
    data: str | None = None  # parity images; default: the segmenter's training data
    images: int = 8
    overwrite: bool = False


def _source(path: Path, payload: dict) -> dict[str, Any]:
    return {"checkpoint": str(Path(path).resolve()), "sha256": sha256_file(path), "arch": payload["arch"],
            "metrics": payload.get("metrics", {}), "data": payload.get("data", {}),
            "phase": payload.get("config", {}).get("phase")}


def _variant(out: Path, net: str, model: onnx.ModelProto, **extra) -> dict[str, Any]:
    name = variant_file(net, "fp32")
    sha = save_onnx(model, out / name)
    return {"file": name, "sha256": sha, "bytes": (out / name).stat().st_size, "opset": OPSET,
            "precision": "fp32", "status": "ok", **extra}


def _previous_variants(out: Path, overwrite: bool) -> list[Path]:
    """Files derived from an earlier export in ``out`` (refused unless ``overwrite``)."""
    if not (out / MANIFEST).is_file():
        return []
    if not overwrite:
        raise SkinedgeError(f"{out} already holds exported models; pass --overwrite to replace them "
                            "(their FP16/INT8/pruned variants are removed too) or choose another --out")
    try:
        old = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        files = [v["file"] for n in old["networks"].values() for k, v in n["variants"].items() if k != "fp32"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return [out / f for f in files if "/" not in f] + [out / f"{net}.pruned.pt" for net in ("seg", "sr")]


def _parity_items(cfg: ExportConfig, seg_payload: dict):
    spec = cfg.data or seg_payload.get("data", {}).get("spec")
    if not spec:
        raise SkinedgeError("no images to check parity on: pass --data SPEC")
    dataset, parts, _ = dataset_parts(spec, seg_payload.get("data"))
    ids = (parts["test"] + parts["val"] + parts["train"])[: cfg.images]
    if not ids:
        raise SkinedgeError(f"{spec} has no images to check parity on")
    return spec, list(dataset.subset(ids))


def export_models(cfg: ExportConfig, log=print) -> dict[str, Any]:
    """Write ``seg.onnx``, ``sr.onnx`` and ``models.json`` into ``cfg.out``; returns the manifest."""
    from skinedge.models.load import load_generator, load_segmenter

    stale = _previous_variants(cfg.out, cfg.overwrite)
    seg_model, seg_payload = load_segmenter(cfg.seg)
    generator, sr_payload = load_generator(cfg.sr)
    size, scale = int(seg_payload["io"]["size"]), int(sr_payload["arch"]["scale"])
    mean, std = seg_payload["io"].get("mean", IMAGENET_MEAN), seg_payload["io"].get("std", IMAGENET_STD)
    spec, items = _parity_items(cfg, seg_payload)

    seg_onnx = export_segmenter(seg_model, size)
    sr_module = ClampedGenerator(generator)
    sr_onnx = export_generator(generator)

    x = np.stack([seg_input(item.image, size, mean, std) for item in items])
    with torch.no_grad():
        torch_logits = seg_model(torch.from_numpy(x)).numpy()
    ort_logits = session(seg_onnx).run(None, {SEG_INPUT: x})[0]
    sig = lambda v: 1 / (1 + np.exp(-v.astype(np.float64)))  # noqa: E731
    seg_parity = {**parity(sig(torch_logits), sig(ort_logits)), "images": len(items),
                  "logit_max_abs": float(np.abs(torch_logits - ort_logits).max()),
                  "mask_agreement": float(np.mean((torch_logits > 0) == (ort_logits > 0)))}

    sr_session = session(sr_onnx)
    channels = getattr(generator, "in_channels", 3)
    sr_rows = []
    for item, logits in zip(items, torch_logits):
        mask = item.mask if item.mask is not None else mask_from_logits(logits[0], item.image.shape[:2])
        crop = lesion_crop(item, mask, scale)
        lr = sr_input(crop.lr, channels)
        with torch.no_grad():
            reference = sr_module(torch.from_numpy(lr)).numpy()
        sr_rows.append(parity(reference, sr_session.run(None, {SR_INPUT: lr})[0]))
    sr_parity = {"max_abs": max(r["max_abs"] for r in sr_rows), "psnr_db": min(r["psnr_db"] for r in sr_rows),
                 "images": len(sr_rows)}

    cfg.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "skinedge_version": skinedge.__version__,
        "parity_data": spec,
        "networks": {
            "seg": {
                "input": {"name": SEG_INPUT, "shape": ["batch", 3, size, size], "dtype": "float32",
                          "layout": "NCHW", "colour": "RGB", "value_range": [0.0, 1.0],
                          "mean": list(mean), "std": list(std), "resize": "bilinear"},
                "output": {"name": SEG_OUTPUT, "shape": ["batch", 1, size, size], "dtype": "float32",
                           "kind": "logits", "lesion_where": "logit > 0"},
                "source": _source(cfg.seg, seg_payload),
                "variants": {"fp32": _variant(cfg.out, "seg", seg_onnx, parity=seg_parity)},
            },
            "sr": {
                "input": {"name": SR_INPUT, "shape": ["batch", channels, "height", "width"], "dtype": "float32",
                          "layout": "NCHW", "colour": "RGB", "value_range": [0.0, 1.0],
                          "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "masked_context_px": 4,
                          **({"camera_plane": CAMERA_PLANE} if channels == 4 else {})},
                "output": {"name": SR_OUTPUT, "shape": ["batch", 3, f"{scale}*height", f"{scale}*width"],
                           "dtype": "float32", "value_range": [0.0, 1.0]},
                "scale": scale,
                "source": _source(cfg.sr, sr_payload),
                "variants": {"fp32": _variant(cfg.out, "sr", sr_onnx, parity=sr_parity)},
            },
        },
    }
    write_json_atomic(cfg.out / MANIFEST, manifest)
    for path in stale:  # made from the previous FP32 models: keeping them would pair old variants with new models
        path.unlink(missing_ok=True)
    log(f"seg.onnx: parity with PyTorch on {len(items)} images of {spec}: max abs {seg_parity['max_abs']:.2e} "
        f"(probabilities), PSNR {seg_parity['psnr_db']:.1f} dB, mask agreement {seg_parity['mask_agreement']:.4f}")
    log(f"sr.onnx:  parity with PyTorch on {len(sr_rows)} lesion crops: max abs {sr_parity['max_abs']:.2e}, "
        f"PSNR {sr_parity['psnr_db']:.1f} dB")
    return manifest

