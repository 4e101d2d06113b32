"""The TensorRT op list and Q/DQ rule checks, on small models built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from skinedge.export import onnx_rules as rules  # noqa: E402

OPSET = 17
OPS_FILE = Path(rules.__file__).with_name("tensorrt_ops.txt")


def _conv_relu_conv(seed: int = 0) -> onnx.ModelProto:
    """Float Conv(3->8, 3x3) -> Relu -> Conv(8->4, 3x3), both with float biases."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_relu_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def _qdq_conv(
    *,
    zero_point: int = 0,
    act_scale: float = 0.05,
    weight_per_channel: bool = True,
    int32_bias: bool = False,
) -> onnx.ModelProto:
    """A hand-built TensorRT-style Q/DQ Conv: x -> Q -> DQ -> Conv(int8 weights via DQ) -> y."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    if weight_per_channel:
        w_scale = (np.abs(w).reshape(8, -1).max(axis=1) / 127).astype(np.float32)
        w_q = np.round(w / w_scale[:, None, None, None]).astype(np.int8)
        w_zp = np.zeros(8, np.int8)
    else:
        w_scale = np.array(np.abs(w).max() / 127, np.float32)
        w_q = np.round(w / w_scale).astype(np.int8)
        w_zp = np.array(0, np.int8)
    inits = [
        numpy_helper.from_array(np.array(act_scale, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(zero_point, np.int8), "x_zp"),
        numpy_helper.from_array(w_q, "w_q"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(w_zp, "w_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="x_Q"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="x_DQ"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="w_DQ", axis=0),
    ]
    if int32_bias:
        b_scale = (act_scale * np.broadcast_to(w_scale, (8,))).astype(np.float32)
        inits += [
            numpy_helper.from_array(np.arange(-4, 4, dtype=np.int32), "b_q"),
            numpy_helper.from_array(b_scale, "b_scale"),
            numpy_helper.from_array(np.zeros(8, np.int32), "b_zp"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b"], name="b_DQ", axis=0))
    else:
        inits.append(numpy_helper.from_array(np.linspace(-0.1, 0.1, 8).astype(np.float32), "b"))
    nodes.append(helper.make_node("Conv", ["x_dq", "w_dq", "b"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "qdq_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


# -- the op list ---------------------------------------------------------------------------------


def test_op_list_file_names_its_source():
    header = [line for line in OPS_FILE.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert "onnx/onnx-tensorrt" in text and "docs/operators.md" in text
    assert "https://github.com/onnx/onnx-tensorrt/" in text
    assert "Taken:" in text


def test_op_list_parses_and_holds_the_ops_we_use():
    ops = rules.tensorrt_supported_ops()
    assert isinstance(ops, frozenset)
    assert len(ops) > 100
    for op in (
        "Conv",
        "ConvTranspose",
        "Resize",
        "DepthToSpace",
        "PRelu",
        "QuantizeLinear",
        "DequantizeLinear",
        "Sigmoid",
        "GlobalAveragePool",
        "Relu",
        "Concat",
        "Add",
        "Mul",
    ):
        assert op in ops, op
    assert all(op and not op.startswith("#") and " " not in op for op in ops)


def test_op_list_leaves_out_unsupported_and_made_up_ops():
    ops = rules.tensorrt_supported_ops()
    assert "FancyMadeUpOp" not in ops
    # Marked "N" in onnx-tensorrt's operators.md.
    for op in ("ConvInteger", "QLinearConv", "DynamicQuantizeLinear", "Unique", "SequenceAt"):
        assert op not in ops, op


def test_op_list_names_are_onnx_ops():
    """Every listed name is a standard ONNX op, bar three old experimental ones the source still lists."""
    legacy = {"ImageScaler", "ParametricSoftplus", "ScaledTanh"}
    unknown = {op for op in rules.tensorrt_supported_ops() if not onnx.defs.has(op)}
    assert unknown == legacy


# -- unsupported_ops -----------------------------------------------------------------------------


def test_unsupported_ops_empty_for_a_plain_conv_model():
    assert rules.unsupported_ops(_conv_relu_conv()) == {}


def test_unsupported_ops_counts_made_up_and_unsupported_ops():
    model = _conv_relu_conv()
    graph = model.graph
    graph.node.append(helper.make_node("FancyMadeUpOp", ["y"], ["z1"], name="fancy1"))
    graph.node.append(helper.make_node("FancyMadeUpOp", ["z1"], ["z2"], name="fancy2"))
    graph.node.append(helper.make_node("Unique", ["z2"], ["z3"], name="unique"))
    # Another domain is a plugin: not judged by the op list.
    graph.node.append(helper.make_node("MyPlugin", ["z3"], ["z4"], name="plugin", domain="com.example"))
    assert rules.unsupported_ops(model) == {"FancyMadeUpOp": 2, "Unique": 1}


# -- check_tensorrt_qdq on hand-built models -----------------------------------------------------


def test_hand_built_tensorrt_qdq_model_is_compliant():
    model = _qdq_conv()
    assert rules.check_tensorrt_qdq(model) == []
    assert rules.quantized_layers(model) == (["conv"], [])


def test_float_model_is_not_quantized():
    problems = rules.check_tensorrt_qdq(_conv_relu_conv())
    assert len(problems) == 1 and "not quantized" in problems[0]
    assert rules.quantized_layers(_conv_relu_conv()) == ([], ["conv1", "conv2"])


def test_nonzero_zero_point_is_reported():
    problems = rules.check_tensorrt_qdq(_qdq_conv(zero_point=3))
    assert problems
    assert all("zero point must be all zeros" in p for p in problems)
    assert {p.split("'")[1] for p in problems} == {"x_Q", "x_DQ"}


@pytest.mark.parametrize("scale", [-0.05, 0.0, float("inf"), float("nan")])
def test_bad_scale_is_reported(scale):
    problems = rules.check_tensorrt_qdq(_qdq_conv(act_scale=scale))
    assert len(problems) == 2
    assert all("scale must be positive and finite" in p for p in problems)


def test_int32_quantized_bias_is_reported():
    problems = rules.check_tensorrt_qdq(_qdq_conv(int32_bias=True))
    assert "Conv 'conv': bias comes from DequantizeLinear 'b_DQ' of int32 data; TensorRT needs a float bias" in problems
    # The bias DQ's int32 zero point breaks rule (a) as well; nothing else is wrong.
    assert len(problems) == 2, problems


def test_per_tensor_weights_are_reported():
    problems = rules.check_tensorrt_qdq(_qdq_conv(weight_per_channel=False))
    assert len(problems) == 1 and "per-tensor weight quantization" in problems[0] and "w_DQ" in problems[0]


def test_missing_zero_point_is_reported():
    model = _qdq_conv()
    for node in model.graph.node:
        if node.name in ("x_Q", "x_DQ"):
            del node.input[2]
    problems = rules.check_tensorrt_qdq(model)
    assert len(problems) == 2 and all("no zero point" in p for p in problems)


def test_uint8_zero_point_is_reported():
    model = _qdq_conv()
    for i, init in enumerate(model.graph.initializer):
        if init.name == "x_zp":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.array(0, np.uint8), "x_zp"))
    problems = rules.check_tensorrt_qdq(model)
    assert len(problems) == 2 and all("zero point is uint8" in p for p in problems)


def test_weight_quantized_on_the_wrong_axis_is_reported():
    model = _qdq_conv()
    for node in model.graph.node:
        if node.name == "w_DQ":
            node.attribute[0].i = 1  # 8 scales but axis 1 (3 input channels)
    problems = rules.check_tensorrt_qdq(model)
    assert len(problems) == 1 and "needs axis 0" in problems[0]


def test_per_channel_activation_is_reported():
    model = _qdq_conv()
    for i, init in enumerate(model.graph.initializer):
        if init.name == "x_scale":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.full(3, 0.05, np.float32), "x_scale"))
        if init.name == "x_zp":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.zeros(3, np.int8), "x_zp"))
    problems = rules.check_tensorrt_qdq(model)
    assert len(problems) == 2 and all("needs per-tensor" in p for p in problems)


# -- check_tensorrt_qdq on ONNX Runtime quantized models -----------------------------------------


def _ort_quantize(tmp_path: Path, name: str, **options) -> onnx.ModelProto:
    quantization = pytest.importorskip("onnxruntime.quantization")

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(7)
            self._batches = iter([{"x": rng.normal(0, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self._batches, None)

    source = tmp_path / "float.onnx"
    onnx.save(_conv_relu_conv(), source)
    target = tmp_path / f"{name}.onnx"
    quantization.quantize_static(
        str(source), str(target), Reader(), quant_format=quantization.QuantFormat.QDQ, **options
    )
    return onnx.load(target)


def test_ort_tensorrt_form_is_compliant(tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    model = _ort_quantize(
        tmp_path,
        "trt",
        activation_type=quantization.QuantType.QInt8,
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )
    assert rules.check_tensorrt_qdq(model) == []
    assert rules.quantized_layers(model) == (["conv1", "conv2"], [])
    assert rules.unsupported_ops(model) == {}


def test_ort_default_uint8_form_is_reported(tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    model = _ort_quantize(tmp_path, "u8", activation_type=quantization.QuantType.QUInt8, per_channel=False)
    problems = rules.check_tensorrt_qdq(model)
    assert any("zero point is uint8" in p for p in problems), problems
    assert sum("per-tensor weight quantization" in p for p in problems) == 2, problems
    assert sum("needs a float bias" in p for p in problems) == 2, problems  # QuantizeBias defaults to True
    assert rules.quantized_layers(model)[0] == ["conv1", "conv2"]


def test_float_weights_through_q_then_dq_are_checked_as_weights():
    """Exporters such as pytorch-quantization keep float weights and quantize them with Q -> DQ in the graph."""
    model = _qdq_conv()
    graph = model.graph
    w_q = next(init for init in graph.initializer if init.name == "w_q")
    w_scale = numpy_helper.to_array(next(init for init in graph.initializer if init.name == "w_scale"))
    w_float = numpy_helper.to_array(w_q).astype(np.float32) * w_scale[:, None, None, None]
    w_q.CopyFrom(numpy_helper.from_array(w_float, "w_float"))
    graph.node.insert(
        0, helper.make_node("QuantizeLinear", ["w_float", "w_scale", "w_zp"], ["w_q"], name="w_Q", axis=0)
    )
    onnx.checker.check_model(model)
    assert rules.check_tensorrt_qdq(model) == []
    for node in graph.node:
        if node.name in ("w_Q", "w_DQ"):
            node.attribute[0].i = 1  # per-channel along the wrong axis
    problems = rules.check_tensorrt_qdq(model)
    assert len(problems) == 1 and "'w_DQ'" in problems[0] and "needs axis 0" in problems[0], problems
