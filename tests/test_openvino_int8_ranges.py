"""int8-ov keeps the calibration set's extreme activations (an SR generator's are at the lesion's border)."""

import numpy as np
import pytest
import torch

from skinedge.export import openvino_int8

pytestmark = pytest.mark.skipif(not openvino_int8.available(), reason="needs OpenVINO and NNCF (skinedge[openvino])")


def test_a_rare_strong_edge_in_one_calibration_sample_is_not_clipped(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False)
    rng = np.random.default_rng(0)
    samples = [(0.45 + 0.05 * rng.random((3, 32, 32))).astype(np.float32) for _ in range(15)]  # flat skin
    edge = samples[0].copy()
    edge[:, :, 16:] = 0.0  # one sample with a sharp dark border: the activations' extremes
    edge[:, :, :16] = 1.0
    samples.append(edge)
    import openvino as ov

    quantized = ov.Core().compile_model(openvino_int8.quantize(path, samples), "CPU")
    with torch.no_grad():
        want = net(torch.from_numpy(edge[None])).numpy()
    got = quantized(edge[None])[0]
    span = float(want.max() - want.min())
    assert np.abs(got - want).max() < 0.05 * span  # clipped ranges miss the edge by a large share of the span
