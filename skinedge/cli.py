"""The ``skinedge`` command line: thin, it parses and calls library functions.

User mistakes surface as :class:`~skinedge.errors.SkinedgeError` and are printed
by :func:`main` as one line on stderr with a non-zero exit; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

import skinedge
from skinedge.errors import NotYetAvailable, SkinedgeError

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

SPEC_HELP = ("dataset as KIND:PATH, KIND one of isic2018, ph2, derm7pt, folder, synthetic "
             "(e.g. isic2018:/data/ISIC2018)")
LATER = {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"skinedge {skinedge.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """skinedge: segmentation → masking → 4× super-resolution of skin lesions."""


def _progress(total: int, label: str):
    """A rich progress bar on stderr (stdout stays clean for reports)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda done: bar.update(task, completed=done)


# -------------------------------------------------------------------------- data
@data_app.command("synth")
def data_synth(
    out: Path = typer.Argument(..., help="output folder (new, empty, or an earlier synth output)"),
    count: int = typer.Option(32, "--count", "-n", help="number of images"),
    size: int = typer.Option(256, "--size", help="image side in pixels (32-4096)"),
    seed: int = typer.Option(0, "--seed", help="random seed; same seed = byte-identical files"),
) -> None:
    """Generate dermoscopy-like images with exact lesion masks (folder layout + manifest)."""
    from skinedge.data.generate import write_synthetic

    bar, update = _progress(count, "generating")
    with bar:
        manifest = write_synthetic(out, count, size, seed, progress=update)
    areas = [item["info"].get("lesion_area", 0.0) for item in manifest["items"]]
    typer.echo(f"wrote {count} generated images {size}×{size} (seed {seed}) to {out}; "
               f"lesion area {min(areas):.1%}–{max(areas):.1%}. Not patient data.")
    typer.echo(f"read it as synthetic:{out} (or folder:{out})")


@data_app.command("check")
def data_check(spec: str = typer.Argument(..., help=SPEC_HELP)) -> None:
    """Decode every image and mask; print counts, sizes, mask coverage and every problem.

    Exit status 1 when any item is unusable.
    """
    from skinedge.data import open_dataset
    from skinedge.data.check import check_dataset, format_report

    dataset = open_dataset(spec)
    bar, update = _progress(len(dataset), "checking")
    with bar:
        report = check_dataset(dataset, progress=update)
    for line in format_report(report):
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("split")
def data_split(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="split file to write (JSON)"),
    seed: int = typer.Option(0, "--seed", help="seed of the random group split"),
    strategy: str = typer.Option("auto", "--strategy",
                                 help="auto | official (the layout's own split) | random (70/15/15 by group)"),
) -> None:
    """Write a reproducible, group-aware (patient-level) train/val/test split."""
    from skinedge.data import open_dataset
    from skinedge.data.splits import make_split, write_split

    split = make_split(open_dataset(spec), seed=seed, strategy=strategy)  # type: ignore[arg-type]
    digest = write_split(split, out)
    counts = ", ".join(f"{k} {len(v)}" for k, v in split.parts.items())
    typer.echo(f"{split.strategy} split of {spec}: {counts} → {out} (sha256 {digest[:12]})")


@data_app.command("sheet")
def data_sheet(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write"),
    count: int = typer.Option(16, "--count", "-n", help="number of images shown"),
    tile: int = typer.Option(256, "--tile", help="tile side in pixels"),
) -> None:
    """Save a contact sheet: images in a grid with the lesion mask outlined in green."""
    from skinedge.data import open_dataset
    from skinedge.data.sheet import contact_sheet

    shown = contact_sheet(open_dataset(spec), out, count=count, tile=tile)
    typer.echo(f"wrote {out} ({len(shown)} images)")


# ------------------------------------------------------- commands of later issues
# Listed so that `--help` shows the whole surface; each is replaced by the real
# command when its issue lands.
LATER_COMMANDS = {
    ("train", "seg"): "Train the U-Net segmenter (BCE + Dice, Adam 1e-4, 50 epochs, 256²).",
    ("train", "sr"): "Train the SRGAN generator: --phase pretrain (MSE) | gan | both.",
    (None, "eval"): "The paper's tables (segmentation, SR, combined) on a test split.",
    (None, "export"): "Export both checkpoints to ONNX (MODELS/ with models.json).",
    (None, "prune"): "Structured channel pruning of one network, fine-tune, re-export.",
    (None, "calibrate"): "FP16 or INT8 (Q/DQ) variants from real calibration images, behind accuracy gates.",
    (None, "build-engines"): "Build TensorRT engines from a models directory and a build profile.",
    (None, "enhance"): "Segment and super-resolve image files.",
    (None, "run"): "Live: camera or stream in, enhanced view out (window, file, web viewer).",
    (None, "bench"): "Per-stage latency of the pipeline per backend and precision.",
}


def _not_yet(words: str):
    def command() -> None:
        raise NotYetAvailable(f"`skinedge {words}` is not yet available in skinedge {skinedge.__version__}")
    return command


for (group, name), summary in LATER_COMMANDS.items():
    target = train_app if group == "train" else app
    target.command(name, help=f"[not yet] {summary}", **LATER)(_not_yet(f"{group} {name}" if group else name))


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="folder for everything the demo makes"),
) -> None:
    """The whole chain on generated data, on the CPU."""
    from skinedge.demo import run_demo

    run_demo(out)


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


if __name__ == "__main__":
    main()
