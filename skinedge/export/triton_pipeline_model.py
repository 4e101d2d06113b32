"""skinedge's pipeline as a Triton Python-backend model (copied to REPO/skinedge_pipeline/1/model.py).

One request = one frame (``IMAGE``, uint8 BGR H×W×3) → ``ENHANCED`` (uint8 BGR: the lesion ROI ×4, or the
whole frame smoothly ×4 when no lesion is found), ``ROI`` (x, y, w, h; zeros without a lesion), ``FOUND`` and
``NOTICE`` (the AI-enhanced statement every output carries). The pixel stages are skinedge's lean runtime; the
two networks are the repository's ``skinedge_seg`` and ``skinedge_sr`` models, called through BLS, so Triton
batches and places them.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from skinedge.runtime.backends.base import Runner
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.clinical.provenance import NOTICE

SEG, SR = "skinedge_seg", "skinedge_sr"


class BlsRunner(Runner):
    """A network served by another model of the same Triton server (business logic scripting)."""

    name = "triton-bls"

    def __init__(self, model: str, input_name: str, output_name: str):
        super().__init__(None)
        self.model, self.input_name, self.output_name = model, input_name, output_name

    def _activate_impl(self, _resolved) -> list:
        return [self.input_name]

    def _infer_impl(self, feed: dict) -> dict:
        request = pb_utils.InferenceRequest(model_name=self.model, requested_output_names=[self.output_name],
                                            inputs=[pb_utils.Tensor(self.input_name, feed[self.input_name])])
        response = request.exec()
        if response.has_error():
            raise pb_utils.TritonModelException(f"{self.model}: {response.error().message()}")
        return {self.output_name: pb_utils.get_output_tensor_by_name(response, self.output_name).as_numpy()}


class TritonPythonModel:
    def initialize(self, args):
        here = Path(args["model_repository"]) / args["model_version"]
        manifest = json.loads((here / "models.json").read_text(encoding="utf-8"))
        nets = manifest["networks"]
        seg = BlsRunner(SEG, nets["seg"]["input"]["name"], nets["seg"]["output"]["name"])
        sr = BlsRunner(SR, nets["sr"]["input"]["name"], nets["sr"]["output"]["name"])
        self.pipeline = Pipeline(seg, sr, manifest, "roi").__enter__()

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                frame = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                result = self.pipeline(np.ascontiguousarray(frame, dtype=np.uint8))
                roi = np.array(result.roi if result.roi is not None else (0, 0, 0, 0), dtype=np.int32)
                outputs = [pb_utils.Tensor("ENHANCED", np.ascontiguousarray(result.image)),
                           pb_utils.Tensor("ROI", roi),
                           pb_utils.Tensor("FOUND", np.array([bool(result.found)])),
                           pb_utils.Tensor("NOTICE", np.array([NOTICE.encode()], dtype=np.object_))]
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except Exception as exc:  # noqa: BLE001 - one bad frame answers an error, the model stays up
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self):
        self.pipeline.__exit__(None, None, None)
