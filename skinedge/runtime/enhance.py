"""``skinedge enhance``: image files in, enhanced image + mask + side-by-side panel out.

Inputs are files, folders (their images, sorted) and globs. A file that cannot
be used is reported on one line and skipped; the rest of the batch still runs,
and the exit status says whether any failed. Outputs are written atomically and
never replace an existing file unless asked.
"""

from __future__ import annotations

import glob
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from skinedge.atomic import write_bytes_atomic
from skinedge.data.imageio import IMAGE_SUFFIXES, read_rgb
from skinedge.errors import DataError, SkinedgeError
from skinedge.progress import progress_bar
from skinedge.runtime.pipeline.host import FrameResult, Pipeline
from skinedge.runtime.pipeline.mask import frame_mask
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.pipeline.reference import composite
from skinedge.runtime.session import open_session

MAX_PIXELS = 50_000_000  # 50 MP: far above any dermatoscope, well below a decompression bomb


def enhance_command(inputs: list[str], models: Path, out: Path, backend: str = "auto", precision: str = "auto",
                    mode: str = "roi", engines: Path | None = None, overwrite: bool = False, tile: int | None = None,
                    fidelity: Fidelity | None = None, log=print) -> Summary:
    """Everything ``skinedge enhance`` does: expand the inputs once, open a session, enhance, summarise.

    Raises:
        SkinedgeError: a bad option, missing models, or any input that failed (after the others ran).
    """
    paths, problems = expand_inputs(inputs)
    session = open_session(models, backend, precision, engines, mode, tile, fidelity, log=log)
    with session.pipeline as pipeline, progress_bar(len(paths), "enhance", enabled=len(paths) > 3) as update:
        summary = enhance_paths(paths, problems, pipeline, out, overwrite, log=log, progress=update)
    log(f"{len(summary.done)} enhanced, {len(summary.failed)} failed; outputs in {out}/")
    if summary.failed:
        raise SkinedgeError(f"{len(summary.failed)} input(s) failed (see the lines above)")
    return summary


@dataclass
class Summary:
    done: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders and globs → image paths (in order, without repeats) and the inputs that matched nothing."""
    paths, problems, seen = [], [], set()
    inputs = _with_lists(inputs, problems)
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((text, "folder holds no images (" + ", ".join(IMAGE_SUFFIXES) + ")"))
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not found:
                problems.append((text, "no such file, folder or matching glob"))
        for p in found:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                paths.append(p)
    return paths, problems


def _with_lists(inputs: list[str], problems: list[tuple[str, str]]) -> list[str]:
    """Expand ``@LIST`` arguments: a text file with one input per line (blank lines and # comments skipped)."""
    out = []
    for text in inputs:
        if not text.startswith("@"):
            out.append(text)
            continue
        try:
            lines = Path(text[1:]).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((text, f"cannot read the list ({exc.strerror if isinstance(exc, OSError) else exc})"))
            continue
        out += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return out


def read_frame(path: Path) -> np.ndarray:
    """An image file as uint8 BGR, refusing sizes no dermatoscope makes before decoding them."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - read_rgb below gives the precise reason
        w = h = 0
    if w * h > MAX_PIXELS:
        raise DataError(f"{path.name}: {w}×{h} is too large ({w * h / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP); "
                        "downscale it first")
    rgb, _ = read_rgb(path)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _png(image_rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image_rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def panel(frame: np.ndarray, result: FrameResult, scale: int) -> np.ndarray:
    """Side by side (RGB): the plain smooth up-scale of the same region | the enhanced view."""
    if result.found and result.image.shape[:2] != (frame.shape[0] * scale, frame.shape[1] * scale):
        x0, y0, w, h = result.roi
        rect = (x0 * scale, y0 * scale, w * scale, h * scale)
    else:
        rect = (0, 0, frame.shape[1] * scale, frame.shape[0] * scale)
    plain = composite(frame, None, result.mask.soft, (0, 0, 0, 0), scale, rect)
    gap = np.full((plain.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([plain, gap, result.image], axis=1)[:, :, ::-1]


def enhance_paths(paths: list[Path], problems: list[tuple[str, str]], pipeline: Pipeline, out: Path,
                  overwrite: bool = False, log=print, progress=None) -> Summary:
    """Enhance every image of ``paths`` (from :func:`expand_inputs`, with the inputs that matched nothing in
    ``problems``); returns what was done and what failed (with the reason)."""
    summary = Summary(failed=list(problems))
    for text, reason in problems:
        log(f"skip {text}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = {}
    for index, path in enumerate(paths):
        stem = path.stem if path.stem not in stems else f"{path.stem}-{stems[path.stem] + 1}"
        stems[path.stem] = stems.get(path.stem, 0) + 1
        targets = {k: out / f"{stem}.{k}.png" for k in ("enhanced", "mask", "panel")}
        try:
            existing = [t.name for t in targets.values() if t.exists()]
            if existing and not overwrite:
                raise SkinedgeError(f"{', '.join(existing)} already in {out} (pass --overwrite to replace)")
            frame = read_frame(path)
            start = time.perf_counter()
            result = pipeline(frame)
            elapsed = (time.perf_counter() - start) * 1000
            mask = frame_mask(result.mask.mask if result.found else result.mask.mask * 0, frame.shape[:2])
            files = {"enhanced": _png(result.image[:, :, ::-1]), "mask": _png(mask.astype(np.uint8) * 255),
                     "panel": _png(panel(frame, result, pipeline.scale))}
            for kind, data in files.items():
                write_bytes_atomic(targets[kind], data)
        except SkinedgeError as exc:
            summary.failed.append((str(path), str(exc)))
            log(f"FAIL {path}: {exc}")
        else:
            row = {"input": str(path), "size": [frame.shape[1], frame.shape[0]], "found": result.found,
                   "roi": result.roi, "lesion_area": result.lesion_area, "ms": elapsed,
                   "timings_ms": result.timings_ms, "output": str(targets["enhanced"]), "residual": result.residual}
            summary.done.append(row)
            what = (f"lesion {result.lesion_area:.1%}, ROI {result.roi}, consistency residual "
                    f"{_residual_text(result.residual)}" if result.found else result.note)
            log(f"ok   {path.name} {frame.shape[1]}×{frame.shape[0]}: {what} → {targets['enhanced'].name} "
                f"({elapsed:.0f} ms)")
        if progress is not None:
            progress(index + 1)
    if summary.done:
        write_bytes_atomic(out / "index.html", gallery(summary).encode("utf-8"))
    return summary


def _residual_text(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}/255"


def gallery(summary: Summary) -> str:
    """A plain HTML page of every panel (plain up-scale | enhanced) with what the pipeline found."""
    rows = []
    for row in summary.done:
        name = Path(row["output"]).name.replace(".enhanced.png", ".panel.png")
        what = (f"lesion {row['lesion_area']:.1%} of the image, ROI {tuple(row['roi'])}, consistency residual "
                f"{_residual_text(row.get('residual'))}" if row["found"] else "no lesion found: smooth up-scale only")
        rows.append(f"<figure><img src='{html.escape(name)}' alt='{html.escape(name)}'><figcaption>"
                    f"{html.escape(Path(row['input']).name)} ({row['size'][0]}×{row['size'][1]}): {what}; "
                    f"{row['ms']:.0f} ms</figcaption></figure>")
    failed = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in summary.failed)
    return ("<!doctype html><meta charset='utf-8'><title>skinedge enhance</title>"
            "<style>body{font-family:sans-serif;margin:1em}img{max-width:100%;image-rendering:pixelated}"
            "figure{margin:0 0 1.5em}</style><h1>skinedge enhance</h1>"
            "<p>Left: the image up-scaled ×4 smoothly (bicubic). Right: skinedge (lesion super-resolved, made "
            "consistent with the camera's pixels, composited back). The consistency residual is the mean "
            "|down-scaled SR − camera| in the lesion before that correction (0–255): how much the generator "
            "invented.</p>" + "".join(rows) + (f"<h2>Failed</h2><ul>{failed}</ul>" if failed else ""))
