"""``skinedge prune``: structured channel pruning of one network, a short fine-tune, re-export.

The source is the checkpoint ``export`` recorded in ``models.json`` (checked by
sha256). After pruning (:mod:`skinedge.export.prune`), a short fine-tune on the
train split recovers accuracy, by default distilled from the unpruned network
(its outputs are a denser target than the labels alone). The result is saved as
``MODELS/<net>.pruned.pt`` (with the layer widths needed to rebuild it) and
``MODELS/<net>.pruned.onnx`` (variant ``pruned.fp32``), which ``calibrate
--pruned`` turns into FP16/INT8. Params, MACs, ONNX Runtime latency and
held-out accuracy are measured before and after.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from skinedge.atomic import write_json_atomic
from skinedge.errors import SkinedgeError
from skinedge.export import gates as G
from skinedge.export.calibrate import Masks, held_out, measure
from skinedge.export.exporter import export_generator, export_segmenter
from skinedge.export.int8 import latency_ms
from skinedge.export.onnx_io import load_onnx, save_onnx, sha256_file
from skinedge.export.prune import prune_network
from skinedge.models.shapes import pruned_shapes
from skinedge.export.samples import dataset_parts
from skinedge.progress import progress_bar
from skinedge.runtime.pipeline.camera_plane import CAMERA, CLEAN, sr_channels, sr_input
from skinedge.runtime.manifest import MANIFEST, NETWORKS, load_models, network, variant_file, variant_path


@dataclass
class PruneConfig:
    models: Path
    net: str
    ratio: float
    data: str
    steps: int = 200
    batch: int = 8
    lr: float = 1e-4
    distill: bool = True
    gate_limit: int | None = None
    seed: int = 0


def _check(cfg: PruneConfig) -> None:
    if cfg.net not in NETWORKS:
        raise SkinedgeError(f"--net must be seg or sr, not {cfg.net!r}")
    if not 0.0 < cfg.ratio <= 0.9:
        raise SkinedgeError(f"--ratio must be in (0, 0.9], got {cfg.ratio}")
    if cfg.steps < 0:
        raise SkinedgeError(f"--steps must be 0 or more, got {cfg.steps}")


def _source(cfg: PruneConfig, manifest: dict) -> tuple[torch.nn.Module, dict, Path]:
    """The checkpoint ``export`` used, refused if it changed since."""
    from skinedge.models.load import load_generator, load_segmenter

    source = network(manifest, cfg.net)["source"]
    path = Path(source["checkpoint"])
    if not path.is_file():
        raise SkinedgeError(f"{path} (the checkpoint {cfg.models} was exported from) is gone; re-run export")
    if sha256_file(path) != source["sha256"]:
        raise SkinedgeError(f"{path} changed since {cfg.models} was exported; re-run `skinedge export`")
    model, payload = (load_segmenter if cfg.net == "seg" else load_generator)(path)
    return model, payload, path


def _fine_tune(cfg: PruneConfig, model: torch.nn.Module, teacher: torch.nn.Module, payload: dict, dataset,
               train_ids: list[str]) -> dict[str, Any]:
    """A few hundred steps on the train split: task loss, plus distillation from ``teacher``."""
    from skinedge.train.batchnorm import recalibrate_batchnorm
    from skinedge.train.losses import seg_loss
    from skinedge.train.samples import SegSamples, SRSamples
    from skinedge.models.srgan import with_camera_plane
    from skinedge.train.sr import degradation_of

    train = dataset.subset(train_ids)
    if cfg.net == "seg":
        samples = SegSamples(train, int(payload["io"]["size"]), augment=True, seed=cfg.seed)
    else:
        config = payload.get("config", {})
        scale = int(payload["arch"]["scale"])
        named = config.get("degradation", "default")  # `train all` records a protocol mix: tune on camera LR
        degradation = degradation_of(named if named in ("default", "bicubic") else "default", scale)
        samples = SRSamples(train, int(config.get("hr_size", 64)), degradation, True, cfg.seed)
        camera = CAMERA if degradation.noise_sigma is not None else CLEAN
    if len(samples) == 0 or cfg.steps == 0:
        return {"steps": 0}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    losses = []
    with progress_bar(cfg.steps, f"fine-tune pruned {cfg.net}") as update:
        for step in range(cfg.steps):
            model.train()
            x, y = samples.batch(rng.integers(0, len(samples), cfg.batch).tolist(), epoch=step)
            if cfg.net == "sr" and getattr(model, "in_channels", 3) == 4:
                x = with_camera_plane(x, camera)
            out = model(x)
            if cfg.net == "seg":
                loss = seg_loss(out, y)
                if cfg.distill:
                    with torch.no_grad():
                        soft = torch.sigmoid(teacher(x))
                    loss = 0.5 * loss + 0.5 * F.binary_cross_entropy_with_logits(out, soft)
            else:
                loss = F.l1_loss(out, y)
                if cfg.distill:
                    with torch.no_grad():
                        target = teacher(x)
                    loss = 0.5 * loss + 0.5 * F.l1_loss(out, target)
            if not torch.isfinite(loss):
                raise SkinedgeError(f"fine-tuning the pruned {cfg.net} diverged at step {step} (loss {loss.item()}); "
                                    "try a lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            update(step + 1, loss=float(np.mean(losses[-20:])))
    if cfg.net == "seg":  # short runs leave EfficientNet's BN statistics stale (NOTES.md)
        batches = (samples.batch(rng.integers(0, len(samples), cfg.batch).tolist())[0] for _ in range(8))
        with torch.no_grad():
            recalibrate_batchnorm(model, batches)
    return {"steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr, "distilled": cfg.distill,
            "final_loss": float(np.mean(losses[-20:]))}


def _numbers(net: str, model: onnx.ModelProto, held: G.HeldOut, sample: np.ndarray) -> dict[str, float]:
    scores = measure(net, model, held, None)
    keep = {"dice"} if net == "seg" else {"psnr_y", "ssim_y"}
    return {**{k: v for k, v in scores.items() if k in keep}, "latency_ms": latency_ms(model, sample)}


def prune_models(cfg: PruneConfig, log=print) -> dict[str, Any]:
    """Prune, fine-tune, save and re-export one network; returns the report."""
    from skinedge.models.checkpoint import save_checkpoint

    _check(cfg)
    manifest = load_models(cfg.models)
    model, payload, source_path = _source(cfg, manifest)
    seg_fp32 = load_onnx(variant_path(cfg.models, manifest, "seg", "fp32"))
    fp32 = seg_fp32 if cfg.net == "seg" else load_onnx(variant_path(cfg.models, manifest, "sr", "fp32"))
    dataset, parts, split_source = dataset_parts(cfg.data, network(manifest, "seg")["source"].get("data"))
    seg_held, sr_held = held_out(dataset, parts, cfg.gate_limit, manifest, Masks(seg_fp32, network(manifest, "seg")
                                                                                  ["input"]))
    held = seg_held if cfg.net == "seg" else sr_held
    channels = sr_channels(network(manifest, "sr"))
    sample = seg_held.seg_inputs[0] if cfg.net == "seg" else sr_input(sr_held.crops[0].lr, channels)[0]
    before = _numbers(cfg.net, fp32, held, sample)

    teacher = copy.deepcopy(model).eval()
    size = int(payload["io"]["size"]) if cfg.net == "seg" else 16
    counts = prune_network(model, cfg.net, cfg.ratio, torch.zeros(1, 3 if cfg.net == "seg" else channels, size, size))
    log(f"{cfg.net}: pruned {cfg.ratio:.0%} of channels per layer group: params {counts['params_before']:,} → "
        f"{counts['params_after']:,}, MACs {counts['macs_before']:,} → {counts['macs_after']:,}")
    tuning = _fine_tune(cfg, model, teacher, payload, dataset, parts["train"])
    model.eval()

    pruned_onnx = (export_segmenter(model, size, "pruned segmenter") if cfg.net == "seg"
                   else export_generator(model, "pruned SR generator"))
    after = _numbers(cfg.net, pruned_onnx, held, sample)
    name = variant_file(cfg.net, "pruned.fp32")
    checkpoint = cfg.models / f"{cfg.net}.pruned.pt"
    record = {"ratio": cfg.ratio, "round_to": 8, "source_sha256": network(manifest, cfg.net)["source"]["sha256"],
              "fine_tune": tuning, "counts": counts}
    save_checkpoint(checkpoint, cfg.net, payload["arch"], {"model": model.state_dict()},
                    pruned={**record, "shapes": pruned_shapes(model)}, io=payload["io"],
                    data=payload.get("data", {}), config=payload.get("config", {}), metrics=after)
    sha = save_onnx(pruned_onnx, cfg.models / name)
    change = {k: after[k] - before[k] for k in before if k != "latency_ms"}
    network(manifest, cfg.net)["variants"]["pruned.fp32"] = {
        "file": name, "sha256": sha, "bytes": (cfg.models / name).stat().st_size, "precision": "fp32",
        "status": "ok", "checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint),
        "pruning": record, "before": before, "after": after, "accuracy_change": change}
    write_json_atomic(cfg.models / MANIFEST, manifest)
    report = {"net": cfg.net, "ratio": cfg.ratio, "source": str(source_path), "split": split_source,
              "held_out_images": len(held.ids), "counts": counts, "fine_tune": tuning, "before": before,
              "after": after, "accuracy_change": change, "file": name}
    write_json_atomic(cfg.models / "reports" / f"prune-{cfg.net}.json", report)
    return report


def prune_table(report: dict) -> str:
    """Before/after table (Markdown) for the CLI and the demo."""
    c, b, a = report["counts"], report["before"], report["after"]
    rows = [("params", f"{c['params_before']:,}", f"{c['params_after']:,}", c["params_after"] / c["params_before"]),
            ("MACs", f"{c['macs_before']:,}", f"{c['macs_after']:,}", c["macs_after"] / c["macs_before"]),
            ("ORT CPU latency (ms)", f"{b['latency_ms']:.1f}", f"{a['latency_ms']:.1f}",
             a["latency_ms"] / b["latency_ms"])]
    rows += [(k, f"{b[k]:.4f}", f"{a[k]:.4f}", None) for k in b if k != "latency_ms"]
    lines = [f"Pruning {report['net']} by {report['ratio']:.0%} ({report['held_out_images']} held-out images, "
             "ONNX Runtime FP32)", "", "| | before | after | after/before |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {x} | {y} | {'' if r is None else f'{r:.2f}'} |" for k, x, y, r in rows]
    return "\n".join(lines) + "\n"
