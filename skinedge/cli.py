"""The ``skinedge`` command line: thin, it parses and calls library functions.

User mistakes surface as :class:`~skinedge.errors.SkinedgeError` and are printed
by :func:`main` as one line on stderr with a non-zero exit; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Optional

import typer

import skinedge
from skinedge.errors import SkinedgeError

app = typer.Typer(
    help="Find the skin lesion, show it sharper, in real time (SkinSegmentSRGAN).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Generate, check, split and look at datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train the segmenter (seg) or the SR generator (sr).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")

# Environment problems the user fixes (space, permissions), not bugs.
USER_OS_ERRORS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.ENOTDIR,
                  errno.EISDIR, errno.ENOENT}
SPEC_HELP = ("dataset as KIND:PATH, KIND one of isic2018, ph2, derm7pt, folder, synthetic, pool "
             "(e.g. isic2018:/data/ISIC2018)")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"skinedge {skinedge.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """skinedge: segmentation → masking → 4× super-resolution of skin lesions."""


# -------------------------------------------------------------------------- data
@data_app.command("synth")
def data_synth(
    out: Path = typer.Argument(..., help="output folder (new, empty, or an earlier synth output)"),
    count: int = typer.Option(32, "--count", "-n", help="number of images"),
    size: int = typer.Option(256, "--size", help="image side in pixels (32-4096)"),
    seed: int = typer.Option(0, "--seed", help="random seed; same seed = byte-identical files"),
) -> None:
    """Generate dermoscopy-like images with exact lesion masks (folder layout + manifest)."""
    from skinedge.commands import data_synth as run

    run(out, count, size, seed, log=typer.echo)


@data_app.command("check")
def data_check(spec: str = typer.Argument(..., help=SPEC_HELP)) -> None:
    """Decode every image and mask; print counts, sizes, mask coverage and every problem.

    Exit status 1 when any item is unusable.
    """
    from skinedge.commands import data_check as run

    status = run(spec, log=typer.echo)
    if status:
        raise typer.Exit(status)


@data_app.command("split")
def data_split(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="split file to write (JSON)"),
    seed: int = typer.Option(0, "--seed", help="seed of the random group split"),
    strategy: str = typer.Option("auto", "--strategy",
                                 help="auto | official (the layout's own split) | random (70/15/15 by group)"),
) -> None:
    """Write a reproducible, group-aware (patient-level) train/val/test split."""
    from skinedge.commands import data_split as run

    run(spec, out, seed, strategy, log=typer.echo)


@data_app.command("sheet")
def data_sheet(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write"),
    count: int = typer.Option(16, "--count", "-n", help="number of images shown"),
    tile: int = typer.Option(256, "--tile", help="tile side in pixels"),
) -> None:
    """Save a contact sheet: images in a grid with the lesion mask outlined in green."""
    from skinedge.commands import data_sheet as run

    run(spec, out, count, tile, log=typer.echo)


@data_app.command("video")
def data_video(
    out: Path = typer.Argument(..., help="clip to write, ending in .avi (MJPG); its info goes next to it as .json"),
    seconds: float = typer.Option(10.0, "--seconds", help="clip length"),
    fps: float = typer.Option(30.0, "--fps", help="frames per second"),
    width: int = typer.Option(640, "--width", help="frame width in pixels (32-4096)"),
    height: int = typer.Option(480, "--height", help="frame height in pixels (32-4096)"),
    seed: int = typer.Option(0, "--seed", help="random seed; same seed = same frames"),
) -> None:
    """Generate a video of a hand-held dermatoscope closing in on a lesion (a stand-in camera for run and bench)."""
    from skinedge.data.video import write_moving_lesion_clip as run

    run(out, seconds, fps, width, height, seed, log=typer.echo)


# ------------------------------------------------------------------------- train
RUN_HELP = "run folder: checkpoints <net>-last.pt (resumable) and <net>-best.pt, logs, split.json"
SPLIT_HELP = "split file from `skinedge data split` (default: RUN/split.json, made if absent)"


@train_app.command("seg")
def train_seg_command(
    data: str = typer.Option(..., "--data", help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help=RUN_HELP),
    split: Optional[Path] = typer.Option(None, "--split", help=SPLIT_HELP),
    encoder: str = typer.Option("efficientnet-b3", "--encoder", help="smp encoder name"),
    encoder_weights: str = typer.Option("none", "--encoder-weights", help="none | imagenet | PATH to an encoder state dict"),
    dropout: float = typer.Option(0.2, "--dropout", help="spatial dropout in encoder skips and decoder blocks"),
    size: int = typer.Option(256, "--size", help="input side (multiple of 32)"),
    batch: int = typer.Option(16, "--batch"),
    epochs: int = typer.Option(50, "--epochs"),
    lr: float = typer.Option(1e-4, "--lr"),
    schedule: str = typer.Option("constant", "--schedule", help="constant (paper) | cosine (decay to 1% over the run)"),
    seed: int = typer.Option(0, "--seed"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after N optimizer steps"),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="stop after N minutes"),
    bn_batches: int = typer.Option(32, "--bn-batches", help="batches to re-estimate BN statistics before each validation (0: off)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    resume: bool = typer.Option(False, "--resume", help="continue RUN/seg-last.pt"),
) -> None:
    """Train the U-Net segmenter (BCE + Dice, Adam 1e-4, batch 16, 50 epochs, 256², paper §4.2.1)."""
    from skinedge.commands import train_seg
    from skinedge.train.seg import SegConfig

    train_seg(SegConfig(
        data=data, out=out, split=split, encoder=encoder, encoder_weights=encoder_weights, dropout=dropout,
        size=size, batch=batch, epochs=epochs, lr=lr, schedule=schedule, seed=seed, max_steps=max_steps,
        max_minutes=max_minutes, device=device, resume=resume, bn_batches=bn_batches), log=typer.echo)


@train_app.command("sr")
def train_sr_command(
    data: str = typer.Option(..., "--data", help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help=RUN_HELP),
    split: Optional[Path] = typer.Option(None, "--split", help=SPLIT_HELP),
    phase: str = typer.Option("both", "--phase", help="pretrain (SRResNet, pixel loss) | gan | both"),
    blocks: int = typer.Option(16, "--blocks", help="residual blocks"),
    features: int = typer.Option(64, "--features", help="trunk channels"),
    bicubic_skip: bool = typer.Option(False, "--bicubic-skip", help="NOT in the paper: output = bicubic(LR) + G(LR)"),
    hr_size: int = typer.Option(256, "--hr-size", help="HR crop side (LR = HR / 4)"),
    batch: int = typer.Option(8, "--batch"),
    epochs: int = typer.Option(100, "--epochs", help="epochs per phase"),
    lr: float = typer.Option(1e-4, "--lr"),
    schedule: str = typer.Option("constant", "--schedule", help="constant (paper) | cosine (decay to 1% over the run)"),
    pixel_loss: str = typer.Option("mse", "--pixel-loss", help="mse | l1 (pretrain, and gan without VGG)"),
    vgg_weights: str = typer.Option("none", "--vgg-weights", help="PATH to torchvision vgg19 weights, or none (pixel content loss)"),
    degradation: str = typer.Option("default", "--degradation", help="default (blur+noise+JPEG) | bicubic"),
    seed: int = typer.Option(0, "--seed"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop each phase after N steps"),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="stop each phase after N minutes"),
    val_limit: Optional[int] = typer.Option(None, "--val-limit", help="validate on at most N images"),
    init: Optional[Path] = typer.Option(None, "--init", help="generator checkpoint to start the gan phase from"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    resume: bool = typer.Option(False, "--resume", help="continue RUN/sr-<phase>-last.pt"),
) -> None:
    """Train the SRGAN generator: pretrain (MSE) then GAN (content + 1e-3 adversarial), paper §4.2.2."""
    from skinedge.commands import train_sr
    from skinedge.train.sr import SRConfig

    train_sr(SRConfig(
        data=data, out=out, split=split, phase=phase, blocks=blocks, features=features,
        bicubic_skip=bicubic_skip, hr_size=hr_size, batch=batch, epochs=epochs, lr=lr, schedule=schedule,
        pixel_loss=pixel_loss, vgg_weights=vgg_weights, degradation=degradation, seed=seed,
        max_steps=max_steps, max_minutes=max_minutes, device=device, resume=resume, init=init,
        val_limit=val_limit), log=typer.echo)



@train_app.command("all")
def train_all_command(
    data: list[str] = typer.Option(..., "--data", metavar="SPEC", help=SPEC_HELP + "; repeat to pool several sets"),
    out: Path = typer.Option(..., "--out", "-o", help="models directory to make (new or an earlier train-all run, which is continued)"),
    minutes: float = typer.Option(60.0, "--minutes", help="wall-clock budget of the whole command: reading the data, training both networks, export, calibration and the report"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed", help="seed of the split and the training"),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes that build batches during a step (default: 1 on a CPU, up to 8 beside a GPU)"),
    gate_images: int = typer.Option(24, "--gate-images", help="held-out images each FP16/INT8 gate measures"),
    keep_cache: bool = typer.Option(False, "--keep-cache", help="keep the decoded-image cache (OUT/train/cache) at the end"),
) -> None:
    """Real data to a validated models directory: split, both networks, export, FP16/INT8 behind gates, report, model card.

    Resumable: after Ctrl-C or a kill, run the same command again; finished stages are not repeated.
    """
    from skinedge.train.all.command import AllConfig, train_all

    train_all(AllConfig(data=data, out=out, minutes=minutes, device=device, seed=seed, workers=workers,
                        gate_images=gate_images, keep_cache=keep_cache), log=typer.echo)



PROJECTION_HELP = "data-consistency steps after SR, so that down-scaling the output gives back the camera's pixels (0: off)"
CHROMA_HELP = "camera: colour from the camera, luma detail from the generator | generator: the generator's colour"
SURROUND_HELP = "what SR sees around the lesion: frame (the real image, no halo) | black (the paper's masking)"
SR_BUDGET_HELP = ("LR pixels the generator may take per frame; larger ROIs are reduced first: auto (measured here for "
                  "--target-fps) | none | N")


def fidelity_option(projection: int, chroma: str, surround: str):
    """The runtime's :class:`Fidelity` from CLI options; a bad value is one line."""
    from skinedge.runtime.pipeline.projection import Fidelity

    try:
        return Fidelity(projection, chroma, surround)
    except ValueError as exc:
        raise SkinedgeError(str(exc)) from None


@app.command("eval")
def evaluate_command(
    data: Optional[str] = typer.Option(None, "--data", help=SPEC_HELP + " (with --models: default, the models' own training data)"),
    models: Optional[Path] = typer.Option(None, "--models", help="score a models directory's deployed variants through the runtime (ONNX Runtime / OpenVINO, INT8 included); no checkpoints needed"),
    backend: str = typer.Option("auto", "--backend", help="with --models: auto | onnxruntime | openvino | tensorrt | torch"),
    precision: str = typer.Option("auto", "--precision", help="with --models: auto | fp32 | fp16 | int8 | int8-cpu | int8-ov ..."),
    seg: Optional[Path] = typer.Option(None, "--seg", help="segmenter checkpoint (RUN/seg-best.pt); the paper's tables"),
    sr: Optional[Path] = typer.Option(None, "--sr", help="SR generator checkpoint (RUN/sr-gan-best.pt or sr-pretrain-best.pt)"),
    out: Path = typer.Option(..., "--out", "-o", help="report folder: report.json, report.md (and report.html for checkpoints)"),
    split: Optional[Path] = typer.Option(None, "--split", help="split file (default: the segmenter's, else a new seeded one)"),
    degradation: str = typer.Option("default", "--degradation", help="checkpoints: default (blur+noise+JPEG) | bicubic; --models scores both"),
    limit: Optional[int] = typer.Option(None, "--limit", help="evaluate at most N test images"),
    panels: int = typer.Option(6, "--panels", help="cases shown with image panels in report.html"),
    max_side: int = typer.Option(1024, "--max-side", help="larger test images are first shrunk to this side (--models: 512 unless given)"),
    no_lpips: bool = typer.Option(False, "--no-lpips", help="skip LPIPS"),
    context: int = typer.Option(4, "--context", help="LR pixels of image kept around the predicted lesion when masking before SR"),
    projection: int = typer.Option(3, "--projection", help="data-consistency steps of the skinedge rows (0: off)"),
    chroma: str = typer.Option("camera", "--chroma", help="camera | generator: the skinedge rows' colour"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Held-out scores: of a models directory as deployed (--models), or the paper's Tables 1-3 of two checkpoints."""
    fidelity = fidelity_option(projection, chroma, "frame")
    if models is not None:
        from skinedge.commands import evaluate_models

        evaluate_models(models, data, out, split, backend, precision, limit,
                        max_side if max_side != 1024 else 512, fidelity, log=typer.echo)
        return
    if seg is None or sr is None or data is None:
        raise SkinedgeError("eval needs --models DIR, or --data with --seg and --sr checkpoints")
    from skinedge.commands import evaluate
    from skinedge.evaluate import EvalConfig

    evaluate(EvalConfig(data, seg, sr, out, split, degradation, limit, panels, max_side, device, not no_lpips,
                        context, fidelity), log=typer.echo)


@app.command("export")
def export_command(
    seg: Path = typer.Option(..., "--seg", help="segmenter checkpoint (RUN/seg-best.pt)"),
    sr: Path = typer.Option(..., "--sr", help="SR generator checkpoint (RUN/sr-gan-best.pt or sr-pretrain-best.pt)"),
    out: Path = typer.Option(..., "--out", "-o", help="models directory: seg.onnx, sr.onnx, models.json"),
    data: Optional[str] = typer.Option(None, "--data", help="images for the parity check (default: the segmenter's training data); " + SPEC_HELP),
    images: int = typer.Option(8, "--images", help="images used for the parity check"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace models already in --out (and drop their variants)"),
) -> None:
    """Export both checkpoints to ONNX (MODELS/ with models.json), checked against PyTorch."""
    from skinedge.commands import export
    from skinedge.export.exporter import ExportConfig

    export(ExportConfig(seg, sr, out, data, images, overwrite), log=typer.echo)


@app.command("prune")
def prune_command(
    models: Path = typer.Option(..., "--models", help="models directory written by `skinedge export`"),
    net: str = typer.Option(..., "--net", help="seg | sr"),
    ratio: float = typer.Option(..., "--ratio", help="share of channels removed per layer group, in (0, 0.9]"),
    data: str = typer.Option(..., "--data", help="fine-tune (train split) and measure (test split) on this; " + SPEC_HELP),
    steps: int = typer.Option(200, "--steps", help="fine-tune steps after pruning (0: none)"),
    batch: int = typer.Option(8, "--batch", help="fine-tune batch size"),
    lr: float = typer.Option(1e-4, "--lr", help="fine-tune learning rate"),
    distill: bool = typer.Option(True, "--distill/--no-distill", help="also learn the unpruned network's outputs"),
    gate_limit: Optional[int] = typer.Option(None, "--gate-limit", help="measure accuracy on at most N test images"),
) -> None:
    """Structured channel pruning of one network, fine-tune, re-export (variant pruned.fp32)."""
    from skinedge.commands import prune
    from skinedge.export.pruning import PruneConfig

    prune(PruneConfig(models, net, ratio, data, steps, batch, lr, distill, gate_limit), log=typer.echo)


@app.command("build-engines")
def build_engines_cli(
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the engines, their manifests and the timing cache"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="build profile (export/*.toml); default: FP16 both"),
    rebuild: bool = typer.Option(False, "--rebuild", help="rebuild even engines whose manifest matches"),
) -> None:
    """Build TensorRT engines from a models directory and a build profile (needs TensorRT 10.3+ and a GPU)."""
    from skinedge.runtime.engines.build import build_engines_command

    build_engines_command(models, out, profile, rebuild, log=typer.echo)


@app.command("run")
def run_cli(
    camera: Optional[int] = typer.Option(None, "--camera", help="camera index (V4L2/USB through OpenCV)"),
    source: Optional[str] = typer.Option(None, "--source", help="csi://N | /dev/videoN | rtsp(s)://... | http(s)://... | video file | image folder or glob"),
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | openvino | tensorrt | torch"),
    precision: str = typer.Option("auto", "--precision", help="auto (fastest the gates allow) | fp32 | fp16 | int8 | int8-cpu | int8-ov | pruned.*"),
    mode: str = typer.Option("roi", "--mode", help="roi: the lesion region ×4 | full: the whole frame ×4"),
    engines: Optional[Path] = typer.Option(None, "--engines", help="TensorRT engines (skinedge build-engines)"),
    record: Optional[Path] = typer.Option(None, "--record", help="folder for raw + enhanced video (MKV, real frame times) in wall-clock segments, each with its frame log"),
    record_keep: Optional[str] = typer.Option(None, "--record-keep", help="with --record: keep at most this much, deleting the oldest closed segments first: a size (50MB, 2GB) or a duration (30min, 12h, 7d)"),
    segment_seconds: float = typer.Option(10.0, "--segment-seconds", help="with --record: close a segment every N seconds of wall time (a kill loses at most the open one)"),
    serve: Optional[str] = typer.Option(None, "--serve", help="web viewer at HOST:PORT (PORT alone: 127.0.0.1)"),
    no_display: bool = typer.Option(False, "--no-display", help="no window (headless)"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="stop after N frames"),
    width: Optional[int] = typer.Option(None, "--width", help="capture width"),
    height: Optional[int] = typer.Option(None, "--height", help="capture height"),
    fps: Optional[float] = typer.Option(None, "--fps", help="capture frame rate"),
    realtime: bool = typer.Option(False, "--realtime", help="play files at their frame rate, dropping frames like a camera"),
    projection: int = typer.Option(3, "--projection", help=PROJECTION_HELP),
    chroma: str = typer.Option("camera", "--chroma", help=CHROMA_HELP),
    surround: str = typer.Option("frame", "--surround", help=SURROUND_HELP),
    sr_budget: str = typer.Option("auto", "--sr-budget", help=SR_BUDGET_HELP),
    target_fps: float = typer.Option(10.0, "--target-fps", help="frame rate the auto SR budget is sized for (with --sr-loop: the SR loop's; the view keeps the camera's)"),
    sr_loop: bool = typer.Option(True, "--sr-loop/--no-sr-loop", " /--sync", help="two loops (--sync or --no-sr-loop: one loop, each frame waits for its SR): show every camera frame, with segmenter and generator on their own thread and their newest result moved with the camera and projected onto each frame"),
    max_sr_age: float = typer.Option(250.0, "--max-sr-age", help="with --sr-loop: the oldest SR shown, in ms (older: the bicubic up-scale)"),
    sr_threads: int = typer.Option(0, "--sr-threads", help="with --sr-loop: threads of each network in the SR loop (0: all cores but one)"),
    reuse: bool = typer.Option(True, "--reuse/--no-reuse", help="with --no-sr-loop: temporal reuse: track the mask between segmenter runs, show the last SR again while the lesion stays still"),
    seg_every: int = typer.Option(3, "--seg-every", help="with --no-sr-loop --reuse: run the segmenter at least every N frames"),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="the web viewer's secret, from a file only you can read (else $SKINEDGE_VIEW_TOKEN; off 127.0.0.1 without either: a new one, printed once)"),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate chain: serve the viewer over HTTPS"),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key for --tls-cert"),
    max_viewers: Optional[int] = typer.Option(None, "--max-viewers", help="concurrent viewer streams (default 4); more are refused"),
    watchdog: bool = typer.Option(False, "--watchdog", help="under systemd (Type=notify, WatchdogSec=): READY=1 at the first frame, WATCHDOG=1 only while frames flow, so a hung run is restarted"),
) -> None:
    """Live: camera or stream in, enhanced view out (window, file, web viewer).

    Exit status: 0 when the source ended (or --max-frames, or the window was closed), 130 on Ctrl-C,
    143 on SIGTERM (both close the recording first), 1 on an error or a capture that failed.
    """
    from skinedge.runtime.live.command import run_command
    from skinedge.runtime.live.loop import EXIT_CODES

    fidelity = fidelity_option(projection, chroma, surround)
    summary = run_command(camera, source, models, backend, precision, mode, engines, record, serve, no_display,
                          max_frames, width, height, fps, realtime, log=typer.echo, fidelity=fidelity,
                          sr_budget=sr_budget, target_fps=target_fps, reuse=reuse, seg_every=seg_every,
                          token_file=token_file, tls_cert=tls_cert, tls_key=tls_key, max_viewers=max_viewers,
                          segment_s=segment_seconds, sr_loop=sr_loop, max_sr_age_ms=max_sr_age, sr_threads=sr_threads,
                          watchdog=watchdog, record_keep=record_keep)
    status = EXIT_CODES.get(summary["stopped"], 1)
    if status:
        raise typer.Exit(status)


@app.command("bench")
def bench_cli(
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    backend: list[str] = typer.Option([], "--backend", help="repeatable: auto | onnxruntime | openvino | tensorrt | torch (default auto)"),
    precision: list[str] = typer.Option([], "--precision", help="repeatable: auto | fp32 | fp16 | int8 | int8-cpu | int8-ov | pruned.* (default auto)"),
    mode: list[str] = typer.Option([], "--mode", help="repeatable: roi | full (default roi)"),
    frames: int = typer.Option(30, "--frames", help="timed frames per configuration"),
    warmup: int = typer.Option(3, "--warmup", help="untimed frames first"),
    data: Optional[str] = typer.Option(None, "--data", help="frames from this dataset instead of generated ones; " + SPEC_HELP),
    size: int = typer.Option(256, "--size", help="side of the generated frames"),
    engines: Optional[Path] = typer.Option(None, "--engines", help="TensorRT engines (skinedge build-engines)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG bar chart of stage latencies"),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="skip the torch FP32 baseline"),
    sr_budget: str = typer.Option("auto", "--sr-budget", help=SR_BUDGET_HELP + " (the torch FP32 baseline: none)"),
    target_fps: float = typer.Option(10.0, "--target-fps", help="frame rate the auto SR budget is sized for"),
    live_seconds: float = typer.Option(3.0, "--live-seconds", help="length of the generated moving-lesion clip for the live rows (reuse off/on, flicker); 0: none"),
) -> None:
    """Per-stage latency of the pipeline per backend and precision, against torch FP32; live rows on a moving lesion."""
    from skinedge.runtime.bench.run import bench_command

    bench_command(models, backend, precision, mode, frames, warmup, data, size, engines, json_path, plot, no_baseline,
                  log=typer.echo, sr_budget=sr_budget, target_fps=target_fps, live_seconds=live_seconds)


@app.command("enhance")
def enhance_command(
    inputs: list[str] = typer.Argument(..., help="image files, folders and globs"),
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for <name>.enhanced.png, .mask.png, .panel.png"),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | openvino | tensorrt | torch"),
    precision: str = typer.Option("auto", "--precision", help="auto (fastest the gates allow) | fp32 | fp16 | int8 | int8-cpu | int8-ov | pruned.fp32 | pruned.int8-ov ..."),
    mode: str = typer.Option("roi", "--mode", help="roi: the lesion region ×4 | full: the whole image ×4"),
    engines: Optional[Path] = typer.Option(None, "--engines", help="TensorRT engines (skinedge build-engines)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace outputs already in --out"),
    tile: Optional[int] = typer.Option(None, "--tile", help="SR tile side in LR pixels (default: 256 on ONNX Runtime/torch, the engine's maximum on TensorRT); smaller tiles use less memory, cost more time"),
    projection: int = typer.Option(3, "--projection", help=PROJECTION_HELP),
    chroma: str = typer.Option("camera", "--chroma", help=CHROMA_HELP),
    surround: str = typer.Option("frame", "--surround", help=SURROUND_HELP),
    hallucination: bool = typer.Option(False, "--hallucination", help="add a map of where the enhanced view departs from the plain up-scale (<name>.hallucination.png, and a third panel column)"),
    dicom: bool = typer.Option(False, "--dicom", help="also write DICOM: <name>.enhanced.dcm (derived Secondary Capture), <name>.seg.dcm (lesion Segmentation), <name>.source.dcm for non-DICOM inputs"),
    pacs: Optional[str] = typer.Option(None, "--pacs", help="with --dicom: C-STORE the objects to HOST:PORT[/AET]; a failed send keeps the files and exits 1"),
    ray: bool = typer.Option(False, "--ray", help="run as a Ray Data job (one open session per worker; results.jsonl; a re-run resumes); a local cluster unless --ray-address"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="with --ray: the cluster to join (e.g. ray://head:10001, or auto)"),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", help="with --ray: workers in the pool (default: one per CPU, or per GPU with --ray-gpus-per-worker)"),
    ray_gpus_per_worker: float = typer.Option(0.0, "--ray-gpus-per-worker", help="with --ray: GPUs per worker (1: one GPU worker each)"),
) -> None:
    """Segment and super-resolve image files.

    Every output PNG says it is AI-enhanced and carries its provenance (skinedge version, the models' sha256,
    variant, backend, settings, this image's ROI and consistency residual) in iTXt chunks.
    """
    from skinedge.runtime.enhance import enhance_command as enhance

    fidelity = fidelity_option(projection, chroma, surround)
    if ray or ray_address:
        from skinedge.runtime.scale.ray_enhance import enhance_ray

        if pacs:
            raise SkinedgeError("--pacs is not available with --ray yet: send the files afterwards (storescu)")
        enhance_ray(inputs, models, out, address=ray_address, backend=backend, precision=precision, mode=mode,
                    engines=engines, overwrite=overwrite, tile=tile, fidelity=fidelity, hallucination=hallucination,
                    dicom=dicom, workers=ray_workers, gpus_per_worker=ray_gpus_per_worker, log=typer.echo)
        return
    enhance(inputs, models, out, backend, precision, mode, engines, overwrite, tile, fidelity, log=typer.echo,
            hallucination=hallucination, dicom=dicom, pacs=pacs)


@app.command("serve")
def serve_command(
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address for the HTTP and gRPC endpoints"),
    http_port: int = typer.Option(8000, "--http-port", help="Triton HTTP port"),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="Triton gRPC port"),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | openvino | tensorrt | torch"),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | int8 | int8-cpu | int8-ov | pruned.*"),
    max_batch: int = typer.Option(8, "--max-batch", help="frames Triton's dynamic batcher may group"),
    max_queue: int = typer.Option(16, "--max-queue", help="requests waiting at most; beyond, an error at once"),
) -> None:
    """Serve the pipeline behind Triton's HTTP/gRPC protocol (PyTriton; model 'skinedge': IMAGE in; ENHANCED,
    SIZE, ROI, FOUND, NOTICE out). Needs the serve extra in its own environment (PyTriton pins numpy<2)."""
    from skinedge.runtime.scale.serve import serve

    serve(models, host=host, http_port=http_port, grpc_port=grpc_port, backend=backend, precision=precision,
          max_batch=max_batch, max_queue=max_queue, log=typer.echo)


@app.command("export-triton")
def export_triton_command(
    models: Path = typer.Option(..., "--models", help="models directory (skinedge export/calibrate)"),
    out: Path = typer.Option(..., "--out", "-o", help="new folder for the Triton model repository"),
    precision: str = typer.Option("fp32", "--precision", help="variant of both networks: fp32 | fp16 | int8 | int8-cpu | int8-ov (OpenVINO IR) | pruned.*"),
    engines: Optional[Path] = typer.Option(None, "--engines", help="use the TensorRT plans from skinedge build-engines instead"),
    kind: str = typer.Option("auto", "--kind", help="instance group: gpu | cpu | auto (gpu with --engines)"),
    max_batch: int = typer.Option(8, "--max-batch", help="Triton's max_batch_size for the networks (dynamic batching)"),
    instances: int = typer.Option(1, "--instances", help="instances of each model"),
) -> None:
    """A Triton Inference Server model repository: both networks with config.pbtxt, and the pipeline as a
    Python-backend model (skinedge's lean runtime) calling them through BLS."""
    from skinedge.export.triton import export_triton

    export_triton(models, out, precision, engines, kind, max_batch, instances, log=typer.echo)


@app.command("calibrate")
def calibrate_command(
    models: Path = typer.Option(..., "--models", help="models directory written by `skinedge export`"),
    precision: str = typer.Option(..., "--precision", help="fp16 | int8 (int8 writes the TensorRT and the CPU form)"),
    data: str = typer.Option(..., "--data", help="calibration (train/val) and gate (test) images; " + SPEC_HELP),
    net: str = typer.Option("both", "--net", help="seg | sr | both"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="build profile (export/*.toml): gates, calibration method and size, pruned or not"),
    method: Optional[str] = typer.Option(None, "--method", help="minmax | percentile | entropy (default: the profile's, else entropy)"),
    images: Optional[int] = typer.Option(None, "--images", help="calibration images (default: the profile's, else 64)"),
    pruned: Optional[bool] = typer.Option(None, "--pruned/--unpruned", help="start from the pruned network (default: when the profile prunes it)"),
    gate_limit: Optional[int] = typer.Option(None, "--gate-limit", help="measure the gates on at most N test images"),
    force: bool = typer.Option(False, "--force", help="write a variant that fails its gate, marked failing in models.json"),
    max_delta_e: Optional[float] = typer.Option(None, "--max-delta-e-over-bicubic", help="the truth gate: lesion ΔE00 (as shown, after projection) may exceed bicubic's by at most this (default: the profile's, else 0.3)"),
) -> None:
    """FP16 or INT8 (Q/DQ) variants from real calibration images, behind accuracy gates."""
    from skinedge.commands import calibrate

    calibrate(models, precision, data, net, profile, method, images, pruned, gate_limit, force, max_delta_e,
              log=typer.echo)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="folder for everything the demo makes"),
    tiny: bool = typer.Option(False, "--tiny", help="a one-minute smoke run of every step (no quality expected)"),
) -> None:
    """The whole chain on generated data, on the CPU (about 8 minutes on 2 cores)."""
    from skinedge.demo import FULL, TINY, run_demo

    if (out / "run").exists():
        raise SkinedgeError(f"{out} holds an earlier demo: remove it or pass --out NEW_FOLDER")
    run_demo(out, TINY if tiny else FULL)


@app.command("doctor")
def doctor_command(
    models: Optional[Path] = typer.Option(None, "--models", help="also check a models directory: every file's hash, and which variants run here"),
    backend: Optional[str] = typer.Option(None, "--backend", help="also ask whether this backend runs here: onnxruntime | openvino | tensorrt"),
    as_json: bool = typer.Option(False, "--json", help="the report as JSON"),
) -> None:
    """What this machine can run: versions, CPU features, backends (ONNX Runtime, OpenVINO, CUDA, TensorRT),
    caches and, with --models, the models' files. Exits 1 when something asked for cannot run, saying the fix."""
    import json

    from skinedge import doctor

    report = doctor.diagnose(models, backend)
    typer.echo(json.dumps(doctor.as_json(report), indent=1) if as_json else doctor.render(report).rstrip())
    raise typer.Exit(report.exit_code)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app; user errors become one line on stderr."""
    try:
        app(args=argv, prog_name="skinedge")
    except SkinedgeError as exc:
        print(f"skinedge: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("skinedge: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"skinedge: error: {exc.strerror or exc}{where}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
