"""Training batches drawn from the decoded cache, prefetched by DataLoader workers in step order.

A batch is a pure function of (seed, epoch, indices), exactly the batches :func:`epoch_batches` hands the
runner, so a worker can build step k's batch ahead of time and a resumed run sees the batches an uninterrupted
one would. The sources open the cache lazily: each worker maps the files itself (a memmap pickles as a copy).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from skinedge.data.degrade import Degradation, degrade
from skinedge.data.pool import SEPARATOR, set_of
from skinedge.metrics import border_band
from skinedge.models.srgan import with_camera_plane
from skinedge.runtime.pipeline.noise import BLOCK as JPEG_BLOCK
from skinedge.train.all.cache import Cache
from skinedge.train.all.fingerprint import SCALE
from skinedge.train.augment import augment_dermoscopy
from skinedge.train.loop import Runtime, epoch_batches, steps_per_epoch
from skinedge.train.samples import _rng, normalise_imagenet, to_unit

CLEAN = Degradation.bicubic_only(SCALE)
CAMERA = Degradation(scale=SCALE)


SET_POWER = 0.5  # a pooled set's share of the training draws ∝ its size ** SET_POWER


def _set_label(item_id: str) -> str:
    """A pooled id's set label; "all" for an id that is not pooled."""
    return set_of(item_id) if SEPARATOR in item_id else "all"


def balanced_ids(ids: list[str], power: float = SET_POWER) -> list[str]:
    """The training list of a pool with each set's share ∝ its size ** ``power``; every item is in it at least once.

    Size-proportional draws (power 1) let a large set drown a small one: 1093 512-px crops of large lesions
    against 271 whole photos, where small lesions are found or missed. Equal shares (power 0) would repeat a
    68-photo set 16 times as often as the crops. The square root sits between them (temperature sampling). The
    set drawn least (relative to its size) appears once, the others are repeated to their share, so the list is
    longer than ``ids``. Ids of a single set (or not pooled) come back unchanged.
    """
    by_set: dict[str, list[str]] = {}
    for item_id in ids:
        by_set.setdefault(_set_label(item_id), []).append(item_id)
    if len(by_set) < 2:
        return list(ids)
    per_item = {label: len(members) ** (power - 1) for label, members in by_set.items()}
    least = min(per_item.values())
    out = []
    for label, members in by_set.items():
        count = round(len(members) * per_item[label] / least)
        out.extend(members[k % len(members)] for k in range(count))
    return out


def set_shares(ids: list[str]) -> str:
    """"label share%, ..." of a training list, for the log."""
    counts = Counter(map(_set_label, ids))
    return ", ".join(f"{label} {n / len(ids):.0%}" for label, n in counts.items())


class _Source:
    def __init__(self, folder: Path, ids: list[str], seed: int):
        self.folder, self.ids, self.seed = Path(folder), list(ids), seed
        self._cache: Cache | None = None

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            self._cache = Cache(self.folder)
        return self._cache

    def __getstate__(self):
        return {**self.__dict__, "_cache": None}

    def __len__(self) -> int:
        return max(len(self.ids), self.min_items)

    min_items = 0  # an "epoch" of at least this many samples (items repeat): validation is not run too often


class SegSource(_Source):
    """Segmenter batches: cached size² images with the real-dermoscopy augmentations (train) or as they are."""

    def __init__(self, folder: Path, ids: list[str], seed: int = 0, augment: bool = True):
        super().__init__(folder, ids, seed)
        self.augment = augment

    def sample(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.cache.seg(self.ids[index % len(self.ids)])
        if self.augment:
            return augment_dermoscopy(np.array(image), np.array(mask), _rng(self.seed, epoch, index))
        return np.array(image), np.array(mask)

    def batch(self, indices: list[int], epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.sample(i, epoch) for i in indices]
        images = normalise_imagenet(np.stack([p[0] for p in pairs]))
        masks = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None]
        return images, masks


class SRSource(_Source):
    """(LR, HR) crops from the cached HR images: ``focus`` of them centred on a lesion or border pixel, random
    flips and quarter turns, LR by the camera's degradation or (``clean_share`` of them) plain bicubic ÷4.
    ``camera_plane``: the LR batch carries the generator's 4th channel, 1 for camera LR, 0 for clean.

    The LR is cut from a region one JPEG block (``grid_margin`` HR px) larger than the crop, degraded whole, at a
    random offset: a camera's frame is compressed whole and the runtime enhances a region anywhere in it, so the
    8×8 grid meets the generator's input at any phase, and the crop's edge is not a block edge, a blur edge or a
    chroma-subsampling edge. A crop compressed by itself (24² LR: 3×3 blocks, chroma padded to 32²) has none of that.
    """

    grid_margin = JPEG_BLOCK * SCALE  # HR px: one 8-px LR block at ×4

    def __init__(self, folder: Path, ids: list[str], crop: int, seed: int = 0, focus: float = 0.8,
                 clean_share: float = 0.25, camera_plane: bool = False):
        super().__init__(folder, ids, seed)
        self.crop, self.focus, self.clean_share, self.camera_plane = crop, focus, clean_share, camera_plane

    def _corner(self, mask: np.ndarray, rng: np.random.Generator, s: int) -> tuple[int, int]:
        h, w = mask.shape
        if mask.any() and rng.random() < self.focus:
            where = border_band(mask[::4, ::4], 2) if rng.random() < 0.5 else mask[::4, ::4]
            ys, xs = np.nonzero(where)
            if len(ys):
                k = rng.integers(len(ys))
                y, x = ys[k] * 4 + int(rng.integers(4)), xs[k] * 4 + int(rng.integers(4))
                return int(np.clip(y - s // 2, 0, h - s)), int(np.clip(x - s // 2, 0, w - s))
        return int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))

    def pair(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(LR, HR, 1.0 if the LR came through the camera's degradation else 0.0)."""
        rng = _rng(self.seed, epoch, index)
        image, mask = self.cache.sr(self.ids[index % len(self.ids)])
        margin = self.grid_margin if min(mask.shape) >= self.crop + self.grid_margin else 0
        top, left = self._corner(mask, rng, self.crop + margin)
        region = image[top:top + self.crop + margin, left:left + self.crop + margin]
        region = np.rot90(region, int(rng.integers(4)))
        if rng.random() < 0.5:
            region = region[:, ::-1]
        region = np.ascontiguousarray(region)
        how = CLEAN if rng.random() < self.clean_share else CAMERA
        lr = degrade(region, how, seed=int(rng.integers(2**31)))
        y, x = (int(v) for v in rng.integers(0, max(1, margin // SCALE), size=2))  # phase 0..7
        side = self.crop // SCALE
        hr = np.ascontiguousarray(region[y * SCALE:(y + side) * SCALE, x * SCALE:(x + side) * SCALE])
        return np.ascontiguousarray(lr[y:y + side, x:x + side]), hr, float(how is CAMERA)

    def batch(self, indices: list[int], epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair(i, epoch) for i in indices]
        lr = to_unit(np.stack([p[0] for p in pairs]))
        if self.camera_plane:
            lr = with_camera_plane(lr, torch.tensor([p[2] for p in pairs]))
        return lr, to_unit(np.stack([p[1] for p in pairs]))


class StepBatches(torch.utils.data.Dataset):
    """Item k = (k, the batch of global step k): what the runner will ask for at step k."""

    def __init__(self, source, batch: int, seed: int):
        self.source, self.batch, self.seed = source, batch, seed
        self.rt = Runtime(torch.device("cpu"))
        self.spe = steps_per_epoch(len(source), batch, self.rt)

    def indices(self, step: int) -> tuple[list[int], int]:
        epoch, k = divmod(step, self.spe)
        return next(iter(epoch_batches(len(self.source), self.batch, epoch, self.seed, self.rt, skip=k))), epoch

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, step: int):
        indices, epoch = self.indices(step)
        return step, self.source.batch(indices, epoch)


def _quiet_when_orphaned(worker_id: int) -> None:
    """A worker hands each batch's shared memory to the training process over a socket (Python's resource
    sharer). When that process is killed mid-hand-over (SIGKILL, a closed terminal) the sharer's thread reports
    the reset connection (or the end of the stream, if it had read all it was sent) with a traceback on the
    terminal the user shares; the worker then exits by itself, as DataLoader workers do when their parent is gone.
    A lost connection is said nothing of; anything else is."""
    default = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if not issubclass(kind, (ConnectionError, EOFError)):
            default(kind, value, traceback)

    sys.excepthook = hook


class Prefetcher:
    """Batches in step order from ``workers`` processes (0: built in the training process, when asked)."""

    def __init__(self, source, batch: int, seed: int, start: int, workers: int):
        self.steps = StepBatches(source, batch, seed)
        self.source, self.workers = source, workers
        self._iter = None
        if workers:
            loader = torch.utils.data.DataLoader(self.steps, batch_size=None, num_workers=workers,
                                                 sampler=range(start, 10**9), prefetch_factor=2,
                                                 persistent_workers=False, worker_init_fn=_quiet_when_orphaned)
            self._iter = iter(loader)

    def get(self, indices: list[int], epoch: int, step: int):
        if self._iter is not None:
            got, batch = next(self._iter)
            if got == step:
                return batch
            self._iter = None  # out of step (should not happen): build synchronously from here on
        return self.source.batch(indices, epoch)

    def close(self) -> None:
        self._iter = None
