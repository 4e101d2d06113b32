"""Inference backends behind one small interface (loader + runner, the Polygraphy way).

A *loader* is a cheap callable that builds nothing until called; a *runner*
takes a loader, resolves it on ``activate`` (or ``with runner:``), and runs
``infer(dict[name, array]) -> dict[name, array]``. The base class does the
checks and the timing; each backend implements three small ``_impl`` methods.

Backends: ``onnxruntime`` (CPU, or CUDA/TensorRT execution providers when
present), ``tensorrt`` (engines, one CUDA stream), ``torch`` (the checkpoints
themselves: the reference, and the GPU path where TensorRT is missing).
"""
