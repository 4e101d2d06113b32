"""``skinedge doctor``: the report of this machine, a models directory checked file by file, and exit 1 only for
what was asked and cannot run — each with its fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from skinedge import doctor


def _doctor(*args):
    return subprocess.run([sys.executable, "-m", "skinedge.cli", "doctor", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_doctor_reports_this_machine_and_checks_every_model_file(exported):
    _, _, models = exported
    run = _doctor("--models", models, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    backends = {c["name"]: c for c in report["backends"]}
    assert backends["onnxruntime"]["ok"] and set(backends) == {"onnxruntime", "openvino", "cuda", "tensorrt", "torch"}
    assert report["cpu"]["physical_cores"] >= 1 and report["versions"]["python"]
    rows = report["models"]["networks"]["seg"] + report["models"]["networks"]["sr"]
    assert rows and all(r["sha256"] == "ok" for r in rows)
    assert all("onnxruntime" in r["runs_on"] for r in rows if r["variant"] == "fp32")
    assert report["problems"] == [] and report["exit_code"] == 0
    text = _doctor("--models", models)
    assert text.returncode == 0 and "runs here" in text.stdout and "features:" in text.stdout


def test_a_changed_model_file_fails_with_its_fix(exported, tmp_path):
    _, _, models = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    with open(copy / "sr.onnx", "ab") as fh:
        fh.write(b"\0")
    report = doctor.diagnose(copy)
    assert report.exit_code == 1
    [problem] = [p for p in report.problems if p.name == "models sr fp32"]
    assert "sha256 differs" in problem.detail and "skinedge export" in problem.fix
    run = _doctor("--models", copy)
    assert run.returncode == 1 and "cannot run what was asked" in run.stdout and "fix:" in run.stdout


def test_a_backend_asked_for_that_cannot_run_exits_1_saying_why():
    if doctor.tensorrt_check(doctor.gpu_facts()).ok:
        pytest.skip("TensorRT runs on this machine")
    run = _doctor("--backend", "tensorrt")
    assert run.returncode == 1
    assert "cannot run what was asked (--backend tensorrt)" in run.stdout and "JetPack" in run.stdout
    assert _doctor("--backend", "onnxruntime").returncode == 0


def test_an_unknown_backend_is_one_line():
    run = _doctor("--backend", "tpu")
    assert run.returncode == 1 and run.stderr.strip() == \
        "skinedge: error: unknown backend 'tpu'; choose one of onnxruntime, openvino, tensorrt"
