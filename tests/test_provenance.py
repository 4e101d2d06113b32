"""Every enhanced output says it is AI-enhanced and where it came from (one provenance schema, read back)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")

from skinedge.atomic import sha256_file  # noqa: E402
from skinedge.data.generate import write_synthetic  # noqa: E402
from skinedge.runtime.clinical import provenance  # noqa: E402
from skinedge.runtime.enhance import enhance_command  # noqa: E402
from skinedge.runtime.pipeline.host import FrameResult  # noqa: E402
from skinedge.runtime.sinks import BADGE_BGR  # noqa: E402
from skinedge.runtime.sinks.recorder import Recorder  # noqa: E402
from skinedge.runtime.sinks.view import compose_view  # noqa: E402


def orange(img_bgr: np.ndarray) -> float:
    return float((np.abs(img_bgr.astype(int) - BADGE_BGR).max(axis=2) < 30).mean())


@pytest.fixture(scope="module")
def enhanced(exported, tmp_path_factory):
    _, _, models = exported
    work = tmp_path_factory.mktemp("prov")
    write_synthetic(work / "synth", count=3, size=128, seed=4)
    out = work / "out"
    lines = []
    summary = enhance_command([str(work / "synth" / "images")], models, out, backend="onnxruntime",
                              precision="fp32", log=lines.append, hallucination=True)
    return models, out, summary


def test_every_png_carries_the_notice_and_a_valid_record_of_the_exact_models(enhanced):
    models, out, summary = enhanced
    manifest = json.loads((models / "models.json").read_text())
    for row in summary.done:
        stem = row["output"].removesuffix(".enhanced.png")
        for kind in ("enhanced", "mask", "panel", "hallucination"):
            with Image.open(f"{stem}.{kind}.png") as im:
                im.load()
                text = dict(im.text)
            assert "AI-enhanced" in text["Description"] and text["Software"].startswith("skinedge ")
            record = json.loads(text[provenance.PNG_KEY])
            provenance.validate(record, image=True)
            assert record["models"]["models_json_sha256"] == sha256_file(models / "models.json")
            for net in ("seg", "sr"):
                entry = record["models"]["networks"][net]
                assert entry["variant"] == "fp32" and entry["backend"] == "onnxruntime"
                for name, sha in entry["files"].items():
                    assert sha == sha256_file(models / name) == manifest["networks"][net]["variants"]["fp32"]["sha256"]
            image = record["image"]
            assert image["found"] == row["found"] and image["roi"] == (list(row["roi"]) if row["roi"] else None)
            assert record["settings"]["mode"] == "roi" and record["settings"]["scale"] == 4
            assert record["settings"]["mask"]["open_radius"] >= 0 and record["settings"]["fidelity"]["iterations"] == 3


def test_the_panel_is_badged_the_gallery_says_it_and_the_departure_map_is_a_third_column(enhanced):
    _, out, summary = enhanced
    found = [row for row in summary.done if row["found"]]
    assert found, "no lesion found in the generated images: nothing to badge"
    stem = found[0]["output"].removesuffix(".enhanced.png")
    panel = cv2.imread(f"{stem}.panel.png")
    enhanced = cv2.imread(f"{stem}.enhanced.png")
    plain_w = (panel.shape[1] - 8) // 3
    assert panel.shape[1] == 3 * enhanced.shape[1] + 8  # plain | enhanced | departure map
    assert orange(panel[:, plain_w + 4:2 * plain_w + 4]) > 0.005 and orange(panel[:, :plain_w]) == 0
    assert orange(enhanced) == 0  # the enhanced file itself stays clean for measurement: its chunks say it
    heat = cv2.imread(f"{stem}.hallucination.png")
    assert heat.shape == enhanced.shape and heat.std() > 0
    gallery = (out / "index.html").read_text()
    assert provenance.NOTICE in gallery and "AI-ENHANCED" in gallery


def test_validate_names_what_is_wrong(enhanced):
    _, _, summary = enhanced
    with Image.open(summary.done[0]["output"]) as im:
        im.load()
        good = json.loads(im.text[provenance.PNG_KEY])
    for change, message in [(lambda r: r.pop("notice"), "record.notice: missing"),
                            (lambda r: r.update(notice="enhanced"), "must say AI-enhanced"),
                            (lambda r: r.update(schema_version=99), "knows version 1"),
                            (lambda r: r["models"].update(models_json_sha256="abc"), "not a sha256"),
                            (lambda r: r["models"]["networks"].pop("sr"), "models.networks.sr: missing"),
                            (lambda r: r["image"].update(found="yes"), "image.found: str, expected bool"),
                            (lambda r: r["settings"].update(mode="tiles"), "settings.mode: roi or full")]:
        bad = copy.deepcopy(good)
        change(bad)
        with pytest.raises(ValueError, match=message):
            provenance.validate(bad)
    with pytest.raises(ValueError, match="record.image: not expected"):
        provenance.validate(good, image=False)


def test_the_live_view_wears_the_badge_only_where_the_generator_ran():
    raw = np.full((120, 160, 3), (40, 80, 160), np.uint8)
    from skinedge.runtime.pipeline.mask import LesionMask

    empty = LesionMask(False, np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32), None, 0.0)
    found = FrameResult(cv2.resize(raw[30:90, 40:120], (320, 240)), True, (40, 30, 80, 60), 0.2, empty, {})
    none = FrameResult(cv2.resize(raw, (640, 480)), False, None, 0.0, empty, {})
    stats = {"variants": {"seg": "int8", "sr": "pruned.int8-ov"}}
    view = compose_view(raw, found, stats)
    half = view.shape[1] // 2
    assert orange(view[:, half:]) > 0.003 and orange(view[:, :half]) == 0
    assert orange(compose_view(raw, none, stats)) == 0


def test_each_closed_recording_segment_has_a_provenance_sidecar_naming_its_files(enhanced, tmp_path):
    models, _, summary = enhanced
    with Image.open(summary.done[0]["output"]) as im:
        im.load()
        session = json.loads(im.text[provenance.PNG_KEY])
    session.pop("image")
    rec = Recorder(tmp_path / "rec", max_frames=2, provenance=session)
    frame = np.full((96, 128, 3), 90, np.uint8)
    for i in range(5):
        rec.write(frame, FrameResult(frame, True, (0, 0, 128, 96), 0.1, None, {}), i)
    rec.close()
    segments = [json.loads(line) for line in (tmp_path / "rec" / "segments.jsonl").read_text().splitlines()]
    assert [s["provenance"] for s in segments] == [f"segment-{i:05d}.provenance.json" for i in range(3)]
    for seg in segments:
        side = json.loads((tmp_path / "rec" / seg["provenance"]).read_text())
        provenance.validate(side, image=False)
        assert side["segment"]["frames"] == seg["frames"] and side["notice"] == provenance.NOTICE
        assert side["segment"]["files"] == {seg[s]: sha256_file(tmp_path / "rec" / seg[s])
                                            for s in ("raw", "enhanced", "frames_log")}


def test_the_web_viewer_wears_the_badge_and_toggles_to_the_departure_map():
    import time
    import urllib.request

    from test_sinks import Feeder, found_result, frame

    from skinedge.runtime.sinks.web import WebSink

    stats = {"variants": {"seg": "fp32", "sr": "fp32"}, "backend": "onnxruntime"}

    def make(i):
        raw = frame(shift=3 * i)
        return raw, found_result(raw)

    with WebSink(port=0) as sink, Feeder(sink, make, stats=stats) as feeder:
        while feeder.shown < 2:
            time.sleep(0.01)
        page = urllib.request.urlopen(sink.url, timeout=5).read().decode()
        assert "AI-enhanced" in page and 'id="toggle"' in page and "view=departure" in page
        get = lambda q: cv2.imdecode(np.frombuffer(urllib.request.urlopen(sink.url + "frame.jpg" + q, timeout=5)  # noqa: E731
                                                   .read(), np.uint8), cv2.IMREAD_COLOR)
        enhanced = get("")
        get("?view=departure")  # asks for it: composed from the next frame on
        shown = feeder.shown
        while feeder.shown < shown + 2:
            time.sleep(0.01)
        departure = get("?view=departure")
    half = enhanced.shape[1] // 2
    assert orange(enhanced[:, half:]) > 0.002 and orange(departure[:, half:]) > 0.002  # the badge on both
    assert np.abs(departure[:, half:].astype(int) - enhanced[:, half:]).mean() > 10  # a different right panel
    assert np.abs(departure[:, :half].astype(int) - enhanced[:, :half]).mean() < 10  # the same camera side
