"""The models directory's manifest, ``MODELS/models.json``: everything the runtime needs.

``export`` writes it, ``prune`` and ``calibrate`` add variants, and the runtime
(no torch, no onnx package) reads tensor names, shapes, normalisation and the
scale from here instead of guessing them from the network files.

Layout (one entry per network, ``seg`` and ``sr``)::

    {"format": "skinedge-models", "format_version": 1,
     "networks": {"seg": {"input": {...}, "output": {...}, "source": {...},
                          "variants": {"fp32": {"file": "seg.onnx", "sha256": ..., "status": "ok"},
                                       "int8": {..., "gate": {...}, "status": "failing"}}}}}

A variant's ``status`` is ``ok`` or ``failing`` (kept only with ``--force``);
the runtime refuses ``failing`` ones unless told otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from skinedge.atomic import sha256_file
from skinedge.errors import SkinedgeError

FORMAT = "skinedge-models"
FORMAT_VERSION = 1
MANIFEST = "models.json"
NETWORKS = ("seg", "sr")
PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu", "int8-ov")
IR_PRECISIONS = ("int8-ov",)  # OpenVINO IR (.xml + .bin), not ONNX: only the openvino backend runs them


class ModelsError(SkinedgeError):
    """A models directory that is missing, incomplete or not skinedge's."""


def variant_name(precision: str, pruned: bool = False) -> str:
    """``fp32``/``fp16``/``int8``/``int8-cpu``/``int8-ov``, prefixed ``pruned.`` for the pruned network."""
    if precision not in PRECISIONS:
        raise SkinedgeError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return f"pruned.{precision}" if pruned else precision


def variant_file(net: str, variant: str) -> str:
    """File name of a variant: ``seg.onnx``, ``seg.fp16.onnx``, ``sr.pruned.int8.onnx``, ``sr.int8-ov.xml``
    (an OpenVINO IR, its weights in the ``.bin`` of the same name)..."""
    suffix = "xml" if variant.split(".")[-1] in IR_PRECISIONS else "onnx"
    return ".".join([net, *(part for part in variant.split(".") if part != "fp32"), suffix])


def load_models(models_dir: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``MODELS/models.json``.

    Raises:
        ModelsError: no such directory, no manifest, unreadable JSON, or not ours.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ModelsError(f"models directory not found: {models_dir} (make one with `skinedge export`)")
    path = models_dir / MANIFEST
    if not path.is_file():
        raise ModelsError(f"{models_dir} has no {MANIFEST}: it was not written by `skinedge export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelsError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelsError(f"{path}: not a skinedge models manifest (no '{FORMAT}' format tag)")
    version = manifest.get("format_version", 0)
    if not _is(version, int):
        raise ModelsError(f"{path}: format_version is {type(version).__name__}, not a number; re-run `skinedge export`")
    if version > FORMAT_VERSION:
        raise ModelsError(f"{path}: written by a newer skinedge; upgrade skinedge")
    networks = manifest.get("networks")
    for net in NETWORKS:
        if not isinstance(networks, dict) or net not in networks:
            raise ModelsError(f"{path}: no '{net}' network; re-run `skinedge export`")
    problems = [p for net in NETWORKS for p in _network_problems(networks[net], net)]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ModelsError(f"{path}: damaged: {'; '.join(problems[:3])}{more}; re-run `skinedge export`")
    return manifest


def _is(value, kinds) -> bool:
    """isinstance, but a JSON true/false is not a number."""
    return isinstance(value, kinds) and not isinstance(value, bool)


def _network_problems(entry, net: str) -> list[str]:
    """What the runtime reads from one network's entry, checked before anything is opened (found missing or
    mistyped by tests/test_fuzz.py, each used to be a traceback)."""
    if not isinstance(entry, dict):
        return [f"{net}: not an object"]
    problems = []
    for side in ("input", "output"):
        part = entry.get(side)
        if not isinstance(part, dict):
            problems.append(f"{net}.{side}: missing")
            continue
        if not _is(part.get("name"), str) or not part.get("name"):
            problems.append(f"{net}.{side}.name: not a tensor name")
        shape = part.get("shape")
        if not isinstance(shape, list) or len(shape) != 4 or not all(_is(d, (int, str)) for d in shape):
            problems.append(f"{net}.{side}.shape: not 4 dimensions")
    inputs = entry.get("input") if isinstance(entry.get("input"), dict) else {}
    shape = inputs.get("shape")
    if net == "sr" and isinstance(shape, list) and len(shape) == 4 and not (_is(shape[1], int) and shape[1] in (3, 4)):
        problems.append("sr.input.shape: channels not 3 (RGB) or 4 (RGB + camera plane)")
    for key, positive in (("mean", False), ("std", True)):
        values = inputs.get(key)
        if not isinstance(values, list) or len(values) != 3 or not all(
                _is(v, (int, float)) and math.isfinite(v) and (v > 0 or not positive) for v in values):
            problems.append(f"{net}.input.{key}: not 3 finite numbers")
    if net == "sr" and not (_is(entry.get("scale"), int) and entry["scale"] in (2, 3, 4, 8)):
        problems.append("sr.scale: not 2, 3, 4 or 8")
    variants = entry.get("variants")
    if not isinstance(variants, dict) or not variants:
        return problems + [f"{net}.variants: none"]
    for name, variant in variants.items():
        where = f"{net}.variants.{name}"
        if not isinstance(variant, dict):
            problems.append(f"{where}: not an object")
            continue
        for key in ("file", "weights"):
            value = variant.get(key)
            if (key == "file" or value is not None) and not _plain_name(value):
                problems.append(f"{where}.{key}: not a file name in the models directory")
        for key in ("sha256", "weights_sha256"):
            if variant.get(key) is not None and not _is(variant[key], str):
                problems.append(f"{where}.{key}: not a hex digest")
        for key in ("status", "precision"):
            if variant.get(key) is not None and not _is(variant[key], str):
                problems.append(f"{where}.{key}: not a string")
    return problems


def _plain_name(value) -> bool:
    """A file directly in the models directory: never a path out of it."""
    return _is(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value \
        and "\x00" not in value


def network(manifest: dict[str, Any], net: str) -> dict[str, Any]:
    """The manifest entry of ``seg`` or ``sr``."""
    if net not in NETWORKS:
        raise SkinedgeError(f"unknown network {net!r}; choose seg or sr")
    return manifest["networks"][net]


def variant_path(models_dir: str | Path, manifest: dict[str, Any], net: str, variant: str,
                 allow_failing: bool = False, verify: bool = False) -> Path:
    """Path of one variant's model file (ONNX, or an IR's ``.xml``), checked to exist, to have passed its gate and
    (``verify``) to be the file ``models.json`` describes."""
    entry = network(manifest, net)["variants"].get(variant)
    if entry is None:
        have = ", ".join(sorted(network(manifest, net)["variants"]))
        raise ModelsError(f"{models_dir}: no {variant} variant of {net} (have: {have}); "
                          f"make it with `skinedge calibrate` or `skinedge prune`")
    if entry.get("status") != "ok" and not allow_failing:
        raise ModelsError(f"{models_dir}: {net} {variant} failed its accuracy gate "
                          f"({entry.get('gate', {}).get('reason', 'see models.json')}); it is not used")
    path = Path(models_dir) / entry["file"]
    if not path.is_file():
        raise ModelsError(f"{path} is listed in {MANIFEST} but missing")
    files = [(path, entry.get("sha256"))]
    if entry.get("weights"):  # an OpenVINO IR: the .xml and its .bin
        files.append((Path(models_dir) / entry["weights"], entry.get("weights_sha256")))
        if not files[1][0].is_file():
            raise ModelsError(f"{files[1][0]} is listed in {MANIFEST} but missing")
    for file, sha in files if verify else []:
        if sha and sha256_file(file) != sha:
            raise ModelsError(f"{file} does not match {MANIFEST} (sha256 differs): it was changed or replaced "
                              "after export; re-run `skinedge export`/`calibrate`")
    return path



MODEL_CARD = "MODEL_CARD.md"


def card_summary(models_dir: str | Path) -> str | None:
    """The first line of the models directory's ``MODEL_CARD.md`` (its one-line summary), or None without one."""
    try:
        with open(Path(models_dir) / MODEL_CARD, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return first.lstrip("# ").strip() or None
