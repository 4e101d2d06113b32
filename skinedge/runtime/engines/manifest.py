"""Engine file names and the sidecar manifest beside each engine (DESIGN.md §4).

An engine is tied to one GPU and one TensorRT version, so ``<net>.<variant>.trt<version>.<sm..-gpu>.engine``
gets a sidecar ``<engine>.json`` (never a header glued to the engine: trtexec and DeepStream must still read the
file) recording what it was built from and for; :func:`manifest_mismatches` says exactly what no longer matches.
Pure: JSON and strings, no TensorRT.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import skinedge
from skinedge.errors import SkinedgeError
from skinedge.runtime.engines.profile import Shapes

FORMAT = "skinedge-engine"
INDEX = "engines.json"  # ENGINES/engines.json: which engine serves which network
ENGINE_CHANGED = "the engine file changed since its sidecar manifest was written"
FORMAT_VERSION = 1


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.") or "unknown"


def gpu_tag(gpu: dict[str, str]) -> str:
    """``sm87-orin``, ``sm90-h100-80gb-hbm3``: compute capability + the GPU's name, filesystem safe."""
    name = re.sub(r"^nvidia\s+", "", gpu.get("name", ""), flags=re.IGNORECASE)
    return f"sm{_slug(str(gpu.get('compute_capability', '')).replace('.', ''))}-{_slug(name)}"


def engine_name(net: str, variant: str, trt_version: str, gpu_tag: str) -> str:
    """``sr.int8.trt10.3.0.sm87-orin.engine`` (jetson-inference's convention, filesystem safe).

    The TensorRT version is cut to major.minor.patch in the name; the sidecar keeps the full one.
    """
    version = ".".join(str(p) for p in version_tuple(trt_version)[:3]) or _slug(trt_version)
    parts = [net, variant, f"trt{version}", gpu_tag]
    return ".".join(_slug(p) for p in parts) + ".engine"


def timing_cache_name(system: dict[str, Any]) -> str:
    """One timing cache per TensorRT version and GPU: ``timing.trt10.3.0.sm87-orin.cache``."""
    version = ".".join(str(p) for p in version_tuple(system["tensorrt_version"])[:3])
    return f"timing.trt{_slug(version)}.{gpu_tag(system['gpu'])}.cache"


def sidecar_path(engine_path: str | Path) -> Path:
    """``x.engine`` → ``x.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def make_manifest(*, net: str, variant: str, precision: str, onnx_file: str, onnx_sha256: str, shapes: Shapes,
                  calibration_set_sha256: str | None, system: dict[str, Any], engine_file: str, engine_sha256: str,
                  profile: str, profile_path: str | None = None, workspace_mib: int = 0,
                  models_dir: str | None = None, build_seconds: float | None = None) -> dict[str, Any]:
    """The sidecar manifest of one engine (what :func:`manifest_mismatches` checks)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "engine": {"file": engine_file, "sha256": engine_sha256},
        "net": net, "variant": variant, "precision": precision,
        "source": {"file": onnx_file, "sha256": onnx_sha256, "models_dir": models_dir},
        "shapes": _norm_shapes(shapes),
        "calibration_set_sha256": calibration_set_sha256,
        "tensorrt_version": system["tensorrt_version"],
        "gpu": {"name": system["gpu"]["name"], "compute_capability": system["gpu"]["compute_capability"]},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": None if build_seconds is None else round(build_seconds, 2),
        "skinedge_version": skinedge.__version__,
        "profile": profile, "profile_path": profile_path, "workspace_mib": workspace_mib,
    }


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkinedgeError(f"{path} is missing: without its sidecar manifest an engine cannot be checked") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkinedgeError(f"{path}: unreadable engine manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SkinedgeError(f"{path}: not a skinedge engine manifest")
    return data


def _norm_shapes(shapes: Shapes) -> Shapes:
    return {name: {k: [int(v) for v in s[k]] for k in ("min", "opt", "max")} for name, s in sorted(shapes.items())}


def short_sha(sha: str | None) -> str:
    return "none" if not sha else sha[:12] + "…"


def manifest_mismatches(manifest: dict[str, Any], system: dict[str, Any], onnx_sha256: str | None,
                        expected: dict[str, Any] | None = None) -> list[str]:
    """Why an engine cannot be used here, one readable line per difference; empty = compatible.

    Args:
        manifest: the engine's sidecar.
        system: :func:`system_info` of this machine.
        onnx_sha256: the source ONNX file's sha256 now (None: not checked).
        expected: fields the engine must also have, any of ``variant``, ``precision``, ``shapes``,
            ``calibration_set_sha256`` (what models.json or the build profile asks for now).
    """
    if manifest.get("format") != FORMAT:
        return ["not a skinedge engine manifest"]
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        return ["manifest written by a newer skinedge"]
    out = []
    built, here = manifest.get("tensorrt_version"), system.get("tensorrt_version")
    if built != here:
        out.append(f"TensorRT version: engine built with {built}, this system has {here}")
    gpu_built, gpu_here = manifest.get("gpu", {}), system.get("gpu", {})
    if gpu_built.get("name") != gpu_here.get("name"):
        out.append(f"GPU: engine built on {gpu_built.get('name')!r}, this system has {gpu_here.get('name')!r}")
    if gpu_built.get("compute_capability") != gpu_here.get("compute_capability"):
        out.append(f"compute capability: engine built for {gpu_built.get('compute_capability')}, "
                   f"this GPU is {gpu_here.get('compute_capability')}")
    source = manifest.get("source", {})
    if onnx_sha256 is not None and source.get("sha256") != onnx_sha256:
        out.append(f"source ONNX: {source.get('file')} changed since the engine was built "
                   f"(sha256 {short_sha(source.get('sha256'))} then, {short_sha(onnx_sha256)} now)")
    for key, label in (("variant", "variant"), ("precision", "precision"),
                       ("calibration_set_sha256", "calibration set")):
        if expected and key in expected and manifest.get(key) != expected[key]:
            have, want = manifest.get(key), expected[key]
            if key == "calibration_set_sha256":
                have, want = short_sha(have), short_sha(want)
            out.append(f"{label}: engine has {have}, wanted {want}")
    if expected and "shapes" in expected:
        have, want = manifest.get("shapes", {}), _norm_shapes(expected["shapes"])
        if have != want:
            out.append(f"input shapes: engine built for {_fmt_shapes(have)}, wanted {_fmt_shapes(want)}")
    return out


def _fmt_shapes(shapes: Shapes) -> str:
    return "; ".join(f"{name} " + " / ".join("x".join(map(str, s[k])) for k in ("min", "opt", "max"))
                     for name, s in shapes.items()) or "none"


def engine_sha_problems(manifest: dict[str, Any], engine_sha256: str) -> list[str]:
    """``[ENGINE_CHANGED]`` when the engine's sha256 is not the one its sidecar records (a crash between writing
    the engine and its sidecar, or a replaced file), else ``[]``."""
    return [] if manifest.get("engine", {}).get("sha256") == engine_sha256 else [ENGINE_CHANGED]
