"""Find the engine serving a network, and load it checked against its sidecar (or rebuild it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from skinedge.errors import SkinedgeError
from skinedge.runtime.engines.build import Builder, build_and_write, build_engine
from skinedge.runtime.engines.manifest import (
    INDEX,
    engine_name,
    engine_sha_problems,
    gpu_tag,
    manifest_mismatches,
    read_manifest,
    sidecar_path,
)
from skinedge.runtime.engines.plan import EnginePlan, variant_facts
from skinedge.runtime.engines.trt import require_tensorrt, system_info
from skinedge.runtime.manifest import NETWORKS, load_models, network


def rebuild_command(manifest: dict[str, Any], engine_dir: Path, models_dir: str | Path | None) -> str:
    models = models_dir or manifest.get("source", {}).get("models_dir") or "MODELS"
    profile = f" --profile {manifest['profile_path']}" if manifest.get("profile_path") else ""
    return f"skinedge build-engines --models {models}{profile} --out {engine_dir}"


def find_engine(engines_dir: str | Path, net: str, variant: str | None = None) -> Path:
    """The engine serving ``net`` in ``engines_dir``: the one ``engines.json`` names, or (``variant`` given)
    the engine of that variant (newest sidecar first)."""
    engines_dir = Path(engines_dir)
    if variant in (None, "auto"):
        try:
            index = json.loads((engines_dir / INDEX).read_text(encoding="utf-8"))
            return engines_dir / index["networks"][net]["engine"]
        except (OSError, ValueError, KeyError, TypeError):
            raise SkinedgeError(f"{engines_dir} has no {net} engine listed in {INDEX}; "
                                "build them with `skinedge build-engines --models MODELS --out "
                                f"{engines_dir}`") from None
    found = []
    for side in engines_dir.glob("*.engine.json"):
        try:
            m = read_manifest(side)
        except SkinedgeError:
            continue
        if m.get("net") == net and m.get("variant") == variant:
            found.append((m.get("built_at", ""), side))
    if not found:
        raise SkinedgeError(f"{engines_dir} has no {variant} engine of {net}; build it with "
                            f"`skinedge build-engines --models MODELS --profile PROFILE --out {engines_dir}`")
    side = max(found)[1]
    return side.with_name(side.name[:-len(".json")])


def load_engine(engine_path: str | Path, models_dir: str | Path | None = None, rebuild: bool = False,
                log: Callable[[str], None] = print, *, system: dict[str, Any] | None = None,
                builder: Builder | None = None) -> bytes:
    """A serialized engine checked against its sidecar, this system and (``models_dir``) the current ONNX file.

    A mismatch rebuilds it (``rebuild``, needs ``models_dir``; the new engine is named for
    this system and lands beside the old one) or raises SkinedgeError naming every
    difference and the command that rebuilds it.
    """
    engine_path = Path(engine_path)
    engine_dir = engine_path.parent
    if not engine_path.is_file():
        raise SkinedgeError(f"engine not found: {engine_path} (build it with `skinedge build-engines "
                            f"--models MODELS --out {engine_dir}`)")
    manifest = read_manifest(sidecar_path(engine_path))
    system = system or system_info()
    net, variant = manifest.get("net"), manifest.get("variant")
    onnx_sha, expected, plan = None, None, None
    if models_dir is not None:
        models = load_models(models_dir)
        if net not in NETWORKS or variant not in network(models, net)["variants"]:
            raise SkinedgeError(f"{engine_path.name} was built from {net} {variant}, which {models_dir}/models.json "
                                f"does not have; rebuild: `{rebuild_command(manifest, engine_dir, models_dir)}`")
        entry = network(models, net)["variants"][variant]
        if entry.get("status") != "ok":
            raise SkinedgeError(f"{net} {variant} is marked failing in models.json (its accuracy gate): "
                                "its engine is not used")
        path, onnx_sha, precision, calibration = variant_facts(Path(models_dir), models, net, variant)
        expected = {"variant": variant, "precision": precision, "calibration_set_sha256": calibration}
        plan = EnginePlan(net, variant, precision, path, onnx_sha, manifest.get("shapes", {}), calibration,
                          engine_name(net, variant, system["tensorrt_version"], gpu_tag(system["gpu"])))
    problems = manifest_mismatches(manifest, system, onnx_sha, expected)
    blob = engine_path.read_bytes()
    problems += engine_sha_problems(manifest, hashlib.sha256(blob).hexdigest())
    if not problems:
        return blob
    if not rebuild or plan is None:
        how = rebuild_command(manifest, engine_dir, models_dir)
        raise SkinedgeError(f"{engine_path.name} cannot be used here: {'; '.join(problems)}. Rebuild it: `{how}`"
                            + ("" if models_dir is not None else " (or load it with the models directory and "
                               "rebuild=True)"))
    if builder is None:
        require_tensorrt()
        builder = build_engine
    log(f"{net}: rebuilding {plan.name} ({'; '.join(problems)})")
    blob, _ = build_and_write(plan, engine_dir, system, workspace_mib=int(manifest.get("workspace_mib") or 0),
                               profile=str(manifest.get("profile") or "rebuild"),
                               profile_path=manifest.get("profile_path"), models_dir=Path(models_dir),
                               builder=builder, log=log)
    return blob
