"""``skinedge calibrate``: FP16 or INT8 variants of both networks, each behind its accuracy gate.

For every network: choose calibration images from the dataset's train/val split
(stratified by lesion size and contrast; never the test split, never random
data), make the variant(s), measure them against FP32 on the held-out test
split, and, when a gate fails, leave the costliest layers (measured per layer)
in float and try again. A variant that still fails is not written unless
``force``, and then it is marked ``failing`` in ``models.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from skinedge.atomic import write_bytes_atomic, write_json_atomic
from skinedge.data.dataset import Item
from skinedge.data.degrade import Degradation
from skinedge.errors import DataError, SkinedgeError
from skinedge.export import gates as G
from skinedge.export import openvino_int8
from skinedge.export.fp16 import convert_to_fp16
from skinedge.export.int8 import CPU_U8S8, TENSORRT, Quantizer, latency_ms, scratch_dir
from skinedge.export.onnx_io import load_onnx, save_onnx, session
from skinedge.export.onnx_rules import check_tensorrt_qdq, quantized_layers
from skinedge.export.samples import (
    SR_TIMING_SIDES,
    LesionCrop,
    at_camera_scale,
    dataset_parts,
    image_stats,
    lesion_crop,
    mask_from_logits,
    seg_input,
    stratified_pick,
    whole_photo,
)
from skinedge.runtime.pipeline.camera_plane import sr_channels, sr_input
from skinedge.runtime.manifest import MANIFEST, NETWORKS, load_models, network, variant_file, variant_name, variant_path

FLOAT_FRACTIONS = (0.05, 0.15)  # mixed-precision retries: leave these shares of conv layers in float
COST_SAMPLES = 4  # calibration images used to measure per-layer cost
CANDIDATES_PER_PICK = 4  # images looked at per calibration image chosen (bounds decoding time)


@dataclass
class CalibrateConfig:
    models: Path
    precision: str  # fp16 | int8
    data: str
    nets: tuple[str, ...] = NETWORKS
    method: str = "entropy"
    images: int = 64
    pruned: bool = False
    force: bool = False
    gate_limit: int | None = None
    gates: G.Gates = field(default_factory=G.Gates)
    seed: int = 0


@dataclass
class Prepared:
    """Calibration samples and held-out set for one network."""

    calibration: list[np.ndarray]
    manifest: dict[str, Any]
    held: G.HeldOut


def pixel_sha256(item: Item) -> str:
    """sha256 of the decoded RGB pixels (independent of file format and metadata)."""
    return hashlib.sha256(np.ascontiguousarray(item.image).tobytes()).hexdigest()


class Masks:
    """Lesion masks: ground truth where the dataset has it, else the FP32 segmenter's prediction."""

    def __init__(self, seg_model: onnx.ModelProto, seg_io: dict):
        self.session, self.io = session(seg_model), seg_io

    def __call__(self, item: Item) -> np.ndarray:
        if item.mask is not None:
            return item.mask
        size = self.io["shape"][2]
        x = seg_input(item.image, size, self.io["mean"], self.io["std"])[None]
        return mask_from_logits(self.session.run(None, {self.io["name"]: x})[0][0, 0], item.image.shape[:2])


def held_out(dataset, parts: dict[str, list[str]], limit: int | None, manifest: dict, masks: Masks
             ) -> tuple[G.HeldOut, G.HeldOut]:
    """The test split prepared for the segmenter's and the SR generator's gates."""
    seg_io = network(manifest, "seg")["input"]
    scale = int(network(manifest, "sr")["scale"])
    test_ids = parts["test"][:limit] if limit else parts["test"]
    if not test_ids:
        raise DataError(f"{dataset.spec}: its test split is empty; the accuracy gates need held-out images")
    items = [(item, masks(item)) for item in dataset.subset(test_ids)]
    size = seg_io["shape"][2]
    seg_held = G.HeldOut(np.stack([seg_input(i.image, size, seg_io["mean"], seg_io["std"]) for i, _ in items]),
                         [G.seg_truth_at(i.mask, size) for i, _ in items], [], scale, test_ids)
    camera = Degradation(scale=scale)  # both LR protocols: (a) bicubic, (b) the camera's blur, noise and JPEG
    items = [at_camera_scale(i, m, scale) for i, m in items]  # SR is gated where it runs: ≤ 512-px photos
    crops = []
    for cut in (lesion_crop, whole_photo):  # lesion-centred crops, and the whole photo (borders, surround)
        crops += [cut(i, m, scale) for i, m in items]
        crops += [cut(i, m, scale, degradation=camera, seed=k) for k, (i, m) in enumerate(items)]
    sr_held = G.HeldOut(seg_held.seg_inputs[:0], [], crops, scale, test_ids)
    return seg_held, sr_held


def _calibration_crop(item, mask: np.ndarray, scale: int, k: int, channels: int) -> LesionCrop:
    """The k-th SR calibration crop: bicubic LR, or every other one the camera's when the generator has a camera
    plane (its activations with the plane at 1 need ranges too)."""
    camera = Degradation(scale=scale) if channels == 4 and k % 2 else None
    return lesion_crop(*at_camera_scale(item, mask, scale), scale, degradation=camera, seed=k)


def prepare(cfg: CalibrateConfig, manifest: dict, seg_fp32: onnx.ModelProto) -> tuple[dict[str, Prepared], dict]:
    """Choose calibration images (train/val) and load the held-out set (test), for both networks."""
    seg_io = network(manifest, "seg")["input"]
    scale = int(network(manifest, "sr")["scale"])
    dataset, parts, split_source = dataset_parts(cfg.data, network(manifest, "seg")["source"].get("data"))
    pool = parts["train"] + parts["val"]
    if len(pool) < 2:
        raise DataError(f"{cfg.data}: its train/val split has {len(pool)} image(s); calibration needs at least 2")
    if cfg.images < 2:
        raise SkinedgeError(f"--images must be at least 2 (got {cfg.images})")
    rng = np.random.default_rng(cfg.seed)
    look = sorted(rng.choice(pool, size=min(len(pool), cfg.images * CANDIDATES_PER_PICK), replace=False).tolist())
    masks = Masks(seg_fp32, seg_io)
    candidates = {item.id: (item, masks(item)) for item in dataset.subset(look)}
    stats = {i: image_stats(item, mask) for i, (item, mask) in candidates.items()}
    chosen = stratified_pick(stats, cfg.images, cfg.seed)
    seg_held, sr_held = held_out(dataset, parts, cfg.gate_limit, manifest, masks)
    size, channels = seg_io["shape"][2], sr_channels(network(manifest, "sr"))
    record = {
        "dataset": cfg.data, "split": split_source, "pool": "train+val", "candidates_examined": len(candidates),
        "selection": f"stratified: 3 lesion-area × 3 contrast tertiles, round-robin, seed {cfg.seed}",
        "images": [{"id": i, "sha256": pixel_sha256(candidates[i][0]), "lesion_area": round(stats[i][0], 4),
                    "contrast": round(stats[i][1], 4)} for i in chosen],
        "held_out": {"split": "test", "images": len(seg_held.ids)},
    }
    record["set_sha256"] = hashlib.sha256("".join(r["sha256"] for r in record["images"]).encode()).hexdigest()
    seg_cal = [seg_input(candidates[i][0].image, size, seg_io["mean"], seg_io["std"]) for i in chosen]
    sr_cal = [sr_input(_calibration_crop(*candidates[i], scale, k, channels).lr, channels)[0]
              for k, i in enumerate(chosen)]
    h, w = min(x.shape[1] for x in sr_cal), min(x.shape[2] for x in sr_cal)  # the calibrators stack their inputs:
    sr_cal = [np.ascontiguousarray(x[:, (x.shape[1] - h) // 2:][:, :h, (x.shape[2] - w) // 2:][:, :, :w])
              for x in sr_cal]  # small photos give smaller crops, so all are cut to the smallest (centred)
    return {"seg": Prepared(seg_cal, record, seg_held), "sr": Prepared(sr_cal, record, sr_held)}, record


def measure(net: str, model: onnx.ModelProto, held: G.HeldOut, reference: dict | None) -> dict:
    if net == "seg":
        return G.seg_metrics(model, held, None if reference is None else reference["masks"])
    outputs = G.sr_outputs(model, held.crops)
    result = G.sr_metrics(outputs, held, outputs if reference is None else reference["outputs"])
    result["outputs"] = outputs
    return result


def _attempts(net: str, make: Callable[[list[str]], onnx.ModelProto], fp32: onnx.ModelProto, prep: Prepared,
              reference: dict, cfg: CalibrateConfig, log, label: str | None = None) -> dict:
    """Make the variant, gate it, and retry with the costliest layers left in float."""
    variant = make([])
    costs = G.layer_costs(fp32, variant, prep.calibration[:COST_SAMPLES])
    n_conv = len(costs)
    tries = [[]] + [[c["node"] for c in costs[: max(1, round(f * n_conv))]] for f in FLOAT_FRACTIONS]
    for attempt, keep_float in enumerate(tries):
        if attempt:
            variant = make(keep_float)
        measured = measure(net, variant, prep.held, reference)
        gate = G.judge(net, cfg.precision, reference, measured, cfg.gates)
        note = f"{len(keep_float)} layer(s) kept in float" if keep_float else "all layers converted"
        log(f"  {net} {label or cfg.precision}: {note}: {'PASS' if gate['passed'] else 'FAIL ' + gate['reason']}")
        if gate["passed"]:
            break
    return {"model": variant, "gate": gate, "float_layers": keep_float, "layer_costs": costs[:10], "costs": costs,
            "metrics": {k: v for k, v in measured.items() if k not in ("outputs", "masks")}}


def _openvino_attempts(net: str, fp32_path: Path, costs: list[dict], prep: Prepared, reference: dict,
                       cfg: CalibrateConfig, log) -> dict:
    """``int8-ov``: NNCF INT8 from the same calibration images, gated like the others; retries leave the
    convolutions that cost most in the TensorRT-form INT8 model (``costs``) in float."""
    from skinedge.runtime.backends.openvino import OvSession

    tries = [[]] + [[c["node"] for c in costs[: max(1, round(f * len(costs)))]] for f in FLOAT_FRACTIONS]
    for keep_float in tries:
        model = openvino_int8.quantize(fp32_path, prep.calibration, keep_float)
        measured = measure(net, OvSession(model), prep.held, reference)
        gate = G.judge(net, cfg.precision, reference, measured, cfg.gates)
        note = f"{len(keep_float)} layer(s) kept in float" if keep_float else "all layers converted"
        log(f"  {net} int8-ov (NNCF, OpenVINO): {note}: {'PASS' if gate['passed'] else 'FAIL ' + gate['reason']}")
        if gate["passed"]:
            break
    return {"model": model, "gate": gate, "float_layers": keep_float, "layer_costs": costs[:10],
            "metrics": {k: v for k, v in measured.items() if k not in ("outputs", "masks")}}


def _cpu_choice(forms: dict[str, dict], fp32: onnx.ModelProto, samples: list[np.ndarray]) -> tuple[dict, dict]:
    """The fastest form on this CPU among those that pass their gate (among all if none does).

    Each form is timed on every sample (the SR generator at each tile side the runtime feeds it: an INT8 form
    that wins at 64² can lose at 256², seen here) and judged by the sum. FP32 is timed too: on CPUs where no
    INT8 form beats it, ``faster_than_fp32`` tells the runtime to prefer FP32."""
    def total(model) -> tuple[float, dict[str, float]]:
        each = {"x".join(map(str, x.shape[1:])): latency_ms(model, x) for x in samples}
        return sum(each.values()), each

    measured = {name: total(result["model"]) for name, result in forms.items()}
    timings = {name: t for name, (t, _) in measured.items()}
    passing = [name for name, result in forms.items() if result["gate"]["passed"]] or list(forms)
    best = min(passing, key=timings.get)
    fp32_ms, fp32_each = total(fp32)
    return forms[best], {"form": best, "timings_ms": timings, "passing": passing, "fp32_ms": fp32_ms,
                         "faster_than_fp32": timings[best] < fp32_ms,
                         "per_size_ms": {**{n: e for n, (_, e) in measured.items()}, "fp32": fp32_each}}


def _write_variant(cfg: CalibrateConfig, manifest: dict, net: str, vname: str, result: dict, extra: dict) -> str:
    """Save a variant that passed (or any, with force) and record it; returns what happened."""
    entry_gate = {**result["gate"], "limits": cfg.gates.limits(net, cfg.precision)}
    if not result["gate"]["passed"] and not cfg.force:
        earlier = network(manifest, net)["variants"].get(vname)
        if earlier is None:
            return "refused (not written)"
        # an earlier calibration's file stays (nothing is deleted), but it is no longer served as passing
        earlier.update({"status": "failing", "gate": entry_gate})
        return "refused (not written); the earlier file is kept, marked failing"
    name = variant_file(net, vname)
    if name.endswith(".xml"):  # an OpenVINO IR: the .xml and its .bin
        sha, weights_sha = openvino_int8.save_ir(result["model"], cfg.models / name)
        weights = Path(name).with_suffix(".bin").name
        extra = {**extra, "backend": "openvino", "weights": weights, "weights_sha256": weights_sha,
                 "weights_bytes": (cfg.models / weights).stat().st_size}
    else:
        sha = save_onnx(result["model"], cfg.models / name)
    network(manifest, net)["variants"][vname] = {
        "file": name, "sha256": sha, "bytes": (cfg.models / name).stat().st_size, "precision": vname.split(".")[-1],
        "status": "ok" if result["gate"]["passed"] else "failing", "gate": entry_gate,
        "float_layers": result["float_layers"], "metrics": result["metrics"], **extra}
    return "written" if result["gate"]["passed"] else "written (failing, --force)"


CALIBRATION_README = """# Calibration sets

Each JSON file here lists the images one INT8 variant was calibrated on: the
dataset spec, the split they came from (train+val, never the test split that
the accuracy gates use), each image's id and the sha256 of its decoded RGB
pixels, and the sha256 of the whole set (recorded again in models.json).

How they are chosen: up to 4× the wanted number of train/val images are drawn
(seeded), each gets two keys, lesion area fraction and lesion/background
luminance contrast, and images are taken round-robin from the 3×3 grid of their
tertiles. Calibration thus sees small and large, faint and dark lesions instead
of only the common case, which is what sets activation ranges for the hard
images. The segmenter calibrates on whole images resized to its input; the SR
generator on lesion crops (bicubic ×scale LR of a lesion-centred window, the
real image around the lesion kept), exactly what the runtime feeds it.

Random data is never used: with no dataset, calibration stops with an error.
"""


def calibrate(cfg: CalibrateConfig, log=print) -> dict[str, Any]:
    """Make, gate and write the variants; returns the report (``report["passed"]``)."""
    if cfg.precision not in ("fp16", "int8"):
        raise SkinedgeError(f"unknown precision {cfg.precision!r}; choose fp16 or int8")
    manifest = load_models(cfg.models)
    source = variant_name("fp32", cfg.pruned)
    fp32 = {net: load_onnx(variant_path(cfg.models, manifest, net, source)) for net in cfg.nets}
    seg_fp32 = fp32.get("seg") or load_onnx(variant_path(cfg.models, manifest, "seg", "fp32"))
    prepared, record = prepare(cfg, manifest, seg_fp32)
    report: dict[str, Any] = {"precision": cfg.precision, "source_variant": source, "method": cfg.method,
                              "gates": cfg.gates.to_json(), "networks": {}}
    if cfg.precision == "int8":
        record["method"] = cfg.method
        cal_name = f"calibration/{cfg.precision}-{cfg.method}{'-pruned' if cfg.pruned else ''}.json"
        write_json_atomic(cfg.models / cal_name, record)
        write_bytes_atomic(cfg.models / "calibration" / "README.md", CALIBRATION_README.encode())
        report["calibration"] = {"manifest": cal_name, "images": len(record["images"]),
                                 "set_sha256": record["set_sha256"]}
    for net in cfg.nets:
        prep = prepared[net]
        reference = measure(net, fp32[net], prep.held, None)
        log(f"{net}: FP32 on {len(prep.held.ids)} held-out images: "
            + ", ".join(f"{k} {v:.4f}" for k, v in reference.items() if isinstance(v, float)))
        rows = report["networks"][net] = {"fp32": {k: v for k, v in reference.items() if isinstance(v, float)}}
        if cfg.precision == "fp16":
            make = lambda keep, m=fp32[net]: convert_to_fp16(m, keep_nodes=frozenset(keep))  # noqa: E731
            result = _attempts(net, make, fp32[net], prep, reference, cfg, log)
            rows["fp16"] = _summary(result, _write_variant(cfg, manifest, net, variant_name("fp16", cfg.pruned),
                                                           result, {}))
            continue
        with scratch_dir() as tmp:
            quantizer = Quantizer(fp32[net], prep.calibration, cfg.method, Path(tmp))
            trt = _attempts(net, lambda keep: quantizer.quantize(TENSORRT, keep), fp32[net], prep, reference, cfg, log)
            violations = check_tensorrt_qdq(trt["model"])
            if violations:
                raise SkinedgeError(f"{net}: the INT8 model breaks TensorRT's Q/DQ rules: {violations[0]}")
            calibration_ref = {"calibration": report["calibration"]}
            quantized, in_float = quantized_layers(trt["model"])
            rows["int8"] = _summary(trt, _write_variant(cfg, manifest, net, variant_name("int8", cfg.pruned), trt,
                                                        {**calibration_ref, "quantized_convs": len(quantized),
                                                         "float_convs": len(in_float)}))
            u8 = _attempts(net, lambda keep: quantizer.quantize(CPU_U8S8, keep), fp32[net], prep, reference, cfg,
                           log, "int8-cpu (u8s8)")
            first = prep.calibration[0]  # SR: at the runtime's tile sides, not at the calibration crop's
            samples = [first] if net == "seg" else [np.resize(first, (first.shape[0], s, s)) for s in SR_TIMING_SIDES]
            cpu, choice = _cpu_choice({"s8s8 (TensorRT form)": trt, "u8s8": u8}, fp32[net], samples)
            log(f"  {net} int8-cpu: {choice['form']} is the fastest passing form here (summed over inputs "
                + ", ".join(choice["per_size_ms"]["fp32"]) + ": "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in choice["timings_ms"].items())
                + f"; FP32 {choice['fp32_ms']:.1f} ms" + ("" if choice["faster_than_fp32"] else
                                                           ": INT8 is not faster than FP32 on this CPU") + ")")
            rows["int8-cpu"] = _summary(cpu, _write_variant(cfg, manifest, net, variant_name("int8-cpu", cfg.pruned),
                                                            cpu, {**calibration_ref, "cpu_form": choice}))
            rows["int8-cpu"]["cpu_form"] = choice
            if not openvino_int8.available():
                log(f"  {net} int8-ov: not made: OpenVINO and NNCF are not installed "
                    "(pip install 'skinedge[openvino,train]')")
                continue
            fp32_path = variant_path(cfg.models, manifest, net, source)
            ov = _openvino_attempts(net, fp32_path, trt["costs"], prep, reference, cfg, log)
            rows["int8-ov"] = _summary(ov, _write_variant(cfg, manifest, net, variant_name("int8-ov", cfg.pruned), ov,
                                                          calibration_ref))
    write_json_atomic(cfg.models / MANIFEST, manifest)
    report["passed"] = all(v["gate"]["passed"] for r in report["networks"].values() for k, v in r.items()
                           if k != "fp32")
    name = f"calibrate-{cfg.precision}{'-pruned' if cfg.pruned else ''}"
    write_json_atomic(cfg.models / "reports" / f"{name}.json", report)
    write_bytes_atomic(cfg.models / "reports" / f"{name}.md", gate_table(report).encode())
    return report


def _summary(result: dict, outcome: str) -> dict:
    return {"gate": result["gate"], "float_layers": result["float_layers"], "metrics": result["metrics"],
            "worst_layers": result["layer_costs"][:5], "outcome": outcome}


def gate_table(report: dict) -> str:
    """The gate table as Markdown (printed by the CLI and the demo)."""
    lines = [f"Accuracy gates, {report['precision']} vs FP32 ({report['source_variant']}), ONNX Runtime, "
             "held-out test split", "",
             "| network | variant | check | FP32 | variant | loss | limit | result |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for net, rows in report["networks"].items():
        for vname, row in rows.items():
            if vname == "fp32":
                continue
            for c in row["gate"]["checks"]:
                lines.append(f"| {net} | {vname} | {c['name']} | {c['fp32']:.4f} | {c['variant']:.4f} | "
                             f"{c['loss']:.4f} | {c['limit']:.4f} | {'PASS' if c['passed'] else 'FAIL'} |")
    lines += ["", "delta_e_over_bicubic is measured against the truth, not FP32: its FP32 column is plain bicubic's "
              "lesion ΔE00 to the HR image, its variant column the variant's as shown (after the runtime's "
              "projection). share_lost_P is the part of the generator's own share that the variant loses on LR "
              "protocol P (bicubic ÷scale or the camera's): its FP32 and variant columns are the shown lesion's "
              "PSNR-Y over bicubic + projection, in dB (shares under 0.1 dB count as 0.1).", ""]
    for net, rows in report["networks"].items():
        for vname, row in rows.items():
            if vname == "fp32":
                continue
            worst = ", ".join(f"{w['node']} ({w['cost_db']:.1f} dB)" for w in row["worst_layers"][:3])
            kept = f"{len(row['float_layers'])} layer(s) kept in float" if row["float_layers"] else "none in float"
            lines.append(f"- {net} {vname}: {row['outcome']}; {kept}; costliest layers: {worst}")
    return "\n".join(lines) + "\n"
