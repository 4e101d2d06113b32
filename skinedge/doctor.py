"""``skinedge doctor``: what this machine can run, and what to do about what it cannot.

A new user's first question on a Jetson or a clinic PC is "will ``--backend tensorrt`` work here, and if not,
why?". The answer is spread over package versions, CPU features, the CUDA driver, TensorRT and the models'
files, so this gathers them in one report. Every problem carries its fix. The exit status is 1 only when
something the user *asked about* cannot run: a ``--backend``, or a ``--models`` directory whose files fail their
hashes or that has no variant of a network this machine can run. A missing GPU on a CPU machine is a fact,
not a failure.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import skinedge
from skinedge.errors import SkinedgeError

PACKAGES = ("numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "onnxruntime-gpu", "openvino",
            "tensorrt", "cuda-bindings", "cuda-python", "torch", "torchvision", "segmentation-models-pytorch",
            "onnx", "pydicom", "highdicom", "pynetdicom", "ray", "nvidia-pytriton")
# x86 flags (/proc/cpuinfo "flags") and Arm features ("Features") that decide which precision is fast here
CPU_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI (fast INT8)",
                "avx_vnni": "AVX-VNNI (fast INT8)", "avx512_bf16": "AVX-512 BF16", "avx512_fp16": "AVX-512 FP16",
                "amx_tile": "AMX", "amx_int8": "AMX INT8", "amx_bf16": "AMX BF16", "asimd": "NEON",
                "asimdhp": "NEON FP16", "asimddp": "NEON dot product (fast INT8)", "i8mm": "Arm I8MM", "sve": "SVE",
                "bf16": "Arm BF16"}
# which variant precisions each backend runs (pruned.* runs wherever its precision does)
RUNS = {"onnxruntime": ("fp32", "int8-cpu"), "openvino": ("fp32", "int8-ov"), "tensorrt": ("fp32", "fp16", "int8")}
TENSORRT_FIX = ("TensorRT comes with JetPack 6 on a Jetson (python3-libnvinfer, or the l4t-tensorrt container); "
                "on a desktop GPU: pip install tensorrt-cu12 (10.x), with an NVIDIA driver")


@dataclass
class Check:
    """One thing that can or cannot run here."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass
class Report:
    versions: dict[str, str]
    cpu: dict[str, Any]
    backends: list[Check]
    gpu: dict[str, Any]
    caches: list[dict[str, Any]]
    models: dict[str, Any] | None = None
    asked: list[str] = field(default_factory=list)  # "--backend tensorrt", "--models DIR"
    problems: list[Check] = field(default_factory=list)  # what was asked for and cannot run

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def diagnose(models: Path | None = None, backend: str | None = None) -> Report:
    """Everything ``skinedge doctor`` prints; ``models``/``backend``: what the user asked about."""
    gpu = gpu_facts()
    backends = [onnxruntime_check(), openvino_check(), cuda_check(gpu), tensorrt_check(gpu), torch_check()]
    report = Report(versions(), cpu_facts(), backends, gpu, caches())
    report.asked = ([f"--backend {backend}"] if backend else []) + ([f"--models {models}"] if models else [])
    if backend is not None:
        by_name = {c.name: c for c in backends}
        if backend not in RUNS:
            raise SkinedgeError(f"unknown backend {backend!r}; choose one of {', '.join(RUNS)}")
        if not by_name[backend].ok:
            report.problems.append(by_name[backend])
    if models is not None:
        report.models, problems = models_facts(Path(models), {c.name for c in backends if c.ok})
        report.problems += problems
    return report


# ------------------------------------------------------------------------------------------------- facts
def versions() -> dict[str, str]:
    found = {"skinedge": skinedge.__version__, "python": platform.python_version(),
             "platform": f"{platform.system()} {platform.release()} {platform.machine()}"}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def cpu_facts() -> dict[str, Any]:
    from skinedge.runtime.backends.choose import cpu_model
    from skinedge.runtime.backends.onnxruntime import physical_cores

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return {"model": cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": physical_cores(),
            "features": [label for flag, label in CPU_FEATURES.items() if flag in flags]}


def gpu_facts() -> dict[str, Any]:
    """The CUDA driver's view: version, and each GPU's name, memory and compute capability (empty: no GPU)."""
    try:
        from cuda.bindings import driver

        from skinedge.runtime.gpu.device import check, compute_capability, device_name
    except ImportError:
        return {"error": "cuda.bindings is not installed (pip install 'skinedge[gpu]')"}
    try:
        check(driver.cuInit(0), "cuInit")
        version = check(driver.cuDriverGetVersion(), "cuDriverGetVersion")
        devices = []
        for i in range(check(driver.cuDeviceGetCount(), "cuDeviceGetCount")):
            dev = check(driver.cuDeviceGet(i), "cuDeviceGet")
            devices.append({"name": device_name(dev), "memory_gib": round(
                check(driver.cuDeviceTotalMem(dev), "cuDeviceTotalMem") / 2**30, 1),
                "compute_capability": "%d.%d" % compute_capability(dev)})
        return {"driver": f"{version // 1000}.{version % 1000 // 10}", "devices": devices}
    except Exception as exc:  # noqa: BLE001 - no driver (libcuda missing), no device: a fact to report
        return {"error": " ".join(str(exc).split())[:200]}


def onnxruntime_check() -> Check:
    try:
        import onnxruntime as ort
    except ImportError:
        return Check("onnxruntime", False, "not installed", "pip install 'skinedge[cpu]' (onnxruntime)")
    providers = ort.get_available_providers()
    ok = "CPUExecutionProvider" in providers
    return Check("onnxruntime", ok, f"{ort.__version__}; providers {', '.join(providers)}",
                 None if ok else "reinstall onnxruntime: it offers no CPU provider")


def openvino_check() -> Check:
    try:
        import openvino as ov
    except ImportError:
        return Check("openvino", False, "not installed", "pip install 'skinedge[openvino]' (x86 and Arm CPUs)")
    try:
        core = ov.Core()
        devices = core.available_devices
        cpu = core.get_property("CPU", "FULL_DEVICE_NAME") if "CPU" in devices else None
    except Exception as exc:  # noqa: BLE001 - a broken plugin install
        return Check("openvino", False, f"{ov.__version__}; no device ({' '.join(str(exc).split())[:160]})",
                     "reinstall openvino")
    ok = "CPU" in devices
    return Check("openvino", ok, f"{ov.__version__}; devices {', '.join(devices) or 'none'}"
                 + (f" ({cpu})" if cpu else ""), None if ok else "OpenVINO sees no CPU device: reinstall openvino")


def cuda_check(gpu: dict[str, Any]) -> Check:
    if gpu.get("devices"):
        names = "; ".join(f"{d['name']} {d['memory_gib']} GiB sm{d['compute_capability']}" for d in gpu["devices"])
        return Check("cuda", True, f"driver {gpu['driver']}; {names}{_nvrtc()}")
    why = gpu.get("error") or "the driver sees no GPU"
    return Check("cuda", False, why, "a CUDA run needs an NVIDIA GPU with its driver (JetPack on a Jetson) and "
                 "pip install 'skinedge[gpu]'; on a CPU the onnxruntime and openvino backends run")


def _nvrtc() -> str:
    try:
        from cuda.bindings import nvrtc

        from skinedge.runtime.gpu.device import check

        major, minor = check(nvrtc.nvrtcVersion(), "nvrtcVersion")
        return f"; NVRTC {major}.{minor}"
    except Exception:  # noqa: BLE001 - NVRTC missing: the kernels cannot compile, said by the GPU tests
        return "; NVRTC missing (the masking kernels cannot compile)"


def tensorrt_check(gpu: dict[str, Any]) -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return Check("tensorrt", False, "not installed", TENSORRT_FIX)
    if not gpu.get("devices"):
        return Check("tensorrt", False, f"{trt.__version__} installed, but no CUDA GPU is visible",
                     "TensorRT engines run only on an NVIDIA GPU: check nvidia-smi (tegrastats on a Jetson)")
    return Check("tensorrt", True, f"{trt.__version__}")


def torch_check() -> Check:
    """Training and export only (the runtime never imports torch)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return Check("torch", False, "not installed (needed to train and export, not to run)",
                     "pip install 'skinedge[train]'")
    import torch

    cuda = torch.cuda.is_available()
    return Check("torch", True, f"{version}; " + (f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"
                                                 if cuda else "CPU only here"))


def caches() -> list[dict[str, Any]]:
    """skinedge's caches (the backend speed probe, compiled kernels) and torch's (where local pretrained
    weights go), with their sizes: what a user may clear."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = []
    for path, what in ((base / "skinedge", "backend timings (speed.json) and compiled CUDA kernels (ptx/)"),
                       (Path(os.environ.get("TORCH_HOME") or base / "torch"), "torch hub: pretrained weights")):
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
        found.append({"path": str(path), "exists": path.is_dir(), "bytes": size, "what": what})
    return found


def models_facts(models: Path, runnable_backends: set[str]) -> tuple[dict[str, Any], list[Check]]:
    """Each variant's file checked against its sha256, and the backends here that run it."""
    from skinedge.runtime.manifest import MANIFEST, load_models, network, variant_path

    problems: list[Check] = []
    try:
        manifest = load_models(models)
    except SkinedgeError as exc:
        return {"dir": str(models)}, [Check("models", False, str(exc), "point --models at the output of "
                                            "`skinedge export` (or `skinedge train all`)")]
    nets: dict[str, list[dict[str, Any]]] = {}
    for net in ("seg", "sr"):
        rows = []
        for name, entry in network(manifest, net)["variants"].items():
            precision = name.split(".")[-1]
            row = {"variant": name, "file": entry.get("file"), "status": entry.get("status"),
                   "runs_on": sorted(b for b in runnable_backends if precision in RUNS.get(b, ()))}
            try:
                variant_path(models, manifest, net, name, allow_failing=True, verify=True)
                row["sha256"] = "ok"
            except SkinedgeError as exc:
                row["sha256"] = "FAILED"
                problems.append(Check(f"models {net} {name}", False, str(exc),
                                      f"re-run `skinedge export` (or restore the files {MANIFEST} names)"))
            rows.append(row)
        nets[net] = rows
        if not any(r["runs_on"] and r["status"] == "ok" and r["sha256"] == "ok" for r in rows):
            problems.append(Check(f"models {net}", False, f"no {net} variant that passed its gate runs on "
                                  f"{', '.join(sorted(runnable_backends)) or 'any backend'} here",
                                  "install onnxruntime (runs fp32), or export the variant this machine runs"))
    return {"dir": str(models), "networks": nets}, problems


# ------------------------------------------------------------------------------------------------- output
def render(report: Report) -> str:
    mark = {True: "ok  ", False: "--  "}
    lines = ["skinedge doctor", "", "versions:"]
    lines += [f"  {k:<28} {v}" for k, v in report.versions.items()]
    cpu = report.cpu
    lines += ["", f"cpu: {cpu['model']}, {cpu['physical_cores']} cores ({cpu['logical_cores']} threads)",
              f"  features: {', '.join(cpu['features']) or 'none of note'}", "", "backends:"]
    for c in report.backends:
        lines.append(f"  {mark[c.ok]}{c.name:<12} {c.detail}")
        if c.fix and not c.ok:
            lines.append(f"      fix: {c.fix}")
    lines += ["", "caches:"]
    lines += [f"  {c['path']}: {_size(c['bytes']) if c['exists'] else 'none'} ({c['what']})" for c in report.caches]
    if report.models and "networks" in report.models:
        lines += ["", f"models: {report.models['dir']}"]
        for net, rows in report.models["networks"].items():
            for r in rows:
                elsewhere = ", ".join(b for b, kinds in RUNS.items() if r["variant"].split(".")[-1] in kinds)
                runs = ", ".join(r["runs_on"]) or f"nothing here (needs {elsewhere})"
                lines.append(f"  {net:<4} {r['variant']:<16} {r['file']!s:<22} sha256 {r['sha256']:<6} "
                             f"gate {r['status']!s:<8} runs on {runs}")
    if report.problems:
        lines += ["", f"cannot run what was asked ({' '.join(report.asked)}):"]
        for c in report.problems:
            lines += [f"  {c.name}: {c.detail}", f"      fix: {c.fix}"]
    elif report.asked:
        lines += ["", f"{' '.join(report.asked)}: runs here"]
    return "\n".join(lines).rstrip() + "\n"


def as_json(report: Report) -> dict[str, Any]:
    out = asdict(report)
    out["exit_code"] = report.exit_code
    return out


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


if __name__ == "__main__":  # python -m skinedge.doctor
    print(render(diagnose()), end="")
    sys.exit(0)
