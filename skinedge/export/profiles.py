"""Build profiles (``export/*.toml``): how one target's models are made.

A profile names, per network, the precision, the pruning ratio and the input
shape profile (min/opt/max, for TensorRT), plus the workspace, the calibration
method/size and the accuracy gates. ``calibrate`` reads the gates and
calibration settings; ``build-engines`` reads the rest.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from skinedge.errors import SkinedgeError
from skinedge.export.gates import Gates
from skinedge.export.int8 import METHODS
from skinedge.runtime.models import PRECISIONS


@dataclass(frozen=True)
class NetProfile:
    precision: str
    pruning_ratio: float
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    workspace_mib: int
    seg: NetProfile
    sr: NetProfile
    calibration_method: str
    calibration_images: int
    gates: Gates

    def net(self, name: str) -> NetProfile:
        return getattr(self, name)


def _net(path: Path, data: dict, name: str) -> NetProfile:
    section = data.get(name)
    if not isinstance(section, dict):
        raise SkinedgeError(f"{path}: no [{name}] section")
    try:
        net = NetProfile(str(section["precision"]), float(section.get("pruning_ratio", 0.0)),
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
    return net


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile; every mistake is a one-line SkinedgeError naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkinedgeError(f"profile not found: {path} (see export/*.toml)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SkinedgeError(f"{path}: not a readable TOML profile ({exc})") from None
    gate_data = data.get("gates", {})
    known = {f.name for f in fields(Gates)}
    unknown = sorted(set(gate_data) - known)
    if unknown:
        raise SkinedgeError(f"{path}: unknown gate(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    calibration = data.get("calibration", {})
    method = str(calibration.get("method", "entropy"))
    if method not in METHODS:
        raise SkinedgeError(f"{path}: calibration method {method!r} is not one of {', '.join(METHODS)}")
    target = data.get("target", {})
    return Profile(str(target.get("name", path.stem)), path, int(target.get("workspace_mib", 1024)),
                   _net(path, data, "seg"), _net(path, data, "sr"), method,
                   int(calibration.get("images", 64)), Gates(**{k: float(v) for k, v in gate_data.items()}))
