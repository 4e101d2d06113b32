"""Read images and masks as the rest of skinedge expects them, whatever the file.

Every reader in skinedge goes through these two functions, so an 8-/16-bit,
grayscale, palette or RGBA image becomes uint8 RGB in one place, and every
file that cannot be used fails with a message that names the file and the
reason (truncated, not an image, ...), never a bare PIL traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from skinedge.errors import DataError, one_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm")

# Dermoscopy images are a few megapixels; this guards against decompression bombs
# without refusing a large whole-slide-like photograph.
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000


def _describe_non_image(path: Path) -> str:
    """Say what a file that PIL cannot identify looks like, to make the fix obvious."""
    head = path.read_bytes()[:512]
    if not head:
        return "empty file (0 bytes)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image file (unknown format)"
    if all(c.isprintable() or c.isspace() for c in text):
        return f"not an image: it is a text file (starts with {text[:24].strip()!r})"
    return "not an image file (unknown format)"


@contextlib.contextmanager
def open_quietly(path: Path):
    """``Image.open`` without Pillow's warnings ("Corrupt EXIF data" ...): for a damaged file the caller's one
    line says it, and warnings print as two lines with a source path each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            yield im


def _open_pixels(path: Path) -> tuple[np.ndarray, str]:
    """Decode a file fully; return its pixels and PIL mode, or raise DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open_quietly(path) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            elif mode == "LA":
                im = im.convert("L")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        raise DataError(f"{path.name}: {_describe_non_image(path)}") from None
    except OSError as exc:  # PIL reports truncated/corrupt data as OSError
        reason = one_line(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"truncated or corrupt image data ({reason})"
        raise DataError(f"{path.name}: cannot decode: {reason}") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path.name}: image too large: {exc}") from None
    except SyntaxError as exc:  # some PIL plugins raise this on broken headers
        raise DataError(f"{path.name}: cannot decode: broken header ({one_line(exc)})") from None
    except (ValueError, TypeError, EOFError, IndexError, KeyError, ZeroDivisionError, struct.error) as exc:
        # what Pillow's plugins raise on damaged headers besides the above (found by tests/test_fuzz.py)
        raise DataError(f"{path.name}: cannot decode: damaged image ({one_line(exc) or type(exc).__name__})") from None
    return arr, mode


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any integer/float pixel array to uint8 by its type's range."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "iu":
        # PIL gives 16-bit PNGs as I;16 or I (int32) with values up to 65535.
        hi = 65535.0 if arr.max(initial=0) > 255 or arr.dtype == np.uint16 else 255.0
        return np.clip(np.rint(arr.astype(np.float64) * (255.0 / hi)), 0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        hi = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0
        return np.clip(np.rint(np.nan_to_num(arr) * (255.0 / hi)), 0, 255).astype(np.uint8)
    raise DataError(f"unsupported pixel type {arr.dtype}")


def read_rgb(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read an image file as uint8 RGB.

    Args:
        path: any format PIL reads (JPEG, PNG incl. 16-bit, BMP, TIFF), or a DICOM image
            (:mod:`skinedge.data.dicom`).
    Returns:
        (H×W×3 uint8 RGB array, notes) where notes say what was converted,
        e.g. ``"16-bit → 8-bit"``, ``"grayscale → RGB"``, ``"RGBA → RGB"``.
    Raises:
        DataError: missing, truncated, or not an image; the message names the file.
    """
    path = Path(path)
    from skinedge.data.dicom import DICOM_SUFFIXES, is_dicom, read_dicom

    # DICOM: by name, or (a file PIL cannot read) by its magic — no extra read for the usual image files.
    # The first frame of a multi-frame object (enhance takes them all).
    dicom = path.suffix.lower() in DICOM_SUFFIXES
    if not dicom:
        try:
            arr, mode = _open_pixels(path)
        except DataError:
            if not is_dicom(path):
                raise
            dicom = True
    if dicom:
        image = read_dicom(path)
        return image.frames[0], image.notes
    notes: list[str] = []
    if arr.dtype != np.uint8:
        notes.append(f"{mode} {arr.dtype} → 8-bit")
        arr = _to_uint8(arr)
    if arr.ndim == 2:
        notes.append("grayscale → RGB")
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        notes.append("RGBA → RGB (alpha dropped)")
        arr = arr[:, :, :3]
    elif arr.shape[2] != 3:
        raise DataError(f"{path.name}: {arr.shape[2]} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(arr), notes


def read_mask(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a lesion mask as a bool array.

    The expected file is single-channel 8-bit with values 0 and 255 (ISIC's
    convention). A mask with exactly two values {0, k} is read as k = lesion;
    any other mask is binarised at 128 like the ISIC scorer, and a note says so.

    Returns:
        (H×W bool array, notes); notes starting with ``"non-binary"`` flag masks
        whose values were not only 0/255.
    Raises:
        DataError: unreadable file.
    """
    path = Path(path)
    arr, mode = _open_pixels(path)
    notes: list[str] = []
    if arr.ndim == 3:
        notes.append(f"{mode} mask → single channel")
        arr = arr[:, :, :3].max(axis=2) if arr.shape[2] >= 3 else arr[:, :, 0]
    arr = _to_uint8(arr)
    values = np.unique(arr)
    if values.size == 0 or set(values.tolist()) <= {0, 255}:
        return arr > 127, notes
    if values.size <= 2 and values[0] == 0:
        notes.append(f"non-binary mask: values {{0, {int(values[-1])}}} read as 0/255")
        return arr > 0, notes
    shown = ", ".join(str(int(v)) for v in values[:6]) + (", ..." if values.size > 6 else "")
    notes.append(f"non-binary mask: {values.size} distinct values ({shown}); binarised at 128")
    return arr > 127, notes


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 H×W or H×W×3 array (deterministic for equal input)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
