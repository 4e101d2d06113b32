"""The ``skinedge bench`` document: its JSON schema and a small validator (no jsonschema dependency), the
terminal/Markdown table and the PNG bar chart of stage latencies."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from skinedge.runtime.backends import BACKENDS
from skinedge.runtime.pipeline.host import MODES

# 2: the "project" stage; 3: SR budget per row, the live rows; 4: the live rows' strategy and SR age
FORMAT, FORMAT_VERSION = "skinedge-bench", 4
STAGES = ("preprocess", "seg", "mask", "sr", "project", "composite", "total", "wall")
PARTS = STAGES[:6]  # the per-frame stages that add up to "total"
STATUSES = ("ok", "skipped", "failed")

_NUM = {"type": "number", "minimum": 0}
_OPT_NUM = {"type": ["number", "null"], "minimum": 0}
_OPT_STR = {"type": ["string", "null"]}
_STATS = {"type": "object", "required": ["p50", "p95", "p99", "mean"],
          "properties": {k: _NUM for k in ("p50", "p95", "p99", "mean")}}
_RESULT = {
    "type": "object",
    "required": ["backend", "precision", "mode", "status", "reason"],
    "properties": {
        "backend": {"enum": list(BACKENDS)}, "precision": {"type": "string"}, "mode": {"enum": list(MODES)},
        "status": {"enum": list(STATUSES)}, "reason": _OPT_STR, "resolved_backend": {"type": "string"},
        "pipeline": {"type": "string", "pattern": "^(gpu|host): "},
        "variants": {"type": "object", "required": ["seg", "sr"], "additionalProperties": {"type": "string"}},
        "tile": {"type": "integer", "minimum": 1}, "max_batch": {"type": "integer", "minimum": 1},
        "frames": {"type": "integer", "minimum": 1}, "warmup": {"type": "integer", "minimum": 0},
        "frames_with_lesion": {"type": "integer", "minimum": 0}, "load_s": _NUM,
        "roi_px": _STATS | {"type": ["object", "null"]}, "load_average_after": _NUM,
        "latency_ms": {"type": "object", "required": list(STAGES), "additionalProperties": _STATS},
        "throughput_fps": _NUM, "ratio_to_torch_fp32": _OPT_NUM,
        "sr_budget": {"type": ["integer", "null"], "minimum": 1}, "budget": {"type": "string"},
        "sr_budget_probed": {"type": ["integer", "null"], "minimum": 1},
        "sr_input_scale": _STATS | {"type": ["object", "null"]},
        "memory": {"type": "object", "required": ["rss_mb", "peak_rss_mb", "peak_scope", "device_mb"],
                   "properties": {"rss_before_mb": _OPT_NUM, "rss_mb": _OPT_NUM, "peak_rss_mb": _NUM,
                                  "device_mb": _OPT_NUM, "device_scope": _OPT_STR,
                                  "peak_scope": {"enum": ["config", "process"]}}},
    },
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"required": ["variants", "frames", "frames_with_lesion", "latency_ms", "throughput_fps", "memory",
                          "ratio_to_torch_fp32"]},
    "else": {"properties": {"reason": {"type": "string", "minLength": 1}}},
}
BENCH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "skinedge bench results",
    "type": "object",
    "required": ["format", "format_version", "skinedge_version", "created", "command", "settings", "environment",
                 "results"],
    "properties": {
        "format": {"const": FORMAT}, "format_version": {"type": "integer", "minimum": 1},
        "skinedge_version": {"type": "string"}, "created": {"type": "string"}, "command": {"type": "string"},
        "settings": {"type": "object", "required": ["models", "configs", "modes", "frames", "warmup", "source"],
                     "properties": {"frames": {"type": "integer", "minimum": 1},
                                    "warmup": {"type": "integer", "minimum": 0},
                                    "modes": {"type": "array", "minItems": 1, "items": {"enum": list(MODES)}},
                                    "configs": {"type": "array", "items": {"type": "array", "minItems": 2,
                                                                           "items": {"type": "string"}}}}},
        "environment": {"type": "object", "required": ["cpu", "gpu", "python", "versions", "jetson"],
                        "properties": {"cpu": {"type": "object", "required": ["model", "cores"],
                                               "properties": {"cores": {"type": "integer", "minimum": 1}}},
                                       "gpu": {"type": ["object", "null"]}, "jetson": {"type": ["object", "null"]},
                                       "versions": {"type": "object", "additionalProperties": _OPT_STR}}},
        "results": {"type": "array", "items": _RESULT},
        "live": {"type": ["object", "null"], "required": ["clip", "rows"],
                 "properties": {"rows": {"type": "array", "items": {
                     "type": "object", "required": ["reuse", "frames", "latency_ms", "fps", "flicker", "computed"],
                     "properties": {"latency_ms": _STATS, "fps": _NUM, "frames": {"type": "integer", "minimum": 1},
                                    "flicker": {"type": "object", "required": ["flicker_enhanced", "flicker_bicubic",
                                                                               "flicker_excess", "pairs"]}}}}}},
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
    return isinstance(value, _TYPES[kind])


def _check(value: Any, schema: dict, path: str, errors: list[str]) -> None:
    """The draft 2020-12 keywords BENCH_SCHEMA uses: type, const, enum, minimum, minLength, minItems,
    required, properties, additionalProperties, items, if/then/else."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__} {value!r:.60}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}, got {value!r:.60}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r:.60} is not one of {schema['enum']}")
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        errors.append(f"{path}: must be a non-empty string")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            if "items" in schema:
                _check(item, schema["items"], f"{path}[{i}]", errors)
    if isinstance(value, dict):
        errors.extend(f"{path}: missing required key {k!r}" for k in schema.get("required", []) if k not in value)
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _check(v, props[k], f"{path}.{k}", errors)
            elif isinstance(extra, dict):
                _check(v, extra, f"{path}.{k}", errors)
            elif extra is False:
                errors.append(f"{path}: unexpected key {k!r}")
    if "if" in schema:
        probe: list[str] = []
        _check(value, schema["if"], path, probe)
        branch = schema.get("then") if not probe else schema.get("else")
        if branch:
            _check(value, branch, path, errors)


def validate_bench(obj: Any) -> list[str]:
    """Problems of a bench document against :data:`BENCH_SCHEMA` and p50 ≤ p95 ≤ p99; empty when it is valid."""
    errors: list[str] = []
    _check(obj, BENCH_SCHEMA, "$", errors)
    results = obj.get("results") if isinstance(obj, dict) else None
    for i, row in enumerate(results if isinstance(results, list) else []):
        latency = row.get("latency_ms") if isinstance(row, dict) else None
        for stage, st in (latency.items() if isinstance(latency, dict) else ()):
            q = [st.get(k) for k in ("p50", "p95", "p99")] if isinstance(st, dict) else []
            if len(q) == 3 and all(_is(x, "number") for x in q) and not q[0] <= q[1] <= q[2]:
                errors.append(f"$.results[{i}].latency_ms.{stage}: needs p50 ≤ p95 ≤ p99, got {q}")
    return errors



# ------------------------------------------------------------------- table, plot
def _label(row: dict) -> str:
    return f"{row['backend']} {row['precision']} {row['mode']}"


def format_table(doc: dict) -> str:
    """A Markdown table (reads fine in a terminal too): p50 per stage (ms), p95/p99/mean total, throughput, ratio
    and peak RSS; rows that did not run are listed under it with their reason."""
    head = ["backend", "precision", "mode", "seg / sr variant", "SR budget (LR px)", *(f"{s} p50" for s in PARTS),
            "total p50", "p95", "p99", "mean", "frames/s", "× torch fp32", "peak RSS MB", "GPU MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(head) - 4)]
    skipped = []
    for r in doc["results"]:
        if r["status"] != "ok":
            skipped.append(f"- {r['status']}: {_label(r)}: {r['reason']}")
            continue
        lat, ratio = r["latency_ms"], r["ratio_to_torch_fp32"]
        gpu = str(r.get("pipeline", "")).startswith("gpu")
        cells = [r["backend"] + (" (GPU stages)" if gpu else ""), r["precision"], r["mode"],
                 f"{r['variants']['seg']} / {r['variants']['sr']}",
                 "none" if r.get("sr_budget") is None else str(r["sr_budget"]),
                 *(f"{lat[s]['p50']:.1f}" for s in STAGES[:7]), f"{lat['total']['p95']:.1f}",
                 f"{lat['total']['p99']:.1f}", f"{lat['total']['mean']:.1f}", f"{r['throughput_fps']:.2f}",
                 "—" if ratio is None else f"{ratio:.2f}", f"{r['memory']['peak_rss_mb']:.0f}",
                 "—" if r["memory"]["device_mb"] is None else f"{r['memory']['device_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ([""] + skipped if skipped else []) + _live_table(doc.get("live")))


def _live_table(live: dict | None) -> list[str]:
    """The live rows (moving-lesion clip: per-frame, temporal reuse, two loops) as a second table."""
    if not live:
        return []
    lines = ["", f"Live: {live['clip']}", "",
             "| backend | precision | strategy | SR budget | frames/s | latency p50 | p99 | p99/p50 | "
             "SR age p50 / p95 | segmenter runs | generator runs | flicker enhanced | flicker bicubic | excess |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in live["rows"]:
        lat, f, age = r["latency_ms"], r["flicker"], r.get("sr_age_ms")
        strategy = r.get("strategy") or ("reuse" if r["reuse"] else "per-frame")  # format 3 files name only reuse
        shown_age = f"{age['p50']:.0f} / {age['p95']:.0f} ms" if age else "–"
        lines.append(f"| {r['backend']} | {r['precision']} | {strategy} | "
                     f"{'none' if r['sr_budget'] is None else r['sr_budget']} | {r['fps']:.2f} | {lat['p50']:.1f} | "
                     f"{lat['p99']:.1f} | {lat['p99'] / max(lat['p50'], 1e-9):.2f} | "
                     f"{shown_age} | "
                     f"{r['segmented']}/{r['frames']} | "
                     f"{r['computed']}/{r['frames']} | {f['flicker_enhanced']:.2f} | {f['flicker_bicubic']:.2f} | "
                     f"{f['flicker_excess']:+.2f} |")
    return lines


def _nice_step(longest: float) -> float:
    """An axis tick step of 1, 2 or 5 × 10^k giving at most 8 ticks up to ``longest``."""
    power = 10 ** np.floor(np.log10(longest / 2))
    return float(next(power * m for m in (1, 2, 5, 10) if longest / (power * m) <= 8))


COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (23, 190, 207), (255, 127, 14),
           (90, 90, 90)]


def plot_bench(doc: dict, path: str | Path, width: int = 1100) -> None:
    """PNG: one horizontal bar per row, stacked p50 stage latencies (ms), with frames/s and the ratio at its end."""
    from PIL import Image, ImageDraw

    from skinedge.atomic import write_bytes_atomic

    rows, parts = doc["results"], PARTS
    left, right, top, bar, gap = 250, 230, 70, 22, 8
    height = top + max(1, len(rows)) * (bar + gap) + 50
    longest = max([r["latency_ms"]["total"]["p50"] for r in rows if r["status"] == "ok"] + [1.0])
    step = _nice_step(longest)
    scale = (width - left - right) / (np.ceil(longest / step) * step)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    text = lambda xy, words, fill=(0, 0, 0): draw.text(xy, words.replace("×", "x"), fill=fill)  # noqa: E731
    env = doc["environment"]
    text((10, 8), f"skinedge bench: p50 latency per stage (ms), {doc['settings']['source']}; "
         "bars: each stage's p50, label: the total's p50")
    text((10, 24), f"CPU {env['cpu']['model']} ({env['cpu']['cores']} cores)"
         + (f", GPU {env['gpu']['name']}" if env.get("gpu") else ""))
    x = left
    for i, s in enumerate(parts):
        draw.rectangle([x, 44, x + 12, 56], fill=COLOURS[i])
        text((x + 16, 44), s)
        x += 110
    axis_y = top + len(rows) * (bar + gap)
    tick = 0.0
    while left + tick * scale <= width - right + 1:
        xx = left + tick * scale
        draw.line([xx, top - 4, xx, axis_y], fill=(220, 220, 220))
        text((xx - 10, axis_y + 6), f"{tick:g}")
        tick += step
    text((left, axis_y + 24), "milliseconds per frame (p50)")
    for j, r in enumerate(rows):
        y = top + j * (bar + gap)
        text((10, y + 5), _label(r), fill=(0, 0, 0) if r["status"] == "ok" else (150, 150, 150))
        if r["status"] != "ok":
            text((left + 4, y + 5), f"{r['status']}: {r['reason']}"[:110], fill=(150, 150, 150))
            continue
        x = float(left)
        for i, s in enumerate(parts):
            w = r["latency_ms"][s]["p50"] * scale
            if w > 0:
                draw.rectangle([x, y, x + w, y + bar], fill=COLOURS[i])
            x += w
        ratio = r["ratio_to_torch_fp32"]
        text((x + 6, y + 5), f"{r['latency_ms']['total']['p50']:.1f} ms, {r['throughput_fps']:.1f} fps"
             + ("" if ratio is None else f", {ratio:.2f}× torch fp32"))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
