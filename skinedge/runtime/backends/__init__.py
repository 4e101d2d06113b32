"""Inference backends behind one small interface (loader + runner, the Polygraphy way).

A *loader* is a cheap callable that builds nothing until called; a *runner*
takes a loader, resolves it on ``activate`` (or ``with runner:``), and runs
``infer(dict[name, array]) -> dict[name, array]``. The base class does the
checks and the timing; each backend implements three small ``_impl`` methods.

Backends: ``onnxruntime`` and ``openvino`` (the CPU), ``tensorrt`` (engines, one CUDA stream), ``torch`` (the
checkpoints themselves: the reference, and the GPU path where TensorRT is missing).

:func:`open_runners` picks a backend and a precision variant and opens the two runners.
``auto`` backend: tensorrt (TensorRT importable, a GPU, engines built) >
torch on CUDA > the CPU, and it says what it chose and why. On the CPU, each
network gets the fastest (backend, variant) the gates allow *measured here*
(:mod:`skinedge.runtime.backends.choose`): ONNX Runtime or OpenVINO, so the
segmenter and the SR generator may run on different backends; ``--backend
openvino`` with ``auto`` precision measures among OpenVINO's variants only.
``auto`` precision with ``--backend onnxruntime``: the pruned INT8 CPU form when
its gate passed and it measured faster than FP32 on the CPU that made it, then
pruned FP32, then INT8-CPU, then FP32 — the fastest variant the gates allow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from skinedge.errors import SkinedgeError
from skinedge.runtime.backends.base import Opened
from skinedge.runtime.manifest import IR_PRECISIONS, ModelsError, network, variant_path

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt", "torch")
CPU_BACKENDS = ("onnxruntime", "openvino")
CPU_PREFERENCE = ("pruned.int8-cpu", "pruned.fp32", "int8-cpu", "fp32")
TORCH_PRECISIONS = ("auto", "fp32", "fp16", "pruned.fp32")


def _usable(entry: dict | None) -> bool:
    if entry is None or entry.get("status") != "ok":
        return False
    form = entry.get("cpu_form")
    return form is None or form.get("faster_than_fp32", True)


def cpu_variant(manifest: dict, net: str, precision: str) -> str:
    """The variant ONNX Runtime should run for ``precision`` (``auto``: the fastest the gates allow;
    ``pruned.X`` on a network that was never pruned: its ``X``, since pruning is per network)."""
    variants = network(manifest, net)["variants"]
    if precision != "auto":
        if precision.startswith("pruned.") and "pruned.fp32" not in variants:
            return precision.removeprefix("pruned.")  # this network was not pruned: as build-engines does
        return precision
    for name in CPU_PREFERENCE:
        if _usable(variants.get(name)):
            return name
    return "fp32"


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def torch_cuda() -> bool:
    """True when torch is installed and sees a CUDA GPU (imports torch only when it is there)."""
    if not _present("torch"):
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(backend: str, engines: Path | None) -> tuple[str, str]:
    """(backend, why) for a requested backend name."""
    if backend not in BACKENDS:
        raise SkinedgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend, "asked for"
    if _present("tensorrt") and engines is not None and any(engines.glob("*.engine")):
        return "tensorrt", f"TensorRT and engines in {engines}"
    if torch_cuda():
        return "torch", "no TensorRT engines; torch sees a CUDA GPU"
    return "cpu", "no TensorRT engines and no CUDA GPU: the CPU, each network on its fastest backend measured here"


def _cpu_runner(manifest: dict):
    """(backend, path, net) → a runner, for the CPU backends."""
    fixed = {net: all(isinstance(d, int) for d in network(manifest, net)["input"]["shape"][1:])
             for net in ("seg", "sr")}  # the SR generator takes any ROI size: no per-shape memory plans

    def make(backend: str, path: Path, net: str):
        if backend == "openvino":
            from skinedge.runtime.backends.openvino import CompiledFromFile, OvRunner

            return OvRunner(CompiledFromFile(path))
        from skinedge.runtime.backends.onnxruntime import OrtRunner, SessionFromOnnx

        return OrtRunner(SessionFromOnnx(path, fixed_shape=fixed[net]))
    return make


def _open_cpu(models_dir: Path, manifest: dict, backend: str, precision: str, why: str, allow_failing: bool,
              log) -> Opened:
    """Runners on the CPU backends: ``cpu`` (auto: per network, measured), or ``openvino`` alone."""
    from skinedge.runtime.backends import choose

    available = tuple(b for b in (CPU_BACKENDS if backend == "cpu" else (backend,)) if _present(b))
    if backend == "openvino" and not available:
        from skinedge.runtime.backends.openvino import import_openvino

        import_openvino()  # raises the one line naming the extra
    if not available:
        raise SkinedgeError("no CPU backend is installed: pip install 'skinedge[cpu]' (ONNX Runtime) or "
                            "'skinedge[openvino]'")
    make = _cpu_runner(manifest)
    runners, chosen, on = {}, {}, {}
    for net in ("seg", "sr"):
        if precision == "auto":
            pick = choose.choose(models_dir, manifest, net, available, make, log)
            on[net], chosen[net] = pick.backend, pick.variant
        else:
            variant = precision
            if precision.startswith("pruned.") and precision not in network(manifest, net)["variants"]:
                variant = precision.removeprefix("pruned.")  # this network was not pruned: as build-engines does
            ir = variant.split(".")[-1] in IR_PRECISIONS  # an OpenVINO IR; OpenVINO also reads every ONNX file
            runnable = [b for b in available if b == "openvino" or not ir]
            if not runnable:
                raise SkinedgeError(f"{variant} is an OpenVINO IR and cannot run on {' or '.join(available)}: "
                                    "pip install 'skinedge[openvino]'")
            on[net], chosen[net] = runnable[0], variant
        path = variant_path(models_dir, manifest, net, chosen[net], allow_failing, verify=True)
        runners[net] = make(on[net], path, net)
    if precision.startswith("pruned.") and not any(v.startswith("pruned.") for v in chosen.values()):
        raise ModelsError(f"{models_dir}: neither network is pruned; run `skinedge prune` first")
    label = on["seg"] if on["seg"] == on["sr"] else f"{on['seg']}+{on['sr']}"
    return Opened(runners["seg"], runners["sr"], label, chosen, why, backends=on)


def open_runners(models_dir: Path, manifest: dict, backend: str = "auto", precision: str = "auto",
                 engines: Path | None = None, allow_failing: bool = False, log=None) -> Opened:
    """Two runners (not yet activated) for the chosen backend and variants (``log``: what the CPU choice
    measured)."""
    backend, why = choose_backend(backend, engines)
    if backend in ("cpu", "openvino"):
        return _open_cpu(Path(models_dir), manifest, backend, precision, why, allow_failing, log)
    names = {net: (network(manifest, net)["input"]["name"], network(manifest, net)["output"]["name"])
             for net in ("seg", "sr")}
    if backend == "onnxruntime":
        from skinedge.runtime.backends.onnxruntime import OrtRunner, SessionFromOnnx

        chosen = {net: cpu_variant(manifest, net, precision) for net in ("seg", "sr")}
        for net, variant in chosen.items():
            if variant.split(".")[-1] in IR_PRECISIONS:
                raise SkinedgeError(f"{variant} is an OpenVINO IR and cannot run on onnxruntime: use --backend "
                                    "openvino (or auto)")
        if precision.startswith("pruned.") and not any(v.startswith("pruned.") for v in chosen.values()):
            raise ModelsError(f"{models_dir}: neither network is pruned; run `skinedge prune` first")
        paths = {net: variant_path(models_dir, manifest, net, v, allow_failing, verify=True)
                 for net, v in chosen.items()}
        fixed = {net: all(isinstance(d, int) for d in network(manifest, net)["input"]["shape"][1:])
                 for net in ("seg", "sr")}  # the SR generator takes any ROI size: no per-shape memory plans
        seg, sr = (OrtRunner(SessionFromOnnx(paths[net], fixed_shape=fixed[net])) for net in ("seg", "sr"))
        return Opened(seg, sr, backend, chosen, why)
    if backend == "torch":
        from skinedge.runtime.backends.torch import ModuleFromCheckpoint, TorchRunner

        if precision not in TORCH_PRECISIONS:
            raise SkinedgeError(f"the torch backend runs the checkpoints ({', '.join(TORCH_PRECISIONS[1:])}), "
                                f"not {precision}")
        cuda = torch_cuda()
        if precision == "fp16" and not cuda:
            raise SkinedgeError("torch fp16 needs a CUDA GPU; on the CPU the torch backend runs fp32")
        half = cuda and precision in ("auto", "fp16")  # auto on a GPU: FP16, the fast path; fp32 means FP32
        pruned = precision == "pruned.fp32"
        runners, chosen = {}, {}
        for net in ("seg", "sr"):
            entry = network(manifest, net)["variants"].get("pruned.fp32") if pruned else None
            if pruned and entry is None:
                raise ModelsError(f"{models_dir}: no pruned {net}; run `skinedge prune` first")
            path = Path(models_dir) / entry["checkpoint"] if pruned else Path(network(manifest, net)["source"]
                                                                               ["checkpoint"])
            if not path.is_file():
                raise ModelsError(f"checkpoint {path} (listed in models.json) is missing")
            runners[net] = TorchRunner(ModuleFromCheckpoint(path, net, half=half), *names[net], clamp=net == "sr")
            chosen[net] = "pruned.fp32" if pruned else "fp16" if half else "fp32"
        return Opened(runners["seg"], runners["sr"], backend, chosen, why)
    from skinedge.runtime.backends.tensorrt import open_engines

    return open_engines(models_dir, manifest, precision, engines, why)
