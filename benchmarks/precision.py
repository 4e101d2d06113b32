"""CPU latency of every precision variant of both networks, against PyTorch eager, in one run.

Makes a models directory the way a user would (library calls behind `export`,
`prune`, `calibrate`), from paper-size networks: EfficientNet-B3 U-Net at 256²
and the 16-block SR generator, random-initialised with batch-norm statistics
estimated on generated images (no pretrained weights here), then times, per
network: PyTorch eager FP32, ONNX Runtime FP32 / FP16 / INT8 (TensorRT form) /
INT8 (CPU form), pruned FP32 and pruned INT8 (CPU form). SR input: one 64×64
masked lesion crop; segmenter: one 256² image. Latency is the median (p50) of
``--repeats`` runs after warm-up, single image, all cores; "× eager" is PyTorch
eager's p50 divided by the variant's. Gate results come from models.json
(variants are written with ``force`` so that a failing one is timed too, and
shown as failing).

    python benchmarks/precision.py [--repeats 20] [--work DIR] [--json benchmarks/results/precision.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skinedge.data import open_dataset
from skinedge.data.generate import write_synthetic
from skinedge.data.splits import make_split, write_split
from skinedge.export.calibrate import CalibrateConfig, calibrate
from skinedge.export.exporter import ExportConfig, export_models
from skinedge.export.onnx_io import session
from skinedge.export.pruning import PruneConfig, prune_models
from skinedge.models.srgan import IMAGENET_MEAN, IMAGENET_STD, Generator
from skinedge.models.unet import build_segmenter
from skinedge.runtime.manifest import load_models
from skinedge.train.batchnorm import recalibrate_batchnorm
from skinedge.models.checkpoint import save_checkpoint
from skinedge.train.samples import SegSamples, SRSamples
from skinedge.train.sr import degradation_of

SEG_SIZE, LR_SIDE, SCALE = 256, 64, 4


def make_checkpoints(work: Path) -> tuple[str, Path, Path]:
    """Paper-size networks with BN statistics from generated images, saved as skinedge checkpoints."""
    data = work / "data"
    write_synthetic(data, count=80, size=SEG_SIZE, seed=11)
    spec = f"synthetic:{data}"
    dataset = open_dataset(spec)
    split = make_split(dataset, seed=0)
    split_file = work / "split.json"
    digest = write_split(split, split_file)
    record = {"spec": spec, "split_file": str(split_file), "split_sha256": digest}
    train = dataset.subset(split.parts["train"])
    torch.manual_seed(0)
    seg = build_segmenter()
    seg_samples = SegSamples(train, SEG_SIZE, augment=False)
    with torch.no_grad():
        recalibrate_batchnorm(seg, (seg_samples.batch(list(range(i, i + 4)))[0] for i in range(0, 32, 4)))
    io = {"size": SEG_SIZE, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "output": "logits"}
    save_checkpoint(work / "seg.pt", "seg", {"encoder": "efficientnet-b3", "dropout": 0.2},
                    {"model": seg.state_dict()}, io=io, data=record, config={})
    gen = Generator(16)
    sr_samples = SRSamples(train, LR_SIDE * SCALE, degradation_of("bicubic", SCALE), train=False)
    with torch.no_grad():
        recalibrate_batchnorm(gen, (sr_samples.batch(list(range(i, i + 4)))[0] for i in range(0, 32, 4)))
    arch = {"blocks": 16, "features": 64, "scale": SCALE, "bicubic_skip": False}
    save_checkpoint(work / "sr.pt", "sr", arch, {"model": gen.state_dict()}, io={"scale": SCALE},
                    data=record, config={"hr_size": LR_SIDE * SCALE, "degradation": "bicubic"})
    return spec, work / "seg.pt", work / "sr.pt"


def prepare_models(work: Path, sr_ratio: float = 0.5, seg_ratio: float = 0.3, prune_steps: int = 30,
                   calibration_images: int = 24) -> tuple[Path, dict]:
    """Checkpoints → export → prune both → FP16, INT8, pruned INT8 (written even if a gate fails: ``force``)."""
    quiet = lambda *a, **k: None  # noqa: E731
    spec, seg_ckpt, sr_ckpt = make_checkpoints(work)
    models = work / "models"
    export_models(ExportConfig(seg_ckpt, sr_ckpt, models, overwrite=True), log=quiet)
    for net, ratio in (("sr", sr_ratio), ("seg", seg_ratio)):
        prune_models(PruneConfig(models, net, ratio, spec, steps=prune_steps, batch=4), log=quiet)
    gates = {}
    for precision, pruned in (("fp16", False), ("int8", False), ("int8", True)):
        report = calibrate(CalibrateConfig(models, precision, spec, images=calibration_images,
                                           method="entropy", pruned=pruned, force=True), log=quiet)
        gates[f"{precision}{'-pruned' if pruned else ''}"] = report["networks"]
    return models, gates


def p50_ms(run, repeats: int) -> float:
    run()
    run()  # warm-up: allocators, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_network(models: Path, manifest: dict, net: str, eager: torch.nn.Module, x: np.ndarray, repeats: int
                 ) -> list[dict]:
    rows = []
    with torch.no_grad():
        tx = torch.from_numpy(x)
        eager_ms = p50_ms(lambda: eager(tx), repeats)
    params = sum(p.numel() * p.element_size() for p in eager.parameters())
    rows.append({"variant": "PyTorch eager FP32", "p50_ms": eager_ms, "x_eager": 1.0, "mb": params / 1e6,
                 "gate": "—"})
    names = [("fp32", "ORT FP32"), ("fp16", "ORT FP16"), ("int8", "ORT INT8 (TensorRT form)"),
             ("int8-cpu", "ORT INT8 (CPU form)"), ("pruned.fp32", "pruned ORT FP32"),
             ("pruned.int8-cpu", "pruned ORT INT8 (CPU form)")]
    for vname, label in names:
        entry = manifest["networks"][net]["variants"].get(vname)
        if entry is None:
            continue
        sess = session(models / entry["file"])
        feed = {sess.get_inputs()[0].name: x}
        ms = p50_ms(lambda: sess.run(None, feed), repeats)
        gate = entry.get("gate", {})
        rows.append({"variant": label, "file": entry["file"], "p50_ms": ms, "x_eager": eager_ms / ms,
                     "mb": entry["bytes"] / 1e6,
                     "gate": ("pass" if gate.get("passed") else f"FAIL ({gate.get('reason')})") if gate else "—",
                     "form": entry.get("cpu_form", {}).get("form")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--work", type=Path, default=None, help="keep the models here (default: a temp dir)")
    ap.add_argument("--sr-ratio", type=float, default=0.5)
    ap.add_argument("--seg-ratio", type=float, default=0.3)
    ap.add_argument("--prune-steps", type=int, default=30)
    ap.add_argument("--calibration-images", type=int, default=24)
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "precision.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skinedge-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        models, gates = prepare_models(work, args.sr_ratio, args.seg_ratio, args.prune_steps,
                                       args.calibration_images)
        seg_ckpt, sr_ckpt = work / "seg.pt", work / "sr.pt"
        prepared_s = time.perf_counter() - started

        manifest = load_models(models)
        from skinedge.models.load import load_generator, load_segmenter

        seg, _ = load_segmenter(seg_ckpt)
        gen, _ = load_generator(sr_ckpt)
        rng = np.random.default_rng(0)
        seg_x = rng.standard_normal((1, 3, SEG_SIZE, SEG_SIZE)).astype(np.float32)
        sr_x = rng.random((1, 3, LR_SIDE, LR_SIDE), dtype=np.float32)
        results = {
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpus": os.cpu_count(), "torch": torch.__version__,
                        "onnxruntime": __import__("onnxruntime").__version__, "torch_threads": torch.get_num_threads()},
            "command": "python benchmarks/precision.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                    for k, v in vars(args).items() if k != "json"),
            "note": "paper-size networks, random init + BN statistics from generated images; latency is p50 of "
                    f"{args.repeats} single-image runs",
            "prepare_seconds": round(prepared_s, 1),
            "sr_64": time_network(models, manifest, "sr", gen, sr_x, args.repeats),
            "seg_256": time_network(models, manifest, "seg", seg, seg_x, args.repeats),
            "gates": gates,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    for key, title in (("sr_64", "SR generator, 16 blocks, 64×64 input"), ("seg_256", "segmenter, 256×256")):
        print(f"\n{title}\n\n| variant | p50 ms | × eager | size MB | gate |\n|---|---:|---:|---:|---|")
        for r in results[key]:
            label = r["variant"] + (f" [{r['form']}]" if r.get("form") else "")
            print(f"| {label} | {r['p50_ms']:.1f} | {r['x_eager']:.2f} | {r['mb']:.1f} | {r['gate']} |")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
