"""Reading, checking, saving and running ONNX files, with errors a user can act on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx

from skinedge.atomic import sha256_file, write_bytes_atomic  # noqa: F401 - sha256_file re-exported
from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.onnxruntime import SessionFromOnnx


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


def fixed_shape(model: onnx.ModelProto) -> bool:
    """True when every input's dimensions after the batch are fixed numbers (the segmenter; not the SR
    generator, which takes any ROI size)."""
    return all(d.HasField("dim_value") for i in model.graph.input for d in i.type.tensor_type.shape.dim[1:])


def session(path_or_model: str | Path | onnx.ModelProto, threads: int = 0):
    """A CPU ONNX Runtime session with the runtime's own settings
    (:class:`skinedge.runtime.backends.onnxruntime.SessionFromOnnx`; ``threads`` 0 = one per usable core).
    Anything that already runs like a session (an :class:`~skinedge.runtime.backends.openvino.OvSession`) is
    returned as it is, so the gates measure every variant the same way."""
    if hasattr(path_or_model, "run") and hasattr(path_or_model, "get_inputs"):
        return path_or_model
    if isinstance(path_or_model, onnx.ModelProto):
        return SessionFromOnnx(path_or_model.SerializeToString(), threads, fixed_shape(path_or_model))()
    try:
        fixed = fixed_shape(onnx.load(str(path_or_model), load_external_data=False))
    except Exception:  # noqa: BLE001 - not readable as ONNX: ONNX Runtime says why, in one line
        fixed = True
    return SessionFromOnnx(path_or_model, threads, fixed)()


def run_batched(sess, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """Run a one-input, one-output session over ``inputs`` in batches."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: inputs[i:i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(outs)
