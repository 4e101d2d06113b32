"""The stages of ``train all``, one function each: ``stage_<name>(ctx) -> facts for state.json``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skinedge.atomic import write_json_atomic
from skinedge.data import open_dataset
from skinedge.data.pool import pool_document, set_of, stratified_split
from skinedge.data.splits import SPLITS, read_split, write_split
from skinedge.train.all.command import SEG_SHARE, AllConfig, State
from skinedge.train.all.fingerprint import Plan, make_plan, set_facts

SEG_DEPLOY = "seg-deploy.pt"  # the best segmenter with its validation-chosen mask threshold folded in

ABOUT = {
    "fingerprint": "reading sizes and masks of every set; settings from the data",
    "split": "group split within each set: train / val / test (held out)",
    "cache": "decoding every photo once (segmenter input and SR scale)",
    "seg": "training the segmenter",
    "sr": "training the SR generator",
    "export": "ONNX export of the best checkpoints, parity-checked",
    "calibrate": "FP16 and INT8 variants behind their accuracy gates",
    "report": "the deployed models on the held-out photos, through the runtime; model card",
}


@dataclass
class Context:
    cfg: AllConfig
    work: Path
    state: State
    log: Callable[[str], None]

    @property
    def spec(self) -> str:
        return f"pool:{(self.work / 'pool.json').resolve()}"

    @property
    def plan(self) -> Plan:
        return Plan(**json.loads((self.work / "fingerprint.json").read_text())["plan"])

    @property
    def split_file(self) -> Path:
        return self.work / "split.json"

    def device(self):
        from skinedge.train.loop import pick_device

        return pick_device(self.cfg.device)

    @property
    def workers(self) -> int:
        """Loader workers: as asked, else 1 on a CPU (the cores are the trainer's) and up to 8 beside a GPU, whose
        steps outrun one worker's augmentation and degradation."""
        if self.cfg.workers is not None:
            return self.cfg.workers
        return min(8, max(1, (os.cpu_count() or 2) - 1)) if self.device().type == "cuda" else 1


def stage_fingerprint(ctx: Context) -> dict:
    write_json_atomic(ctx.work / "pool.json", pool_document(ctx.cfg.data))
    dataset = open_dataset(ctx.spec)
    for problem in dataset.problems:
        ctx.log(f"  {problem}")
    facts = set_facts(dataset, ctx.log)
    for f in facts:
        ctx.log(f"  {f.label}: {f.images} images ({f.masks} with masks), median {f.median_size[0]}×"
                f"{f.median_size[1]}, {'whole photos' if f.whole_photos else 'square crops'}, lesion fraction "
                f"p10/median/p90 {f.lesion_fraction['p10']}/{f.lesion_fraction['median']}/"
                f"{f.lesion_fraction['p90']}")
    device = ctx.device()
    plan = make_plan(facts, device.type)
    ctx.state.doc["device"] = _describe(device)
    for reason in plan.reasons:
        ctx.log(f"  picked: {reason}")
    unreadable = sorted(i for f in facts for i in f.unreadable)
    write_json_atomic(ctx.work / "fingerprint.json", {"sets": [f.__dict__ for f in facts], "plan": plan.to_json(),
                                                      "unreadable": unreadable})
    return {"sets": len(facts), "unreadable": len(unreadable)}


def _describe(device) -> str:
    import os
    import platform

    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {name}, {os.cpu_count()} cores, torch {torch.__version__}"


def stage_split(ctx: Context) -> dict:
    dataset = open_dataset(ctx.spec)
    split = stratified_split(dataset, ctx.cfg.seed)
    write_split(split, ctx.split_file)
    counts: dict[str, dict[str, int]] = {}
    for part, ids in split.parts.items():
        for i in ids:
            counts.setdefault(set_of(i), {p: 0 for p in SPLITS})[part] += 1
    for label, c in counts.items():
        ctx.log(f"  {label}: train {c['train']}, val {c['val']}, test {c['test']}")
    return {"counts": counts, "sha256": hashlib.sha256(ctx.split_file.read_bytes()).hexdigest()}


def stage_cache(ctx: Context) -> dict:
    from skinedge.train.all.cache import build_cache

    plan = ctx.plan
    unreadable = set(json.loads((ctx.work / "fingerprint.json").read_text())["unreadable"])
    ids = [i for i in open_dataset(ctx.spec).ids if i not in unreadable]
    index = build_cache(ctx.spec, ids, ctx.work / "cache", plan.seg_size, plan.sr_side, log=ctx.log,
                        workers=max(2, min(8, os.cpu_count() or 2)))
    ctx.log(f"  {len(index['items'])} photos cached, {len(index['skipped'])} skipped")
    return {"items": len(index["items"]), "skipped": index["skipped"]}


def after_training_minutes(heldout: int, gate_images: int) -> float:
    """Minutes to keep for export, calibration and the report, so that ``--minutes`` is the whole command's.

    Measured on a 2-core EPYC (AVX-512, OpenVINO + NNCF present) with the three shared sets (291 held-out items,
    24 gate images): export 6 s, calibration 248 s, report 182 s. Not scaled by the cores: on a 16-core H200
    machine (ONNX Runtime only, no OpenVINO) calibration had done only the FP32 and FP16 gates of both networks
    after 100 s, where the estimate then divided by 4 had kept 110 s for everything, and the command ran over.
    """
    return round((10 + 10.5 * min(gate_images, heldout) + 0.62 * heldout) / 60, 2)


def _budget(ctx: Context) -> dict:
    """The minutes per network, fixed the first time a network stage starts (kept on resume): ``--minutes`` less
    what reading the data took and what export, calibration and the report are expected to take."""
    doc = ctx.state.doc
    if "budget" not in doc:
        spent = sum(doc["done"][s]["seconds"] for s in ("fingerprint", "split", "cache")) / 60
        heldout = len(read_split(ctx.split_file).parts["test"])
        after = after_training_minutes(heldout, ctx.cfg.gate_images)
        left = max(1.0, doc["minutes"] - spent - after)
        doc["budget"] = {"total": doc["minutes"], "before_training": round(spent, 2),
                         "seg": round(left * SEG_SHARE, 2), "sr": round(left * (1 - SEG_SHARE), 2),
                         "after_training": after}
        ctx.state.save()
        b = doc["budget"]
        ctx.log(f"  budget: {b['total']} min = {b['before_training']} fingerprint+split+cache, {b['seg']} "
                f"segmenter ({SEG_SHARE:.0%} of the training minutes), {b['sr']} SR generator, {after} kept for "
                f"export, calibration and the report (estimated for {heldout} held-out items, as measured on 2 "
                f"CPU cores)")
    return doc["budget"]


def _stage_run(ctx: Context, net: str):
    from skinedge.train.all.cache import Cache
    from skinedge.train.all.nets import StageRun

    split = read_split(ctx.split_file)
    cache = Cache(ctx.work / "cache")
    data = {"spec": ctx.spec, "split_file": str(ctx.split_file.resolve()),
            "split_sha256": hashlib.sha256(ctx.split_file.read_bytes()).hexdigest(), "split_strategy": split.strategy}
    return StageRun(ctx.work, ctx.work / "cache", cache.usable(split.parts["train"]), cache.usable(split.parts["val"]),
                    ctx.plan, _budget(ctx)[net], ctx.device(), data, ctx.cfg.seed, ctx.workers, ctx.log)


def _trained(ctx: Context, name: str, result: dict, key: str) -> dict:
    best = result["best"]
    ctx.log(f"  {name}: {result['steps']} steps; best validation {key} {best.get(key, float('nan')):.4f}")
    return {"steps": result["steps"], "best": {k: round(v, 4) for k, v in best.items()}}


def stage_seg(ctx: Context) -> dict:
    from skinedge.train.all.nets import train_segmenter

    run = _stage_run(ctx, "seg")
    facts = _trained(ctx, "segmenter", train_segmenter(run), "dice")
    return {**facts, "mask_threshold": _fold_threshold(ctx, run)}


def _fold_threshold(ctx: Context, run) -> float:
    """Pick the mask threshold on the validation images and write ``seg-deploy.pt`` with it folded in."""
    import torch

    from skinedge.models.load import load_segmenter
    from skinedge.train.all.nets import VAL_SEG, fast_math, validation_logits
    from skinedge.train.all.sources import SegSource
    from skinedge.train.all.threshold import fold_threshold, pick_threshold

    model, _ = load_segmenter(ctx.work / "seg-best.pt", run.device)
    val = SegSource(run.cache, run.val_ids[:VAL_SEG], run.seed, augment=False)
    model = model.to(memory_format=torch.channels_last)
    threshold, dice = pick_threshold(*validation_logits(model, val, run.device, fast_math(run.device)[1]))
    fold_threshold(ctx.work / "seg-best.pt", ctx.work / SEG_DEPLOY, threshold)
    ctx.log(f"  mask threshold: logit > {threshold:+.2f}, chosen on {len(val)} validation images (Dice "
            f"{dice[0.0]:.4f} at 0 → {dice[threshold]:.4f}; largest blob kept); folded into the head's bias")
    return threshold


def stage_sr(ctx: Context) -> dict:
    from skinedge.train.all.nets import SR_ARCH, train_generator

    facts = _trained(ctx, "generator", train_generator(_stage_run(ctx, "sr")), "gain")
    return {**facts, "camera_plane": SR_ARCH["camera_plane"]}


def stage_export(ctx: Context) -> dict:
    from skinedge.export.exporter import ExportConfig, export_models

    seg = ctx.work / SEG_DEPLOY
    if not seg.is_file():  # a run whose segmenter stage finished before thresholds were folded
        seg = ctx.work / "seg-best.pt"
    export_models(ExportConfig(seg, ctx.work / "sr-pretrain-best.pt", ctx.cfg.out, ctx.spec,
                               images=4, overwrite=True), log=lambda m: ctx.log(f"  {m}"))
    return {}


def stage_calibrate(ctx: Context) -> dict:
    from skinedge.export.calibrate import CalibrateConfig, calibrate, gate_table

    outcome = {}
    for precision in ("fp16", "int8"):
        cfg = CalibrateConfig(ctx.cfg.out, precision, ctx.spec, images=ctx.cfg.calibration_images,
                              gate_limit=ctx.cfg.gate_images)
        report = calibrate(cfg, log=lambda m: ctx.log(f"  {m}"))
        ctx.log(gate_table(report))
        outcome[precision] = bool(report["passed"])
    return {"passed": outcome}


def stage_report(ctx: Context) -> dict:
    from skinedge.model_card import write_card
    from skinedge.evaluate_models import ModelsEvalConfig, evaluate_models, write_models_report

    sets = json.loads((ctx.work / "fingerprint.json").read_text())["sets"]
    whole = [s["label"] for s in sets if s["square"] < 0.5] or [s["label"] for s in sets]
    report = evaluate_models(ModelsEvalConfig(ctx.cfg.out, ctx.spec, ctx.cfg.out / "report", split=ctx.split_file,
                                              whole_sets=whole), log=lambda m: ctx.log(f"  {m}"))
    card = write_card(ctx.cfg.out, report, ctx.state.doc, ctx.work)
    paths = write_models_report(report, ctx.cfg.out / "report", card)
    ctx.log(card)
    ctx.log(f"  report: {paths['md']} (every photo: {paths['json'].name})")
    return {"summary": report.get("summary", {})}
