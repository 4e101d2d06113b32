"""The stages of ``train all``, one function each: ``stage_<name>(ctx) -> facts for state.json``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skinedge.atomic import write_json_atomic
from skinedge.data import open_dataset
from skinedge.data.pool import pool_document, set_of, stratified_split
from skinedge.data.splits import SPLITS, read_split, write_split
from skinedge.train.all.command import SEG_SHARE, AllConfig, State
from skinedge.train.all.fingerprint import Plan, make_plan, set_facts

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
    index = build_cache(ctx.spec, ids, ctx.work / "cache", plan.seg_size, plan.sr_side, log=ctx.log)
    ctx.log(f"  {len(index['items'])} photos cached, {len(index['skipped'])} skipped")
    return {"items": len(index["items"]), "skipped": index["skipped"]}


def _budget(ctx: Context) -> dict:
    """The training minutes per network, fixed the first time a network stage starts (kept on resume)."""
    doc = ctx.state.doc
    if "budget" not in doc:
        spent = sum(doc["done"][s]["seconds"] for s in ("fingerprint", "split", "cache")) / 60
        left = max(1.0, doc["minutes"] - spent)
        doc["budget"] = {"total": doc["minutes"], "before_training": round(spent, 2),
                         "seg": round(left * SEG_SHARE, 2), "sr": round(left * (1 - SEG_SHARE), 2)}
        ctx.state.save()
        b = doc["budget"]
        ctx.log(f"  budget: {b['total']} min = {b['before_training']} fingerprint+split+cache, {b['seg']} "
                f"segmenter ({SEG_SHARE:.0%} of the rest), {b['sr']} SR generator; export, calibration and the "
                "report come after it")
    return doc["budget"]


def _stage_run(ctx: Context, net: str):
    from skinedge.train.all.cache import Cache
    from skinedge.train.all.nets import StageRun

    split = read_split(ctx.split_file)
    cache = Cache(ctx.work / "cache")
    data = {"spec": ctx.spec, "split_file": str(ctx.split_file.resolve()),
            "split_sha256": hashlib.sha256(ctx.split_file.read_bytes()).hexdigest(), "split_strategy": split.strategy}
    return StageRun(ctx.work, ctx.work / "cache", cache.usable(split.parts["train"]), cache.usable(split.parts["val"]),
                    ctx.plan, _budget(ctx)[net], ctx.device(), data, ctx.cfg.seed, ctx.cfg.workers, ctx.log)


def _trained(ctx: Context, name: str, result: dict, key: str) -> dict:
    best = result["best"]
    ctx.log(f"  {name}: {result['steps']} steps; best validation {key} {best.get(key, float('nan')):.4f}")
    return {"steps": result["steps"], "best": {k: round(v, 4) for k, v in best.items()}}


def stage_seg(ctx: Context) -> dict:
    from skinedge.train.all.nets import train_segmenter

    return _trained(ctx, "segmenter", train_segmenter(_stage_run(ctx, "seg")), "dice")


def stage_sr(ctx: Context) -> dict:
    from skinedge.train.all.nets import train_generator

    return _trained(ctx, "generator", train_generator(_stage_run(ctx, "sr")), "gain")


def stage_export(ctx: Context) -> dict:
    from skinedge.export.exporter import ExportConfig, export_models

    export_models(ExportConfig(ctx.work / "seg-best.pt", ctx.work / "sr-pretrain-best.pt", ctx.cfg.out, ctx.spec,
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
