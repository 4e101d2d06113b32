"""Export, FP16/INT8 calibration and accuracy gates on a small trained pair, through the real CLI entry."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from skinedge.cli import main
from skinedge.export import calibrate as calibrate_module
from skinedge.export.fp16 import convert_to_fp16
from skinedge.export.onnx_io import session
from skinedge.export.onnx_rules import check_tensorrt_qdq, unsupported_ops
from skinedge.export.profiles import load_profile
from skinedge.runtime.manifest import load_models

# The test networks are trained for a few steps: their output is far from the truth, so the truth gate (lesion ΔE
# no worse than bicubic's + 0.3) refuses them, as it should; tests about the conversion itself lift it.
UNTRAINED = ("--max-delta-e-over-bicubic", 100)


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_writes_checked_dynamic_models_matching_pytorch(exported):
    root, spec, models = exported
    manifest = load_models(models)
    for net, (name, dynamic) in {"seg": ("image", {0}), "sr": ("lr", {0, 2, 3})}.items():
        entry = manifest["networks"][net]
        variant = entry["variants"]["fp32"]
        model = onnx.load(models / variant["file"])
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        assert not {"BatchNormalization", "Dropout"} & {n.op_type for n in model.graph.node}
        assert unsupported_ops(model) == {}
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert model.graph.input[0].name == entry["input"]["name"] == name
        assert {i for i, d in enumerate(dims) if d.dim_param} == dynamic
        assert variant["parity"]["psnr_db"] > 60
        assert len(entry["source"]["sha256"]) == 64 and entry["source"]["arch"]
    seg = manifest["networks"]["seg"]
    # An EfficientNet trained for a few steps amplifies float32 rounding (PyTorch itself is ~3e-4
    # off in logits against float64 here), so the segmenter is held to mask agreement.
    assert seg["variants"]["fp32"]["parity"]["mask_agreement"] > 0.999
    assert manifest["networks"]["sr"]["variants"]["fp32"]["parity"]["max_abs"] < 1e-4
    assert seg["input"]["shape"] == ["batch", 3, 64, 64] and len(seg["input"]["mean"]) == 3
    assert manifest["networks"]["sr"]["scale"] == 4
    # the dynamic axes really are dynamic: batch 2 of a 24×40 crop
    out = session(models / "sr.onnx").run(None, {"lr": np.random.rand(2, 3, 24, 40).astype(np.float32)})[0]
    assert out.shape == (2, 3, 96, 160) and out.min() >= 0 and out.max() <= 1


def test_export_refuses_the_wrong_checkpoint_and_keeps_what_was_there(exported, capsys):
    root, _, models = exported
    before = (models / "seg.onnx").read_bytes()
    code, _, err = cli(capsys, "export", "--seg", root / "run" / "seg-best.pt",
                       "--sr", root / "run" / "sr-pretrain-best.pt", "--out", models)
    assert code == 1 and "already holds exported models" in err
    code, _, err = cli(capsys, "export", "--seg", root / "run" / "sr-pretrain-best.pt",
                       "--sr", root / "run" / "sr-pretrain-best.pt", "--out", models, "--overwrite")
    assert code == 1 and "not a segmenter" in err and len(err.strip().splitlines()) == 1
    assert (models / "seg.onnx").read_bytes() == before


def test_fp16_keeps_float32_io_and_reductions(exported, capsys):
    root, spec, models = exported
    work = root / "m-fp16"
    shutil.copytree(models, work)
    # the truth gate refuses a variant whose shown lesion colours miss its limit (here one no output can meet:
    # 0.5 ΔE00 *better* than bicubic; the shown output takes its colour from the camera, so it is near bicubic's)
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "fp16", "--data", spec, "--net", "sr",
                         "--max-delta-e-over-bicubic", "-0.5")
    assert code == 1 and re.search(r"\| sr \| fp16 \| delta_e_over_bicubic \|.*\| -0.5000 \| FAIL \|", out), out
    assert not (work / "sr.fp16.onnx").exists()
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "fp16", "--data", spec,
                         *UNTRAINED)
    assert code == 0, err
    assert "| seg | fp16 | dice_drop |" in out and "| sr | fp16 | colour_shift |" in out
    model = onnx.load(work / "seg.fp16.onnx")
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weights = {t.name: t for t in model.graph.initializer}
    assert all(weights[c.input[1]].data_type == TensorProto.FLOAT16 for c in convs)
    produced = {o: n for n in model.graph.node for o in n.output}
    pools = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    assert pools and all(produced[p.input[0]].op_type == "Cast" for p in pools)  # kept in FP32
    entry = load_models(work)["networks"]["seg"]["variants"]["fp16"]
    assert entry["status"] == "ok" and entry["gate"]["passed"]
    # a new export over it drops the variants made from the old FP32 models
    code, _, err = cli(capsys, "export", "--seg", root / "run" / "seg-best.pt", "--sr",
                       root / "run" / "sr-pretrain-best.pt", "--out", work, "--overwrite")
    assert code == 0, err
    assert not (work / "seg.fp16.onnx").exists() and set(load_models(work)["networks"]["seg"]["variants"]) == {"fp32"}


def test_int8_variants_follow_the_rules_and_record_their_calibration(exported, capsys):
    root, spec, models = exported
    work = root / "m-int8"
    shutil.copytree(models, work)
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "int8", "--data", spec,
                         "--images", 6, "--method", "minmax", *UNTRAINED)
    assert code == 0, err
    manifest = load_models(work)
    split = json.loads((root / "run" / "split.json").read_text())["splits"]
    for net in ("seg", "sr"):
        trt = onnx.load(work / f"{net}.int8.onnx")
        assert check_tensorrt_qdq(trt) == []
        assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in trt.graph.node}
        cpu = manifest["networks"][net]["variants"]["int8-cpu"]
        form = cpu["cpu_form"]
        assert cpu["status"] == "ok" and set(form["timings_ms"]) == {"s8s8 (TensorRT form)", "u8s8"}
        sizes = {"64x64"} if net == "seg" else {"64x64", "128x128"}  # SR: the sizes the runtime feeds it
        assert set(form["per_size_ms"]) == {"s8s8 (TensorRT form)", "u8s8", "fp32"}
        assert all(set(each) == sizes for each in form["per_size_ms"].values())
        assert form["fp32_ms"] == pytest.approx(sum(form["per_size_ms"]["fp32"].values()))
        assert form["faster_than_fp32"] == (form["timings_ms"][form["form"]] < form["fp32_ms"])
        assert (work / cpu["file"]).is_file()
    record = json.loads((work / "calibration" / "int8-minmax.json").read_text())
    ids = [r["id"] for r in record["images"]]
    assert len(ids) == 6 and not set(ids) & set(split["test"])
    assert all(len(r["sha256"]) == 64 for r in record["images"])
    assert (work / "calibration" / "README.md").is_file()
    assert manifest["networks"]["seg"]["variants"]["int8"]["calibration"]["set_sha256"] == record["set_sha256"]


def test_gate_refuses_a_variant_calibrated_on_black_images(exported, capsys, monkeypatch):
    root, spec, models = exported
    work = root / "m-black"
    shutil.copytree(models, work)
    real_prepare = calibrate_module.prepare

    def black_calibration(cfg, manifest, seg_fp32):
        prepared, record = real_prepare(cfg, manifest, seg_fp32)
        for net, prep in prepared.items():
            prep.calibration = [np.zeros_like(prep.calibration[0])] * 2
        return prepared, record

    monkeypatch.setattr(calibrate_module, "prepare", black_calibration)
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "int8", "--data", spec, "--net", "sr",
                         "--images", 4, "--method", "minmax")
    assert code == 1 and "failed its accuracy gate" in err
    assert "FAIL" in out and not (work / "sr.int8.onnx").exists()
    assert "int8" not in load_models(work)["networks"]["sr"]["variants"]
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "int8", "--data", spec, "--net", "sr",
                         "--images", 4, "--method", "minmax", "--force")
    assert code == 0 and (work / "sr.int8.onnx").exists()
    assert load_models(work)["networks"]["sr"]["variants"]["int8"]["status"] == "failing"


def test_bad_inputs_are_one_line_errors(exported, capsys, tmp_path):
    root, spec, models = exported
    broken = tmp_path / "broken"
    shutil.copytree(models, broken)
    (broken / "sr.onnx").write_bytes(b"this is not onnx")
    cases = [
        (["calibrate", "--models", tmp_path / "none", "--precision", "int8", "--data", spec], "not found"),
        (["calibrate", "--models", tmp_path, "--precision", "int8", "--data", spec], "no models.json"),
        (["calibrate", "--models", models, "--precision", "int4", "--data", spec], "unknown precision"),
        (["calibrate", "--models", models, "--precision", "int8", "--data", spec, "--images", 1], "at least 2"),
        (["calibrate", "--models", broken, "--precision", "int8", "--data", spec, "--net", "sr"], "not an ONNX"),
        (["calibrate", "--models", models, "--precision", "int8", "--data", spec, "--method", "mean"], "method"),
    ]
    for argv, expected in cases:
        code, _, err = cli(capsys, *argv)
        assert code == 1 and expected in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_images_too_small_for_the_network_are_a_clear_error(exported, capsys, tmp_path):
    _, _, models = exported
    from PIL import Image

    for folder in ("images", "masks"):
        (tmp_path / "tiny" / folder).mkdir(parents=True)
    for i in range(12):  # 8×8 images: too small for a ×4 lesion crop
        Image.fromarray(np.full((8, 8, 3), 40 * (i % 5), np.uint8)).save(tmp_path / "tiny" / "images" / f"t{i}.png")
        Image.fromarray(np.pad(np.full((4, 4), 255, np.uint8), 2)).save(tmp_path / "tiny" / "masks" / f"t{i}.png")
    code, _, err = cli(capsys, "calibrate", "--models", models, "--precision", "int8", "--data",
                       f"folder:{tmp_path / 'tiny'}", "--net", "sr", "--images", 2)
    assert code == 1 and "too small" in err


def test_shipped_profiles_load_and_bad_profiles_are_refused(tmp_path):
    root = Path(__file__).resolve().parent.parent / "export"
    names = sorted(p.stem for p in root.glob("*.toml"))
    assert names == ["cpu-int8", "desktop-fp16", "jetson-orin-int8"]
    jetson = load_profile(root / "jetson-orin-int8.toml")
    assert jetson.seg.precision == "int8" and jetson.sr.pruning_ratio > 0 and jetson.gates.int8_psnr_drop_db == 0.5
    good = (root / "desktop-fp16.toml").read_text()
    for bad, expected in [(good.replace('precision = "fp16"', 'precision = "int3"', 1), "precision"),
                          (good.replace("pruning_ratio = 0.0", "pruning_ratio = 0.95", 1), "pruning_ratio"),
                          (good.replace("fp16_dice_drop", "fp16_dice_dorp"), "unknown gate"),
                          ("[seg\n", "TOML")]:
        path = tmp_path / "bad.toml"
        path.write_text(bad)
        with pytest.raises(Exception, match=expected):
            load_profile(path)


def test_fp16_converter_on_a_graph_with_resize_and_a_reduction():
    """Resize's float32 scales and a GlobalAveragePool island must survive conversion."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
             helper.make_node("Mul", ["c", "g"], ["m"], name="mul"),
             helper.make_node("Resize", ["m", "", "scales"], ["y"], mode="nearest", name="resize")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], [w, scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half = convert_to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    ref = session(model).run(None, {"x": x})[0]
    out = session(half).run(None, {"x": x})[0]
    assert out.dtype == np.float32 and np.allclose(out, ref, rtol=1e-2, atol=1e-2)
    assert {t.name: t.data_type for t in half.graph.initializer} == {"w": TensorProto.FLOAT16,
                                                                    "scales": TensorProto.FLOAT}


def test_prune_makes_a_smaller_runnable_network_that_calibrates(exported, capsys):
    root, spec, models = exported
    work = root / "m-pruned"
    shutil.copytree(models, work)
    code, out, err = cli(capsys, "prune", "--models", work, "--net", "sr", "--ratio", 0.5, "--data", spec,
                         "--steps", 2, "--batch", 2)
    assert code == 0, err
    assert "| params |" in out and "| ORT CPU latency (ms) |" in out and "| psnr_y |" in out
    entry = load_models(work)["networks"]["sr"]["variants"]["pruned.fp32"]
    counts = entry["pruning"]["counts"]
    assert counts["params_after"] < 0.5 * counts["params_before"] and counts["macs_after"] < counts["macs_before"]
    pruned = onnx.load(work / "sr.pruned.onnx")
    assert unsupported_ops(pruned) == {}
    # the saved checkpoint rebuilds the pruned network, and it matches its ONNX file
    import torch

    from skinedge.models.load import load_generator

    generator, payload = load_generator(work / "sr.pruned.pt")
    widths = [m.out_channels for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths[:-1]) and widths[-1] == 3 and max(widths) < 64
    x = np.random.default_rng(0).random((1, 3, 20, 28), dtype=np.float32)
    with torch.no_grad():
        expected = generator(torch.from_numpy(x)).clamp(0, 1).numpy()
    assert np.abs(session(pruned).run(None, {"lr": x})[0] - expected).max() < 1e-4
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "int8", "--data", spec, "--net", "sr",
                         "--pruned", "--images", 4, "--method", "minmax", *UNTRAINED)
    assert code == 0, err
    assert check_tensorrt_qdq(onnx.load(work / "sr.pruned.int8.onnx")) == []


def test_prune_of_the_segmenter_handles_its_skip_concatenations(exported, capsys):
    root, spec, models = exported
    work = root / "m-pruned-seg"
    shutil.copytree(models, work)
    code, out, err = cli(capsys, "prune", "--models", work, "--net", "seg", "--ratio", 0.3, "--data", spec,
                         "--steps", 1, "--batch", 2)
    assert code == 0, err
    entry = load_models(work)["networks"]["seg"]["variants"]["pruned.fp32"]
    assert entry["pruning"]["counts"]["params_after"] < entry["pruning"]["counts"]["params_before"]
    out = session(work / "seg.pruned.onnx").run(None, {"image": np.zeros((2, 3, 64, 64), np.float32)})[0]
    assert out.shape == (2, 1, 64, 64)


@pytest.mark.parametrize("ratio", [0, 0.95, -0.1])
def test_prune_refuses_a_ratio_outside_the_range(exported, capsys, ratio):
    _, spec, models = exported
    code, _, err = cli(capsys, "prune", "--models", models, "--net", "sr", "--ratio", ratio, "--data", spec)
    assert code == 1 and "--ratio must be in (0, 0.9]" in err and len(err.strip().splitlines()) == 1


def test_prune_refuses_a_checkpoint_changed_since_export(exported, capsys, tmp_path):
    root, spec, models = exported
    work = tmp_path / "m"
    shutil.copytree(models, work)
    manifest = json.loads((work / "models.json").read_text())
    manifest["networks"]["sr"]["source"]["sha256"] = "0" * 64
    (work / "models.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "prune", "--models", work, "--net", "sr", "--ratio", 0.5, "--data", spec)
    assert code == 1 and "changed since" in err


def test_calibrate_takes_its_gates_from_the_profile(exported, capsys, tmp_path):
    root, spec, models = exported
    work = tmp_path / "m"
    shutil.copytree(models, work)
    profile = (Path(__file__).resolve().parent.parent / "export" / "desktop-fp16.toml").read_text()
    strict = tmp_path / "strict.toml"  # a PSNR "drop" of at most -1 dB cannot be met
    strict.write_text(profile.replace("fp16_psnr_drop_db = 0.1", "fp16_psnr_drop_db = -1.0"))
    code, out, err = cli(capsys, "calibrate", "--models", work, "--precision", "fp16", "--data", spec,
                         "--net", "sr", "--profile", strict)
    assert code == 1 and "| sr | fp16 | psnr_drop_db |" in out and "-1.0000 | FAIL |" in out
    assert not (work / "sr.fp16.onnx").exists()
    report = json.loads((work / "reports" / "calibrate-fp16.json").read_text())
    assert report["gates"]["fp16_psnr_drop_db"] == -1.0 and report["networks"]["sr"]["fp16"]["worst_layers"]
