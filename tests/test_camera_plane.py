"""The generator's camera plane: a 4th input channel telling it whether the LR came through a camera.

The network (torch) and what feeds it: the runtime sets the plane from the frame's noise floor, the engine profiles
and models.json carry the 4th channel. Generated frames only; ``train all`` itself (export, calibration and
``eval --models`` of a 4-channel generator) is run by ``tests/test_train_all.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_runners import FnRunner
from test_projection_noise import jpeg, lr_of, skin_hr, to_uint8_levels

from skinedge.models.srgan import Generator, with_camera_plane
from skinedge.runtime.engines import profile as E
from skinedge.runtime.manifest import FORMAT, FORMAT_VERSION, ModelsError, load_models
from skinedge.runtime.pipeline import camera_plane
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.pipeline.projection import Fidelity

ARCH = {"blocks": 2, "features": 16, "scale": 4, "bicubic_skip": True, "norm": False, "zero_tail": True}


def test_the_plane_is_a_4th_channel_the_untrained_network_ignores_and_a_trained_one_reads():
    torch.manual_seed(0)
    generator = Generator(**ARCH, camera_plane=True).eval()
    assert generator.in_channels == 4 and generator.head[0].in_channels == 4
    lr = torch.rand(2, 3, 10, 12)
    x = with_camera_plane(lr, torch.tensor([1.0, 0.0]))
    assert x.shape == (2, 4, 10, 12)
    assert torch.equal(x[:, :3], lr) and x[0, 3].eq(1).all() and x[1, 3].eq(0).all()
    with torch.no_grad():  # zero tail: bicubic of the RGB planes, whatever the plane says
        assert torch.equal(generator(x), F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False))
        generator.tail.weight.normal_(0, 0.01)
        camera, clean = generator(with_camera_plane(lr, 1.0)), generator(with_camera_plane(lr, 0.0))
    assert (camera - clean).abs().max() > 1e-4


def _frame(lr: np.ndarray) -> np.ndarray:
    """A float 1×3×h×w RGB LR as the uint8 BGR frame a camera hands the pipeline."""
    return np.ascontiguousarray((np.rint(lr[0].transpose(1, 2, 0) * 255)).astype(np.uint8)[:, :, ::-1])


def _pipeline_planes(frame: np.ndarray, **options) -> list[float]:
    """The camera plane values the host pipeline fed a 4-channel generator for one frame (the lesion: the frame)."""
    size = 32
    manifest = {"networks": {
        "seg": {"input": {"name": "image", "shape": ["batch", 3, size, size], "mean": [0.0] * 3, "std": [1.0] * 3},
                "output": {"name": "logits"}},
        "sr": {"input": {"name": "lr", "shape": ["batch", 4, "height", "width"]}, "output": {"name": "sr"},
               "scale": 4}}}
    seg = FnRunner(lambda x: np.full((1, 1, size, size), 6.0, np.float32), "image", "logits")

    def sr(x):
        assert x.shape[1] == 4
        return np.repeat(np.repeat(x[:, :3], 4, axis=2), 4, axis=3)

    runner = FnRunner(sr, "lr", "sr")
    with Pipeline(seg, runner, manifest, tile=512, **options) as pipeline:
        assert pipeline(frame).found
    return sorted({float(v) for x in runner.inputs for v in np.unique(x[:, 3])})


@pytest.mark.parametrize("options", [{}, {"fidelity": Fidelity(noise="off")}, {"sr_budget": 48 * 40}],
                         ids=["auto", "noise-off", "reduced"])
def test_the_runtime_tells_a_clean_frame_from_a_camera_one_by_its_noise_floor(options):
    hr = skin_hr(384, 512, seed=3)
    clean = to_uint8_levels(lr_of(hr))
    camera = jpeg(to_uint8_levels(lr_of(hr), sigma=3.0, seed=1), 75)
    assert _pipeline_planes(_frame(clean), **options) == [camera_plane.CLEAN]
    if options.get("sr_budget"):  # reduced to a quarter of its pixels: JPEG's grid is gone, the noise halved
        return
    assert _pipeline_planes(_frame(camera), **options) == [camera_plane.CAMERA]


def test_sr_input_adds_the_plane_only_for_a_4_channel_generator():
    hr = skin_hr(256, 256, seed=4)
    camera = (np.rint(jpeg(to_uint8_levels(lr_of(hr), 3.0), 75)[0].transpose(1, 2, 0) * 255)).astype(np.uint8)
    three, four = camera_plane.sr_input(camera, 3), camera_plane.sr_input(camera, 4)
    assert three.shape == (1, 3, 64, 64) and four.shape == (1, 4, 64, 64)
    assert np.array_equal(four[:, :3], three) and np.all(four[:, 3] == camera_plane.CAMERA)
    assert camera_plane.sr_channels({"input": {"shape": ["batch", 4, "h", "w"]}}) == 4
    assert camera_plane.sr_channels({"input": {"name": "lr"}}) == 3  # an older manifest, or a fake one


def _manifest(channels) -> dict:
    net = lambda c, hw: {"input": {"name": "x", "shape": ["batch", c, *hw], "mean": [0.0] * 3,  # noqa: E731
                                   "std": [1.0] * 3},
                         "output": {"name": "y", "shape": ["batch", 3, "h", "w"]},
                         "variants": {"fp32": {"file": "a.onnx", "sha256": "0" * 64, "precision": "fp32",
                                               "status": "ok"}}}
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "networks": {"seg": net(3, [64, 64]), "sr": {**net(channels, ["height", "width"]), "scale": 4}}}


def test_engine_shapes_give_a_profiles_rgb_the_camera_plane_and_models_json_checks_the_channels(tmp_path):
    manifest = _manifest(4)
    default = E.default_profile(manifest)
    assert default.nets["sr"].min == (1, 4, 16, 16)
    rgb = E.NetShapes("fp16", 0.0, (1, 3, 16, 16), (1, 3, 64, 64), (4, 3, 128, 128))  # a profile written for RGB
    assert E.resolve_shapes(manifest, "sr", rgb)["x"] == {"min": [1, 4, 16, 16], "opt": [1, 4, 64, 64],
                                                          "max": [4, 4, 128, 128]}
    assert E.resolve_shapes(_manifest(3), "sr", rgb)["x"]["max"] == [4, 3, 128, 128]
    with pytest.raises(Exception, match="dimension 1"):  # 5 channels is a contradiction, not RGB
        E.resolve_shapes(manifest, "sr", E.NetShapes("fp16", 0.0, (1, 5, 16, 16), (1, 5, 16, 16), (1, 5, 16, 16)))
    for channels, ok in ((4, True), (5, False), ("c", False)):
        (tmp_path / "models.json").write_text(json.dumps(_manifest(channels)))
        if ok:
            load_models(tmp_path)
        else:
            with pytest.raises(ModelsError, match="channels not 3"):
                load_models(tmp_path)
