"""The runtime runs inside the device: it must import without torch (and without onnx)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import skinedge.runtime

BLOCK_HEAVY = """
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'onnx', 'segmentation_models_pytorch'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""  # prologue of a child-process script: importing torch, torchvision, onnx or smp fails from here on

BLOCKER = BLOCK_HEAVY + """
for module in sys.argv[1:]:
    importlib.import_module(module)
print('ok')
"""


def test_every_runtime_module_imports_without_torch_or_onnx():
    found = pkgutil.walk_packages(skinedge.runtime.__path__, prefix="skinedge.runtime.")
    modules = ["skinedge.runtime"] + [m.name for m in found]
    assert {"skinedge.runtime.manifest", "skinedge.runtime.backends.tensorrt", "skinedge.runtime.sinks.web",
            "skinedge.runtime.gpu.kernels"} <= set(modules)
    result = subprocess.run([sys.executable, "-c", BLOCKER, *modules], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_blocker_really_blocks():
    result = subprocess.run([sys.executable, "-c", BLOCKER, "skinedge.export.onnx_io"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "blocked: onnx" in result.stderr


def test_the_runtime_top_level_holds_the_session_the_manifest_enhance_and_subpackages():
    """A reader walks the frame's path from here: clinical output and scale-out live in their own packages."""
    from pathlib import Path

    root = Path(skinedge.runtime.__file__).parent
    modules = {p.stem for p in root.glob("*.py")}
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    assert modules == {"__init__", "session", "manifest", "enhance"}, modules
    assert {"clinical", "scale", "backends", "pipeline", "live", "sinks"} <= packages
