"""The OpenVINO backend: FP32 from the ONNX files, NNCF INT8 IR variants behind the gates, the per-network
choice by measured speed, and its bad inputs (wrong shapes, tampered IR, OpenVINO missing)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_export import UNTRAINED, cli
from test_runtime import lesion_frame
from test_runtime_lean import BLOCK_HEAVY

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends import choose, open_runners
from skinedge.runtime.backends.openvino import fast_side_sizes
from skinedge.runtime.manifest import load_models, variant_path
from skinedge.runtime.pipeline.host import Pipeline

pytest.importorskip("openvino", reason="the openvino extra is not installed")


@pytest.fixture(scope="module")
def calibrated(exported):
    """The exported models with INT8 variants, int8-ov (NNCF) among them."""
    root, spec, models = exported
    work = root / "m-ov"
    if not work.exists():
        shutil.copytree(models, work)
        code = subprocess.run([sys.executable, "-m", "skinedge.cli", "calibrate", "--models", str(work),
                               "--precision", "int8", "--data", spec, "--images", "6", "--method", "minmax",
                               *map(str, UNTRAINED)], capture_output=True, text=True, timeout=900)
        assert code.returncode == 0, code.stderr[-2000:]
    return root, work


def test_openvino_fp32_gives_onnx_runtimes_picture(exported):
    root, _, models = exported
    manifest = load_models(models)
    frame = np.ascontiguousarray(lesion_frame(root)[:95, :95])
    images = {}
    for backend in ("onnxruntime", "openvino"):
        opened = open_runners(models, manifest, backend, "fp32")
        assert opened.backend == backend and opened.variants == {"seg": "fp32", "sr": "fp32"}
        with Pipeline(opened.seg, opened.sr, manifest) as pipeline:
            result = pipeline(frame)
            images[backend] = result.image.astype(np.int16)
    assert result.found and (result.roi[2] * result.roi[3]) % 32
    assert images["onnxruntime"].shape == images["openvino"].shape
    diff = np.abs(images["onnxruntime"] - images["openvino"]).max(axis=2)
    # float32 both: rounding only, but near the bottom and right edges, where OpenVINO's input was edge-padded
    # to its shape grid (the next test) and ONNX Runtime's convolutions saw zeros instead
    margin = 7 * int(manifest["networks"]["sr"]["scale"]) + 8
    assert diff[:-margin, :-margin].max() <= 2 and diff.max() <= 8, (diff.max(), np.argwhere(diff > 2)[:3])


@pytest.mark.parametrize("h, w", [(96, 96), (64, 80), (95, 97), (7, 32), (41, 9)])
def test_openvino_runs_the_generator_at_a_fast_size_and_crops_back(exported, h, w):
    """OpenVINO compiles per shape and is up to 2.6× slower when h·w is a multiple of 32: the SR input is
    edge-padded to sides of 8k + 1 (at most 7 more) and the output cropped, so OpenVINO's SR is ONNX Runtime's on
    that padded input."""
    _, _, models = exported
    manifest = load_models(models)
    ort_sr, ov_sr = (open_runners(models, manifest, b, "fp32").sr for b in ("onnxruntime", "openvino"))
    name, out = manifest["networks"]["sr"]["input"]["name"], manifest["networks"]["sr"]["output"]["name"]
    s = int(manifest["networks"]["sr"]["scale"])
    x = np.random.default_rng(h * w).random((2, 3, h, w), dtype=np.float32)
    ph, pw = fast_side_sizes(h, w)
    assert (ph * pw) % 32 and ph % 8 == pw % 8 == 1 and h <= ph <= h + 7 and w <= pw <= w + 7
    with ort_sr, ov_sr:
        got = ov_sr.infer({name: x})[out]
        padded = ort_sr.infer({name: np.pad(x, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")})[out]
    assert got.shape == (2, 3, h * s, w * s)
    assert np.abs(got - padded[:, :, :h * s, :w * s]).max() < 1e-3


def test_int8_ov_is_made_from_the_same_calibration_gated_and_recorded(calibrated):
    _, work = calibrated
    manifest = load_models(work)
    report = json.loads((work / "reports" / "calibrate-int8.json").read_text())
    record = json.loads((work / "calibration" / "int8-minmax.json").read_text())
    for net in ("seg", "sr"):
        row = report["networks"][net]["int8-ov"]
        same_gate = {c["name"] for c in report["networks"][net]["int8"]["gate"]["checks"]}
        assert {c["name"] for c in row["gate"]["checks"]} == same_gate
        entry = manifest["networks"][net]["variants"].get("int8-ov")
        if not row["gate"]["passed"]:
            assert entry is None and "refused" in row["outcome"]
            continue
        assert entry["file"] == f"{net}.int8-ov.xml" and entry["weights"] == f"{net}.int8-ov.bin"
        assert entry["backend"] == "openvino" and entry["calibration"]["set_sha256"] == record["set_sha256"]
        assert variant_path(work, manifest, net, "int8-ov", verify=True).is_file()
        opened = open_runners(work, manifest, "openvino", "int8-ov")
        with getattr(opened, net) as runner:
            x = choose.probe_input(manifest, net)
            out = runner.infer({manifest["networks"][net]["input"]["name"]: x})
            assert np.isfinite(next(iter(out.values()))).all()
    assert any(manifest["networks"][n]["variants"].get("int8-ov") for n in ("seg", "sr")), \
        "neither int8-ov variant passed its gate on the test models"


def test_auto_on_the_cpu_measures_each_network_and_caches_it(calibrated, tmp_path, monkeypatch):
    root, work = calibrated
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest = load_models(work)
    lines: list[str] = []
    opened = open_runners(work, manifest, "auto", "auto", log=lines.append)
    assert opened.why.startswith("no TensorRT engines and no CUDA GPU")
    assert set(opened.backends.values()) <= {"onnxruntime", "openvino"}
    assert [line.split(":")[0] for line in lines] == ["seg", "sr"] and "on openvino" in lines[1]
    cache = json.loads((tmp_path / "cache" / "skinedge" / "speed.json").read_text())
    assert len(cache) == sum(len(choose.candidates(manifest, n, ("onnxruntime", "openvino"))) for n in ("seg", "sr"))
    for net in ("seg", "sr"):  # the fastest measured one was taken, and the second time from the cache
        pick = choose.choose(work, manifest, net, ("onnxruntime", "openvino"), None)
        assert pick.cached and (pick.backend, pick.variant) == (opened.backends[net], opened.variants[net])
        shas = {e["sha256"] for e in manifest["networks"][net]["variants"].values()}
        assert pick.ms == min(ms for key, ms in cache.items() if key.split("|")[1] in shas)
    with Pipeline(opened.seg, opened.sr, manifest) as pipeline:
        assert pipeline(lesion_frame(root)).found in (True, False)


def test_bad_inputs_are_one_line_errors(calibrated, capsys, tmp_path):
    root, work = calibrated
    manifest = load_models(work)
    opened = open_runners(work, manifest, "openvino", "fp32")
    name = manifest["networks"]["sr"]["input"]["name"]
    with opened.sr as runner:
        with pytest.raises(SkinedgeError, match="openvino: input"):
            runner.infer({name: np.zeros((3, 16, 16), np.float32)})
        with pytest.raises(SkinedgeError, match="refused the input"):
            runner.infer({name: np.zeros((1, 5, 16, 16), np.float32)})
    assert open_runners(work, manifest, "openvino", "int8").backends == {"seg": "openvino", "sr": "openvino"}
    assert open_runners(work, manifest, "auto", "int8").backends == {"seg": "onnxruntime", "sr": "onnxruntime"}
    with pytest.raises(SkinedgeError, match="cannot run on onnxruntime"):
        open_runners(work, manifest, "onnxruntime", "int8-ov")
    tampered = tmp_path / "m"
    shutil.copytree(work, tampered)
    net = next(n for n in ("sr", "seg") if manifest["networks"][n]["variants"].get("int8-ov"))
    xml = tampered / f"{net}.int8-ov.xml"
    xml.write_text(xml.read_text().replace("<layers>", "<layers><!-- edited -->", 1))
    image = sorted((root / "data" / "images").glob("*.png"))[0]
    code, _, err = cli(capsys, "enhance", image, "--models", tampered, "--out", tmp_path / "o", "--backend",
                       "openvino", "--precision", "int8-ov")
    assert code == 1 and "does not match models.json" in err and len(err.strip().splitlines()) == 1
    (tampered / f"{net}.int8-ov.bin").write_bytes(b"not weights")  # a broken IR read directly: one line too
    from skinedge.runtime.backends.openvino import CompiledFromFile

    xml.write_text("<net><broken")
    with pytest.raises(SkinedgeError, match="OpenVINO cannot load it"):
        CompiledFromFile(xml)()


MISSING_OPENVINO = BLOCK_HEAVY.replace("'segmentation_models_pytorch')",
                                       "'segmentation_models_pytorch', 'openvino')") + """
from skinedge.cli import main
main(sys.argv[1:])
"""


def test_without_openvino_the_backend_names_the_extra(exported, tmp_path):
    root, _, models = exported
    image = sorted((root / "data" / "images").glob("*.png"))[0]
    result = subprocess.run([sys.executable, "-c", MISSING_OPENVINO, "enhance", str(image), "--models", str(models),
                             "--out", str(tmp_path / "o"), "--backend", "openvino"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "skinedge[openvino]" in result.stderr


# OpenVINO's CPU plugin gives the compiling thread an alternate signal stack per Core and unmaps it when that Core
# goes; Cores freed out of order left the main thread's pointing at unmapped memory, and the next Ctrl-C was a
# SIGSEGV (it killed this test suite once). skinedge keeps one Core for the process.
SESSIONS_COME_AND_GO = """
import gc, os, signal
import numpy as np
from openvino import Model, opset13 as ops
from skinedge.runtime.backends.openvino import OvSession
def model():
    p = ops.parameter([1, 3, 8, 8], np.float32)
    return Model([ops.relu(p)], [p])
first, second = OvSession(model()), OvSession(model())
del first
gc.collect()
del second
gc.collect()
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
except KeyboardInterrupt:
    print("Ctrl-C handled")
"""


def test_ctrl_c_after_openvino_sessions_came_and_went_is_a_keyboard_interrupt_not_a_crash():
    run = subprocess.run([sys.executable, "-c", SESSIONS_COME_AND_GO], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "Ctrl-C handled", (run.returncode, run.stderr[-2000:])
