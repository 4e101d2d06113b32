"""What each data, train, eval and export command does, as library functions: plain arguments in, lines out.

``skinedge.cli`` parses options and calls these; ``skinedge.demo`` calls them too and prints the command line a
user would type. The runtime's commands live with the runtime (:mod:`skinedge.runtime.enhance`,
:mod:`skinedge.runtime.live.command`, :mod:`skinedge.runtime.bench.run`, :mod:`skinedge.runtime.engines.build`).
Each takes ``log`` (one line per call: ``print`` or ``typer.echo``); heavy imports stay inside the functions.
User mistakes raise :class:`~skinedge.errors.SkinedgeError`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from skinedge.errors import SkinedgeError
from skinedge.progress import progress_bar

if TYPE_CHECKING:
    from skinedge.evaluate import EvalConfig
    from skinedge.export.exporter import ExportConfig
    from skinedge.export.pruning import PruneConfig
    from skinedge.train.seg import SegConfig
    from skinedge.train.sr import SRConfig

Log = Callable[[str], None]


# -------------------------------------------------------------------------- data
def data_synth(out: Path, count: int = 32, size: int = 256, seed: int = 0, log: Log = print) -> None:
    """``skinedge data synth``: generated dermoscopy-like images with exact masks."""
    from skinedge.data.generate import write_synthetic

    with progress_bar(count, "generating") as update:
        manifest = write_synthetic(out, count, size, seed, progress=update)
    areas = [item["info"].get("lesion_area", 0.0) for item in manifest["items"]]
    log(f"wrote {count} generated images {size}×{size} (seed {seed}) to {out}; "
        f"lesion area {min(areas):.1%}–{max(areas):.1%}. Not patient data.")
    log(f"read it as synthetic:{out} (or folder:{out})")


def data_check(spec: str, log: Log = print) -> int:
    """``skinedge data check``: prints the report; returns the exit status (1 when any item is unusable)."""
    from skinedge.data import open_dataset
    from skinedge.data.check import check_dataset, format_report

    dataset = open_dataset(spec)
    with progress_bar(len(dataset), "checking") as update:
        report = check_dataset(dataset, progress=update)
    for line in format_report(report):
        log(line)
    return 0 if report.ok else 1


def data_split(spec: str, out: Path, seed: int = 0, strategy: str = "auto", log: Log = print) -> None:
    """``skinedge data split``: a reproducible, group-aware train/val/test split."""
    from skinedge.data import open_dataset
    from skinedge.data.splits import make_split, write_split

    split = make_split(open_dataset(spec), seed=seed, strategy=strategy)  # type: ignore[arg-type]
    digest = write_split(split, out)
    counts = ", ".join(f"{k} {len(v)}" for k, v in split.parts.items())
    log(f"{split.strategy} split of {spec}: {counts} → {out} (sha256 {digest[:12]})")


def data_sheet(spec: str, out: Path, count: int = 16, tile: int = 256, log: Log = print) -> None:
    """``skinedge data sheet``: a contact sheet with the lesion masks outlined."""
    from skinedge.data import open_dataset
    from skinedge.data.sheet import contact_sheet

    shown = contact_sheet(open_dataset(spec), out, count=count, tile=tile)
    log(f"wrote {out} ({len(shown)} images)")


# ------------------------------------------------------------------------- train
def train_seg(cfg: SegConfig, log: Log = print) -> None:
    """``skinedge train seg``."""
    from skinedge.train.seg import train_seg as train

    if cfg.size % 32:
        raise SkinedgeError(f"--size must be a multiple of 32 (the U-Net downsamples 5 times), got {cfg.size}; "
                            f"try {max(32, round(cfg.size / 32) * 32)}")
    _print_result("seg", train(cfg), cfg.out, log)


def train_sr(cfg: SRConfig, log: Log = print) -> None:
    """``skinedge train sr``."""
    from skinedge.train.sr import train_sr as train

    for name, result in train(cfg).items():
        _print_result(f"sr-{name}", result, cfg.out, log)


def _print_result(prefix: str, result: dict, out: Path, log: Log) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return
    best = result.get("best") or {}
    shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if isinstance(v, float))
    log(f"{prefix}: {result.get('steps', 0)} steps; best validation: {shown or 'none'}")
    log(f"checkpoints: {out / (prefix + '-best.pt')} (best), {out / (prefix + '-last.pt')} (resumable)")


# ------------------------------------------------------------------------- eval, export
def evaluate(cfg: EvalConfig, log: Log = print) -> None:
    """``skinedge eval``: the paper's tables, printed and written as JSON, Markdown and HTML."""
    from skinedge.evaluate import evaluate as run
    from skinedge.report import markdown_tables, write_report

    report = run(cfg)
    paths = write_report(report, cfg.out)
    for line in markdown_tables(report):
        log(line)
    log(f"\nreport: {paths['html']} (also {paths['md'].name}, {paths['json'].name}); {report['lpips']}")


def evaluate_models(models: Path, data: str | None, out: Path, split: Path | None = None, backend: str = "auto",
                    precision: str = "auto", limit: int | None = None, side: int = 512, fidelity=None,
                    log: Log = print) -> None:
    """``skinedge eval --models``: the deployed variants on held-out photos, through the runtime."""
    from skinedge.evaluate_models import ModelsEvalConfig, evaluate_models as run, write_models_report
    from skinedge.model_card import metrics_section
    from skinedge.runtime.manifest import load_models, network

    if data is None:
        data = network(load_models(models), "seg").get("source", {}).get("data", {}).get("spec")
        if not data:
            raise SkinedgeError(f"{models}: its models.json names no training data: pass --data SPEC")
    report = run(ModelsEvalConfig(models, data, out, split, backend, precision, limit, side, fidelity), log=log)
    lines = [f"# {report['summary']}", "", *metrics_section(report)]
    paths = write_models_report(report, out, "\n".join(lines) + "\n")
    for line in lines:
        log(line)
    log(f"\nreport: {paths['md']} (every photo: {paths['json'].name})")


def export(cfg: ExportConfig, log: Log = print) -> None:
    """``skinedge export``: both checkpoints to ONNX, checked against PyTorch."""
    from skinedge.export.exporter import export_models

    export_models(cfg, log=log)
    log(f"models: {cfg.out / 'seg.onnx'}, {cfg.out / 'sr.onnx'}, {cfg.out / 'models.json'}")


def prune(cfg: PruneConfig, log: Log = print) -> None:
    """``skinedge prune``: structured channel pruning of one network, fine-tuned and re-exported."""
    from skinedge.export.pruning import prune_models, prune_table

    report = prune_models(cfg, log=log)
    log("\n" + prune_table(report))
    log(f"pruned model: {cfg.models / report['file']} (calibrate it with `skinedge calibrate --pruned`)")


def calibrate(models: Path, precision: str, data: str, net: str = "both", profile: Path | None = None,
              method: str | None = None, images: int | None = None, pruned: bool | None = None,
              gate_limit: int | None = None, force: bool = False, max_delta_e: float | None = None,
              log: Log = print) -> None:
    """``skinedge calibrate``: FP16 or INT8 variants behind accuracy gates; options default to the profile's.

    Raises:
        SkinedgeError: a bad option, or a variant that failed its gate (unless ``force``).
    """
    from skinedge.export.calibrate import CalibrateConfig, gate_table
    from skinedge.export.calibrate import calibrate as run
    from skinedge.export.gates import Gates
    from skinedge.export.profiles import load_profile

    nets = {"seg": ("seg",), "sr": ("sr",), "both": ("seg", "sr")}.get(net)
    if nets is None:
        raise SkinedgeError(f"--net must be seg, sr or both, not {net!r}")
    prof = load_profile(profile) if profile else None
    if pruned is None:
        pruned = bool(prof and any(prof.net(n).pruning_ratio > 0 for n in nets))
    cfg = CalibrateConfig(models, precision, data, nets,
                          method or (prof.calibration_method if prof else "entropy"),
                          images or (prof.calibration_images if prof else 64), pruned, force, gate_limit,
                          prof.gates if prof else Gates())
    if max_delta_e is not None:
        cfg.gates = dataclasses.replace(cfg.gates, delta_e_over_bicubic_max=max_delta_e)
    report = run(cfg, log=log)
    log("\n" + gate_table(report))
    if not report["passed"] and not force:
        raise SkinedgeError("a variant failed its accuracy gate and was not written (see the table above; "
                            "--force writes it marked failing)")
