"""The one-stream GPU pipeline (DESIGN.md §5): the same stages as :mod:`skinedge.runtime.pipeline`, on the GPU.

- :mod:`.pipeline`: :class:`~.pipeline.GpuPipeline`, buffers allocated once, both networks and the kernels on
  one CUDA stream;
- :mod:`.kernels`: NVRTC compilation of ``cu/*.cu``, the PTX disk cache and the stream-ordered launches;
- :mod:`.device_nets`: torch modules fed device pointers (the torch backend on a GPU);
- :mod:`.cuda`: the one CUDA helper module (driver calls, errors, the GPU's name).

``cuda.bindings`` is imported only inside functions: the package imports on a machine without CUDA.
"""
