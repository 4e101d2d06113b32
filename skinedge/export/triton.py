"""``skinedge export-triton``: a Triton Inference Server model repository for clusters that run their own Triton.

Layout (Triton's, https://docs.nvidia.com/deeplearning/triton-inference-server model repository)::

    REPO/skinedge_seg/config.pbtxt, 1/model.onnx | model.xml+model.bin | model.plan
    REPO/skinedge_sr/config.pbtxt,  1/model.onnx | model.xml+model.bin | model.plan
    REPO/skinedge_pipeline/config.pbtxt, 1/model.py, 1/models.json
    REPO/skinedge-provenance.json

The two networks are served by Triton's own backends (ONNX Runtime, OpenVINO, or TensorRT plans from
``skinedge build-engines``), with dynamic batching and an instance group on the GPU or the CPU. The pipeline is a
Python-backend model running skinedge's lean runtime (:class:`~skinedge.runtime.pipeline.host.Pipeline`, no
torch) whose two networks are the models above, called through BLS: one frame (uint8 BGR H×W×3) in, the
enhanced view, the lesion ROI, whether one was found and the AI notice out. The Triton container needs
``pip install skinedge`` (numpy, pillow, opencv) for the pipeline model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from skinedge.atomic import write_bytes_atomic
from skinedge.errors import SkinedgeError
from skinedge.runtime.manifest import load_models, network, variant_path

MODELS = {"seg": "skinedge_seg", "sr": "skinedge_sr"}
PIPELINE = "skinedge_pipeline"
PIPELINE_SOURCE = Path(__file__).with_name("triton_pipeline_model.py")


def export_triton(models: Path, out: Path, precision: str = "fp32", engines: Path | None = None,
                  kind: str = "auto", max_batch: int = 8, instances: int = 1,
                  log: Callable[[str], None] = print) -> list[Path]:
    """Write the repository; returns its config files. ``precision``: the variant of both networks (``int8-ov``
    → OpenVINO IR; with ``engines``, the TensorRT plans ``build-engines`` made). ``kind``: ``gpu``, ``cpu`` or
    ``auto`` (GPU with engines, else CPU).

    Raises:
        SkinedgeError: a missing or gate-failed variant, a missing engine, an existing non-empty ``out``.
    """
    if out.exists() and any(out.iterdir()):
        raise SkinedgeError(f"{out} is not empty: give a new folder for the model repository")
    if kind not in ("auto", "gpu", "cpu") or max_batch < 1 or instances < 1:
        raise SkinedgeError(f"--kind must be auto, gpu or cpu and --max-batch/--instances ≥ 1 (got {kind}, "
                            f"{max_batch}, {instances})")
    manifest = load_models(models)
    kind = ("gpu" if engines else "cpu") if kind == "auto" else kind
    sources = {}
    for net in MODELS:
        if engines is not None:
            from skinedge.runtime.engines.load import find_engine

            engine = find_engine(engines, net)
            if not engine.is_file():
                raise SkinedgeError(f"{engine}: listed in {engines} but missing; run `skinedge build-engines`")
            sources[net] = ("tensorrt", [(engine, "model.plan")])
        else:
            variant = precision if precision in network(manifest, net)["variants"] else precision.removeprefix(
                "pruned.")
            path = variant_path(models, manifest, net, variant, verify=True)
            if path.suffix == ".xml":
                sources[net] = ("openvino", [(path, "model.xml"), (path.with_suffix(".bin"), "model.bin")])
            else:
                sources[net] = ("onnxruntime", [(path, "model.onnx")])
    out.mkdir(parents=True, exist_ok=True)
    configs = []
    for net, (backend, files) in sources.items():
        folder = out / MODELS[net] / "1"
        folder.mkdir(parents=True)
        for src, name in files:
            shutil.copyfile(src, folder / name)
        config = out / MODELS[net] / "config.pbtxt"
        write_bytes_atomic(config, network_config(net, manifest, backend, kind, max_batch, instances).encode())
        configs.append(config)
        log(f"{MODELS[net]}: {', '.join(n for _, n in files)} on {backend} ({kind}, dynamic batching ≤ {max_batch})")
    folder = out / PIPELINE / "1"
    folder.mkdir(parents=True)
    shutil.copyfile(PIPELINE_SOURCE, folder / "model.py")
    shutil.copyfile(Path(models) / "models.json", folder / "models.json")
    config = out / PIPELINE / "config.pbtxt"
    write_bytes_atomic(config, pipeline_config(instances).encode())
    configs.append(config)
    write_bytes_atomic(out / "skinedge-provenance.json", (json.dumps(
        {"models": str(models), "precision": precision, "engines": str(engines) if engines else None,
         "networks": {net: [name for _, name in files] for net, (_, files) in sources.items()}}, indent=1)
        + "\n").encode())
    log(f"{PIPELINE}: Python backend (skinedge's lean runtime, the two networks through BLS); repository in {out}/")
    return configs


def network_config(net: str, manifest: dict, backend: str, kind: str, max_batch: int, instances: int) -> str:
    """config.pbtxt of one network: names and shapes from models.json (batch dimension left to Triton)."""
    spec = network(manifest, net)
    dims = lambda shape: ", ".join("-1" if isinstance(d, str) else str(int(d)) for d in shape[1:])  # noqa: E731
    platform = {"onnxruntime": 'backend: "onnxruntime"', "openvino": 'backend: "openvino"',
                "tensorrt": 'platform: "tensorrt_plan"'}[backend]
    return f"""name: "{MODELS[net]}"
{platform}
max_batch_size: {max_batch}
input [
  {{ name: "{spec['input']['name']}" data_type: TYPE_FP32 dims: [ {dims(spec['input']['shape'])} ] }}
]
output [
  {{ name: "{spec['output']['name']}" data_type: TYPE_FP32 dims: [ {dims(spec['output']['shape'])} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: {instances} kind: KIND_{kind.upper()} }} ]
"""


def pipeline_config(instances: int) -> str:
    """config.pbtxt of the Python-backend pipeline: one frame per request (frames differ in size)."""
    return f"""name: "{PIPELINE}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }}
]
output [
  {{ name: "ENHANCED" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }},
  {{ name: "ROI" data_type: TYPE_INT32 dims: [ 4 ] }},
  {{ name: "FOUND" data_type: TYPE_BOOL dims: [ 1 ] }},
  {{ name: "NOTICE" data_type: TYPE_STRING dims: [ 1 ] }}
]
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
"""
