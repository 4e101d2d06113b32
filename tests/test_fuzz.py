"""Every reader fuzzed (issue 22): mutated images, DICOM, ``--source`` URIs, models.json, ONNX and OpenVINO IR
files and provenance JSON each end in the expected output or one clear line — never a traceback, a hang or a
partial output file.

CI runs ``SKINEDGE_FUZZ_EXAMPLES`` (default 100) cases per test, derandomised; the full run sets it higher and
``SKINEDGE_FUZZ_REPORT`` to keep the counts per kind (benchmarks/README.md, "Fuzzing"). Seeds:
``tests/fuzz_corpus/`` (``make_seeds.py`` says how they were made).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fuzzing import COUNTS, CORPUS, ends_cleanly, fuzz_settings, mutated, seed
from hypothesis import assume, given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    summary = {kind: dict(counts) for kind, counts in sorted(COUNTS.items())}
    print("\nfuzz cases per kind:", json.dumps(summary))
    if os.environ.get("SKINEDGE_FUZZ_REPORT"):
        Path(os.environ["SKINEDGE_FUZZ_REPORT"]).write_text(json.dumps(
            {"examples_per_test": int(os.environ.get("SKINEDGE_FUZZ_EXAMPLES", "100")), "kinds": summary,
             "total": sum(sum(c.values()) for c in COUNTS.values())}, indent=1) + "\n")


# ------------------------------------------------------------------------------------------------- images
IMAGE_SEEDS = ["seed.png", "seed.jpg", "seed.bmp", "seed.tif"]


@pytest.mark.parametrize("name", IMAGE_SEEDS)
def test_mutated_images_read_or_fail_in_one_line(name, tmp_path_factory):
    from skinedge.runtime.enhance import read_frame

    path = tmp_path_factory.mktemp("img") / f"case{Path(name).suffix}"

    @fuzz_settings()
    @given(mutated(seed(name)))
    def case(data):
        path.write_bytes(data)
        frame = ends_cleanly(f"image {Path(name).suffix}", lambda: read_frame(path))
        if frame is not None:
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.size

    case()


# ------------------------------------------------------------------------------------------------- DICOM
DICOM_ELEMENTS = ["Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
                  "PhotometricInterpretation", "PlanarConfiguration", "PixelRepresentation", "NumberOfFrames",
                  "PixelData", "SOPClassUID", "Modality"]
ELEMENT_VALUES = st.one_of(st.none(), st.integers(-2**31, 2**32), st.text(max_size=20), st.binary(max_size=64),
                           st.sampled_from(["RGB", "YBR_FULL", "YBR_FULL_422", "MONOCHROME1", "MONOCHROME2",
                                            "PALETTE COLOR", "1.2.840.10008.1.2.4.50", ""]))


def _dicom_with(element: str, value, path: Path) -> bool:
    """``path`` rewritten with one element set to ``value`` (None: removed); False when pydicom will not write
    it."""
    import pydicom

    ds = pydicom.dcmread(path)
    try:
        if value is None:
            if element in ds:
                delattr(ds, element)
        else:
            setattr(ds, element, value)
        ds.save_as(path, enforce_file_format=False)
        return True
    except Exception:  # noqa: BLE001 - a value pydicom cannot encode: not a file anyone can send us
        return False


def test_dicom_with_mutated_elements_reads_or_fails_in_one_line(tmp_path_factory):
    from skinedge.data.dicom import read_dicom

    path = tmp_path_factory.mktemp("dcm") / "case.dcm"

    @fuzz_settings()
    @given(st.lists(st.tuples(st.sampled_from(DICOM_ELEMENTS), ELEMENT_VALUES), min_size=1, max_size=3))
    def case(edits):
        shutil.copy(CORPUS / "seed.dcm", path)
        for element, value in edits:
            assume(_dicom_with(element, value, path))
        image = ends_cleanly("dicom elements", lambda: read_dicom(path))
        if image is not None:
            assert image.frames and all(f.dtype == np.uint8 and f.shape[2] == 3 for f in image.frames)

    case()


def test_dicom_bytes_mutated_read_or_fail_in_one_line(tmp_path_factory):
    from skinedge.data.dicom import read_dicom

    path = tmp_path_factory.mktemp("dcmb") / "case.dcm"

    @fuzz_settings()
    @given(mutated(seed("seed.dcm")))
    def case(data):
        path.write_bytes(data)
        image = ends_cleanly("dicom bytes", lambda: read_dicom(path))
        if image is not None:
            assert image.frames and all(f.dtype == np.uint8 and f.shape[2] == 3 for f in image.frames)

    case()


# ------------------------------------------------------------------------------------------------- --source
SOURCE_SEEDS = seed("seed.uris.txt").decode().split()
SOURCES = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s, at, extra: s[:at] + extra + s[at:], st.sampled_from(SOURCE_SEEDS), st.integers(0, 40),
              st.text(max_size=8)),
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(
        ["camera://", "v4l2://", "v4l2:///dev/video", "/dev/video", "csi://", "file://", "rtsp://", "http://", ""]),
        st.text(max_size=12)))


def test_source_uris_parse_or_fail_in_one_line(tmp_path_factory):
    """Parsing only (no device, file or network is touched), then opening the relative paths inside a folder
    holding one image, one video-named file and nothing else."""
    from skinedge.runtime.live.sources import open_source, parse_source

    here = tmp_path_factory.mktemp("src")
    shutil.copy(CORPUS / "seed.png", here / "a.png")
    (here / "clip.mp4").write_bytes(seed("seed.jpg"))  # a "video" that is not one

    @fuzz_settings()
    @given(SOURCES)
    def case(text):
        parsed = ends_cleanly("source uri", lambda: parse_source(text))
        if parsed is None:
            return
        kind, value = parsed
        assert kind in ("camera", "csi", "stream", "path")
        if kind == "path" and not value.startswith(("/", "~")) and ".." not in value and "**" not in value:
            cwd = os.getcwd()
            os.chdir(here)
            try:
                source = ends_cleanly("source path", lambda: open_source(text))
                if source is not None:
                    source.close()
            finally:
                os.chdir(cwd)

    case()


# ------------------------------------------------------------------------------------------------- JSON
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=8)


def _paths(obj, here=()):
    yield here
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, here + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, here + (i,))


@st.composite
def json_mutated(draw, original):
    """``original`` with 1–3 nodes replaced by other JSON or removed (structure-aware: reaches the fields a
    byte mutation would only break the syntax of)."""
    obj = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(obj))
        path = draw(st.sampled_from(paths))
        if not path:
            obj = draw(JSON_VALUES)
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(obj, allow_nan=True).encode()


PROVENANCE = json.loads(seed("seed.provenance.json"))


def test_provenance_json_reads_or_fails_in_one_line():
    from skinedge.runtime.clinical.provenance import read_record

    @fuzz_settings()
    @given(st.one_of(mutated(seed("seed.provenance.json")), json_mutated(PROVENANCE)))
    def case(data):
        record = ends_cleanly("provenance json", lambda: read_record(data))
        if record is not None:
            assert record["schema"] == "skinedge-provenance"

    case()


@pytest.fixture(scope="module")
def models_copy(exported, tmp_path_factory):
    """The test models, each file linked into a folder whose models.json the cases replace."""
    _, _, models = exported
    copy = tmp_path_factory.mktemp("models")
    for item in models.iterdir():
        if item.name != "models.json":
            (copy / item.name).symlink_to(item)
    return copy, json.loads((models / "models.json").read_text())


def test_models_json_opens_or_fails_in_one_line(models_copy):
    from skinedge.runtime.session import open_session

    copy, manifest = models_copy
    frame = np.full((48, 64, 3), 150, np.uint8)
    frame[16:32, 24:40] = (60, 50, 110)

    def open_and_run():
        session = open_session(copy, backend="onnxruntime", precision="fp32")
        with session.pipeline as pipeline:
            return pipeline(frame)

    @fuzz_settings()
    @given(st.one_of(json_mutated(manifest), mutated(json.dumps(manifest).encode(), most=3)))
    def case(data):
        (copy / "models.json").write_bytes(data)
        result = ends_cleanly("models.json", open_and_run)
        if result is not None:
            assert result.image.dtype == np.uint8

    case()


# ------------------------------------------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def model_seeds(tmp_path_factory):
    """The ONNX and OpenVINO IR seeds, made here (tests/fuzz_corpus/make_seeds.py) rather than committed."""
    pytest.importorskip("onnx")
    sys.path.insert(0, str(CORPUS))
    from make_seeds import onnx_and_ir

    return onnx_and_ir(tmp_path_factory.mktemp("model-seeds"))


def _run_once(runner):
    with runner:
        out = runner.infer({runner.input_names[0]: np.zeros((1, 3, 8, 8), np.float32)})
    return out


def test_onnx_files_load_or_fail_in_one_line(model_seeds, tmp_path_factory):
    from skinedge.runtime.backends.onnxruntime import OrtRunner, SessionFromOnnx

    path = tmp_path_factory.mktemp("onnx") / "sr.onnx"

    @fuzz_settings()
    @given(mutated((model_seeds / "seed.onnx").read_bytes()))
    def case(data):
        path.write_bytes(data)
        ends_cleanly("onnx file", lambda: _run_once(OrtRunner(SessionFromOnnx(path, threads=1, fixed_shape=False))))

    case()


def test_openvino_ir_loads_or_fails_in_one_line(model_seeds, tmp_path_factory):
    pytest.importorskip("openvino")
    from skinedge.runtime.backends.openvino import CompiledFromFile, OvRunner

    here = tmp_path_factory.mktemp("ir")
    shutil.copy(model_seeds / "seed.bin", here / "sr.bin")
    path = here / "sr.xml"

    @fuzz_settings()
    @given(mutated((model_seeds / "seed.xml").read_bytes()))
    def case(data):
        path.write_bytes(data)
        ends_cleanly("openvino ir", lambda: _run_once(OvRunner(CompiledFromFile(path, threads=1))))

    case()


# ------------------------------------------------------------------------------------------------- the CLI
def test_enhance_over_mutated_files_prints_one_line_each_and_leaves_no_partial_output(exported, tmp_path):
    """The end-to-end promise: ``skinedge enhance`` over a folder of damaged files (fixed mutations of every
    image seed and the DICOM seed) writes every output of a readable file and nothing of the others, says one
    line per failure and never a traceback."""
    import random

    _, _, models = exported
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rng = random.Random(22)
    for name in IMAGE_SEEDS + ["seed.dcm"]:
        data = seed(name)
        kind = Path(name).suffix[1:]  # one stem per file: enhance numbers outputs whose stems collide
        shutil.copy(CORPUS / name, inputs / f"ok-{kind}{Path(name).suffix}")
        for i in range(5):
            bad = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                if not bad:
                    break
                at = rng.randrange(len(bad))
                if rng.random() < 0.3:
                    del bad[at:]
                else:
                    bad[at] = rng.randrange(256)
            (inputs / f"bad{i}-{kind}{Path(name).suffix}").write_bytes(bytes(bad))
    run = subprocess.run([sys.executable, "-m", "skinedge.cli", "enhance", str(inputs), "--models", str(models),
                          "--out", str(out), "--backend", "onnxruntime", "--dicom"], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    assert "Warning" not in run.stderr, run.stderr  # a library's warnings are not ours to print: the verdict is
    written = {p.name for p in out.iterdir()}
    assert not [n for n in written if n.startswith(".") or n.endswith(".tmp")], written
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAIL ")]
    for item in inputs.iterdir():
        stem = item.stem
        outputs = {n for n in written if n.startswith(stem + ".")}
        if outputs:
            assert {f"{stem}.enhanced.png", f"{stem}.mask.png", f"{stem}.panel.png"} <= outputs, (item.name, outputs)
        else:
            assert any(item.name in line for line in failed), (item.name, run.stderr[-2000:])
    assert all(f"ok-{Path(n).suffix[1:]}.enhanced.png" in written for n in IMAGE_SEEDS + ["seed.dcm"]), written
    assert {"ok-dcm.enhanced.dcm", "ok-dcm.seg.dcm"} <= written, written
    assert run.returncode == (1 if any(not {n for n in written if n.startswith(p.stem + ".")}
                                       for p in inputs.iterdir()) else 0)
