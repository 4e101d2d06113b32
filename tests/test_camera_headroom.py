"""The JPEG quantisation-cell oracle of ``benchmarks/camera_headroom.py``: right tables, and it does what it says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from layouts import sample
from skinedge.data.degrade import Degradation, bicubic_upscale, degrade

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "camera_headroom.py"


def _headroom():
    spec = importlib.util.spec_from_file_location("camera_headroom", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outside(head, out, lr, table):
    """Fraction of the down-scale's luma DCT coefficients outside the LR's quantisation cells."""
    x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / 255
    h, w = lr.shape[:2]
    centre = np.round(head._blocks(np.tensordot(head.LUMA, x[0], 1) * 255 - 128) / table) * table
    d = head._blocks(np.tensordot(head.LUMA, head.down(out, h, w)[0], 1) * 255 - 128)
    return float((np.abs(d - centre) > table / 2 + 0.05).mean())


def test_luma_table_is_libjpegs_scaled_annex_k_table():
    head = _headroom()
    assert head.luma_table(50)[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]  # Annex K, natural order
    assert head.luma_table(75)[0, 0] == 8 and head.luma_table(100).max() == 1


def test_into_cells_moves_an_output_into_the_jpeg_cells_of_its_lr():
    head = _headroom()
    hr = sample(3, size=128).image
    drawn = {}
    lr = degrade(hr, Degradation(blur_sigma=None, noise_sigma=None, jpeg_quality=(75, 75)), seed=0, drawn=drawn)
    table = head.luma_table(drawn["jpeg_quality"])
    far = np.full((1, 3, 128, 128), 0.5, np.float32)  # a grey guess, nowhere near the LR
    before = _outside(head, far, lr, table)
    after = _outside(head, head.into_cells(far, lr, table, steps=8), lr, table)
    assert before > 0.2 and after < before / 4, (before, after)
    bicubic = bicubic_upscale(lr, 4).transpose(2, 0, 1)[None].astype(np.float32) / 255
    assert _outside(head, bicubic, lr, table) < before  # the camera's own pixels are nearer the cells than grey
