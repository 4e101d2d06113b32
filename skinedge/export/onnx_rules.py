"""Check an ONNX file against what TensorRT's ONNX parser accepts, without TensorRT.

TensorRT cannot be installed on the machines that export and test our models, and a
Jetson engine build is slow and fails with terse messages. These checks read only the
ONNX graph, so an export can be rejected here, before it reaches a device:

* operators: every node of the main graph must be in ``tensorrt_ops.txt``, the list of
  supported operators taken from onnx-tensorrt's ``docs/operators.md`` (its header names
  the version and commit);
* explicit quantization: an INT8 model must be in the Q/DQ form TensorRT builds from:
  symmetric signed INT8 (zero points 0), positive finite scales, per-channel weights along
  the output-channel axis, per-tensor activations and float biases.

Only the main graph is inspected (not If/Loop bodies), and only the default ONNX domain
counts for the operator list: nodes of other domains are plugins, outside this check.
"""

from __future__ import annotations

import functools
from collections import Counter
from importlib import resources

import numpy as np
import onnx
from onnx import numpy_helper

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Layers TensorRT runs in INT8 when both data and weight come through DequantizeLinear.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_DEFAULT_DOMAINS = ("", "ai.onnx")


@functools.lru_cache(maxsize=1)
def tensorrt_supported_ops() -> frozenset[str]:
    """Op types TensorRT's ONNX parser supports, read from ``tensorrt_ops.txt`` next to this module."""
    text = resources.files(__package__).joinpath("tensorrt_ops.txt").read_text(encoding="utf-8")
    ops = (line.strip() for line in text.splitlines())
    return frozenset(op for op in ops if op and not op.startswith("#"))


def unsupported_ops(model: onnx.ModelProto) -> dict[str, int]:
    """Op types of the main graph (default ONNX domain) missing from the TensorRT list, with node counts."""
    supported = tensorrt_supported_ops()
    counts = Counter(
        node.op_type for node in model.graph.node if node.domain in _DEFAULT_DOMAINS and node.op_type not in supported
    )
    return dict(sorted(counts.items()))


class _Graph:
    """Tensor name -> producing node, and constant tensor name -> value (initializers and Constant nodes)."""

    def __init__(self, graph: onnx.GraphProto):
        self.producer: dict[str, onnx.NodeProto] = {out: node for node in graph.node for out in node.output if out}
        self.initializer: dict[str, onnx.TensorProto] = {init.name: init for init in graph.initializer}

    def constant(self, name: str) -> onnx.TensorProto | None:
        """The TensorProto behind ``name`` if it is an initializer or a Constant node's ``value``."""
        if name in self.initializer:
            return self.initializer[name]
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return attr.t
        return None

    def on_weight_path(self, node: onnx.NodeProto) -> bool:
        """A Q/DQ node over constant data: a constant input, or a DQ fed by a Q of a constant (Q -> DQ weights)."""
        if self.constant(node.input[0]) is not None:
            return True
        source = self.producer.get(node.input[0])
        return (
            node.op_type == "DequantizeLinear"
            and source is not None
            and source.op_type == "QuantizeLinear"
            and self.constant(source.input[0]) is not None
        )


def _label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _axis(node: onnx.NodeProto, rank: int) -> int:
    """The Q/DQ ``axis`` attribute (ONNX default 1), made non-negative for a tensor of ``rank``."""
    axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 1)
    return axis + rank if axis < 0 else axis


def _weight_axis(layer: onnx.NodeProto, weight_rank: int) -> int:
    """The output-channel axis of ``layer``'s weight input."""
    if layer.op_type == "ConvTranspose":
        return 1
    if layer.op_type == "Gemm":
        trans_b = next((attr.i for attr in layer.attribute if attr.name == "transB"), 0)
        return 0 if trans_b else 1
    if layer.op_type == "MatMul":
        return weight_rank - 1
    return 0  # Conv


def _check_scale_and_zero_point(node: onnx.NodeProto, g: _Graph, where: str) -> tuple[list[str], np.ndarray | None]:
    """Rules (a) and (b) for one Q/DQ node; returns the violations and the scale, when constant."""
    problems = []
    scale_proto = g.constant(node.input[1]) if len(node.input) > 1 else None
    scale = None
    if scale_proto is None:
        problems.append(f"{where}: scale is not an initializer or Constant, so it cannot be checked")
    else:
        scale = numpy_helper.to_array(scale_proto)
        if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
            problems.append(f"{where}: scale must be positive and finite, got {np.ravel(scale)[:8].tolist()}")
    if len(node.input) < 3 or not node.input[2]:
        problems.append(f"{where}: no zero point (ONNX then defaults to uint8); TensorRT needs an int8 zero point of 0")
    else:
        zp = g.constant(node.input[2])
        if zp is None:
            problems.append(f"{where}: zero point is not an initializer or Constant; TensorRT needs int8 zeros")
        else:
            if zp.data_type != onnx.TensorProto.INT8:
                dtype = onnx.TensorProto.DataType.Name(zp.data_type).lower()
                problems.append(f"{where}: zero point is {dtype}; TensorRT needs int8 (signed, symmetric)")
            values = numpy_helper.to_array(zp)
            if np.any(values != 0):
                problems.append(f"{where}: zero point must be all zeros, got {np.ravel(values)[:8].tolist()}")
    return problems, scale


def _check_weight(dq: onnx.NodeProto, layer: onnx.NodeProto, g: _Graph, scale, where: str) -> list[str]:
    """Rule (c) for a DequantizeLinear feeding ``layer``'s weight input."""
    problems = []
    source = g.constant(dq.input[0])
    if source is None:  # float weights -> QuantizeLinear -> here
        source = g.constant(g.producer[dq.input[0]].input[0])
    elif source.data_type != onnx.TensorProto.INT8:
        dtype = onnx.TensorProto.DataType.Name(source.data_type).lower()
        problems.append(f"{where}: quantized weight '{dq.input[0]}' is {dtype}; TensorRT needs int8")
    if scale is None or source is None:
        return problems
    rank = len(source.dims)
    want = _weight_axis(layer, rank)
    channels = source.dims[want] if want < rank else None
    if scale.size == 1 and channels != 1:  # one output channel: per-tensor is per-channel
        problems.append(
            f"{where}: per-tensor weight quantization of {layer.op_type} '{_label(layer)}'; "
            f"TensorRT needs per-channel scales along axis {want} ({channels} channels)"
        )
    elif _axis(dq, rank) != want or scale.ndim != 1 or scale.size != channels:
        problems.append(
            f"{where}: weight of {layer.op_type} '{_label(layer)}' quantized along axis {_axis(dq, rank)} with "
            f"{scale.size} scales; TensorRT needs axis {want} with one scale per output channel ({channels})"
        )
    return problems


def check_tensorrt_qdq(model: onnx.ModelProto) -> list[str]:
    """Every violation of TensorRT's explicit-quantization (Q/DQ) rules, one line each; empty when compliant.

    Rules: (a) Q/DQ zero points are int8 and all zeros (a missing one defaults to uint8);
    (b) scales are positive and finite; (c) a weight DequantizeLinear feeding Conv/ConvTranspose/
    Gemm/MatMul is per-channel along the output-channel axis over int8 data; (d) activation Q/DQ
    are per-tensor; (e) Conv/ConvTranspose/Gemm biases are float, not DequantizeLinear outputs;
    (f) a model without any Q/DQ node is not quantized.
    """
    graph = model.graph
    g = _Graph(graph)
    qdq = [node for node in graph.node if node.op_type in QDQ_OPS]
    if not qdq:
        return ["model is not quantized: no QuantizeLinear/DequantizeLinear nodes"]
    problems: list[str] = []
    scales: dict[str, np.ndarray | None] = {}
    for node in qdq:
        where = f"{node.op_type} '{_label(node)}'"
        found, scales[node.output[0]] = _check_scale_and_zero_point(node, g, where)
        problems += found
        scale = scales[node.output[0]]
        if not g.on_weight_path(node) and scale is not None and scale.size != 1:
            problems.append(f"{where}: activation quantized with {scale.size} scales; TensorRT needs per-tensor")
    for layer in graph.node:
        if layer.op_type not in WEIGHTED_OPS:
            continue
        dq = g.producer.get(layer.input[1]) if len(layer.input) > 1 else None
        if dq is not None and dq.op_type == "DequantizeLinear" and g.on_weight_path(dq):
            where = f"DequantizeLinear '{_label(dq)}'"
            problems += _check_weight(dq, layer, g, scales[dq.output[0]], where)
        bias = g.producer.get(layer.input[2]) if len(layer.input) > 2 and layer.input[2] else None
        if layer.op_type != "MatMul" and bias is not None and bias.op_type == "DequantizeLinear":
            data = g.constant(bias.input[0])
            dtype = onnx.TensorProto.DataType.Name(data.data_type).lower() if data is not None else "quantized"
            problems.append(
                f"{layer.op_type} '{_label(layer)}': bias comes from DequantizeLinear '{_label(bias)}' "
                f"of {dtype} data; TensorRT needs a float bias"
            )
    return problems


def quantized_layers(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(Conv/ConvTranspose/Gemm/MatMul nodes whose data and weight both come from DequantizeLinear, those in float)."""
    g = _Graph(model.graph)
    quantized: list[str] = []
    left_float: list[str] = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        from_dq = [
            i < len(node.input) and getattr(g.producer.get(node.input[i]), "op_type", None) == "DequantizeLinear"
            for i in (0, 1)
        ]
        (quantized if all(from_dq) else left_float).append(_label(node))
    return quantized, left_float
