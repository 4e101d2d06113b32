"""``skinedge demo``: the whole chain on generated data, on the CPU.

The demo is a list of real CLI invocations, run in this process and printed as
the command a user would type, so each later stage (train, eval, export,
calibrate, enhance, bench) slots in as one more line of :func:`demo_steps`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from skinedge.errors import SkinedgeError

DATA_COUNT = 96
DATA_SIZE = 128
SEED = 0


def demo_steps(out: Path) -> list[tuple[str, list[str]]]:
    """(what it shows, CLI argv) for each stage the demo runs, in order."""
    data = out / "data"
    return [
        ("generate dermoscopy-like images with exact masks",
         ["data", "synth", str(data), "--count", str(DATA_COUNT), "--size", str(DATA_SIZE),
          "--seed", str(SEED)]),
        ("check every image and mask",
         ["data", "check", f"synthetic:{data}"]),
        ("write a patient-level 70/15/15 split",
         ["data", "split", f"synthetic:{data}", "--out", str(out / "split.json"),
          "--seed", str(SEED)]),
        ("draw a contact sheet of the data with masks outlined",
         ["data", "sheet", f"synthetic:{data}", "--out", str(out / "contact-sheet.png")]),
    ]


def run_demo(out: Path) -> None:
    """Run :func:`demo_steps` in order; stop at the first failing step."""
    from skinedge.cli import app

    typer.echo("skinedge demo: everything below runs on generated images (not patient data); "
               "networks, when trained, start from random initialisation (no pretrained weights).")
    started = time.perf_counter()
    for number, (what, argv) in enumerate(demo_steps(out), start=1):
        typer.echo(f"\n[{number}] {what}\n$ skinedge {' '.join(argv)}")
        code = app(args=argv, prog_name="skinedge", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise SkinedgeError(f"demo step {number} ({what}) failed with exit status {code}")
    typer.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}/")
    typer.echo("not yet in the demo: training, evaluation, export, calibration, enhance and "
               "bench (they land with the next issues).")
