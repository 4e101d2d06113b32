"""Build profiles (``export/*.toml``) as build-engines reads them, and what they ask TensorRT to build.

Read with ``tomllib`` rather than through ``skinedge.export.profiles``, which
imports onnx (via the accuracy gates): a Jetson runtime install has no onnx
package. Pure: no TensorRT, no files but the profile.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6)
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinedge.errors import SkinedgeError
from skinedge.runtime.pipeline.camera_plane import sr_channels
from skinedge.runtime.manifest import NETWORKS, PRECISIONS, ModelsError, network

TRT_PRECISIONS = ("fp32", "fp16", "int8")
Shapes = dict[str, dict[str, list[int]]]  # input name -> {"min": [...], "opt": [...], "max": [...]}


@dataclass(frozen=True)
class NetShapes:
    precision: str
    pruning_ratio: float
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class BuildProfile:
    """The part of a build profile (``export/*.toml``) that build-engines reads."""

    name: str
    path: Path | None
    workspace_mib: int
    nets: dict[str, NetShapes] = field(default_factory=dict)


def read_profile(path: str | Path) -> BuildProfile:
    """Read ``[target]`` and ``[seg]``/``[sr]`` of a profile; the same checks as ``skinedge.export.profiles``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkinedgeError(f"profile not found: {path} (see export/*.toml)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SkinedgeError(f"{path}: not a readable TOML profile ({exc})") from None
    nets = {}
    for name in NETWORKS:
        section = data.get(name)
        if not isinstance(section, dict):
            raise SkinedgeError(f"{path}: no [{name}] section")
        try:
            net = NetShapes(str(section["precision"]), float(section.get("pruning_ratio", 0.0)),
                            *(tuple(int(v) for v in section[k]) for k in ("min", "opt", "max")))
        except (KeyError, TypeError, ValueError) as exc:
            raise SkinedgeError(f"{path}: [{name}] needs precision and min/opt/max shapes ({exc})") from None
        if net.precision not in PRECISIONS:
            raise SkinedgeError(f"{path}: [{name}] precision {net.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 0.0 <= net.pruning_ratio <= 0.9:
            raise SkinedgeError(f"{path}: [{name}] pruning_ratio must be in [0, 0.9], got {net.pruning_ratio}")
        if not (len(net.min) == len(net.opt) == len(net.max) == 4
                and all(a <= b <= c for a, b, c in zip(net.min, net.opt, net.max))):
            raise SkinedgeError(f"{path}: [{name}] shapes must be N,C,H,W with min <= opt <= max")
        nets[name] = net
    target = data.get("target", {})
    try:
        workspace = int(target.get("workspace_mib", 1024))
    except (TypeError, ValueError):
        raise SkinedgeError(f"{path}: [target] workspace_mib must be an integer") from None
    return BuildProfile(str(target.get("name", path.stem)), path, workspace, nets)


def default_profile(manifest: dict[str, Any]) -> BuildProfile:
    """FP16 for both: seg [1..4]×3×S×S (S from models.json), sr 1×C×16² / 1×C×64² / 4×C×128² (C: 3, or 4 with the
    camera plane)."""
    size = int(network(manifest, "seg")["input"]["shape"][-1])
    c = sr_channels(network(manifest, "sr"))
    return BuildProfile("default-fp16", None, 1024, {
        "seg": NetShapes("fp16", 0.0, (1, 3, size, size), (1, 3, size, size), (4, 3, size, size)),
        "sr": NetShapes("fp16", 0.0, (1, c, 16, 16), (1, c, 64, 64), (4, c, 128, 128))})


def select_variant(manifest: dict[str, Any], net: str, want: NetShapes, profile_name: str = "profile") -> str:
    """The models.json variant a profile asks TensorRT to build for ``net`` (pure: no files read).

    ``fp32``/``fp16``/``int8``, prefixed ``pruned.`` when the profile prunes
    (``pruning_ratio > 0``) and a pruned variant of that precision exists.

    Raises:
        SkinedgeError: a CPU profile (``int8-cpu``), an unknown precision, a missing or ``failing`` variant.
    """
    if want.precision == "int8-cpu":
        raise SkinedgeError(f"{profile_name} is a CPU profile ({net} precision int8-cpu, for ONNX Runtime): "
                            "build-engines is for TensorRT; use an fp16/int8 profile such as "
                            "export/desktop-fp16.toml or export/jetson-orin-int8.toml")
    if want.precision not in TRT_PRECISIONS:
        raise SkinedgeError(f"{profile_name}: [{net}] precision {want.precision!r} cannot be built with TensorRT; "
                            f"choose one of {', '.join(TRT_PRECISIONS)}")
    variants = network(manifest, net)["variants"]
    variant = want.precision
    if want.pruning_ratio > 0 and f"pruned.{want.precision}" in variants:
        variant = f"pruned.{want.precision}"
    entry = variants.get(variant)
    if entry is None:
        how = ("skinedge export" if variant == "fp32" else
               f"skinedge calibrate --models MODELS --precision {want.precision} --data SPEC")
        raise ModelsError(f"models.json has no {variant} variant of {net} (have: {', '.join(sorted(variants))}); "
                          f"make it with `{how}`")
    if entry.get("status") != "ok":
        reason = entry.get("gate", {}).get("reason") or "see models.json"
        raise SkinedgeError(f"{net} {variant} failed its accuracy gate ({reason}): build-engines refuses it; "
                            "re-run `skinedge calibrate` (other method/more images) or use another precision")
    return variant


def resolve_shapes(manifest: dict[str, Any], net: str, want: NetShapes, profile_name: str = "profile") -> Shapes:
    """The optimization profile of ``net``'s input: the profile's min/opt/max, checked against models.json.

    Every dimension models.json fixes (the channels; the segmenter's H×W) must be
    what the profile says; a contradiction is an error, never silently changed. One reading is not a
    contradiction: a profile's 3 SR channels are RGB, and a generator with a camera plane takes RGB + that plane
    (models.json says 4), so its shapes get the 4.
    """
    spec = network(manifest, net)["input"]
    fixed = spec["shape"]
    shapes = {"min": list(want.min), "opt": list(want.opt), "max": list(want.max)}
    if net == "sr" and fixed[1] == 4:
        for shape in shapes.values():
            shape[1] = 4 if len(shape) == 4 and shape[1] == 3 else shape[1]
    for which, shape in shapes.items():
        if len(shape) != len(fixed):
            raise SkinedgeError(f"{profile_name}: [{net}] {which} shape {shape} has {len(shape)} dimensions; "
                                f"models.json's {net} input is {fixed}")
        for axis, (dim, model_dim) in enumerate(zip(shape, fixed)):
            if isinstance(model_dim, int) and dim != model_dim:
                what = (f"the segmenter takes {fixed[-2]}x{fixed[-1]} inputs (models.json)" if net == "seg"
                        and axis >= 2 else f"models.json fixes dimension {axis} of {net}'s input at {model_dim}")
                raise SkinedgeError(f"{profile_name}: [{net}] {which} shape {shape} contradicts the models: {what}")
    return {spec["name"]: shapes}
