"""``skinedge demo``: the whole chain on generated data, on the CPU.

The demo is a list of library calls, each the one its CLI command makes, run in
this process and printed as the command a user would type (:func:`demo_steps`).
It never goes through the CLI's parser: ``skinedge.cli`` imports this module, not
the other way round.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import typer

from skinedge.errors import SkinedgeError


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo; ``FULL`` fits 8 minutes on 2 CPU cores, ``TINY`` is a smoke test.

    Training is budgeted by wall time *and* by steps, whichever runs out first (the learning rate anneals to
    whichever end comes first): a slow CPU stops at the minutes, a fast one at the steps, so the demo keeps its
    length whatever the machine."""

    count: int
    size: int
    seg_epochs: int
    seg_minutes: float
    sr_steps: int
    sr_minutes: float
    sr_blocks: int
    sr_hr: int
    calibration_images: int
    prune_steps: int
    live_seconds: float  # the generated clip `run` plays in real time
    live_width: int
    live_height: int
    bench_frames: int
    bench_live_seconds: float  # bench's live rows (per-frame, temporal reuse, two loops; flicker)


FULL = DemoPlan(count=240, size=128, seg_epochs=12, seg_minutes=1.25, sr_steps=300, sr_minutes=2.5, sr_blocks=8,
                sr_hr=64, calibration_images=32,
                prune_steps=60, live_seconds=6.0, live_width=640, live_height=480, bench_frames=6,
                bench_live_seconds=2.0)
TINY = DemoPlan(count=24, size=64, seg_epochs=1, seg_minutes=1.0, sr_steps=2, sr_minutes=1.0, sr_blocks=2,
                sr_hr=32, calibration_images=4,
                prune_steps=2, live_seconds=1.0, live_width=160, live_height=120, bench_frames=2,
                bench_live_seconds=0.2)
# Steps whose failure is a result to show, not a reason to stop: an accuracy gate refusing a variant.
GATED = "calibrate"
SEED = 0


Step = tuple[str, "list[str] | None", Callable[[], "int | None"]]  # what it shows, its CLI line, the call


def demo_steps(out: Path, plan: DemoPlan = FULL) -> list[Step]:
    """(what it shows, the equivalent CLI argv or None for a small in-process step, the library call) for each
    stage the demo runs, in order. The call is what the CLI runs for that argv (:mod:`skinedge.commands` and the
    runtime's commands); the argv is printed, never parsed."""
    from skinedge import commands
    from skinedge.data.video import write_moving_lesion_clip
    from skinedge.evaluate import EvalConfig
    from skinedge.export.exporter import ExportConfig
    from skinedge.export.pruning import PruneConfig
    from skinedge.runtime.bench.run import bench_command
    from skinedge.runtime.enhance import enhance_command
    from skinedge.runtime.live.command import run_command
    from skinedge.train.seg import SegConfig
    from skinedge.train.sr import SRConfig

    log = typer.echo
    data, run, models = out / "data", out / "run", out / "models"
    spec = f"synthetic:{data}"
    images = str(plan.calibration_images)
    seg_ckpt, sr_ckpt = run / "seg-best.pt", run / "sr-pretrain-best.pt"
    heldout, enhanced, report = out / "heldout.txt", out / "report" / "enhanced", out / "report"
    clip = out / "clip.avi"
    return [
        ("generate dermoscopy-like images with exact masks",
         ["data", "synth", str(data), "--count", str(plan.count), "--size", str(plan.size),
          "--seed", str(SEED)],
         lambda: commands.data_synth(data, plan.count, plan.size, SEED, log=log)),
        ("check every image and mask", ["data", "check", spec], lambda: commands.data_check(spec, log=log)),
        ("write a patient-level 70/15/15 split",
         ["data", "split", spec, "--out", str(run / "split.json"), "--seed", str(SEED)],
         lambda: commands.data_split(spec, run / "split.json", SEED, log=log)),
        ("draw a contact sheet of the data with masks outlined",
         ["data", "sheet", spec, "--out", str(out / "contact-sheet.png")],
         lambda: commands.data_sheet(spec, out / "contact-sheet.png", log=log)),
        (f"train the segmenter (EfficientNet-B3 U-Net, random init) for {plan.seg_minutes:g} min at most",
         ["train", "seg", "--data", spec, "--out", str(run), "--size", str(plan.size), "--batch", "8",
          "--lr", "1e-3", "--schedule", "cosine", "--epochs", str(plan.seg_epochs), "--max-minutes",
          f"{plan.seg_minutes:g}", "--bn-batches", "16", "--device", "cpu", "--seed", str(SEED)],
         lambda: commands.train_seg(SegConfig(data=spec, out=run, size=plan.size, batch=8, lr=1e-3,
                                              schedule="cosine", epochs=plan.seg_epochs,
                                              max_minutes=plan.seg_minutes, bn_batches=16, device="cpu",
                                              seed=SEED), log=log)),
        (f"pre-train a reduced SR generator ({plan.sr_blocks} residual blocks, pixel L1 loss) for "
         f"{plan.sr_minutes:g} min at most",
         ["train", "sr", "--data", spec, "--out", str(run), "--phase", "pretrain", "--blocks",
          str(plan.sr_blocks), "--hr-size", str(plan.sr_hr), "--batch", "16", "--lr", "1e-3",
          "--schedule", "cosine", "--pixel-loss", "l1", "--max-steps", str(plan.sr_steps), "--max-minutes",
          f"{plan.sr_minutes:g}", "--val-limit", "16", "--device", "cpu", "--seed", str(SEED)],
         lambda: commands.train_sr(SRConfig(data=spec, out=run, phase="pretrain", blocks=plan.sr_blocks,
                                            hr_size=plan.sr_hr, batch=16, lr=1e-3, schedule="cosine",
                                            pixel_loss="l1", max_steps=plan.sr_steps,
                                            max_minutes=plan.sr_minutes, val_limit=16, device="cpu",
                                            seed=SEED), log=log)),
        ("evaluate: the paper's three tables on the held-out test split",
         ["eval", "--data", spec, "--seg", str(seg_ckpt), "--sr", str(sr_ckpt), "--out", str(report),
          "--device", "cpu"],
         lambda: commands.evaluate(EvalConfig(spec, seg_ckpt, sr_ckpt, report, device="cpu"), log=log)),
        ("export both networks to ONNX and check them against PyTorch",
         ["export", "--seg", str(seg_ckpt), "--sr", str(sr_ckpt), "--out", str(models)],
         lambda: commands.export(ExportConfig(seg_ckpt, sr_ckpt, models), log=log)),
        ("FP16 variants, gated against FP32 on the held-out split",
         ["calibrate", "--models", str(models), "--precision", "fp16", "--data", spec],
         lambda: commands.calibrate(models, "fp16", spec, log=log)),
        ("INT8 Q/DQ variants (TensorRT form and fastest CPU form) from stratified calibration images, gated",
         ["calibrate", "--models", str(models), "--precision", "int8", "--data", spec, "--images", images,
          "--method", "entropy"],
         lambda: commands.calibrate(models, "int8", spec, images=plan.calibration_images, method="entropy",
                                    log=log)),
        ("prune 30% of the SR generator's channels, fine-tune it distilled from the unpruned one",
         ["prune", "--models", str(models), "--net", "sr", "--ratio", "0.3", "--data", spec,
          "--steps", str(plan.prune_steps)],
         lambda: commands.prune(PruneConfig(models, "sr", 0.3, spec, steps=plan.prune_steps), log=log)),
        ("INT8 of the pruned SR generator, gated",
         ["calibrate", "--models", str(models), "--precision", "int8", "--data", spec, "--net", "sr", "--pruned",
          "--images", images, "--method", "entropy"],
         lambda: commands.calibrate(models, "int8", spec, net="sr", pruned=True, images=plan.calibration_images,
                                    method="entropy", log=log)),
        ("list the held-out test images", None, lambda: write_heldout_list(data, run / "split.json", heldout)),
        ("enhance the held-out images in the lean runtime (no torch): per network the fastest backend and "
         "variant the accuracy gates allowed, measured on this CPU (ONNX Runtime or OpenVINO)",
         ["enhance", f"@{heldout}", "--models", str(models), "--out", str(enhanced), "--backend", "auto",
          "--precision", "auto"],
         lambda: enhance_command([f"@{heldout}"], models, enhanced, "auto", "auto", log=log)),
        ("link the enhanced panels from the report", None, lambda: link_gallery(report)),
        ("make a clip of a hand-held dermatoscope closing in on a lesion (the stand-in for a camera)",
         ["data", "video", str(clip), "--seconds", f"{plan.live_seconds:g}", "--width", str(plan.live_width),
          "--height", str(plan.live_height)],
         lambda: write_moving_lesion_clip(clip, plan.live_seconds, 30.0, plan.live_width, plan.live_height, SEED,
                                          log=log)),
        ("live: the clip in real time (frames dropped when the pipeline is busy, like a camera), headless and "
         "recorded: every frame shown, the SR loop beside the display (SR age in the summary)",
         ["run", "--source", str(clip), "--models", str(models), "--realtime", "--no-display", "--record",
          str(out / "recording")],
         lambda: run_command(None, str(clip), models, realtime=True, no_display=True, record=out / "recording",
                             log=log)),
        ("bench: per-stage latency of torch FP32 (the paper's pipeline) against auto, and the live rows",
         ["bench", "--models", str(models), "--backend", "torch", "--backend", "auto", "--precision", "auto",
          "--frames", str(plan.bench_frames), "--warmup", "1", "--size", str(plan.size), "--live-seconds",
          f"{plan.bench_live_seconds:g}", "--json", str(report / "bench.json"), "--plot", str(report / "bench.png")],
         lambda: bench_command(models, ["torch", "auto"], ["auto"], [], plan.bench_frames, 1, None, plan.size, None,
                               report / "bench.json", report / "bench.png", False, log=log,
                               live_seconds=plan.bench_live_seconds)),
    ]


def write_heldout_list(data: Path, split_file: Path, out: Path) -> None:
    """The test split's image files, one per line (an ``@LIST`` for ``skinedge enhance``)."""
    from skinedge.atomic import write_bytes_atomic
    from skinedge.data.splits import read_split

    ids = read_split(split_file).parts["test"]
    write_bytes_atomic(out, "".join(f"{data / 'images' / (i + '.png')}\n" for i in ids).encode())
    typer.echo(f"wrote {out} ({len(ids)} images)")


def link_gallery(report: Path) -> None:
    """Add a link to ``enhanced/index.html`` at the end of ``report.html``."""
    from skinedge.atomic import write_bytes_atomic

    page = report / "report.html"
    text = page.read_text(encoding="utf-8")
    link = ("<h2>Enhanced by the runtime</h2><p><a href='enhanced/index.html'>Panels of every held-out image</a>"
            ": the fastest gate-approved variants on this CPU, plain ×4 up-scale beside skinedge's output.</p>")
    if "enhanced/index.html" not in text:
        text = text.replace("</body>", link + "</body>") if "</body>" in text else text + link
        write_bytes_atomic(page, text.encode("utf-8"))
    typer.echo(f"report: {page} links {report / 'enhanced' / 'index.html'}")


def run_demo(out: Path, plan: DemoPlan = FULL) -> None:
    """Run :func:`demo_steps` in order, printing each step's CLI line; stop at the first failing step."""
    typer.echo("skinedge demo: everything below runs on generated images (not patient data); "
               "networks, when trained, start from random initialisation (no pretrained weights).")
    started = time.perf_counter()
    for number, (what, argv, call) in enumerate(demo_steps(out, plan), start=1):
        typer.echo(f"\n[{number}] {what}" + (f"\n$ skinedge {' '.join(argv)}" if argv else ""))
        step_start = time.perf_counter()
        try:
            code = call()
        except SkinedgeError as exc:
            if not argv or argv[0] != GATED:
                raise
            typer.echo(f"(the gate refused a variant, as it should when accuracy is lost: {exc})")
            code = 0
        if isinstance(code, int) and code != 0:
            raise SkinedgeError(f"demo step {number} ({what}) failed with exit status {code}")
        typer.echo(f"(step {number}: {time.perf_counter() - step_start:.0f} s)")
    typer.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}/")
    typer.echo(f"report: {out / 'report' / 'report.html'}  (tables: {out / 'report' / 'report.md'})")
    typer.echo("reminder: generated data and random-initialised networks, trained for minutes on a CPU; "
               "the numbers show the chain works, not what the paper's models reach.")
    typer.echo(f"models: {out / 'models' / 'models.json'}; gate reports in {out / 'models' / 'reports'}/")
    typer.echo(f"enhanced held-out images: {out / 'report' / 'enhanced' / 'index.html'}")
    typer.echo(f"live run: {out / 'clip.avi'} → {out / 'recording'}/ (raw-*.mkv, enhanced-*.mkv, frames-*.jsonl); "
               f"bench: {out / 'report' / 'bench.json'} and bench.png")
    typer.echo("not in the demo: TensorRT engines and the CUDA pipeline (they need a GPU).")
