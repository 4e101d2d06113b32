"""Where an enhanced view departs from what the camera saw: a heat map shared by ``enhance`` and the viewers.

Per pixel, the largest |enhanced − plain smooth up-scale of the same region| over the colour channels, with
``FULL`` grey levels and more at full heat (OpenCV's inferno colour map): dark where the view shows what the
camera showed, bright where the generator added detail or colour (or the projection left some).
"""

from __future__ import annotations

import numpy as np

FULL = 32  # grey levels of departure shown at full heat


def departure_map(plain: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """BGR heat map of two same-size uint8 colour images (order of channels irrelevant)."""
    import cv2

    diff = np.abs(enhanced.astype(np.int16) - plain.astype(np.int16)).max(axis=2)
    heat = np.clip(diff * (255.0 / FULL), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO)


def live_departure(raw: np.ndarray, result) -> np.ndarray | None:
    """The heat map of a live frame's enhanced ROI view against the camera's ROI up-scaled bicubically to the
    same size (whatever the SR budget made it); None where no lesion was enhanced."""
    import cv2

    if result is None or not result.found or result.roi is None or result.image is None:
        return None
    x0, y0, w, h = result.roi
    crop = raw[y0:y0 + h, x0:x0 + w]
    full = result.image.shape[:2] == (raw.shape[0] * 4, raw.shape[1] * 4)
    source = raw if full or crop.size == 0 else crop
    plain = cv2.resize(source, (result.image.shape[1], result.image.shape[0]), interpolation=cv2.INTER_CUBIC)
    return departure_map(plain, result.image)
