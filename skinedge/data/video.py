"""A generated video of a hand-held dermatoscope closing in on a lesion.

No camera or patient video exists here, so this clip stands in for one in
``skinedge bench`` and in benchmarks of ``skinedge run``. One large picture is
rendered once (:func:`skinedge.data.synth.render_sample`); every frame is a crop
of it that follows a camera path:

- a smooth zoom from wide (the lesion small) to close (the lesion about 60 % of
  the frame height, its whole box still inside the frame);
- a slow drift plus hand tremor (a few output pixels, 0.7-2.5 Hz);
- two pauses of about 1 s where the camera holds still, so a temporal-reuse
  pass meets static stretches (frames differ only by sensor noise there);
- sensor noise of sigma 1.5 grey levels, new in every frame.

Everything is drawn from ``default_rng(SeedSequence([seed, ...]))``: one seed,
the same frames.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist

import numpy as np

from skinedge.atomic import write_json_atomic
from skinedge.data.degrade import Degradation, degrade
from skinedge.data.synth import GENERATOR_VERSION, render_sample
from skinedge.errors import SkinedgeError

__all__ = ["HRClip", "moving_lesion_frames", "write_moving_lesion_clip"]

WHAT = "generated video of a hand-held dermatoscope closing in on a lesion; generated, not patient data"
NOISE_SIGMA = 1.5  # grey levels
TREMOR_PX = 3.0  # output pixels, peak of the summed tremor sinusoids (about)
CLOSE_FILL = 0.6  # lesion box side / frame side at the closest point
_MIN_SIDE, _MAX_SIDE = 32, 4096
_UMASK = os.umask(0o022)  # read it (set it back at once) to give the clip the usual mode
os.umask(_UMASK)


@dataclass(frozen=True)
class _Plan:
    """The rendered source (BGR), the crop of every frame and where the camera holds still."""

    source: np.ndarray  # S×S×3 uint8 BGR
    crops: np.ndarray  # (frames, 3) float64: centre x, centre y, crop height, in source pixels
    stills: list[tuple[int, int]]  # [first, last] frame of each pause
    index: int  # which synth image of the seed
    width: int
    height: int
    seed: int


def _cv2():
    """OpenCV, or a one-line error that says how to get it."""
    try:
        import cv2
    except ImportError:
        raise SkinedgeError("generated video needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def _check(seconds: float, fps: float, width: int, height: int) -> int:
    """Frame count, or a SkinedgeError naming the bad value."""
    if not (seconds > 0 and fps > 0 and math.isfinite(seconds * fps)):
        raise SkinedgeError(f"seconds and fps must be > 0, got seconds={seconds} fps={fps}")
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, (int, np.integer)) or not _MIN_SIDE <= side <= _MAX_SIDE:
            raise SkinedgeError(f"{name} must be an integer from {_MIN_SIDE} to {_MAX_SIDE} pixels, got {side!r}")
    return max(2, round(seconds * fps))


def _pick_scene(seed: int) -> int:
    """First synth index of ``seed`` with no vignette, no lesion on the border and a small lesion (3-12 %).

    Scene parameters do not depend on the size, so a 64 px look (~5 ms) chooses for the big render. A
    vignette would move with the skin here, unlike a real scope's, hence none.
    """
    for index in range(64):
        info = render_sample(64, seed, index).info
        if not info["vignette"] and not info["touches_border"] and 0.03 <= info["lesion_area"] <= 0.12:
            return index
    return 0  # pragma: no cover - 64 misses in a row


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _plan(seconds: float, fps: float, width: int, height: int, seed: int) -> _Plan:
    """Render the scene once and lay out the camera path of every frame."""
    cv2 = _cv2()
    count = _check(seconds, fps, width, height)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x71DE0]))
    index = _pick_scene(seed)
    size = int(min(1024, max(256, 2 * max(width, height))))  # 1024 takes ~0.9 s to render; more adds nothing
    sample = render_sample(size, seed, index)
    source = np.ascontiguousarray(cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
    ys, xs = np.nonzero(sample.mask)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    lesion = (box[:2] + box[2:]) / 2
    aspect = width / height

    wide = min(size, size / aspect) * 0.98  # crop height that shows nearly the whole picture
    close = max((box[3] - box[1]) / CLOSE_FILL, (box[2] - box[0]) / (CLOSE_FILL * aspect))
    close = min(close, 0.95 * wide)  # a big lesion gets less zoom, never a cut-off box
    start = lesion + rng.uniform(-0.15, 0.15, 2) * wide  # the lesion off-centre at first

    # moving time: the clock stops during the pauses, so zoom, drift and tremor all hold still there
    t = np.arange(count) / fps
    pause = min(1.0, 0.1 * seconds)
    stills, frozen = [], np.zeros(count)
    for at in (0.35, 0.7):
        begin = (at + rng.uniform(-0.05, 0.05)) * seconds
        inside = (t >= begin) & (t < begin + pause)
        frozen += np.clip(t - begin, 0.0, pause)
        if inside.sum() >= 2:
            first = int(np.argmax(inside))
            stills.append((first, first + int(inside.sum()) - 1))
    tau = t - frozen
    progress = _smoothstep(tau / max(tau[-1], 1e-9))

    crop_h = wide * (close / wide) ** progress
    centre = start[None, :] + (lesion - start)[None, :] * _smoothstep(1.25 * progress)[:, None]
    drift_f = rng.uniform(0.08, 0.2, 2)
    drift = 0.03 * crop_h[:, None] * np.sin(2 * np.pi * drift_f[None, :] * tau[:, None] + rng.uniform(0, 7, 2))
    freqs, phases = rng.uniform(0.7, 2.5, (3, 2)), rng.uniform(0, 2 * np.pi, (3, 2))
    weights = np.array([0.5, 0.3, 0.2])[:, None]
    shake = (weights[None] * np.sin(2 * np.pi * freqs[None] * tau[:, None, None] + phases[None])).sum(axis=1)
    tremor = TREMOR_PX * shake * (crop_h / height)[:, None]  # output pixels -> source pixels
    centre = centre + drift + tremor

    half = np.stack([crop_h * aspect, crop_h], axis=1) / 2  # keep the crop inside the picture
    centre = np.clip(centre, half, size - half)
    crops = np.column_stack([centre, crop_h])
    return _Plan(source, crops, stills, index, width, height, int(seed))


def _render(plan: _Plan, cx: float, cy: float, crop_h: float) -> np.ndarray:
    """One crop, area-averaged when shrinking, bilinear otherwise, placed to a fraction of a pixel."""
    cv2 = _cv2()
    k = plan.height / crop_h  # output pixels per source pixel
    left, top = cx - crop_h * plan.width / plan.height / 2, cy - crop_h / 2
    src, kx, ky, xa, ya = plan.source, 1.0, 1.0, 0, 0
    if k < 1:
        size = plan.source.shape[0]
        xa, ya = max(0, math.floor(left) - 2), max(0, math.floor(top) - 2)
        xb = min(size, math.ceil(left + plan.width / k) + 2)
        yb = min(size, math.ceil(top + plan.height / k) + 2)
        src = cv2.resize(plan.source[ya:yb, xa:xb], (max(1, round((xb - xa) * k)), max(1, round((yb - ya) * k))),
                         interpolation=cv2.INTER_AREA)
        kx, ky = src.shape[1] / (xb - xa), src.shape[0] / (yb - ya)
    # output pixel centre u + 0.5 -> source x = left + (u + 0.5)/k -> src pixel (x - xa)·kx − 0.5
    m = np.array([[kx / k, 0.0, (left - xa + 0.5 / k) * kx - 0.5],
                  [0.0, ky / k, (top - ya + 0.5 / k) * ky - 0.5]])
    return cv2.warpAffine(src, m, (plan.width, plan.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def _noise_table() -> np.ndarray:
    """int16 sensor noise for each byte value: round(sigma · Phi^-1((b + 0.5)/256)).

    A random byte through this table costs ~2 ms a 640×480 frame against ~9 ms for float normals, and gives the
    same result: a uint8 frame plus float noise, rounded, is the frame plus the rounded noise.
    """
    quantiles = NormalDist().inv_cdf
    return np.array([round(NOISE_SIGMA * quantiles((b + 0.5) / 256)) for b in range(256)], np.int16)


class HRClip:
    """The moving-lesion clip with its truth: the same camera path over the scene rendered ``scale``× larger.

    ``hr(i)`` is frame *i* as a camera with ``scale``× the pixels would see it (``scale``·W × ``scale``·H),
    ``truth(i)`` its lesion mask, and ``lr(i)`` the frame the camera delivers: ``hr(i)`` degraded by
    ``degradation`` (blur, anti-aliased bicubic ÷scale, noise; by default no JPEG here, the camera's MJPEG
    writer adds it). HR pixel block (``scale``·v … +scale−1, ``scale``·u … +scale−1) covers LR pixel (v, u)
    exactly. Frames are rendered on demand (~0.1 s each at 2560×1920); the scene once (~15 s at 4096 px).
    """

    def __init__(self, seconds: float = 10.0, fps: float = 30.0, width: int = 640, height: int = 480,
                 seed: int = 0, scale: int = 4,
                 degradation: Degradation = Degradation(noise_sigma=(1.5, 3.0), jpeg_quality=None)):
        base = _plan(seconds, fps, width, height, seed)
        size = base.source.shape[0] * scale
        if size > _MAX_SIDE:
            raise SkinedgeError(f"the truth would need a {size}-px scene; at most {_MAX_SIDE}: use a smaller "
                                f"frame or scale")
        cv2 = _cv2()
        sample = render_sample(size, seed, base.index)
        crops = base.crops * scale
        self.plan = replace(base, source=np.ascontiguousarray(cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)),
                            crops=crops, width=width * scale, height=height * scale)
        self.masks = replace(self.plan, source=np.repeat(sample.mask[:, :, None].astype(np.uint8) * 255, 3, 2))
        self.scale, self.degradation, self.fps, self.seed = scale, degradation, fps, seed
        self.stills = base.stills

    def __len__(self) -> int:
        return len(self.plan.crops)

    def hr(self, i: int) -> np.ndarray:
        return _render(self.plan, *self.plan.crops[i])

    def truth(self, i: int) -> np.ndarray:
        return _render(self.masks, *self.masks.crops[i])[:, :, 0] >= 128

    def lr(self, i: int, hr: np.ndarray | None = None) -> np.ndarray:
        hr = self.hr(i) if hr is None else hr
        rgb = degrade(np.ascontiguousarray(hr[:, :, ::-1]), self.degradation, seed=self.seed * 100_003 + i)
        return np.ascontiguousarray(rgb[:, :, ::-1])


def _frames(plan: _Plan) -> Iterator[np.ndarray]:
    noise_rng = np.random.default_rng(np.random.SeedSequence([plan.seed, 0x5E45]))
    table, shape = _noise_table(), (plan.height, plan.width, 3)
    for cx, cy, crop_h in plan.crops:
        noisy = table[np.frombuffer(noise_rng.bytes(plan.height * plan.width * 3), np.uint8).reshape(shape)]
        noisy += _render(plan, cx, cy, crop_h)
        np.clip(noisy, 0, 255, out=noisy)
        yield noisy.astype(np.uint8)


def moving_lesion_frames(seconds: float = 10.0, fps: float = 30.0, width: int = 640, height: int = 480,
                         seed: int = 0) -> Iterator[np.ndarray]:
    """Frames of a generated hand-held dermatoscope closing in on a lesion.

    Args:
        seconds, fps: clip length and rate; round(seconds·fps) frames (at least 2).
        width, height: frame size in pixels (32-4096).
        seed: same seed, same frames.
    Returns:
        an iterator of H×W×3 uint8 BGR frames. The scene is rendered on the first ``next`` (about 1 s at
        1024 px); each frame then costs a few ms.
    Raises:
        SkinedgeError: a bad length, rate or size.
    """
    _check(seconds, fps, width, height)  # fail at the call, not at the first frame
    return _frames(_plan(seconds, fps, width, height, seed))


def _check_out(path: Path) -> None:
    if path.suffix.lower() != ".avi":
        raise SkinedgeError(f"{path}: the clip is written as MJPG in AVI; give a file name ending in .avi")
    if path.is_dir():
        raise SkinedgeError(f"{path} is a folder; give a file name ending in .avi")
    if not path.parent.is_dir():
        raise SkinedgeError(f"folder {path.parent} does not exist: create it or write the clip elsewhere")


def write_moving_lesion_clip(path: str | os.PathLike, seconds: float = 10.0, fps: float = 30.0, width: int = 640,
                             height: int = 480, seed: int = 0, *,
                             log: Callable[[str], None] | None = None) -> dict:
    """Write :func:`moving_lesion_frames` as an MJPG .avi, atomically, with an info sidecar (same name, .json).

    A reader never sees half a clip: frames go to a temporary .avi in the same folder, renamed when whole.

    Returns:
        the info written to the sidecar: frames, fps, width, height, seconds, seed, still (pauses as
        [first, last] frame), the synth scene, and what it is (generated, not patient data).
    Raises:
        SkinedgeError: a path that does not end in .avi or whose folder is missing, a bad length, rate or size,
        or an OpenCV without an MJPG writer.
    """
    path = Path(path)
    _check_out(path)
    count = _check(seconds, fps, width, height)
    cv2 = _cv2()
    plan = _plan(seconds, fps, width, height, seed)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.avi", dir=path.parent)
    os.close(fd)
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height))
    try:
        if not writer.isOpened():
            raise SkinedgeError(f"OpenCV cannot write MJPG .avi files here (writing {path}); "
                                "install opencv-python-headless")
        for frame in _frames(plan):
            writer.write(frame)
        writer.release()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        Path(tmp).unlink(missing_ok=True)
        raise
    info = {"what": WHAT, "file": path.name, "codec": "MJPG", "frames": count, "fps": float(fps),
            "width": width, "height": height, "seconds": count / float(fps), "seed": int(seed),
            "still": [list(s) for s in plan.stills], "noise_sigma": NOISE_SIGMA,
            "synth": {"generator_version": GENERATOR_VERSION, "seed": int(seed), "index": plan.index,
                      "size": int(plan.source.shape[0])}}
    write_json_atomic(path.with_suffix(".json"), info)
    if log is not None:
        log(f"wrote {count} frames {width}×{height} at {fps:g} fps ({count / fps:g} s, seed {seed}) to {path}, "
            f"info in {path.with_suffix('.json').name}: a dermatoscope closing in on a lesion, "
            f"{len(plan.stills)} still stretches. Generated, not patient data.")
    return info
