"""Every text burnt into a picture — the AI badge, the view's labels, the status bar, NO SIGNAL — is in the
characters OpenCV's Hershey fonts can draw (printable ASCII): the badge once read "AI-ENHANCED ? SR ..."."""

from __future__ import annotations

import dataclasses

import cv2
import pytest
from test_sinks import STATS, found_result, frame, no_lesion_result

from skinedge.runtime.clinical import provenance
from skinedge.runtime.enhance import panel
from skinedge.runtime.sinks import draw_badge, drawable
from skinedge.runtime.sinks.view import compose_view


@pytest.fixture
def drawn(monkeypatch):
    """Every string handed to cv2.putText while the test runs."""
    texts: list[str] = []
    real = cv2.putText

    def recording(img, text, *args, **kwargs):
        texts.append(text)
        return real(img, text, *args, **kwargs)

    monkeypatch.setattr(cv2, "putText", recording)
    return texts


def _drawable_only(texts: list[str]) -> None:
    assert texts
    for text in texts:
        assert all(" " <= c <= "~" for c in text), repr(text)
        assert "?" not in text, repr(text)


def test_drawable_spells_symbols_in_ascii_and_drops_what_it_cannot():
    assert drawable("AI-enhanced · sr pruned.int8-ov") == "AI-enhanced | sr pruned.int8-ov"
    assert drawable("640×480 → 2560×1920, ΔE ≤ 2.0 ± 0.1, 5 µm, café") == \
        "640x480 -> 2560x1920, dE <= 2.0 +/- 0.1, 5 um, cafe"
    assert drawable("lesion 中 area") == "lesion  area"


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8", "int8-cpu", "pruned.int8-ov", "pruned.fp32"])
def test_every_badge_and_panel_label_is_drawable(drawn, variant):
    session = {"models": {"networks": {"sr": {"variant": variant}}}}
    raw = frame()
    result = found_result(raw)
    enhanced = result.image.copy()
    draw_badge(enhanced, provenance.label(session))
    panel(raw[:, :, ::-1].copy(), result, 4, provenance.label(session))
    _drawable_only(drawn)
    assert any(t.startswith("AI-enhanced | sr ") for t in drawn)


def test_the_live_view_draws_only_drawable_text(drawn):
    raw = frame()
    stats = {**STATS, "source": "camera://0 (640×480 · 30 fps)", "backend": "openvino",
             "variants": {"seg": "int8-ov", "sr": "pruned.int8-ov"}}
    found = dataclasses.replace(found_result(raw), residual=3.2, note="SR reused · bicubic")
    for result in (found, no_lesion_result(raw), None):
        compose_view(raw, result, stats)
        compose_view(raw, result, stats, departure=True)
    _drawable_only(drawn)
    assert "NO SIGNAL" in drawn
