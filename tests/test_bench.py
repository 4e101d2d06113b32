"""``skinedge bench`` (skinedge.runtime.bench.run) on the small exported pair: numbers, schema, skips, plot."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_runtime_lean import BLOCK_HEAVY

from skinedge.errors import SkinedgeError
from skinedge.runtime.bench.report import BENCH_SCHEMA, STAGES, format_table, validate_bench
from skinedge.runtime.bench.run import BenchConfig, bench_command, expand_configs, run_bench


@pytest.fixture(scope="module")
def bench(exported, tmp_path_factory):
    """torch fp32 (baseline) and onnxruntime fp32 in both modes, plus configurations that cannot run here."""
    _, _, models = exported
    out = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    doc = bench_command(models, ["torch", "onnxruntime", "tensorrt"], ["fp32", "int8"], ["roi", "full"], frames=3,
                        warmup=1, data=None, size=96, engines=None, json_path=out / "bench.json",
                        plot_path=out / "bench.png", no_baseline=False, log=lines.append, live_seconds=0.3)
    return doc, out, lines


def _rows(doc, status=None):
    return {(r["backend"], r["precision"], r["mode"]): r for r in doc["results"]
            if status is None or r["status"] == status}


def test_the_written_json_validates_and_holds_every_stage(bench):
    doc, out, _ = bench
    assert validate_bench(doc) == []
    on_disk = json.loads((out / "bench.json").read_text())
    assert validate_bench(on_disk) == [] and on_disk == json.loads(json.dumps(doc))
    assert BENCH_SCHEMA["$schema"].endswith("2020-12/schema")
    assert doc["command"].startswith("skinedge bench --models ") and "--backend tensorrt" in doc["command"]
    ok = _rows(doc, "ok")
    assert set(ok) == {("torch", "fp32", "roi"), ("torch", "fp32", "full"),
                       ("onnxruntime", "fp32", "roi"), ("onnxruntime", "fp32", "full")}
    for row in ok.values():
        assert set(row["latency_ms"]) == set(STAGES)
        for stats in row["latency_ms"].values():
            assert 0 <= stats["p50"] <= stats["p95"] <= stats["p99"]
        assert row["latency_ms"]["total"]["p50"] > 0 and row["throughput_fps"] > 0
        assert row["ratio_to_torch_fp32"] > 0 and row["frames"] == 3 and row["warmup"] == 1
        assert row["variants"] == {"seg": "fp32", "sr": "fp32"}
        assert row["memory"]["peak_rss_mb"] > 0
        on_gpu = row["pipeline"].startswith("gpu: ")  # torch on a CUDA GPU; never ONNX Runtime (CPU)
        assert (row["memory"]["device_mb"] is not None) == on_gpu and not (on_gpu and row["backend"] != "torch")
    assert ok[("torch", "fp32", "roi")]["ratio_to_torch_fp32"] == 1.0
    assert doc["results"][0]["backend"] == "torch"  # the baseline comes first


def test_rows_carry_their_sr_budget_and_the_live_rows_compare_strategies_and_flicker(bench):
    doc, _, lines = bench
    ok = _rows(doc, "ok")
    assert ok[("torch", "fp32", "roi")]["sr_budget"] is None  # the baseline: the paper's pipeline, no cap
    ort = ok[("onnxruntime", "fp32", "roi")]
    assert ort["sr_budget"] >= 1024 and ort["budget"].startswith("SR budget") and "for 10 frames/s" in ort["budget"]
    live = doc["live"]
    assert "640×480" in live["clip"] and [r["reuse"] for r in live["rows"]] == [False, True, False]
    assert [r["strategy"] for r in live["rows"]] == ["per-frame", "reuse", "two loops"]
    for row in live["rows"]:
        assert (row["backend"], row["precision"]) == ("onnxruntime", "fp32") and row["frames"] == 9
        assert row["latency_ms"]["p50"] > 0 and row["fps"] > 0 and row["flicker"]["pairs"] >= 1
        assert 0 <= row["computed"] <= row["frames"] and 1 <= row["segmented"] <= row["frames"]
    assert live["rows"][0]["segmented"] == 9  # without reuse every frame is segmented
    two = live["rows"][2]
    assert two["fps"] <= 30 * 1.05  # handed at the camera's 30 fps
    assert two["sr_age_ms"] is None or 0 < two["sr_age_ms"]["p50"] <= two["sr_age_ms"]["p95"]
    assert sum(line.startswith("live onnxruntime fp32 ") for line in lines) == 3
    table = format_table(doc)
    assert "Live: generated hand-held dermatoscope" in table and "| two loops |" in table


def test_configurations_that_cannot_run_are_skipped_with_their_reason(bench):
    doc, _, lines = bench
    skipped = _rows(doc, "skipped")
    assert {k[:2] for k in skipped} == {("onnxruntime", "int8"), ("tensorrt", "fp32"), ("tensorrt", "int8")}
    assert "no int8 variant" in skipped[("onnxruntime", "int8", "roi")]["reason"]
    assert all(r["reason"] and "variants" not in r for r in skipped.values())
    assert not any(r["status"] == "failed" for r in doc["results"])
    assert any("not measured: torch int8" in line for line in lines)  # an invalid pair of the cross product
    table = format_table(doc)
    assert "| onnxruntime | fp32 | full |" in table and "- skipped: tensorrt fp32 roi:" in table


def test_environment_says_what_machine_measured(bench):
    env = bench[0]["environment"]
    assert env["cpu"]["cores"] >= 1 and env["cpu"]["model"]
    assert env["versions"]["numpy"] and env["versions"]["onnxruntime"] and env["python"]
    if not Path("/etc/nv_tegra_release").exists():
        assert env["jetson"] is None


def test_the_plot_is_a_png(bench):
    _, out, _ = bench
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out / "bench.png") as img:
        img.verify()
    with Image.open(out / "bench.png") as img:
        assert img.width >= 800 and img.height > 100


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: d["results"][1].pop("mode"), "missing required key 'mode'"),
    (lambda d: d.pop("environment"), "missing required key 'environment'"),
    (lambda d: d["results"][1]["latency_ms"]["seg"].update(p50=-1.0), "below the minimum"),
    (lambda d: d["results"][1].update(throughput_fps=-3), "below the minimum"),
    (lambda d: d["results"][1]["latency_ms"]["total"].update(p95=0.0, p99=0.0), "p50 ≤ p95 ≤ p99"),
    (lambda d: d["results"][1].update(frames="3"), "expected integer"),
    (lambda d: d["results"][1].update(status="fine"), "is not one of"),
    (lambda d: d["results"][1].pop("latency_ms"), "missing required key 'latency_ms'"),
    (lambda d: d["results"][-1].update(reason=""), "non-empty"),
    (lambda d: d["results"][1]["latency_ms"]["sr"].update(p99=float("nan")), "expected number"),
])
def test_validate_rejects_broken_documents(bench, breakage, expected):
    broken = copy.deepcopy(bench[0])
    breakage(broken)
    problems = validate_bench(broken)
    assert any(expected in p for p in problems), problems
    assert validate_bench([]) == ["$: expected object, got list []"]


def test_cross_product_and_user_errors():
    log: list[str] = []
    configs = expand_configs(["torch", "onnxruntime"], ["auto", "int8-cpu", "pruned.fp32"], log=log.append)
    assert configs == [("torch", "fp32"), ("torch", "pruned.fp32"), ("onnxruntime", "auto"),
                       ("onnxruntime", "int8-cpu"), ("onnxruntime", "pruned.fp32")]
    assert log == ["not measured: torch int8-cpu (the torch backend runs the checkpoints: fp32, fp16 on a GPU, "
                   "pruned.fp32)"]
    assert expand_configs(["onnxruntime"], ["fp16"], baseline=False, log=log.append) == [("onnxruntime", "fp16")]
    with pytest.raises(SkinedgeError, match="unknown backend 'trt'.*onnxruntime"):
        expand_configs(["trt"], ["fp32"])
    with pytest.raises(SkinedgeError, match="unknown precision 'int4'"):
        expand_configs(["onnxruntime"], ["int4"])
    with pytest.raises(SkinedgeError, match="unknown mode"):
        run_bench(BenchConfig(Path("nowhere"), [("onnxruntime", "fp32")], ["tiles"]))


def test_frames_from_a_dataset_and_no_baseline(exported, synth_dir):
    _, _, models = exported
    cfg = BenchConfig(models, [("onnxruntime", "fp32")], ["roi"], frames=2, warmup=0, data=f"synthetic:{synth_dir}")
    doc = run_bench(cfg, log=lambda _: None)
    assert validate_bench(doc) == []
    (row,) = doc["results"]
    assert row["status"] == "ok" and row["ratio_to_torch_fp32"] is None  # no baseline measured
    assert doc["settings"]["source"].startswith(f"synthetic:{synth_dir}") and doc["settings"]["size"] is None


WITHOUT_TORCH = BLOCK_HEAVY + """
from skinedge.runtime.bench.run import bench_command
doc = bench_command(sys.argv[1], ["onnxruntime"], ["fp32"], ["roi"], 1, 0, None, 64, None, None, None, False,
                    log=lambda _: None, live_seconds=0)
print([(r["backend"], r["status"]) for r in doc["results"]], doc["results"][0]["reason"])
print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))
"""


def test_a_device_without_torch_skips_the_baseline_and_runs_the_rest(exported):
    _, _, models = exported
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(models)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first, modules = result.stdout.strip().splitlines()
    assert first.startswith("[('torch', 'skipped'), ('onnxruntime', 'ok')]") and "PyTorch" in first
    assert modules == "[]"
