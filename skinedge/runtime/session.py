"""One way to open a session: models.json → two runners → the frame pipeline, logged the same way everywhere.

``enhance``, ``run``, ``bench`` and the demo all open through :func:`open_session`:
:func:`~skinedge.runtime.manifest.load_models` → :func:`~skinedge.runtime.backends.open_runners` →
one log line per choice → :func:`open_pipeline`. The pipeline comes back not yet entered
(``with session.pipeline as pipeline:``), so a caller decides how long its buffers live.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from skinedge.errors import SkinedgeError
from skinedge.runtime import backends
from skinedge.runtime.backends.base import Opened
from skinedge.runtime.gpu import device
from skinedge.runtime.manifest import card_summary, load_models
from skinedge.runtime.pipeline.host import Pipeline
from skinedge.runtime.pipeline.projection import Fidelity

MIN_TILE = 16


@dataclass
class Session:
    """What :func:`open_session` opened: the models directory's manifest, the two runners (``opened``: backend,
    variants, why) and the pipeline over them (not yet entered), with ``where`` saying which pipeline and why."""

    manifest: dict[str, Any]
    opened: Opened
    pipeline: Any  # Pipeline or GpuPipeline: both are context managers taking a uint8 BGR H×W×3 frame
    where: str


def open_session(models: str | Path, backend: str = "auto", precision: str = "auto", engines: Path | None = None,
                 mode: str = "roi", tile: int | None = None, fidelity: Fidelity | None = None,
                 log: Callable[[str], None] | None = None, manifest: dict[str, Any] | None = None) -> Session:
    """Open the runners and the pipeline of a models directory.

    Args:
        models: a models directory (``skinedge export``/``calibrate``/``prune``).
        backend: as ``--backend`` (``auto``: see :mod:`skinedge.runtime.backends`).
        precision: as ``--precision`` (``auto``: the fastest variant the gates allow).
        engines: TensorRT engines (``skinedge build-engines``); only the tensorrt backend reads them.
        mode: ``roi`` (the lesion region ×4) or ``full`` (the whole frame ×4).
        tile: SR tile side in LR pixels, 16..the backend's maximum; None: the backend's default.
        fidelity: projection, chroma and surround settings (None: the defaults).
        log: receives the two lines saying which backend, variants and pipeline were chosen and why.
        manifest: models.json already read (saves reading it again per configuration, as ``bench`` does).

    Raises:
        SkinedgeError: an unknown backend, a missing variant or engine, a tile out of range.
    """
    manifest = load_models(models) if manifest is None else manifest
    summary = card_summary(models)
    if log is not None and summary:
        log(f"model card: {summary}")
    opened = backends.open_runners(Path(models), manifest, backend, precision, engines, log=log)
    if log is not None:
        log(f"backend {opened.backend} ({opened.why}); {opened.describe()}")
    if tile is not None and not MIN_TILE <= tile <= opened.tile:
        raise SkinedgeError(f"--tile must be between {MIN_TILE} and {opened.tile} for the {opened.backend} "
                            f"backend, got {tile}")
    pipeline, where = open_pipeline(opened, manifest, mode, tile, fidelity)
    if log is not None:
        log(f"pipeline {where}")
    return Session(manifest, opened, pipeline, where)


def open_pipeline(opened: Opened, manifest: dict, mode: str = "roi", tile: int | None = None,
                  fidelity: Fidelity | None = None) -> tuple[Any, str]:
    """(pipeline, where) for opened runners: the one-stream :class:`GpuPipeline` (CUDA kernels between the
    networks, DESIGN.md §5) when the networks run on a GPU and the kernels can be built, else the NumPy-host
    :class:`Pipeline`. Not yet entered; ``where`` says which and why, and how SR is kept faithful, for the log."""
    fidelity = fidelity or Fidelity()
    tile = tile or opened.tile
    on_gpu = opened.backend == "tensorrt" or (opened.backend == "torch" and backends.torch_cuda())
    if on_gpu and device.gpu_available():
        from skinedge.runtime.gpu.pipeline import GpuPipeline

        return (GpuPipeline(opened.seg, opened.sr, manifest, mode, tile=tile, max_batch=opened.max_batch,
                            fidelity=fidelity),
                f"gpu: CUDA kernels and both networks on one stream; {replace(fidelity, noise='off').describe()} "
                "(the CUDA projection has no noise-floor stop yet)")
    why = "the networks run on the CPU" if not on_gpu else "cuda-python (cuda.bindings) or the driver is missing"
    return (Pipeline(opened.seg, opened.sr, manifest, mode, tile=tile, max_batch=opened.max_batch, fidelity=fidelity),
            f"host: pixel stages in NumPy ({why}); {fidelity.describe()}")
