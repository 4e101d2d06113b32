"""Build profiles (``export/*.toml``): how one target's models are made.

A profile names, per network, the precision, the pruning ratio and the input
shape profile (min/opt/max, for TensorRT), plus the workspace, the calibration
method/size and the accuracy gates. The per-network part and the workspace are
read by the lean runtime (:func:`skinedge.runtime.engines.profile.read_profile`, what
``build-engines`` uses on a device without onnx); this module adds what
``calibrate`` needs on top: the gates and the calibration settings.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6)
    import tomli as tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from skinedge.errors import SkinedgeError
from skinedge.export.gates import Gates
from skinedge.export.int8 import METHODS
from skinedge.runtime.engines.profile import NetShapes, read_profile

NetProfile = NetShapes  # precision, pruning_ratio, min, opt, max


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


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile; every mistake is a one-line SkinedgeError naming the file."""
    path = Path(path)
    base = read_profile(path)  # the networks, shapes and workspace, with their checks
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    gate_data = data.get("gates", {})
    known = {f.name for f in fields(Gates)}
    unknown = sorted(set(gate_data) - known)
    if unknown:
        raise SkinedgeError(f"{path}: unknown gate(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    calibration = data.get("calibration", {})
    method = str(calibration.get("method", "entropy"))
    if method not in METHODS:
        raise SkinedgeError(f"{path}: calibration method {method!r} is not one of {', '.join(METHODS)}")
    try:
        gates = Gates(**{k: float(v) for k, v in gate_data.items()})
        images = int(calibration.get("images", 64))
    except (TypeError, ValueError) as exc:
        raise SkinedgeError(f"{path}: gates and calibration images must be numbers ({exc})") from None
    return Profile(base.name, path, base.workspace_mib, base.nets["seg"], base.nets["sr"], method, images, gates)
