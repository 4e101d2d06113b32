"""The SR generator's camera plane (NumPy only): tell the network which kind of LR it is given.

A generator trained on both LR protocols without being told which one it sees must first learn to tell them apart
from the pixels; until then it smooths a clean bicubic LR and under-cleans a camera's (blur, noise, JPEG).
``train all`` trains it with a 4th input channel, constant over the image, 1 for camera LR and 0 for clean (SRMD's
non-blind conditioning, Zhang et al. 2018): it reaches the same quality in about half the steps (docs/models.md).
The runtime fills that channel from what it already measures per frame: the noise floor of :mod:`.noise`.

``CAMERA_FLOOR``: the camera protocol always JPEGs, and a JPEG'd LR's floor is at least ``JPEG_FLOOR`` (1.1 grey
levels); most clean LRs read 0, a few read a floor from fine texture. On the 58 validation photos of a ``train all``
split (512 px, ÷4): camera LR 1.10–2.25, clean LR 0 except 0.56, 0.63, 0.80 and 1.54. 1.0 sits between them.
A models directory whose generator takes 3 channels has no plane and is fed as before.
"""

from __future__ import annotations

import numpy as np

CAMERA, CLEAN = 1.0, 0.0
CAMERA_FLOOR = 1.0  # grey levels: a noise floor at or above it is a camera's (see the module docstring)


def sr_channels(sr_network: dict) -> int:
    """Input channels of the manifest's SR network: 4 (RGB + camera plane) where its input shape says so, else 3."""
    shape = sr_network["input"].get("shape")
    return 4 if isinstance(shape, list) and len(shape) == 4 and shape[1] == 4 else 3


def plane_value(level) -> float:
    """The camera plane for an LR whose :class:`~.noise.NoiseLevel` is ``level``."""
    return CAMERA if level.floor >= CAMERA_FLOOR else CLEAN


def with_plane(batch: np.ndarray, value: float) -> np.ndarray:
    """N×3×h×w float32 → N×4×h×w with ``value`` everywhere in the 4th channel."""
    n, _, h, w = batch.shape
    return np.concatenate([batch, np.full((n, 1, h, w), value, batch.dtype)], axis=1)


def sr_input(lr: np.ndarray, channels: int = 3) -> np.ndarray:
    """uint8 h×w×3 RGB LR (a whole frame, or a crop treated as one) → 1×channels×h×w float32 in [0, 1], as the
    runtime feeds the generator: with 4 channels, the camera plane from the LR's own noise estimate."""
    from skinedge.runtime.pipeline.noise import estimate

    x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], np.float32) / np.float32(255)
    return with_plane(x, plane_value(estimate(x))) if channels == 4 else x
