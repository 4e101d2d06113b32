"""FP32 → FP16 ONNX conversion with FP32 inputs/outputs and FP32 islands.

Why our own ~100 lines instead of onnxconverter-common: its ``op_block_list``
writes graphs ONNX Runtime refuses to load (a Cast whose declared output type
disagrees with its producer — seen here with GlobalAveragePool, v1.16), and a
converter we can read is one we can trust with "FP16 turned my image black".

Rules:
- weights and activations become FP16; graph inputs and outputs stay FP32
  (a Cast right after each input and right before each output);
- ops in ``KEEP_FP32`` (reductions and normalisations, where FP16 sums lose
  precision or overflow) run in FP32 with Casts around them;
- operands that ONNX requires to be float32 whatever the data type (Resize's
  roi/scales) are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FP32 = frozenset({
    "GlobalAveragePool", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp",
    "Softmax", "LogSoftmax", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "GroupNormalization", "Exp", "Pow",
})
# (op, input index) pairs that must stay float32 even in an FP16 graph.
FLOAT32_OPERANDS = frozenset({("Resize", 1), ("Resize", 2)})
FP16_MAX = float(np.finfo(np.float16).max)


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor (inputs, initializers, intermediates, outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    typed = [*g.input, *g.value_info, *g.output]
    names = {v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    names |= {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}
    for node in g.node:
        if node.op_type == "Constant" and any(a.name == "value" and a.t.data_type == TensorProto.FLOAT
                                              for a in node.attribute):
            names.update(node.output)
    return names


def _to_fp16(array: np.ndarray) -> np.ndarray:
    """Clip into FP16's range before casting: an inf weight would poison every output."""
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)


def convert_to_fp16(model: onnx.ModelProto, keep_fp32: frozenset[str] = KEEP_FP32,
                    keep_nodes: frozenset[str] = frozenset()) -> onnx.ModelProto:
    """Return an FP16 copy of ``model`` (FP32 I/O); ``keep_nodes`` names extra nodes to keep FP32."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    floats = _float_tensors(model)
    fp32_node = lambda n: n.op_type in keep_fp32 or n.name in keep_nodes  # noqa: E731
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = f"{name}__to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"{casts[key]}_cast"))
        return casts[key]

    # Which float tensors must keep a float32 copy / get an FP16 copy, decided by their consumers.
    fp32_needed = set()
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in floats and (fp32_node(node) or (node.op_type, i) in FLOAT32_OPERANDS):
                fp32_needed.add(name)
    initializers = {t.name: t for t in g.initializer}
    graph_inputs = {v.name for v in g.input if v.name in floats}
    constants = {n.output[0] for n in g.node if n.op_type == "Constant"}
    stays32 = graph_inputs | (fp32_needed & (set(initializers) | constants))

    for name, tensor in initializers.items():
        if name in floats and name not in fp32_needed:
            tensor.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(tensor)), name))
    for name in graph_inputs:  # FP32 input → FP16 copy for the graph
        cast(name, TensorProto.FLOAT16)

    for node in g.node:
        keep32 = fp32_node(node)
        for i, name in enumerate(node.input):
            if name not in floats or not name:
                continue
            wants32 = keep32 or (node.op_type, i) in FLOAT32_OPERANDS
            is32 = name in stays32
            if wants32 and not is32:
                node.input[i] = cast(name, TensorProto.FLOAT)
            elif not wants32 and is32:
                node.input[i] = cast(name, TensorProto.FLOAT16)
        if node.op_type == "Constant" and not keep32 and node.output[0] not in fp32_needed:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(attr.t))))
        if node.op_type == "Cast" and not keep32:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
        if keep32:  # its FP32 outputs get an FP16 twin under the original name
            for j, out in enumerate(node.output):
                if out in floats:
                    node.output[j] = f"{out}__fp32"
                    new_nodes.append(helper.make_node("Cast", [node.output[j]], [out], to=TensorProto.FLOAT16,
                                                      name=f"{out}__fp16_cast"))
        new_nodes.append(node)

    for out in g.output:  # the graph's FP16 result → FP32 output under the original name
        if out.name in floats:
            producer = next((n for n in new_nodes if out.name in n.output), None)
            if producer is not None:
                inner = f"{out.name}__fp16"
                producer.output[list(producer.output).index(out.name)] = inner
                for n in new_nodes:
                    n.input[:] = [inner if x == out.name else x for x in n.input]
                new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT,
                                                  name=f"{out.name}__fp32_cast"))
    g.ClearField("node")
    g.node.extend(_topological(new_nodes, {v.name for v in g.input} | set(initializers)))
    g.ClearField("value_info")
    return onnx.shape_inference.infer_shapes(model)


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Order nodes so each runs after its inputs' producers (Casts were appended out of order)."""
    ready, ordered, pending = set(available) | {""}, [], list(nodes)
    while pending:
        progressed = False
        for node in list(pending):
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progressed = True
        if not progressed:
            raise ValueError(f"FP16 conversion left a cycle or dangling input at {pending[0].name}")
    return ordered
