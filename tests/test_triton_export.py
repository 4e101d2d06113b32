"""``skinedge export-triton``: a model repository Triton would load.

Triton itself does not run here (no server binary in this environment): the configs are parsed with Triton's own
``ModelConfig`` protobuf schema (from tritonclient), the files are checked against models.json, and the
pipeline's ``model.py`` is executed against a stand-in for ``triton_python_backend_utils`` whose BLS requests
are served by real ONNX Runtime sessions on the repository's own model files — its output must equal skinedge's
own pipeline on the same frame, pixel for pixel.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from skinedge.atomic import sha256_file
from skinedge.errors import SkinedgeError
from skinedge.export.triton import MODELS, PIPELINE, export_triton

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def repo(exported, tmp_path_factory):
    _, _, models = exported
    out = tmp_path_factory.mktemp("triton") / "repo"
    lines = []
    export_triton(models, out, log=lines.append)
    return models, out, lines


def test_configs_follow_tritons_schema_and_name_the_models_files(repo):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc]")
    from google.protobuf import text_format

    models, out, _ = repo
    manifest = json.loads((models / "models.json").read_text())
    for net, name in MODELS.items():
        config = text_format.Parse((out / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        spec = manifest["networks"][net]
        assert config.name == name and config.backend == "onnxruntime" and config.max_batch_size == 8
        assert config.input[0].name == spec["input"]["name"] and config.output[0].name == spec["output"]["name"]
        assert list(config.input[0].dims) == [-1 if isinstance(d, str) else d for d in spec["input"]["shape"][1:]]
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert sha256_file(out / name / "1" / "model.onnx") == spec["variants"]["fp32"]["sha256"]
    pipeline = text_format.Parse((out / PIPELINE / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert pipeline.backend == "python" and [o.name for o in pipeline.output] == ["ENHANCED", "ROI", "FOUND", "NOTICE"]
    assert (out / PIPELINE / "1" / "model.py").is_file() and (out / PIPELINE / "1" / "models.json").is_file()


def stand_in_pb_utils(repo_dir):
    """The parts of Triton's ``triton_python_backend_utils`` the model uses; BLS served by ONNX Runtime."""
    sessions = {}

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, np.asarray(array)

        def as_numpy(self):
            return self.array

    class Response:
        def __init__(self, output_tensors=(), error=None):
            self.output_tensors, self._error = list(output_tensors), error

        def has_error(self):
            return self._error is not None

        def error(self):
            return self._error

    class InferenceRequest:
        def __init__(self, model_name, requested_output_names, inputs):
            self.model, self.outputs, self.inputs = model_name, requested_output_names, inputs

        def exec(self):
            if self.model not in sessions:
                sessions[self.model] = ort.InferenceSession(str(repo_dir / self.model / "1" / "model.onnx"))
            got = sessions[self.model].run(self.outputs, {t.name: t.array for t in self.inputs})
            return Response([Tensor(n, a) for n, a in zip(self.outputs, got)])

    def by_name(holder, name):
        tensors = holder.output_tensors if isinstance(holder, Response) else holder.inputs
        return next(t for t in tensors if t.name == name)

    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor, module.InferenceRequest, module.InferenceResponse = Tensor, InferenceRequest, Response
    module.get_input_tensor_by_name = module.get_output_tensor_by_name = by_name
    module.TritonModelException = RuntimeError
    module.TritonError = lambda message: message
    return module, sessions


def test_the_pipeline_model_gives_skinedges_own_result_through_bls(repo, exported, monkeypatch):
    from skinedge.runtime.backends import open_runners
    from skinedge.runtime.manifest import load_models
    from skinedge.runtime.pipeline.host import Pipeline

    models, out, _ = repo
    module, sessions = stand_in_pb_utils(out)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    spec = importlib.util.spec_from_file_location("triton_pipeline_model", out / PIPELINE / "1" / "model.py")
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    model = code.TritonPythonModel()
    model.initialize({"model_repository": str(out / PIPELINE), "model_version": "1"})
    from test_runtime import lesion_frame

    frame = lesion_frame(exported[0])
    request = types.SimpleNamespace(inputs=[module.Tensor("IMAGE", frame)])
    response = model.execute([request])[0]
    assert not response.has_error() and set(sessions) == set(MODELS.values())  # both networks went through BLS
    got = {t.name: t.as_numpy() for t in response.output_tensors}
    manifest = load_models(models)
    opened = open_runners(models, manifest, "onnxruntime", "fp32")
    with Pipeline(opened.seg, opened.sr, manifest, "roi") as pipeline:
        want = pipeline(frame)
    assert np.array_equal(got["ENHANCED"], want.image) and bool(got["FOUND"][0]) == want.found
    assert tuple(got["ROI"]) == (tuple(want.roi) if want.roi else (0, 0, 0, 0))
    assert b"AI-enhanced" in got["NOTICE"][0]
    bad = model.execute([types.SimpleNamespace(inputs=[module.Tensor("IMAGE", np.zeros((4, 4, 3), np.uint8))])])[0]
    assert bad.has_error()  # a frame the pipeline refuses is an error response, and the model stays up
    model.finalize()


def test_refuses_a_non_empty_folder_a_failed_variant_and_a_missing_engine(repo, tmp_path):
    models, out, _ = repo
    with pytest.raises(SkinedgeError, match="is not empty"):
        export_triton(models, out)
    with pytest.raises(SkinedgeError, match="no int8-ov variant|failed its accuracy gate|no int8"):
        export_triton(models, tmp_path / "r1", precision="int8-ov")
    with pytest.raises(SkinedgeError, match="no seg engine listed"):
        export_triton(models, tmp_path / "r2", engines=tmp_path)
