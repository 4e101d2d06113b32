#!/usr/bin/env bash
# One short check on a GPU machine (< 7 minutes: 240 + 60 + 100 s at most): the GPU-marked tests, the kernel benchmark,
# then the GPU pipeline benchmark.
#
#   bash benchmarks/gpu_check.sh            (from anywhere; PYTHON=... picks the interpreter)
#
# Expects PyTorch/cuda-python/numpy/pillow/onnx/onnxruntime/typer installed system-wide; no internet needed. Wheels
# in .whl/ (segmentation-models-pytorch, onnxslim, torch-pruning: pure Python) are installed into /tmp/site first.
# If $OUT is set (the device runner's output folder) the benchmark's JSON and the logs are written there too.
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-$(command -v python || command -v python3)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
LOGS=${OUT:-$(mktemp -d)}
mkdir -p "$LOGS"

echo "== GPUs"
nvidia-smi -L; smi=$?
"$PY" - <<'PYEOF'
import importlib.metadata as md
for dist in ("cuda-python", "cuda-bindings", "numpy", "torch", "cupy-cuda12x", "cupy-cuda13x", "tensorrt"):
    try:
        print(f"  {dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        pass
try:
    from skinedge.runtime import cuda_kernels as ck
    print("  gpu_available:", ck.gpu_available(), "| NVRTC", ck.nvrtc_version(), "archs", ck.supported_archs())
except Exception as exc:  # report, the steps below say the rest
    print("  cuda_kernels/NVRTC:", type(exc).__name__, exc)
PYEOF

echo "== pytest -m 'gpu or tensorrt'"
timeout 240 "$PY" -m pytest -q -m "gpu or tensorrt" -rs -p no:cacheprovider --continue-on-collection-errors \
    tests/ 2>&1 | tee "$LOGS/gpu_pytest.log"
tests=${PIPESTATUS[0]}

echo "== kernel benchmark"
timeout 60 "$PY" benchmarks/gpu_kernels.py --json "$LOGS/gpu_kernels.json" 2>&1 | tee "$LOGS/gpu_kernels.log"
bench=${PIPESTATUS[0]}

echo "== GPU pipeline benchmark"
timeout 100 "$PY" benchmarks/gpu_pipeline.py --json "$LOGS/gpu_pipeline.json" 2>&1 | tee "$LOGS/gpu_pipeline.log"
pipe=${PIPESTATUS[0]}

verdict() { if [ "$1" -eq 0 ]; then echo pass; elif [ "$1" -eq 124 ]; then echo "FAIL (timeout)"; else echo "FAIL (rc $1)"; fi; }
echo "== summary"
echo "nvidia-smi:        $(verdict "$smi")"
echo "pytest gpu/trt:    $(verdict "$tests")  $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$LOGS/gpu_pytest.log" | tail -1)"
echo "kernel benchmark:  $(verdict "$bench")"
echo "pipeline bench:    $(verdict "$pipe")"
[ "$smi" -eq 0 ] && [ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$pipe" -eq 0 ]
