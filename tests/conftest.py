from __future__ import annotations

from pathlib import Path

import pytest

from skinedge.data.generate import write_synthetic


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small generated dataset shared by tests that only read it."""
    out = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic(out, count=24, size=96, seed=3)
    return out
