"""TensorRT engines (DESIGN.md §4): an engine is tied to one GPU and one TensorRT version.

- :mod:`.trt`: TensorRT presence, this system's TensorRT and GPU, the one process-wide logger;
- :mod:`.profile`: build profiles (``export/*.toml``) and the variant and shapes they ask for;
- :mod:`.manifest`: engine file names and the sidecar manifest beside each engine;
- :mod:`.plan`: what to build for a models directory, a profile and this system;
- :mod:`.build`: build, write engine + sidecar (``skinedge build-engines``);
- :mod:`.load`: find the engine serving a network and load it checked against its sidecar, or rebuild it.

The names below are the package's public face (what ``skinedge build-engines`` and the TensorRT backend use).
"""

from skinedge.runtime.engines.build import build_engine, build_engines, build_engines_command
from skinedge.runtime.engines.load import find_engine, load_engine, rebuild_command
from skinedge.runtime.engines.manifest import (
                                              INDEX,
                                              engine_name,
                                              gpu_tag,
                                              make_manifest,
                                              manifest_mismatches,
                                              read_manifest,
                                              sidecar_path,
                                              timing_cache_name,
)
from skinedge.runtime.engines.plan import EnginePlan, plan_engines
from skinedge.runtime.engines.profile import default_profile, read_profile, resolve_shapes, select_variant
from skinedge.runtime.engines.trt import (
                                              TENSORRT_MISSING,
                                              MissingTensorRT,
                                              require_tensorrt,
                                              system_info,
                                              tensorrt_available,
                                              trt_logger,
)

__all__ = ["INDEX", "TENSORRT_MISSING", "EnginePlan", "MissingTensorRT", "build_engine", "build_engines",
           "build_engines_command", "default_profile", "engine_name", "find_engine", "gpu_tag", "load_engine",
           "make_manifest", "manifest_mismatches", "plan_engines", "read_manifest", "read_profile",
           "rebuild_command", "require_tensorrt", "resolve_shapes", "select_variant", "sidecar_path", "system_info",
           "tensorrt_available", "timing_cache_name", "trt_logger"]
