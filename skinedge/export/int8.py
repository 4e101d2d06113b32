"""INT8 Q/DQ variants from real calibration images, in two flavours.

- ``int8`` (TensorRT's rules, DESIGN.md §3): symmetric signed INT8 activations
  and weights, zero point 0, per-channel weight scales on the output-channel
  axis, bias left in float, Q/DQ only around Conv inputs. TensorRT fuses these
  into INT8 convolutions; :func:`skinedge.export.onnx_rules.check_tensorrt_qdq`
  verifies every file.
- ``int8-cpu``: what ONNX Runtime runs fastest on *this* CPU. Candidates are the
  TensorRT form itself and the U8-activation/S8-weight form (x86's VNNI/AVX2
  kernels want unsigned activations); both are timed here and the faster is kept.

Activation ranges are computed once per calibration method and op set, then
cached (``calibration_cache_path``), so every mixed-precision retry quantizes
from the same statistics.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from skinedge.errors import SkinedgeError
from skinedge.export.onnx_io import session

METHODS = ("minmax", "percentile", "entropy")


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over in-memory NCHW float32 samples."""

    def __init__(self, name: str, samples: list[np.ndarray]):
        self.name, self.samples, self.position = name, samples, 0

    def get_next(self):
        if self.position >= len(self.samples):
            return None
        self.position += 1
        return {self.name: self.samples[self.position - 1][None]}

    def __len__(self) -> int:
        return len(self.samples)

    def rewind(self) -> None:
        self.position = 0


@dataclass(frozen=True)
class Flavour:
    name: str
    activation: str  # "s8" | "u8"
    symmetric: bool
    conv_only: bool


TENSORRT = Flavour("int8", "s8", True, True)
CPU_U8S8 = Flavour("int8-cpu/u8s8", "u8", False, False)


class Quantizer:
    """Calibrates ``model`` once with ``method``, then writes Q/DQ variants on demand."""

    def __init__(self, model: onnx.ModelProto, samples: list[np.ndarray], method: str, workdir: Path):
        if method not in METHODS:
            raise SkinedgeError(f"unknown calibration method {method!r}; choose {', '.join(METHODS)}")
        if len(samples) < 2:
            raise SkinedgeError(f"calibration needs at least 2 images, got {len(samples)}")
        self.model, self.method, self.workdir = model, method, workdir
        self.input = model.graph.input[0].name
        self.reader = _Reader(self.input, samples)
        self.source = workdir / "fp32.onnx"
        onnx.save(model, str(self.source))

    def quantize(self, flavour: Flavour, exclude: list[str] = ()) -> onnx.ModelProto:
        """One Q/DQ model of ``flavour`` with the nodes in ``exclude`` left in float."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        options = {"ActivationSymmetric": flavour.symmetric, "WeightSymmetric": True,
                   "QuantizeBias": not flavour.symmetric}
        if self.method == "percentile":
            options["CalibPercentile"] = 99.99
        out = self.workdir / f"{flavour.name.replace('/', '-')}.onnx"
        self.reader.rewind()
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # ORT warns "consider pre-processing" on every call
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # ORT's histogram calibrators print progress
                quantize_static(
                    str(self.source), str(out), self.reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"] if flavour.conv_only else None, per_channel=True,
                    activation_type=QuantType.QInt8 if flavour.activation == "s8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                    calibrate_method=methods[self.method], extra_options=options,
                    calibration_cache_path=str(self.workdir / f"ranges-{self.method}-{flavour.conv_only}.json"))
        finally:
            root.level = level
        return onnx.load(str(out))


def latency_ms(model: onnx.ModelProto, sample: np.ndarray, repeats: int = 3) -> float:
    """Median wall time of one ORT run on this CPU (after one warm-up run)."""
    sess = session(model)
    feed = {sess.get_inputs()[0].name: sample[None]}
    sess.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="skinedge-quant-")
