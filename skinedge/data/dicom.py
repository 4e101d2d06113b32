"""DICOM images in: dermoscopy as clinics store it (pydicom, the ``dicom`` extra).

Accepted: 8-bit colour images in RGB or YBR_FULL / YBR_FULL_422, uncompressed or JPEG baseline (decoded by
Pillow through pydicom), 8-bit MONOCHROME2 (made RGB), and multi-frame objects, taken frame by frame. Anything
else — no pixel data (a structured report, a segmentation), a transfer syntax no installed decoder reads
(JPEG 2000, JPEG-LS without pylibjpeg), more than 8 bits, a truncated file — is one line naming the file and
the reason.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinedge.errors import DataError, one_line

DICOM_SUFFIXES = (".dcm", ".dicom")
EXTRA = "pip install 'skinedge[dicom]'"
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")


def is_dicom(path: str | Path) -> bool:
    """A ``.dcm``/``.dicom`` name, or the ``DICM`` magic after the 128-byte preamble."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DataError(f"reading DICOM needs pydicom: {EXTRA}") from None
    return pydicom


@dataclass
class DicomImage:
    """The frames of one DICOM image as uint8 RGB, and its header (no pixel data) for derived outputs."""

    frames: list[np.ndarray]
    dataset: object  # pydicom.Dataset, pixel data removed
    notes: list[str] = field(default_factory=list)


def read_dicom(path: str | Path) -> DicomImage:
    """Every frame of a DICOM image file as uint8 RGB H×W×3.

    Raises:
        DataError: one line: not DICOM or truncated, no pixel data, a transfer syntax or pixel format that cannot
            be decoded here.
    """
    pydicom = _pydicom()
    path = Path(path)
    with _quiet(pydicom):
        return _read(pydicom, path, path.name)


def _read(pydicom, path: Path, name: str) -> DicomImage:
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises InvalidDicomError, EOFError, ValueError ...
        raise DataError(f"{name}: not a readable DICOM file ({_first_line(exc)})") from None
    if not _element(ds, name, "PixelData", None, lambda v: v is not None):
        kind = _element(ds, name, "SOPClassUID", None, lambda v: v)
        what = f" ({one_line(kind.name, 80)})" if getattr(kind, "is_valid", False) else ""
        raise DataError(f"{name}: DICOM object without pixel data{what}: not an image")
    syntax = _element(getattr(ds, "file_meta", None) or {}, name, "TransferSyntaxUID", None,
                      lambda v: v)
    bits = _element(ds, name, "BitsAllocated", 0, int)
    photometric = _element(ds, name, "PhotometricInterpretation", "", lambda v: str(v).strip())
    if bits != 8:
        raise DataError(f"{name}: {bits}-bit DICOM pixels; skinedge reads 8-bit colour (dermoscopy) images")
    if photometric not in COLOUR + ("MONOCHROME2",):
        raise DataError(f"{name}: photometric interpretation {one_line(photometric, 40) or 'missing'} is not supported "
                        f"(use {', '.join(COLOUR)} or MONOCHROME2)")
    frames_n = _element(ds, name, "NumberOfFrames", 1, lambda v: int(v) or 1)
    samples = _element(ds, name, "SamplesPerPixel", 3, int)
    try:
        pixels = ds.pixel_array  # pydicom 3: YBR is converted to RGB, JPEG decoded (Pillow)
    except Exception as exc:  # noqa: BLE001 - no decoder for the syntax, truncated pixel data, ...
        where = f"transfer syntax {one_line(syntax.name, 80)}" if hasattr(syntax, "name") else "its pixel data"
        raise DataError(f"{name}: cannot decode {where} ({_first_line(exc)})") from None
    notes = []
    if photometric == "MONOCHROME2":
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
        notes.append("grayscale → RGB")
    elif photometric != "RGB" and samples == 3 and not _converted(pydicom):
        pixels = pydicom.pixels.convert_color_space(pixels, photometric, "RGB")
    if frames_n == 1:
        pixels = pixels[None]
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise DataError(f"{name}: unexpected pixel array {pixels.shape} {pixels.dtype}")
    if frames_n > 1:
        notes.append(f"{frames_n} frames, each enhanced on its own")
    header = ds.copy()
    del header.PixelData
    return DicomImage([np.ascontiguousarray(f) for f in pixels], header, notes)


def _element(ds, name: str, keyword: str, default, convert):
    """One header element through ``convert``, ``default`` when absent or empty; pydicom parses elements when
    first read, so a damaged one fails here: one line naming it."""
    try:
        value = ds.get(keyword, default)
        return convert(default if value is None or (isinstance(value, (str, bytes)) and not value) else value)
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, struct.error, ... from a damaged element
        raise DataError(f"{name}: DICOM element {keyword} is unreadable ({_first_line(exc)})") from None


@contextlib.contextmanager
def _quiet(pydicom):
    """pydicom warns (warnings and its logger) about every odd value it reads; the verdict is ours, in one
    line, so its chatter does not reach the user's terminal."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _converted(pydicom) -> bool:
    """pydicom ≥ 3 converts YBR to RGB in ``pixel_array`` itself."""
    return int(pydicom.__version__.split(".")[0]) >= 3


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return one_line(text[0] if text else type(exc).__name__, 200)
