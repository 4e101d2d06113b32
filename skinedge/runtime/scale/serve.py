"""``skinedge serve``: the pipeline behind NVIDIA Triton's HTTP/gRPC protocol, through PyTriton (extra ``serve``).

One model, ``skinedge``: a frame in (``IMAGE``, uint8 BGR H×W×3), the enhanced view out (``ENHANCED``, padded
with black to the largest view of its batch: ``SIZE`` gives its height and width), with ``ROI`` (x, y, w, h;
zeros without a lesion), ``FOUND`` and ``NOTICE`` (the AI-enhanced statement). Triton's
dynamic batcher groups frames from many clients (frames of one size go together); the function runs them
through one open session. The queue is bounded (``--max-queue``): a request beyond it is answered at once with
an error, never left to hang. Health and readiness are Triton's own (``/v2/health/live``, ``/v2/health/ready``).

PyTriton ships the Triton server. Two facts about it, as of 0.7.0: it pins ``numpy<2`` (so it goes in its own
environment, beside an OpenCV built for NumPy 1: ``pip install 'skinedge[cpu,serve]'`` there), and its Python
backend stub fails on CPython 3.11.7 (``_thread.RLock`` has no ``_recursion_count``; PyTriton issue #51):
Debian 12's Python 3.11.2 works.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from skinedge.errors import SkinedgeError

EXTRA = "pip install 'skinedge[cpu,serve]' in its own environment (PyTriton pins numpy<2)"
MODEL = "skinedge"


def _pytriton():
    try:
        from pytriton.decorators import batch  # noqa: F401
        from pytriton.triton import Triton  # noqa: F401
    except ImportError:
        raise SkinedgeError(f"skinedge serve needs PyTriton: {EXTRA}") from None


def serve(models: Path, *, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001,
          backend: str = "auto", precision: str = "auto", max_batch: int = 8, max_queue: int = 16,
          queue_delay_us: int = 2000, log: Callable[[str], None] = print,
          ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``ready`` is called once Triton answers."""
    _pytriton()
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
    from pytriton.triton import Triton, TritonConfig

    from skinedge.runtime.clinical.provenance import NOTICE
    from skinedge.runtime.session import open_session

    if max_batch < 1 or max_queue < 1:
        raise SkinedgeError(f"--max-batch and --max-queue must be at least 1, got {max_batch} and {max_queue}")
    session = open_session(models, backend, precision, log=log)
    lock = threading.Lock()  # one session: Triton may call from several threads

    with session.pipeline as pipeline:
        @batch
        def infer(IMAGE):  # noqa: N803 - Triton's tensor name
            outputs = {"ENHANCED": [], "SIZE": [], "ROI": [], "FOUND": [], "NOTICE": []}
            with lock:
                results = [pipeline(np.ascontiguousarray(frame, dtype=np.uint8)) for frame in IMAGE]
            shapes = {r.image.shape for r in results}
            if len(shapes) > 1:  # a batch answers with one array per output: pad views to the largest
                h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
            for r in results:
                image = r.image
                if len(shapes) > 1:
                    image = np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)))
                outputs["ENHANCED"].append(image)
                outputs["SIZE"].append(np.array(r.image.shape[:2], np.int32))
                outputs["ROI"].append(np.array(r.roi if r.roi is not None else (0, 0, 0, 0), np.int32))
                outputs["FOUND"].append(np.array([r.found]))
                outputs["NOTICE"].append(np.array([NOTICE.encode()], dtype=np.bytes_))
            return {k: np.stack(v) for k, v in outputs.items()}

        triton_log = Path(tempfile.gettempdir()) / f"skinedge-triton-{os.getpid()}.log"
        config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port,
                              allow_metrics=False, log_verbose=0, log_file=triton_log)
        batcher = DynamicBatcher(max_queue_delay_microseconds=queue_delay_us, default_queue_policy=QueuePolicy(
            timeout_action=TimeoutAction.REJECT, max_queue_size=max_queue))
        with Triton(config=config) as triton:
            triton.bind(model_name=MODEL, infer_func=infer,
                        inputs=[Tensor(name="IMAGE", dtype=np.uint8, shape=(-1, -1, 3))],
                        outputs=[Tensor(name="ENHANCED", dtype=np.uint8, shape=(-1, -1, 3)),
                                 Tensor(name="SIZE", dtype=np.int32, shape=(2,)),
                                 Tensor(name="ROI", dtype=np.int32, shape=(4,)),
                                 Tensor(name="FOUND", dtype=np.bool_, shape=(1,)),
                                 Tensor(name="NOTICE", dtype=np.bytes_, shape=(1,))],
                        config=ModelConfig(max_batch_size=max_batch, batcher=batcher), strict=True)
            log(f"serving model {MODEL!r}: HTTP {host}:{http_port}, gRPC {host}:{grpc_port}; dynamic batching ≤ "
                f"{max_batch}, queue ≤ {max_queue} (beyond: an error at once); /v2/health/ready; Triton's own log: "
                f"{triton_log}; Ctrl-C stops")
            stop = threading.Event()
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                triton.run()
                if ready is not None:
                    ready()
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
                log("stopping: the queue is drained and the server shut down")
