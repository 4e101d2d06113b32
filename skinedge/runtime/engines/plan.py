"""What build-engines will make: for each network, the variant and shapes a profile asks for, the ONNX file and
its checked sha256, and the engine's name for this system (no TensorRT needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinedge.atomic import sha256_file
from skinedge.runtime.engines.manifest import engine_name, gpu_tag, short_sha
from skinedge.runtime.engines.profile import BuildProfile, Shapes, resolve_shapes, select_variant
from skinedge.runtime.manifest import NETWORKS, ModelsError, network


@dataclass(frozen=True)
class EnginePlan:
    """One engine to build or reuse."""

    net: str
    variant: str
    precision: str
    onnx_path: Path
    onnx_sha256: str
    shapes: Shapes
    calibration_set_sha256: str | None
    name: str

    def expected(self) -> dict[str, Any]:
        return {"variant": self.variant, "precision": self.precision, "shapes": self.shapes,
                "calibration_set_sha256": self.calibration_set_sha256}


def variant_facts(models_dir: Path, manifest: dict[str, Any], net: str, variant: str) -> tuple[Path, str, str,
                                                                                                 str | None]:
    """(ONNX path, its sha256 checked against models.json, precision, calibration-set sha256)."""
    entry = network(manifest, net)["variants"][variant]
    path = models_dir / entry["file"]
    if not path.is_file():
        raise ModelsError(f"{path} is listed in models.json but missing")
    sha = sha256_file(path)
    if entry.get("sha256") and sha != entry["sha256"]:
        raise ModelsError(f"models.json does not match {entry['file']} (sha256 {short_sha(entry['sha256'])} in "
                          f"models.json, {short_sha(sha)} on disk): the file was changed or replaced after "
                          "`skinedge export`/`calibrate`/`prune` wrote it; re-run that command")
    precision = str(entry.get("precision") or variant.split(".")[-1])
    calibration = entry.get("calibration") or {}
    return path, sha, precision, calibration.get("set_sha256") if precision == "int8" else None


def plan_engines(models_dir: str | Path, manifest: dict[str, Any], profile: BuildProfile,
                 system: dict[str, Any]) -> list[EnginePlan]:
    """What build-engines will make for this models directory, profile and system (no TensorRT needed)."""
    models_dir = Path(models_dir)
    plans = []
    for net in NETWORKS:
        want = profile.nets[net]
        variant = select_variant(manifest, net, want, profile.name)
        shapes = resolve_shapes(manifest, net, want, profile.name)
        path, sha, precision, calibration = variant_facts(models_dir, manifest, net, variant)
        name = engine_name(net, variant, system["tensorrt_version"], gpu_tag(system["gpu"]))
        plans.append(EnginePlan(net, variant, precision, path, sha, shapes, calibration, name))
    return plans
