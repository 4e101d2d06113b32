"""PyTorch backend: the checkpoints themselves, CPU or CUDA. The reference and the baseline.

torch is imported only when a loader is called, so ``skinedge.runtime`` stays
importable without it. On CUDA it runs FP16 with channels-last memory; outputs
come back as float32 NumPy arrays under the ONNX tensor names of models.json,
so it is interchangeable with the other backends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Runner


def torch_device(preferred: str = "auto") -> str:
    """``cuda`` when asked for and present (``auto``: when present), else ``cpu``."""
    import torch

    if preferred == "cuda" and not torch.cuda.is_available():
        raise SkinedgeError("the torch backend was asked for CUDA, but torch sees no CUDA GPU here")
    return "cuda" if preferred in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


class ModuleFromCheckpoint:
    """Loader: rebuild a network from a skinedge checkpoint (pruned ones included), eval mode."""

    def __init__(self, path: str | Path, net: str, device: str = "auto", half: bool | None = None):
        self.path, self.net, self.device, self.half = Path(path), net, device, half

    def __call__(self):
        try:
            import torch
        except ImportError:
            raise SkinedgeError("the torch backend needs PyTorch: pip install 'skinedge[train]'") from None
        from skinedge.models.load import load_generator, load_segmenter

        load = load_segmenter if self.net == "seg" else load_generator
        device = torch_device(self.device)
        model, _ = load(self.path, device)
        half = (device == "cuda") if self.half is None else self.half
        if half:
            model = model.half()
        if device == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model, device, half


class TorchRunner(Runner):
    """Runs a module under ``inference_mode``; the SR output is clamped to [0, 1] like the ONNX graph."""

    name = "torch"

    def __init__(self, loader, input_name: str, output_name: str, clamp: bool = False):
        super().__init__(loader)
        self.input_name, self.output_name, self.clamp = input_name, output_name, clamp

    def _activate_impl(self, resolved) -> list[str]:
        self.model, self.device, self.half = resolved
        return [self.input_name]

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(feed[self.input_name]).to(self.device)
        if self.half:
            x = x.half()
        if self.device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = self.model(x)
            if self.clamp:
                y = y.clamp(0, 1)
        return {self.output_name: y.float().cpu().numpy()}

    def _deactivate_impl(self) -> None:
        self.model = None
