"""TensorRT engines: names, sidecar manifests, mismatches, variant selection, build/reuse/rebuild logic.

Everything above the ``tensorrt`` marker runs without TensorRT or a GPU (the build
itself is replaced by a stand-in); the marked tests build real engines from tiny
ONNX files and compare them with ONNX Runtime, and skip cleanly where TensorRT or
a GPU is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinedge.errors import SkinedgeError
from skinedge.runtime import engines as E
from skinedge.runtime.engines.profile import NetShapes
from skinedge.runtime.manifest import ModelsError, load_models

PROFILES = Path(__file__).resolve().parents[1] / "export"
ORIN = {"tensorrt_version": "10.3.0.30", "gpu": {"name": "Orin", "compute_capability": "8.7"}}
H100 = {"tensorrt_version": "10.7.0.23", "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}}
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


# ---------------------------------------------------------------- fixtures: a models directory, a fake builder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_models(root: Path, size: int = 64, extra: dict | None = None) -> Path:
    """A models directory whose ONNX files are placeholder bytes (enough without TensorRT)."""
    root.mkdir(parents=True, exist_ok=True)
    variants = {"seg": {"fp32": "ok", "fp16": "ok", "int8": "ok", "int8-cpu": "ok"},
                "sr": {"fp32": "ok", "fp16": "ok", "int8": "ok", "pruned.int8": "ok", "int8-cpu": "ok"}}
    for net, more in (extra or {}).items():
        variants[net].update(more)
    networks = {
        "seg": {"input": {"name": "image", "shape": ["batch", 3, size, size], "mean": [0.485, 0.456, 0.406],
                          "std": [0.229, 0.224, 0.225]},
                "output": {"name": "logits", "shape": ["batch", 1, size, size]}, "variants": {}},
        "sr": {"input": {"name": "lr", "shape": ["batch", 3, "height", "width"], "mean": [0, 0, 0],
                         "std": [1, 1, 1]},
               "output": {"name": "sr", "shape": ["batch", 3, "4*height", "4*width"]}, "scale": 4, "variants": {}},
    }
    for net, names in variants.items():
        for variant, status in names.items():
            file = ".".join([net, *(p for p in variant.split(".") if p != "fp32"), "onnx"])
            data = f"{net} {variant} onnx".encode()
            (root / file).write_bytes(data)
            entry = {"file": file, "sha256": _sha(data), "precision": variant.split(".")[-1], "status": status}
            if status != "ok":
                entry["gate"] = {"reason": "dice dropped 0.03 > 0.01"}
            if "int8" in variant:
                entry["calibration"] = {"manifest": "calibration/int8-entropy.json", "set_sha256": "c" * 64}
            networks[net]["variants"][variant] = entry
    (root / "models.json").write_text(json.dumps({"format": "skinedge-models", "format_version": 1,
                                                  "networks": networks}))
    return root


def replace_onnx(models: Path, net: str, variant: str, data: bytes, update_manifest: bool = True) -> None:
    manifest = json.loads((models / "models.json").read_text())
    entry = manifest["networks"][net]["variants"][variant]
    (models / entry["file"]).write_bytes(data)
    if update_manifest:
        entry["sha256"] = _sha(data)
        (models / "models.json").write_text(json.dumps(manifest))


class FakeBuilder:
    """Stands in for build_engine: records its calls, returns bytes that depend on its inputs."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, onnx_path, shapes, workspace_mib, timing_cache_path, log):
        self.calls.append((Path(onnx_path).name, shapes))
        Path(timing_cache_path).write_bytes(b"cache")
        return b"ENGINE " + Path(onnx_path).read_bytes() + repr(sorted(shapes.items())).encode()


def profile_toml(path: Path, seg: str = "fp16", sr: str = "fp16", sr_pruning: float = 0.0, size: int = 64,
                 sr_max: int = 128, channels: int = 3) -> Path:
    path.write_text(f"""
[target]
name = "{path.stem}"
workspace_mib = 512
[seg]
precision = "{seg}"
min = [1, {channels}, {size}, {size}]
opt = [1, {channels}, {size}, {size}]
max = [2, {channels}, {size}, {size}]
[sr]
precision = "{sr}"
pruning_ratio = {sr_pruning}
min = [1, 3, 16, 16]
opt = [1, 3, 64, 64]
max = [1, 3, {sr_max}, {sr_max}]
""")
    return path


@pytest.fixture
def models(tmp_path) -> Path:
    return write_models(tmp_path / "models")


# ---------------------------------------------------------------- names


def test_engine_name_follows_jetson_inference_and_is_filesystem_safe():
    assert E.gpu_tag(ORIN["gpu"]) == "sm87-orin"
    assert E.engine_name("sr", "int8", "10.3.0.30", "sm87-orin") == "sr.int8.trt10.3.0.sm87-orin.engine"
    assert E.engine_name("sr", "pruned.int8", "10.3.0", "sm87-orin") == "sr.pruned.int8.trt10.3.0.sm87-orin.engine"
    assert E.gpu_tag(H100["gpu"]) == "sm90-h100-80gb-hbm3"
    odd = E.engine_name("seg", "fp16", "11.0.0.1", E.gpu_tag({"name": "GeForce RTX 4090/Ti (eng) \\ x",
                                                               "compute_capability": "8.9"}))
    assert odd.startswith("seg.fp16.trt11.0.0.sm89-") and odd.endswith(".engine")
    assert all(c.isalnum() or c in "._-" for c in odd), odd
    assert E.timing_cache_name(ORIN) == "timing.trt10.3.0.sm87-orin.cache"
    assert E.sidecar_path("/x/sr.int8.engine") == Path("/x/sr.int8.engine.json")


# ---------------------------------------------------------------- manifests and mismatches


def _manifest(**over):
    args = dict(net="sr", variant="int8", precision="int8", onnx_file="sr.int8.onnx", onnx_sha256="a" * 64,
                shapes={"lr": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [1, 3, 96, 96]}},
                calibration_set_sha256="c" * 64, system=ORIN, engine_file="sr.int8.trt10.3.0.sm87-orin.engine",
                engine_sha256="e" * 64, profile="jetson-orin-int8", profile_path="export/jetson-orin-int8.toml",
                workspace_mib=1024, models_dir="/m", build_seconds=12.345)
    args.update(over)
    return E.make_manifest(**args)


def test_manifest_round_trip(tmp_path):
    manifest = _manifest()
    path = tmp_path / "sr.int8.trt10.3.0.sm87-orin.engine.json"
    from skinedge.atomic import write_json_atomic

    write_json_atomic(path, manifest)
    back = E.read_manifest(path)
    assert back == manifest
    for key in ("source", "variant", "precision", "shapes", "calibration_set_sha256", "tensorrt_version", "gpu",
                "built_at", "skinedge_version", "profile"):
        assert key in back
    assert back["source"] == {"file": "sr.int8.onnx", "sha256": "a" * 64, "models_dir": "/m"}
    assert back["gpu"] == {"name": "Orin", "compute_capability": "8.7"}
    expected = {"variant": "int8", "precision": "int8", "calibration_set_sha256": "c" * 64,
                "shapes": {"lr": {"min": (1, 3, 16, 16), "opt": (1, 3, 64, 64), "max": (1, 3, 96, 96)}}}
    assert E.manifest_mismatches(back, ORIN, "a" * 64, expected) == []


def test_read_manifest_refuses_what_is_not_ours(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(SkinedgeError, match="not a skinedge engine manifest"):
        E.read_manifest(tmp_path / "x.json")
    with pytest.raises(SkinedgeError, match="missing"):
        E.read_manifest(tmp_path / "nope.json")


@pytest.mark.parametrize("system, sha, expected, words", [
    ({**ORIN, "tensorrt_version": "10.7.0.23"}, "a" * 64, None, ["TensorRT version", "10.3.0.30", "10.7.0.23"]),
    ({**ORIN, "gpu": {"name": "Orin Nano", "compute_capability": "8.7"}}, "a" * 64, None, ["GPU", "Orin Nano"]),
    ({**ORIN, "gpu": {"name": "Orin", "compute_capability": "9.0"}}, "a" * 64, None,
     ["compute capability", "8.7", "9.0"]),
    (ORIN, "b" * 64, None, ["source ONNX", "sr.int8.onnx", "changed"]),
    (ORIN, "a" * 64, {"precision": "fp16"}, ["precision", "int8", "fp16"]),
    (ORIN, "a" * 64, {"variant": "pruned.int8"}, ["variant", "pruned.int8"]),
    (ORIN, "a" * 64, {"calibration_set_sha256": "d" * 64}, ["calibration set"]),
    (ORIN, "a" * 64, {"shapes": {"lr": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [4, 3, 128, 128]}}},
     ["input shapes", "4x3x128x128"]),
])
def test_every_kind_of_mismatch_is_reported(system, sha, expected, words):
    problems = E.manifest_mismatches(_manifest(), system, sha, expected)
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems


def test_all_mismatches_at_once_and_unchecked_onnx():
    problems = E.manifest_mismatches(_manifest(), H100, "b" * 64, {"precision": "fp16"})
    assert [p.split(":")[0] for p in problems] == ["TensorRT version", "GPU", "compute capability", "source ONNX",
                                                    "precision"]
    assert E.manifest_mismatches(_manifest(), ORIN, None) == []  # no ONNX at hand: not checked
    assert E.manifest_mismatches({"format": "x"}, ORIN, None) == ["not a skinedge engine manifest"]


# ---------------------------------------------------------------- profiles, variant selection, shapes


def test_read_profile_errors(tmp_path):
    with pytest.raises(SkinedgeError, match="profile not found"):
        E.read_profile(tmp_path / "nope.toml")
    bad = profile_toml(tmp_path / "bad.toml", seg="fp8")
    with pytest.raises(SkinedgeError, match="precision 'fp8'"):
        E.read_profile(bad)


def test_select_variant(models):
    manifest = load_models(models)
    desktop = E.read_profile(PROFILES / "desktop-fp16.toml")
    jetson = E.read_profile(PROFILES / "jetson-orin-int8.toml")
    assert [E.select_variant(manifest, n, desktop.nets[n]) for n in ("seg", "sr")] == ["fp16", "fp16"]
    # sr is pruned in the Jetson profile and a pruned INT8 sr exists; seg is not pruned
    assert [E.select_variant(manifest, n, jetson.nets[n]) for n in ("seg", "sr")] == ["int8", "pruned.int8"]
    fp32 = NetShapes("fp32", 0.0, (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))
    assert E.select_variant(manifest, "seg", fp32) == "fp32"
    # pruning asked for but no pruned variant of seg: the unpruned one
    pruned_seg = NetShapes("int8", 0.5, (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))
    assert E.select_variant(manifest, "seg", pruned_seg) == "int8"


def test_select_variant_refuses_failing_cpu_and_missing(tmp_path):
    models = write_models(tmp_path / "m", extra={"seg": {"int8": "failing"}})
    manifest = load_models(models)
    jetson = E.read_profile(PROFILES / "jetson-orin-int8.toml")
    with pytest.raises(SkinedgeError, match="seg int8 failed its accuracy gate.*dice dropped.*refuses"):
        E.select_variant(manifest, "seg", jetson.nets["seg"], jetson.name)
    cpu = E.read_profile(PROFILES / "cpu-int8.toml")
    with pytest.raises(SkinedgeError, match="cpu-int8 is a CPU profile.*build-engines is for TensorRT"):
        E.select_variant(manifest, "seg", cpu.nets["seg"], cpu.name)
    del manifest["networks"]["sr"]["variants"]["fp16"]
    with pytest.raises(ModelsError, match="no fp16 variant of sr.*skinedge calibrate"):
        E.select_variant(manifest, "sr", E.read_profile(PROFILES / "desktop-fp16.toml").nets["sr"])


def test_shapes_come_from_the_profile_and_models_json_fixes_the_segmenter(models, tmp_path):
    manifest = load_models(models)
    default = E.default_profile(manifest)
    assert default.nets["seg"].min == (1, 3, 64, 64) and default.nets["seg"].max == (4, 3, 64, 64)
    assert (default.nets["sr"].min, default.nets["sr"].opt, default.nets["sr"].max) == (
        (1, 3, 16, 16), (1, 3, 64, 64), (4, 3, 128, 128))
    assert E.resolve_shapes(manifest, "seg", default.nets["seg"]) == {
        "image": {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [4, 3, 64, 64]}}
    wrong = E.read_profile(profile_toml(tmp_path / "p256.toml", size=256))  # models.json says 64
    with pytest.raises(SkinedgeError, match="segmenter takes 64x64"):
        E.resolve_shapes(manifest, "seg", wrong.nets["seg"], wrong.name)
    four = E.read_profile(profile_toml(tmp_path / "c4.toml", channels=4))
    with pytest.raises(SkinedgeError, match="dimension 1"):
        E.resolve_shapes(manifest, "seg", four.nets["seg"], four.name)


def test_plan_checks_onnx_files_against_models_json(models):
    manifest = load_models(models)
    plans = E.plan_engines(models, manifest, E.default_profile(manifest), ORIN)
    assert [(p.net, p.variant, p.name) for p in plans] == [
        ("seg", "fp16", "seg.fp16.trt10.3.0.sm87-orin.engine"), ("sr", "fp16", "sr.fp16.trt10.3.0.sm87-orin.engine")]
    assert plans[0].onnx_sha256 == manifest["networks"]["seg"]["variants"]["fp16"]["sha256"]
    assert plans[0].calibration_set_sha256 is None
    replace_onnx(models, "seg", "fp16", b"someone else's file", update_manifest=False)
    with pytest.raises(ModelsError, match="models.json does not match seg.fp16.onnx"):
        E.plan_engines(models, manifest, E.default_profile(manifest), ORIN)


# ---------------------------------------------------------------- no TensorRT here


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_without_tensorrt_build_engines_exits_2(models, tmp_path):
    assert E.tensorrt_available() is False
    with pytest.raises(E.MissingTensorRT) as info:
        E.build_engines(models, tmp_path / "engines")
    assert info.value.exit_code == 2
    assert str(info.value) == E.TENSORRT_MISSING
    assert "TensorRT 10.3+" in str(info.value) and "JetPack 6" in str(info.value)
    with pytest.raises(E.MissingTensorRT):
        E.build_engines_command(models, tmp_path / "engines", profile_toml(tmp_path / "p.toml"))
    with pytest.raises(E.MissingTensorRT):
        E.system_info()
    # a mistake in the request is reported before the missing TensorRT
    with pytest.raises(SkinedgeError, match="CPU profile"):
        E.build_engines(models, tmp_path / "engines", PROFILES / "cpu-int8.toml")
    assert not (tmp_path / "engines").exists()


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_without_tensorrt_the_runner_refuses_to_activate():
    from skinedge.runtime.backends.tensorrt import TrtRunner

    with pytest.raises(E.MissingTensorRT):
        TrtRunner(b"not an engine").activate()


def test_engine_modules_import_without_tensorrt_cuda_onnx_or_torch():
    code = ("import sys, skinedge.runtime.engines, skinedge.runtime.backends.tensorrt\n"
            "bad = [m for m in ('tensorrt', 'cuda', 'onnx', 'torch') if m in sys.modules]\n"
            "print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:] + result.stdout


# ---------------------------------------------------------------- build / reuse / rebuild (stand-in builder)


def test_build_engines_writes_engines_sidecars_and_index(models, tmp_path):
    out, fake = tmp_path / "engines", FakeBuilder()
    profile = profile_toml(tmp_path / "orin.toml", seg="int8", sr="int8", sr_pruning=0.3, sr_max=96)
    result = E.build_engines(models, out, profile, log=lambda m: None, system=ORIN, builder=fake)
    assert [c[0] for c in fake.calls] == ["seg.int8.onnx", "sr.pruned.int8.onnx"]
    assert fake.calls[1][1] == {"lr": ([1, 3, 16, 16], [1, 3, 64, 64], [1, 3, 96, 96])}
    rows = result["engines"]
    assert rows["sr"]["variant"] == "pruned.int8" and rows["sr"]["built"] and rows["seg"]["built"]
    engine = out / "sr.pruned.int8.trt10.3.0.sm87-orin.engine"
    assert Path(rows["sr"]["engine"]) == engine and engine.is_file()
    side = E.read_manifest(E.sidecar_path(engine))
    models_json = load_models(models)["networks"]["sr"]["variants"]["pruned.int8"]
    assert side["source"]["file"] == "sr.pruned.int8.onnx" and side["source"]["sha256"] == models_json["sha256"]
    assert side["precision"] == "int8" and side["variant"] == "pruned.int8"
    assert side["calibration_set_sha256"] == "c" * 64
    assert side["shapes"] == {"lr": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64], "max": [1, 3, 96, 96]}}
    assert side["tensorrt_version"] == "10.3.0.30" and side["gpu"] == ORIN["gpu"]
    assert side["profile"] == "orin" and side["workspace_mib"] == 512 and side["skinedge_version"]
    assert side["engine"]["sha256"] == _sha(engine.read_bytes())
    assert (out / "timing.trt10.3.0.sm87-orin.cache").is_file()
    index = json.loads((out / "engines.json").read_text())
    assert index["networks"]["sr"] == {"engine": engine.name, "variant": "pruned.int8"}
    assert E.find_engine(out, "sr") == engine and E.find_engine(out, "sr", "pruned.int8") == engine
    with pytest.raises(SkinedgeError, match="no fp16 engine of seg"):
        E.find_engine(out, "seg", "fp16")
    assert not list(out.glob("*.tmp"))


def test_second_build_reuses_and_changes_rebuild(models, tmp_path):
    out, fake = tmp_path / "engines", FakeBuilder()
    logs: list[str] = []
    E.build_engines(models, out, None, log=logs.append, system=ORIN, builder=fake)
    assert len(fake.calls) == 2
    result = E.build_engines(models, out, None, log=logs.append, system=ORIN, builder=fake)
    assert len(fake.calls) == 2 and not any(r["built"] for r in result["engines"].values())
    assert any("up to date" in line for line in logs)

    replace_onnx(models, "sr", "fp16", b"a re-calibrated sr")  # a new ONNX (and models.json updated)
    result = E.build_engines(models, out, None, log=logs.append, system=ORIN, builder=fake)
    assert [c[0] for c in fake.calls[2:]] == ["sr.fp16.onnx"]
    assert "source ONNX" in result["engines"]["sr"]["reasons"][0]

    engine = Path(result["engines"]["seg"]["engine"])
    engine.write_bytes(b"truncated")  # damaged engine: its sidecar no longer matches
    result = E.build_engines(models, out, None, log=logs.append, system=ORIN, builder=fake)
    assert [c[0] for c in fake.calls[3:]] == ["seg.fp16.onnx"]

    wider = profile_toml(tmp_path / "wider.toml", sr_max=256)  # the profile changed: sr shapes differ
    result = E.build_engines(models, out, wider, log=logs.append, system=ORIN, builder=fake)
    assert [c[0] for c in fake.calls[4:]] == ["seg.fp16.onnx", "sr.fp16.onnx"]  # seg max batch 2 vs 4 too

    E.build_engines(models, out, wider, log=logs.append, system=ORIN, builder=fake, rebuild=True)
    assert len(fake.calls) == 8

    result = E.build_engines(models, out, wider, log=logs.append, system=H100, builder=fake)
    assert Path(result["engines"]["sr"]["engine"]).name == "sr.fp16.trt10.7.0.sm90-h100-80gb-hbm3.engine"
    assert len(fake.calls) == 10 and (out / "sr.fp16.trt10.3.0.sm87-orin.engine").is_file()


def test_build_engines_refusals(tmp_path):
    models = write_models(tmp_path / "m", extra={"sr": {"fp16": "failing"}})
    with pytest.raises(SkinedgeError, match="sr fp16 failed its accuracy gate"):
        E.build_engines(models, tmp_path / "e", None, system=ORIN, builder=FakeBuilder())
    models = write_models(tmp_path / "m2")
    with pytest.raises(SkinedgeError, match="CPU profile"):
        E.build_engines(models, tmp_path / "e", PROFILES / "cpu-int8.toml", system=ORIN, builder=FakeBuilder())
    with pytest.raises(SkinedgeError, match="segmenter takes 64x64"):
        E.build_engines(models, tmp_path / "e", PROFILES / "desktop-fp16.toml", system=ORIN, builder=FakeBuilder())
    replace_onnx(models, "seg", "fp16", b"edited by hand", update_manifest=False)
    with pytest.raises(ModelsError, match="models.json does not match seg.fp16.onnx"):
        E.build_engines(models, tmp_path / "e", None, system=ORIN, builder=FakeBuilder())
    assert not (tmp_path / "e").exists()


def test_load_engine_checks_then_refuses_or_rebuilds(models, tmp_path):
    out, fake = tmp_path / "engines", FakeBuilder()
    result = E.build_engines(models, out, None, log=lambda m: None, system=ORIN, builder=fake)
    engine = Path(result["engines"]["sr"]["engine"])
    assert E.load_engine(engine, models, system=ORIN) == engine.read_bytes()
    assert E.load_engine(engine, None, system=ORIN) == engine.read_bytes()  # no models dir: system checks only

    with pytest.raises(SkinedgeError) as info:
        E.load_engine(engine, models, system=H100)
    message = str(info.value)
    assert "TensorRT version: engine built with 10.3.0.30, this system has 10.7.0.23" in message
    assert "compute capability" in message and "GPU" in message
    assert f"skinedge build-engines --models {models} --out {out}" in message

    replace_onnx(models, "sr", "fp16", b"new sr")
    with pytest.raises(SkinedgeError, match="source ONNX: sr.fp16.onnx changed"):
        E.load_engine(engine, models, system=ORIN)
    logs: list[str] = []
    blob = E.load_engine(engine, models, rebuild=True, log=logs.append, system=ORIN, builder=fake)
    assert b"new sr" in blob and engine.read_bytes() == blob and "rebuilding" in logs[0]
    assert E.read_manifest(E.sidecar_path(engine))["source"]["sha256"] == _sha(b"new sr")
    assert E.load_engine(engine, models, system=ORIN) == blob

    blob = E.load_engine(engine, models, rebuild=True, log=logs.append, system=H100, builder=fake)
    assert (out / "sr.fp16.trt10.7.0.sm90-h100-80gb-hbm3.engine").read_bytes() == blob

    replace_onnx(models, "sr", "fp16", b"tampered", update_manifest=False)
    with pytest.raises(ModelsError, match="models.json does not match sr.fp16.onnx"):
        E.load_engine(engine, models, rebuild=True, system=ORIN, builder=fake)
    E.sidecar_path(engine).unlink()
    with pytest.raises(SkinedgeError, match="sidecar manifest"):
        E.load_engine(engine, models, system=ORIN)
    with pytest.raises(SkinedgeError, match="engine not found"):
        E.load_engine(out / "nope.engine", models, system=ORIN)


# ---------------------------------------------------------------- real TensorRT (skipped without it and a GPU)


@pytest.fixture(scope="module")
def gpu_system():
    pytest.importorskip("tensorrt")
    try:
        return E.system_info()
    except SkinedgeError as exc:
        pytest.skip(f"no GPU for TensorRT: {exc}")


def _tiny_onnx(path: Path, net: str, seed: int, size: int = 32) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if net == "seg":
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, size, size])
        w = numpy_helper.from_array(rng.normal(0, 0.3, (1, 3, 3, 3)).astype(np.float32), "w")
        nodes = [helper.make_node("Conv", ["image", "w"], ["logits"], pads=[1, 1, 1, 1])]
    else:
        x = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["batch", 3, "height", "width"])
        y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["batch", 3, "h4", "w4"])
        w = numpy_helper.from_array(rng.normal(0, 0.3, (48, 3, 3, 3)).astype(np.float32), "w")
        nodes = [helper.make_node("Conv", ["lr", "w"], ["features"], pads=[1, 1, 1, 1]),
                 helper.make_node("DepthToSpace", ["features"], ["sr"], blocksize=4, mode="CRD")]
    graph = helper.make_graph(nodes, net, [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _real_models(root: Path, size: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for net, seed in (("seg", 1), ("sr", 2)):
        _tiny_onnx(root / f"{net}.onnx", net, seed, size)
    networks = {
        "seg": {"input": {"name": "image", "shape": ["batch", 3, size, size]},
                "output": {"name": "logits", "shape": ["batch", 1, size, size]}},
        "sr": {"input": {"name": "lr", "shape": ["batch", 3, "height", "width"]},
               "output": {"name": "sr", "shape": ["batch", 3, "4*height", "4*width"]}, "scale": 4},
    }
    for net in networks:
        data = (root / f"{net}.onnx").read_bytes()
        networks[net]["variants"] = {"fp32": {"file": f"{net}.onnx", "sha256": _sha(data), "precision": "fp32",
                                              "status": "ok"}}
    (root / "models.json").write_text(json.dumps({"format": "skinedge-models", "format_version": 1,
                                                  "networks": networks}))
    return root


def _real_profile(path: Path, size: int = 32) -> Path:
    path.write_text(f"""
[target]
name = "tiny-fp32"
workspace_mib = 256
[seg]
precision = "fp32"
min = [1, 3, {size}, {size}]
opt = [1, 3, {size}, {size}]
max = [2, 3, {size}, {size}]
[sr]
precision = "fp32"
min = [1, 3, 8, 8]
opt = [1, 3, 16, 16]
max = [2, 3, 24, 24]
""")
    return path


def _ort(path: Path, feed: dict) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_engines_build_run_reuse_and_rebuild(gpu_system, tmp_path):
    from skinedge.runtime.backends.tensorrt import EngineFromPath, TrtRunner

    models, out = _real_models(tmp_path / "models"), tmp_path / "engines"
    profile = _real_profile(tmp_path / "tiny.toml")
    logs: list[str] = []
    result = E.build_engines(models, out, profile, log=logs.append)
    assert all(r["built"] for r in result["engines"].values()), logs
    seg_engine, sr_engine = (Path(result["engines"][n]["engine"]) for n in ("seg", "sr"))
    assert seg_engine.name == E.engine_name("seg", "fp32", gpu_system["tensorrt_version"],
                                            E.gpu_tag(gpu_system["gpu"]))
    side = E.read_manifest(E.sidecar_path(sr_engine))
    assert side["tensorrt_version"] == gpu_system["tensorrt_version"] and side["gpu"] == gpu_system["gpu"]
    assert side["source"]["sha256"] == _sha((models / "sr.onnx").read_bytes())
    assert side["shapes"] == {"lr": {"min": [1, 3, 8, 8], "opt": [1, 3, 16, 16], "max": [2, 3, 24, 24]}}
    assert (out / E.timing_cache_name(gpu_system)).stat().st_size > 0

    rng = np.random.default_rng(0)
    image = rng.random((2, 3, 32, 32), dtype=np.float32)
    with TrtRunner(EngineFromPath(seg_engine, models)) as runner:
        got = runner.infer({"image": image})["logits"]
        np.testing.assert_allclose(got, _ort(models / "seg.onnx", {"image": image}), atol=2e-2, rtol=1e-2)
        with pytest.raises(SkinedgeError, match="takes 1x3x32x32 to 2x3x32x32"):
            runner.infer({"image": rng.random((3, 3, 32, 32), dtype=np.float32)})
    for shape in ((1, 3, 16, 16), (2, 3, 8, 24), (1, 3, 24, 13)):
        lr = rng.random(shape, dtype=np.float32)
        with TrtRunner(EngineFromPath(sr_engine, models)) as runner:
            got = runner.infer({"lr": lr})["sr"]
        assert got.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        np.testing.assert_allclose(got, _ort(models / "sr.onnx", {"lr": lr}), atol=2e-2, rtol=1e-2)

    # the on-GPU path: device pointers in and out, one shared stream
    from cuda.bindings import runtime as cudart

    lr = rng.random((1, 3, 16, 16), dtype=np.float32)
    want = _ort(models / "sr.onnx", {"lr": lr})
    stream = cudart.cudaStreamCreate()[1]
    seg_runner = TrtRunner(EngineFromPath(seg_engine, models), stream=stream)
    sr_runner = TrtRunner(EngineFromPath(sr_engine, models), stream=stream)
    with seg_runner, sr_runner:
        d_in = sr_runner.device_buffers["lr"][0]
        err, d_out = cudart.cudaMalloc(want.nbytes)
        assert int(err) == 0
        cudart.cudaMemcpyAsync(d_in, lr.ctypes.data, lr.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
        shapes = sr_runner.enqueue({"lr": (d_in, lr.shape)}, {"sr": d_out})
        assert shapes == {"sr": want.shape}
        got = np.empty_like(want)
        cudart.cudaMemcpyAsync(got.ctypes.data, d_out, got.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                               stream)
        cudart.cudaStreamSynchronize(stream)
        cudart.cudaFree(d_out)
        np.testing.assert_allclose(got, want, atol=2e-2, rtol=1e-2)
        np.testing.assert_allclose(seg_runner.infer({"image": image[:1]})["logits"],
                                   _ort(models / "seg.onnx", {"image": image[:1]}), atol=2e-2, rtol=1e-2)
    cudart.cudaStreamDestroy(stream)

    # a second build reuses both; a changed ONNX rebuilds that one only
    result = E.build_engines(models, out, profile, log=logs.append)
    assert not any(r["built"] for r in result["engines"].values())
    _tiny_onnx(models / "sr.onnx", "sr", seed=99)
    manifest = json.loads((models / "models.json").read_text())
    manifest["networks"]["sr"]["variants"]["fp32"]["sha256"] = _sha((models / "sr.onnx").read_bytes())
    (models / "models.json").write_text(json.dumps(manifest))
    with pytest.raises(SkinedgeError, match="source ONNX"):
        E.load_engine(sr_engine, models)
    result = E.build_engines(models, out, profile, log=logs.append)
    assert result["engines"]["sr"]["built"] and not result["engines"]["seg"]["built"]
    lr = rng.random((1, 3, 16, 16), dtype=np.float32)
    with TrtRunner(EngineFromPath(sr_engine, models)) as runner:
        np.testing.assert_allclose(runner.infer({"lr": lr})["sr"], _ort(models / "sr.onnx", {"lr": lr}),
                                   atol=2e-2, rtol=1e-2)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_parser_errors_are_reported(gpu_system, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(SkinedgeError, match="TensorRT cannot parse bad.onnx: "):
        E.build_engine(bad, {"x": ((1, 3, 8, 8),) * 3}, 64, None, log=lambda m: None)
