"""``int8-ov``: NNCF post-training INT8 of an FP32 ONNX file, written as an OpenVINO IR (``.xml`` + ``.bin``).

Why a third INT8 form: on x86 CPUs with VNNI, ONNX Runtime's INT8 SR generator is slower than its FP32,
while OpenVINO's INT8 kernels run the same network ~3× faster than FP32 (NOTES.md). The variant is made
from the *same* calibration images as ``int8``/``int8-cpu`` and held to the same gates by
:mod:`skinedge.export.calibrate`; mixed-precision retries leave the costliest convolutions (measured on the
TensorRT-form INT8 model, by ONNX node name) in float through NNCF's ignored scope.

Activation ranges are the calibration set's min and max (``MINMAX``), not NNCF's default, which averages each
sample's extremes: an SR generator's largest activations are at the lesion's border, the sharpest edge in a
photo, and the averaged range clips them. A 60-minute ``train all`` generator on 24 held-out photos (lesion crops
and whole photos, both LR protocols): border band PSNR-Y 0.4–0.7 dB under FP32's with the default ranges (2.5 dB
in that run's gate), 0.06–0.11 dB under with MINMAX; lesion PSNR-Y within 0.07 dB of FP32's either way.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from skinedge.atomic import sha256_file
from skinedge.errors import SkinedgeError

OV_CONV_SUFFIX = "/WithoutBiases"  # OpenVINO's name for the convolution an ONNX Conv node becomes


def available() -> bool:
    """True when OpenVINO and NNCF are importable (``skinedge[openvino]`` and the ``train`` extra)."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def quantize(fp32_onnx: Path, samples: list[np.ndarray], keep_float: list[str] = ()):
    """An INT8 ``openvino.Model`` of ``fp32_onnx`` calibrated on ``samples`` (C×H×W float32, any sizes for the
    SR generator), with the ONNX Conv nodes named in ``keep_float`` left in float."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from skinedge.runtime.backends.openvino import shared_core

    model = shared_core().read_model(str(fp32_onnx))  # made before NNCF's own Cores, so they unwind first
    scope = nncf.IgnoredScope(names=[n + OV_CONV_SUFFIX for n in keep_float], validate=False) if keep_float \
        else None
    dataset = nncf.Dataset([x[None].astype(np.float32) for x in samples])
    quiet = logging.getLogger("nncf")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return nncf.quantize(model, dataset, subset_size=len(samples), ignored_scope=scope,
                                 advanced_parameters=AdvancedQuantizationParameters(
                                     activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX))
    except Exception as exc:  # noqa: BLE001 - NNCF raises many kinds; the user needs the one line
        raise SkinedgeError(f"{fp32_onnx}: NNCF could not quantize it ({str(exc).strip()[:300]})") from None
    finally:
        quiet.level = level


def save_ir(model, xml_path: Path) -> tuple[str, str]:
    """Write the IR next to the ONNX files, atomically per file (weights first, so a reader never finds a new
    ``.xml`` over old weights); returns the sha256 of the ``.xml`` and of the ``.bin``."""
    import openvino as ov

    xml_path = Path(xml_path)
    with tempfile.TemporaryDirectory(prefix=".ir-", dir=xml_path.parent) as tmp:
        staged = Path(tmp) / xml_path.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        bin_path = xml_path.with_suffix(".bin")
        os.replace(staged.with_suffix(".bin"), bin_path)
        os.replace(staged, xml_path)
    return sha256_file(xml_path), sha256_file(bin_path)
