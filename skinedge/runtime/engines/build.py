"""Build TensorRT engines (``skinedge build-engines``) and write each with its sidecar manifest.

An engine is tied to one GPU and one TensorRT version (DESIGN.md §4), so every
engine ``ENGINES/<net>.<variant>.trt<version>.<sm..-gpu>.engine`` gets a sidecar
``<engine>.json`` (never a header glued to the engine: trtexec and DeepStream
must still read the file) recording what it was built from and for; an engine
whose sidecar still matches is reused (loading one: :mod:`.load`).

Precision lives in the ONNX file (FP16 weights, INT8 Q/DQ), so networks are
built strongly typed with no precision flags: the subset of the API common to
TensorRT 10.3 (JetPack 6) and 11.x.

No torch, onnx or NumPy here; ``tensorrt`` and ``cuda.bindings`` are
imported inside the functions that need them. What to build: :mod:`.plan`;
build profiles: :mod:`.profile`; names and sidecar manifests: :mod:`.manifest`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Callable

from skinedge.atomic import sha256_file, write_bytes_atomic, write_json_atomic
from skinedge.errors import SkinedgeError
from skinedge.runtime.engines.manifest import (
    INDEX,
    engine_sha_problems,
    make_manifest,
    manifest_mismatches,
    read_manifest,
    sidecar_path,
    timing_cache_name,
)
from skinedge.runtime.engines.plan import EnginePlan, plan_engines
from skinedge.runtime.engines.profile import (
    default_profile,
    read_profile,
    resolve_shapes,
    select_variant,
)
from skinedge.runtime.engines.trt import require_tensorrt, system_info, trt_logger
from skinedge.runtime.manifest import NETWORKS, load_models

Builder = Callable[..., bytes]  # build_engine's signature


# ---------------------------------------------------------------- TensorRT build

def _progress_monitor(trt, log: Callable[[str], None], start: float):
    """An ``IProgressMonitor`` printing top-level phases and, at most every 5 s, the step in progress."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.lock = threading.Lock()
            self.phases: dict[str, tuple[str | None, int]] = {}
            self.last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self.lock:
                self.phases[phase_name] = (parent_phase, num_steps)
                if parent_phase is None:
                    log(f"  [{time.monotonic() - start:5.0f}s] {phase_name}")

        def step_complete(self, phase_name, step):
            with self.lock:
                now = time.monotonic()
                if now - self.last >= 5.0:
                    self.last = now
                    _, steps = self.phases.get(phase_name, (None, 0))
                    log(f"  [{now - start:5.0f}s] {phase_name}: {step + 1}/{steps}")
            return True

        def phase_finish(self, phase_name):
            with self.lock:
                self.phases.pop(phase_name, None)

    return Monitor()


class _Heartbeat:
    """Fallback progress when TensorRT has no IProgressMonitor: a line every ``every`` seconds."""

    def __init__(self, log: Callable[[str], None], start: float, every: float = 10.0):
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(log, start, every), daemon=True)

    def _run(self, log, start, every):
        while not self.done.wait(every):
            log(f"  still building... {time.monotonic() - start:.0f}s")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=1.0)


def build_engine(onnx_path: str | Path, shapes: dict[str, tuple], workspace_mib: int,
                 timing_cache_path: str | Path | None, log: Callable[[str], None] = print) -> bytes:
    """Build one serialized engine from an ONNX file: strongly typed, one optimization profile.

    Args:
        shapes: input name -> (min, opt, max) shapes, or -> {"min", "opt", "max"}.
        workspace_mib: the builder's workspace pool limit (0: TensorRT's default).
        timing_cache_path: loaded if present, written back (atomically) after the build; one
            file per TensorRT version and GPU (:func:`timing_cache_name`). None: no cache.

    Raises:
        MissingTensorRT: no TensorRT here.
        SkinedgeError: the parser rejects the file (every parser error is in the message), a
            shape is missing for an input, or the build fails.
    """
    trt = require_tensorrt()
    onnx_path = Path(onnx_path)
    logger = trt_logger()
    builder = trt.Builder(logger)
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(net, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise SkinedgeError(f"TensorRT cannot parse {onnx_path.name}: " + " | ".join(errors or ["no detail given"]))

    config = builder.create_builder_config()
    if workspace_mib > 0:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    profile = builder.create_optimization_profile()
    for i in range(net.num_inputs):
        name = net.get_input(i).name
        if name not in shapes:
            raise SkinedgeError(f"{onnx_path.name}: no shape range given for input {name!r} "
                                f"(given: {', '.join(shapes) or 'none'})")
        s = shapes[name]
        lo, opt, hi = (s["min"], s["opt"], s["max"]) if isinstance(s, dict) else s
        profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache_path) if timing_cache_path else None
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            log(f"  timing cache {cache_path.name} does not fit this TensorRT/GPU: starting a fresh one")
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        elif blob:
            log(f"  timing cache: {cache_path.name} ({len(blob) // 1024} KiB)")

    start = time.monotonic()
    logger.errors.clear()
    log(f"  building {onnx_path.name} with TensorRT {trt.__version__} (minutes on a Jetson; progress below)")
    if hasattr(trt, "IProgressMonitor"):
        monitor = _progress_monitor(trt, log, start)
        config.progress_monitor = monitor
        serialized = builder.build_serialized_network(net, config)
    else:
        with _Heartbeat(log, start):
            serialized = builder.build_serialized_network(net, config)
    if serialized is None:
        detail = " | ".join(logger.errors) or "see the TensorRT messages above"
        raise SkinedgeError(f"TensorRT could not build an engine from {onnx_path.name}: {detail}")
    engine = bytes(serialized)
    log(f"  built in {time.monotonic() - start:.0f}s ({len(engine) / 2**20:.1f} MiB)")

    if cache_path is not None:
        cache = config.get_timing_cache()
        if cache is not None:
            write_bytes_atomic(cache_path, bytes(cache.serialize()))
    return engine


# ---------------------------------------------------------------- build-engines


def build_and_write(plan: EnginePlan, out_dir: Path, system: dict[str, Any], *, workspace_mib: int,
                     profile: str, profile_path: str | None, models_dir: Path, builder: Builder,
                     log: Callable[[str], None]) -> tuple[bytes, dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    blob = builder(plan.onnx_path, {k: (v["min"], v["opt"], v["max"]) for k, v in plan.shapes.items()},
                   workspace_mib, out_dir / timing_cache_name(system), log)
    engine_path = out_dir / plan.name
    manifest = make_manifest(
        net=plan.net, variant=plan.variant, precision=plan.precision, onnx_file=plan.onnx_path.name,
        onnx_sha256=plan.onnx_sha256, shapes=plan.shapes, calibration_set_sha256=plan.calibration_set_sha256,
        system=system, engine_file=plan.name, engine_sha256=hashlib.sha256(blob).hexdigest(), profile=profile,
        profile_path=profile_path, workspace_mib=workspace_mib, models_dir=str(models_dir.resolve()),
        build_seconds=time.monotonic() - start)
    # engine first, then its sidecar: a crash in between leaves an old sidecar whose engine sha256
    # no longer matches, so the next run rebuilds instead of trusting a stale pair
    write_bytes_atomic(engine_path, blob)
    write_json_atomic(sidecar_path(engine_path), manifest)
    return blob, manifest


def _reuse_problems(engine_path: Path, plan: EnginePlan, system: dict[str, Any]) -> list[str]:
    """Why an existing engine cannot be reused (empty: reuse it)."""
    if not engine_path.is_file():
        return ["no engine yet"]
    try:
        manifest = read_manifest(sidecar_path(engine_path))
    except SkinedgeError as exc:
        return [str(exc)]
    problems = manifest_mismatches(manifest, system, plan.onnx_sha256, plan.expected())
    if not problems:  # hashing a large engine only when nothing cheaper already refused it
        problems += engine_sha_problems(manifest, sha256_file(engine_path))
    return problems


def build_engines(models_dir: str | Path, out_dir: str | Path, profile_path: str | Path | None = None,
                  log: Callable[[str], None] = print, rebuild: bool = False, *,
                  system: dict[str, Any] | None = None, builder: Builder | None = None) -> dict[str, Any]:
    """Build (or reuse) the seg and sr engines of a models directory for this GPU and TensorRT.

    Args:
        profile_path: an ``export/*.toml`` profile; None: FP16 for both (:func:`default_profile`).
        rebuild: build even when an engine with a matching sidecar is there.
        system, builder: stand-ins for :func:`system_info` and :func:`build_engine` (tests, other builders).

    Returns:
        ``{"profile", "out", "engines": {net: {"engine", "manifest", "variant", "built", "reasons"}}}``;
        ``OUT/engines.json`` records the same (which engine serves which network).

    Raises:
        SkinedgeError: bad profile, CPU profile, missing/failing variant, models.json not matching a file.
        MissingTensorRT: no TensorRT here (exit code 2).
    """
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    manifest = load_models(models_dir)
    profile = read_profile(profile_path) if profile_path is not None else default_profile(manifest)
    for net in NETWORKS:  # CPU profile, failing variants, shape contradictions: before anything slow
        select_variant(manifest, net, profile.nets[net], profile.name)
        resolve_shapes(manifest, net, profile.nets[net], profile.name)
    if builder is None:
        require_tensorrt()
        builder = build_engine
    system = system or system_info()
    plans = plan_engines(models_dir, manifest, profile, system)
    log(f"build-engines: profile {profile.name}, TensorRT {system['tensorrt_version']}, "
        f"{system['gpu']['name']} (sm {system['gpu']['compute_capability']}) → {out_dir}")
    result: dict[str, Any] = {"profile": profile.name, "out": str(out_dir), "engines": {}}
    for plan in plans:
        engine_path = out_dir / plan.name
        reasons = ["--rebuild"] if rebuild else _reuse_problems(engine_path, plan, system)
        if not reasons:
            log(f"{plan.net}: {plan.name} is up to date (sidecar matches); reused")
        else:
            log(f"{plan.net}: building {plan.name} from {plan.onnx_path.name} ({'; '.join(reasons)})")
            build_and_write(plan, out_dir, system, workspace_mib=profile.workspace_mib, profile=profile.name,
                             profile_path=str(profile.path) if profile.path else None, models_dir=models_dir,
                             builder=builder, log=log)
        result["engines"][plan.net] = {"engine": str(engine_path), "manifest": str(sidecar_path(engine_path)),
                                       "variant": plan.variant, "built": bool(reasons), "reasons": reasons}
    write_json_atomic(out_dir / INDEX, {
        "format": "skinedge-engines", "format_version": 1, "profile": profile.name,
        "models_dir": str(models_dir.resolve()), "tensorrt_version": system["tensorrt_version"],
        "gpu": system["gpu"], "networks": {p.net: {"engine": p.name, "variant": p.variant} for p in plans}})
    return result


def build_engines_command(models: str | Path, out: str | Path, profile: str | Path | None = None,
                          rebuild: bool = False, log: Callable[[str], None] = print) -> int:
    """``skinedge build-engines``: returns 0; user mistakes raise SkinedgeError (MissingTensorRT exits 2)."""
    result = build_engines(models, out, profile, log=log, rebuild=rebuild)
    for net, row in result["engines"].items():
        log(f"{net}: {row['engine']} ({'built' if row['built'] else 'reused'}, {row['variant']})")
    return 0
