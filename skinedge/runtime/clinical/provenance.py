"""Every enhanced picture says what it is and where it came from: one provenance record, one schema.

An AI-enhanced image must never pass for a photograph, and a clinician who
doubts one must be able to trace it to the exact model files and settings that
made it. So every output — PNG text chunks, a recording's per-segment sidecar,
the viewer's stats — carries the same JSON record:

- ``schema`` / ``schema_version``: this format (:data:`SCHEMA`, :data:`VERSION`);
- ``notice``: the plain statement that a neural network changed the lesion;
- ``software``: skinedge's version, Python, and the versions of the runtimes the networks ran on (and NumPy);
- ``models``: the models directory, the sha256 of its models.json, and per network the variant, backend,
  precision and the sha256 of each file it ran from;
- ``settings``: mode (roi | full), SR scale, SR budget, mask and fidelity settings;
- ``image`` (per image or frame): found, lesion area, ROI, SR input scale and the consistency residual — the
  mean |down-scaled SR − camera| in the lesion before the projection corrected it (0–255): how much the
  generator invented.

:func:`validate` checks a record against the schema (the tests hold every writer to it); :func:`read_record`
reads one back from an output PNG, a sidecar or JSON text.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import skinedge
from skinedge.atomic import sha256_file
from skinedge.errors import SkinedgeError
from skinedge.runtime.manifest import network

SCHEMA = "skinedge-provenance"
VERSION = 1
NOTICE = ("AI-enhanced: a neural network (SkinSegmentSRGAN generator) changed the lesion region; this is not a "
          "photograph")
PNG_KEY = "skinedge:provenance"  # the PNG iTXt keyword holding the record
RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "torch", "numpy")


def session_record(models_dir: str | Path, manifest: dict, opened, pipeline, mode: str = "roi") -> dict[str, Any]:
    """The part of the record fixed for a session (everything but ``image``)."""
    models_dir = Path(models_dir)
    networks = {}
    for net in ("seg", "sr"):
        variant = opened.variants[net]
        entry = network(manifest, net)["variants"][variant]
        files = {entry["file"]: entry["sha256"]}
        if entry.get("weights"):
            files[entry["weights"]] = entry["weights_sha256"]
        networks[net] = {"variant": variant, "backend": (opened.backends or {}).get(net, opened.backend),
                         "precision": entry.get("precision", variant.split(".")[-1]), "files": files}
    settings: dict[str, Any] = {"mode": mode, "scale": int(getattr(pipeline, "scale", 4))}
    budget = getattr(pipeline, "sr_budget", None)
    settings["sr_budget_lr_px"] = None if budget is None else int(budget)
    for name in ("settings", "fidelity"):
        value = getattr(pipeline, name, None)
        if value is not None:
            settings["mask" if name == "settings" else "fidelity"] = asdict(value)
    return {"schema": SCHEMA, "schema_version": VERSION, "notice": NOTICE,
            "software": {"name": "skinedge", "version": skinedge.__version__, "python": platform.python_version(),
                         "runtimes": _runtimes({e["backend"] for e in networks.values()})},
            "models": {"dir": str(models_dir), "models_json_sha256": sha256_file(models_dir / "models.json"),
                       "networks": networks},
            "settings": settings}


def image_record(session: dict[str, Any], result) -> dict[str, Any]:
    """The full record for one image or frame (``result``: a FrameResult)."""
    residual = getattr(result, "residual", None)
    return {**session, "image": {
        "found": bool(result.found),
        "lesion_area": round(float(result.lesion_area), 6),
        "roi": None if result.roi is None else [int(v) for v in result.roi],
        "sr_input_scale": round(float(getattr(result, "sr_input_scale", 1.0)), 4),
        "consistency_residual": None if residual is None or residual != residual else round(float(residual), 3)}}


def label(session: dict[str, Any]) -> str:
    """The short badge text: ``AI-enhanced | sr pruned.int8-ov`` (ASCII: it is drawn in a Hershey font)."""
    return f"AI-enhanced | sr {session['models']['networks']['sr']['variant']}"


def png_text(record: dict[str, Any]) -> dict[str, str]:
    """PNG text chunks: the standard ``Software`` and ``Description`` a viewer shows, and the full record."""
    validate(record)
    sr = record["models"]["networks"]["sr"]
    return {"Software": f"skinedge {record['software']['version']}",
            "Description": f"{record['notice']} (SR {sr['variant']} on {sr['backend']})",
            PNG_KEY: json.dumps(record, sort_keys=True)}


def _runtimes(backends: set[str]) -> dict[str, str]:
    """Versions of the inference libraries the networks ran on, and NumPy's (which does the pixel stages):
    the same in every process that made the same pictures (never imports one; what is not loaded is left out)."""
    found = {}
    for name in RUNTIMES:
        module = sys.modules.get(name)
        if name in backends | {"numpy"} and module is not None and getattr(module, "__version__", None):
            found[name] = str(module.__version__)
    return found


# ------------------------------------------------------------------------------------------------- the schema
_SHA = "sha256"
MAX_RECORD_BYTES = 1 << 20  # records are ~2 kB; a megabyte of JSON is not one of ours


def read_record(source: str | bytes | Path, *, image: bool | None = None) -> dict[str, Any]:
    """The provenance record of an output PNG (its iTXt chunk), a sidecar ``.json``, or JSON text/bytes, checked
    against the schema.

    Raises:
        SkinedgeError: one line: unreadable, not JSON, not a record, or the fields that break the schema.
    """
    name = Path(source).name if isinstance(source, Path) else "provenance record"
    if isinstance(source, Path):
        try:
            raw = _png_record(source) if source.suffix.lower() == ".png" else source.read_bytes()
        except OSError as exc:
            raise SkinedgeError(f"{source}: cannot read it ({exc.strerror or exc})") from None
    else:
        raw = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if len(raw) > MAX_RECORD_BYTES:
        raise SkinedgeError(f"{name}: {len(raw)} bytes is not a provenance record (at most {MAX_RECORD_BYTES})")
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SkinedgeError(f"{name}: not JSON ({_one_line(exc)})") from None
    try:
        validate(record, image=image)
    except ValueError as exc:
        raise SkinedgeError(f"{name}: {_one_line(exc)}") from None
    return record


def _png_record(path: Path) -> bytes:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            text = getattr(im, "text", {}).get(PNG_KEY)
    except OSError:  # unreadable: the caller says so
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises SyntaxError, ValueError ... for damaged PNGs
        raise SkinedgeError(f"{path.name}: not a readable PNG ({_one_line(exc)})") from None
    if text is None:
        raise SkinedgeError(f"{path.name}: no skinedge provenance in it (no {PNG_KEY!r} text chunk)")
    return text.encode("utf-8", "surrogatepass")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("…" if len(text) > 400 else "")


def validate(record: dict[str, Any], *, image: bool | None = None) -> None:
    """Raise ``ValueError`` naming every field that breaks the schema; ``image``: require (True), forbid (False)
    or allow (None) the per-image part."""
    if not isinstance(record, dict):
        raise ValueError(f"provenance record: a JSON object, not {type(record).__name__}")
    problems: list[str] = []

    def need(obj, key, kinds, where):
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}.{key}: missing")
            return None
        value = obj[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
            problems.append(f"{where}.{key}: {type(value).__name__}, expected {_names(kinds)}")
            return None
        return value

    if need(record, "schema", str, "record") not in (SCHEMA, None):
        problems.append(f"record.schema: not {SCHEMA!r}")
    if need(record, "schema_version", int, "record") not in (VERSION, None):
        problems.append(f"record.schema_version: this reader knows version {VERSION}")
    if (notice := need(record, "notice", str, "record")) is not None and "AI-enhanced" not in notice:
        problems.append("record.notice: must say AI-enhanced")
    software = need(record, "software", dict, "record")
    if software is not None:
        need(software, "name", str, "software")
        need(software, "version", str, "software")
        need(software, "python", str, "software")
        need(software, "runtimes", dict, "software")
    models = need(record, "models", dict, "record")
    if models is not None:
        need(models, "dir", str, "models")
        _check_sha(need(models, "models_json_sha256", str, "models"), "models.models_json_sha256", problems)
        nets = need(models, "networks", dict, "models")
        for net in ("seg", "sr"):
            entry = need(nets, net, dict, "models.networks") if nets is not None else None
            if entry is None:
                continue
            for key in ("variant", "backend", "precision"):
                need(entry, key, str, f"models.networks.{net}")
            files = need(entry, "files", dict, f"models.networks.{net}")
            for name, sha in (files or {}).items():
                _check_sha(sha, f"models.networks.{net}.files.{name}", problems)
            if files == {}:
                problems.append(f"models.networks.{net}.files: empty")
    settings = need(record, "settings", dict, "record")
    if settings is not None:
        if need(settings, "mode", str, "settings") not in ("roi", "full", None):
            problems.append("settings.mode: roi or full")
        need(settings, "scale", int, "settings")
        if "sr_budget_lr_px" not in settings or not isinstance(settings["sr_budget_lr_px"], (int, type(None))):
            problems.append("settings.sr_budget_lr_px: int or null")
    if image is True and "image" not in record:
        problems.append("record.image: missing")
    if image is False and "image" in record:
        problems.append("record.image: not expected here")
    if "image" in record:
        img = need(record, "image", dict, "record")
        if img is not None:
            need(img, "found", bool, "image")
            need(img, "lesion_area", (int, float), "image")
            need(img, "sr_input_scale", (int, float), "image")
            for key, kinds in (("roi", (list, type(None))), ("consistency_residual", (int, float, type(None)))):
                if key not in img or not isinstance(img[key], kinds):
                    problems.append(f"image.{key}: missing or not {_names(kinds)}")
    if problems:
        raise ValueError("provenance record: " + "; ".join(problems))


def _check_sha(value, where: str, problems: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or len(value) != 64
                              or any(c not in "0123456789abcdef" for c in value)):
        problems.append(f"{where}: not a {_SHA} hex digest")


def _tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in _tuple(kinds))
