"""`skinedge demo --tiny`: every step of the real demo, end to end, in a minute."""

from __future__ import annotations

import json

from test_cli import skinedge_cli

from skinedge.runtime.sinks.recorder import read_frames


def test_tiny_demo_runs_every_step(tmp_path):
    out = tmp_path / "demo"
    result = skinedge_cli("demo", "--tiny", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert "generated images (not patient data)" in text and "random initialisation" in text
    for command in ("data synth", "data check", "data split", "train seg", "train sr", "eval", "export",
                    "calibrate", "prune"):
        assert f"$ skinedge {command}" in text
    assert "| network | variant | check | FP32 | variant | loss | limit | result |" in text
    assert "| sr | int8 | colour_shift |" in text and "Pruning sr by 30%" in text
    assert "$ skinedge enhance @" in text and "--backend auto --precision auto" in text
    gallery = (out / "report" / "enhanced" / "index.html").read_text()
    split = json.loads((out / "run" / "split.json").read_text())["splits"]["test"]
    assert gallery.count("<figure>") == len(split) and all(f"{i}.png" in gallery for i in split)
    assert "enhanced/index.html" in (out / "report" / "report.html").read_text()
    manifest = json.loads((out / "models" / "models.json").read_text())
    assert {"fp32", "pruned.fp32"} <= set(manifest["networks"]["sr"]["variants"])
    report = json.loads((out / "report" / "report.json").read_text())
    assert set(report["tables"]["methods"]) == {"bicubic", "srgan_only", "srgan_projected", "seg_bicubic",
                                                "skinsegmentsrgan", "skinedge"}
    assert (out / "contact-sheet.png").is_file() and (out / "report" / "report.html").is_file()
    assert "$ skinedge run --source" in text and "--realtime --no-display --record" in text
    frames = read_frames(out / "recording")
    segments = [json.loads(line) for line in (out / "recording" / "segments.jsonl").read_text().splitlines()]
    assert frames and sum(s["frames"] for s in segments) == len(frames)
    assert (out / "recording" / "enhanced-00000.mkv").stat().st_size > 0
    bench = json.loads((out / "report" / "bench.json").read_text())
    assert [(r["backend"], r["precision"], r["status"]) for r in bench["results"] if r["mode"] == "roi"] == [
        ("torch", "fp32", "ok"), ("auto", "auto", "ok")]
    assert (out / "report" / "bench.png").is_file() and "not in the demo: TensorRT engines" in text
    again = skinedge_cli("demo", "--tiny", "--out", out)
    assert again.returncode == 1 and "holds an earlier demo" in again.stderr
