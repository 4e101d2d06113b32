"""The one-stream GPU pipeline (DESIGN.md §5): the stages of :mod:`skinedge.runtime.pipeline`, on the GPU.

- :mod:`.pipeline`: :class:`~.pipeline.GpuPipeline`, buffers allocated once, both networks and the kernels on
  one CUDA stream;
- :mod:`.two_loops`: the live view's two loops on it: the SR loop and the display on two streams, handing SRs
  over in device slots ordered by events;
- :mod:`.memory`: the device and pinned buffers of one stream's work;
- :mod:`.kernels`: the kernels of ``cu/*.cu``, their argument blocks and stream-ordered launches;
- :mod:`.ptx`: ``cu/*.cu`` → PTX with NVRTC, the PTX disk cache, the target architecture;
- :mod:`.device_nets`: the networks fed device pointers (TensorRT engines, torch modules on CUDA);
- :mod:`.device`: the one CUDA helper module (checked calls, :class:`~.device.CudaError`, the GPU's name).

``cuda.bindings`` is imported only inside functions: the package imports on a machine without CUDA.
"""
