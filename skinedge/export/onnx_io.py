"""Reading, checking, saving and running ONNX files, with errors a user can act on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx

from skinedge.atomic import sha256_file, write_bytes_atomic  # noqa: F401 - sha256_file re-exported
from skinedge.errors import SkinedgeError


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file; a missing or non-ONNX file is a one-line SkinedgeError."""
    path = Path(path)
    if not path.is_file():
        raise SkinedgeError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for garbage
        raise SkinedgeError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise SkinedgeError(f"{path}: not an ONNX model (no graph)")
    return model


def check_model(model: onnx.ModelProto, what: str) -> onnx.ModelProto:
    """``onnx.checker`` (full) and strict shape inference; returns the shape-inferred model."""
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise SkinedgeError(f"{what}: the ONNX graph is not valid ({first})") from None


def save_onnx(model: onnx.ModelProto, path: str | Path) -> str:
    """Write atomically (temp + rename); returns the file's sha256."""
    data = model.SerializeToString()
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def session(path_or_model: str | Path | onnx.ModelProto, threads: int = 0):
    """A CPU ONNX Runtime session (``threads`` 0 = ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        name = "model" if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
        raise SkinedgeError(f"{name}: ONNX Runtime cannot load it ({str(exc).strip()[:300]})") from None


def run_batched(sess, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """Run a one-input, one-output session over ``inputs`` in batches."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: inputs[i:i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(outs)
