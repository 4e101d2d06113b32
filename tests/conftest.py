from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from skinedge.cli import main
from skinedge.data.generate import write_synthetic
from skinedge.train.seg import SegConfig, train_seg
from skinedge.train.sr import SRConfig, train_sr

# The CPU backend choice caches its timings under $XDG_CACHE_HOME; tests (and the CLIs they start) keep theirs
# in a fresh folder, never in the user's home.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="skinedge-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

# A suite started as a background job (`nohup … &`) inherits Ctrl-C ignored, and so does every process it starts:
# the tests that stop a run, a server or an OpenVINO session with SIGINT then wait until they time out (three did,
# 2026-12-05). Ctrl-C is what they test, so the suite restores it; children get the default and Python's handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small generated dataset shared by tests that only read it."""
    out = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic(out, count=24, size=96, seed=3)
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A segmenter (EfficientNet-B3, 64²) and an SR generator trained for a few steps on generated data."""
    root = tmp_path_factory.mktemp("export")
    write_synthetic(root / "data", count=30, size=96, seed=5)
    spec = f"synthetic:{root / 'data'}"
    train_seg(SegConfig(spec, root / "run", size=64, batch=4, epochs=1, device="cpu", bn_batches=2))
    train_sr(SRConfig(spec, root / "run", phase="pretrain", blocks=2, features=16, hr_size=32, batch=2,
                      max_steps=6, device="cpu", val_limit=2))
    return root, spec


@pytest.fixture(scope="session")
def exported(trained):
    root, spec = trained
    models = root / "models"
    argv = ["export", "--seg", root / "run" / "seg-best.pt", "--sr", root / "run" / "sr-pretrain-best.pt",
            "--out", models]
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        assert not exc.code
    return root, spec, models


REAL_DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2017-val96"


@pytest.fixture(scope="module")
def pipeline(exported):
    """An entered host pipeline on ONNX Runtime sessions (FP32) of the exported test models."""
    from skinedge.runtime.backends import open_runners
    from skinedge.runtime.manifest import load_models
    from skinedge.runtime.pipeline.host import Pipeline

    _, _, models = exported
    manifest = load_models(models)
    opened = open_runners(models, manifest, "onnxruntime", "fp32")
    with Pipeline(opened.seg, opened.sr, manifest, tile=opened.tile, max_batch=opened.max_batch) as p:
        yield p


@pytest.fixture(scope="session")
def real_isic() -> str:
    """The real dev set (96 ISIC images with expert masks, ../shared/data) as a dataset spec; skips without it.

    Never copied into the repository (../shared/data/README.md): tests read it where it lies."""
    if not (REAL_DEV_SET / "ISIC2018_Task1-2_Training_Input").is_dir():
        pytest.skip(f"the real dermoscopy dev set is not at {REAL_DEV_SET} (a clone outside the workspace has none)")
    return f"isic2018:{REAL_DEV_SET}"
