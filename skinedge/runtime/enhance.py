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
from PIL.PngImagePlugin import PngInfo

from skinedge.atomic import write_bytes_atomic
from skinedge.data.imageio import IMAGE_SUFFIXES, open_quietly, read_rgb
from skinedge.errors import DataError, SkinedgeError
from skinedge.progress import progress_bar
from skinedge.runtime.pipeline.host import FrameResult, Pipeline
from skinedge.runtime.pipeline.mask import frame_mask
from skinedge.runtime.pipeline.projection import Fidelity
from skinedge.runtime.pipeline.reference import composite
from skinedge.runtime.clinical import provenance
from skinedge.runtime.clinical.departure import FULL as DEPARTURE_FULL
from skinedge.runtime.clinical.departure import departure_map
from skinedge.runtime.session import open_session
from skinedge.runtime.sinks import draw_badge

MAX_PIXELS = 50_000_000  # 50 MP: far above any dermatoscope, well below a decompression bomb


def enhance_command(inputs: list[str], models: Path, out: Path, backend: str = "auto", precision: str = "auto",
                    mode: str = "roi", engines: Path | None = None, overwrite: bool = False, tile: int | None = None,
                    fidelity: Fidelity | None = None, log=print, hallucination: bool = False, dicom: bool = False,
                    pacs: str | None = None) -> Summary:
    """Everything ``skinedge enhance`` does: expand the inputs once, open a session, enhance, summarise, and
    (``pacs``) send the DICOM objects.

    Raises:
        SkinedgeError: a bad option, missing models, any input that failed (after the others ran), or objects
            the PACS did not store (the files stay in ``out``).
    """
    peer = None
    if pacs is not None:
        from skinedge.runtime.clinical.pacs import parse_pacs

        peer = parse_pacs(pacs)
        if not dicom:
            raise SkinedgeError("--pacs sends the DICOM objects: add --dicom")
    if dicom:
        from skinedge.runtime.clinical.dicom_out import _hd

        _hd()  # missing highdicom: one line before any model loads
    paths, problems = expand_inputs(inputs)
    session = open_session(models, backend, precision, engines, mode, tile, fidelity, log=log)
    with session.pipeline as pipeline, progress_bar(len(paths), "enhance", enabled=len(paths) > 3) as update:
        record = provenance.session_record(models, session.manifest, session.opened, pipeline, mode)
        summary = enhance_paths(paths, problems, pipeline, out, overwrite, log=log, progress=update,
                                provenance=record, hallucination=hallucination, dicom=dicom)
    log(f"{len(summary.done)} enhanced, {len(summary.failed)} failed; outputs in {out}/")
    unsent = []
    if peer is not None:
        from skinedge.runtime.clinical.pacs import send

        unsent = send([Path(f) for row in summary.done for f in row["files"] if f.endswith(".dcm")], peer, log=log)
        for file, reason in unsent:
            log(f"NOT SENT {file.name}: {reason}")
    if summary.failed:
        raise SkinedgeError(f"{len(summary.failed)} input(s) failed (see the lines above)")
    if unsent:
        raise SkinedgeError(f"{len(unsent)} DICOM object(s) not stored by the PACS; they are kept in {out}/")
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
        with open_quietly(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - read_rgb below gives the precise reason
        w = h = 0
    if w * h > MAX_PIXELS:
        raise DataError(f"{path.name}: {w}×{h} is too large ({w * h / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP); "
                        "downscale it first")
    rgb, _ = read_rgb(path)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _png(image_rgb: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes; ``text`` goes into iTXt chunks (UTF-8: the provenance record, the AI notice)."""
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    Image.fromarray(image_rgb).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def plain_view(frame: np.ndarray, result: FrameResult, scale: int) -> np.ndarray:
    """The plain smooth up-scale (BGR) of the region the enhanced view shows: what the camera alone gives."""
    if result.found and result.image.shape[:2] != (frame.shape[0] * scale, frame.shape[1] * scale):
        x0, y0, w, h = result.roi
        rect = (x0 * scale, y0 * scale, w * scale, h * scale)
    else:
        rect = (0, 0, frame.shape[1] * scale, frame.shape[0] * scale)
    return composite(frame, None, result.mask.soft, (0, 0, 0, 0), scale, rect)


def panel(frame: np.ndarray, result: FrameResult, scale: int, label: str | None = None,
          departure: np.ndarray | None = None) -> np.ndarray:
    """Side by side (RGB): the plain smooth up-scale of the same region | the enhanced view, badged as
    AI-enhanced when the generator ran | (``departure``, from :func:`departure_map`) where the two differ."""
    plain = plain_view(frame, result, scale)
    enhanced = result.image.copy()
    if result.found:
        draw_badge(enhanced, label or "AI-ENHANCED")
    gap = np.full((plain.shape[0], 4, 3), 255, np.uint8)
    parts = [plain, gap, enhanced] + ([gap, departure] if departure is not None else [])
    return np.concatenate(parts, axis=1)[:, :, ::-1]


def enhance_paths(paths: list[Path], problems: list[tuple[str, str]], pipeline: Pipeline, out: Path,
                  overwrite: bool = False, log=print, progress=None, provenance: dict | None = None,
                  hallucination: bool = False, dicom: bool = False) -> Summary:
    """Enhance every image of ``paths`` (from :func:`expand_inputs`, with the inputs that matched nothing in
    ``problems``); returns what was done and what failed (with the reason).

    ``provenance``: the session's record (:func:`skinedge.runtime.clinical.provenance.session_record`); each PNG then
    carries it, with this image's part, in iTXt chunks. Without it the PNGs still carry the AI notice.
    ``hallucination``: add the departure map (:func:`departure_map`) to each panel, and as its own file.
    ``dicom``: also write the DICOM objects of :mod:`skinedge.runtime.clinical.dicom_out`."""
    summary = Summary(failed=list(problems))
    for text, reason in problems:
        log(f"skip {text}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    for index, (path, stem) in enumerate(zip(paths, output_stems(paths))):
        try:
            frames = read_frames(path)
        except SkinedgeError as exc:
            frames = []
            summary.failed.append((str(path), str(exc)))
            log(f"FAIL {path}: {exc}")
        for item in frames:
            suffix, frame = item.suffix, item.frame
            name = f"{path.name}{suffix and ' frame ' + suffix.lstrip('.f')}"
            try:
                row = _enhance_one(pipeline, item, out / f"{stem}{suffix}", overwrite, provenance, hallucination,
                                   dicom, path.name)
            except SkinedgeError as exc:
                summary.failed.append((f"{path}{suffix}", str(exc)))
                log(f"FAIL {name}: {exc}")
                continue
            summary.done.append({"input": f"{path}{suffix}", **row})
            what = (f"lesion {row['lesion_area']:.1%}, ROI {row['roi']}, consistency residual "
                    f"{_residual_text(row['residual'])}" if row["found"] else row["note"])
            log(f"ok   {name} {frame.shape[1]}×{frame.shape[0]}: {what} → {Path(row['output']).name} "
                f"({row['ms']:.0f} ms)")
        if progress is not None:
            progress(index + 1)
    if summary.done:
        write_bytes_atomic(out / "index.html", gallery(summary).encode("utf-8"))
    return summary


def output_stems(paths: list[Path]) -> list[str]:
    """Output stems in input order: the file's stem, a repeated one with ``-2``, ``-3`` … (plain ``enhance``
    and the Ray job name outputs alike)."""
    stems, seen = [], {}
    for path in paths:
        stems.append(path.stem if path.stem not in seen else f"{path.stem}-{seen[path.stem] + 1}")
        seen[path.stem] = seen.get(path.stem, 0) + 1
    return stems


@dataclass
class InputFrame:
    """One frame to enhance: its output-name suffix (``.f0001`` for frames of a multi-frame object), the
    uint8 BGR pixels, and for a DICOM input its header and frame number (for the derived DICOM objects)."""

    suffix: str
    frame: np.ndarray
    source: object | None = None
    frame_number: int | None = None


def read_frames(path: Path) -> list[InputFrame]:
    """Every frame of an input: one for an image file, one per frame of a multi-frame DICOM object."""
    from skinedge.data.dicom import is_dicom, read_dicom

    if not is_dicom(path):
        return [InputFrame("", read_frame(path))]
    image = read_dicom(path)
    frames = [np.ascontiguousarray(f[:, :, ::-1]) for f in image.frames]
    if any(f.shape[0] * f.shape[1] > MAX_PIXELS for f in frames):
        raise DataError(f"{path.name}: a frame is larger than {MAX_PIXELS / 1e6:.0f} MP; downscale it first")
    if len(frames) == 1:
        return [InputFrame("", frames[0], image.dataset)]
    return [InputFrame(f".f{i + 1:04d}", f, image.dataset, i + 1) for i, f in enumerate(frames)]


def _enhance_one(pipeline: Pipeline, item: InputFrame, base: Path, overwrite: bool, session: dict | None,
                 hallucination: bool, dicom: bool = False, source_name: str = "") -> dict:
    """Enhance one frame and write its PNGs next to ``base`` (``base.enhanced.png`` …) and, with ``dicom``,
    its DICOM objects; its summary row. A failure leaves none of this frame's files behind."""
    frame = item.frame
    kinds = ("enhanced", "mask", "panel") + (("hallucination",) if hallucination else ())
    targets = {k: base.with_name(f"{base.name}.{k}.png") for k in kinds}
    dicoms = [base.with_name(f"{base.name}.{k}.dcm") for k in ("enhanced", "seg", "source")] if dicom else []
    existing = [t.name for t in list(targets.values()) + dicoms if t.exists()]
    if existing and not overwrite:
        raise SkinedgeError(f"{', '.join(existing)} already in {base.parent} (pass --overwrite to replace)")
    start = time.perf_counter()
    result = pipeline(frame)
    elapsed = (time.perf_counter() - start) * 1000
    mask = frame_mask(result.mask.mask if result.found else result.mask.mask * 0, frame.shape[:2])
    text, label = _provenance_text(session, result)
    departure = departure_map(plain_view(frame, result, pipeline.scale), result.image) if hallucination else None
    files = {"enhanced": _png(result.image[:, :, ::-1], text),
             "mask": _png(mask.astype(np.uint8) * 255, text),
             "panel": _png(panel(frame, result, pipeline.scale, label, departure), text)}
    if departure is not None:
        files["hallucination"] = _png(departure[:, :, ::-1], text)
    written: list[Path] = []
    try:
        if dicom:
            from skinedge.runtime.clinical.dicom_out import write_dicom

            if session is None:
                raise SkinedgeError("--dicom needs the session's provenance record")
            written += write_dicom(base, item.source, frame[:, :, ::-1], result.image[:, :, ::-1], mask,
                                   provenance.image_record(session, result), item.frame_number, source_name)
        for kind, data in files.items():
            write_bytes_atomic(targets[kind], data)
            written.append(targets[kind])
    except BaseException:
        for path in written:  # nothing half done: this frame's outputs go together or not at all
            path.unlink(missing_ok=True)
        raise
    return {"size": [frame.shape[1], frame.shape[0]], "found": result.found, "roi": result.roi,
            "lesion_area": result.lesion_area, "ms": elapsed, "timings_ms": result.timings_ms,
            "output": str(targets["enhanced"]), "residual": result.residual, "note": result.note,
            "files": [str(p) for p in written]}


def _provenance_text(session: dict | None, result: FrameResult) -> tuple[dict[str, str], str]:
    """(PNG text chunks, badge text) for one result: the full record with a session, the notice without."""
    if session is None:
        return {"Software": "skinedge", "Description": provenance.NOTICE}, "AI-ENHANCED"
    return provenance.png_text(provenance.image_record(session, result)), provenance.label(session).upper()


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
            "figure{margin:0 0 1.5em}.ai{background:#ff8c00;color:#000;padding:.4em .6em;font-weight:bold}"
            "</style><h1>skinedge enhance</h1>"
            f"<p class='ai'>{html.escape(provenance.NOTICE)}. Each PNG carries its provenance (models, their "
            "sha256, settings) in a text chunk.</p>"
            "<p>Left: the image up-scaled ×4 smoothly (bicubic). Right: skinedge (lesion super-resolved, made "
            "consistent with the camera's pixels, composited back), badged AI-ENHANCED where the generator ran. "
            "The consistency residual is the mean |down-scaled SR − camera| in the lesion before that correction "
            "(0–255): how much the generator invented. With --hallucination a third column maps where the "
            f"enhanced view departs from the plain up-scale (full heat at {DEPARTURE_FULL} grey levels)."
            "</p>" + "".join(rows) + (f"<h2>Failed</h2><ul>{failed}</ul>" if failed else ""))
