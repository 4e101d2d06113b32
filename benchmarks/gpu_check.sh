#!/usr/bin/env bash
# One short check on a GPU machine (< 10 minutes: 240 + 60 + 100 + 200 s at most): the GPU-marked tests, the kernel
# benchmark, the GPU pipeline benchmark, then `skinedge bench` through the CLI on paper-size networks trained for a
# few steps on generated data (torch FP32/FP16 on the GPU through GpuPipeline at 256² and 1024² frames, and
# ONNX Runtime FP32 on that machine's CPU for comparison, each against the torch FP32 baseline of its run).
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
LOGS=${OUT:-$(mktemp -d)}  # results (JSON, PNG); the step logs go to STEP_LOGS (the runner brings back 8 files)
STEP_LOGS=$(mktemp -d)
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
    from skinedge.runtime.gpu import device as cu, ptx as nv
    print("  gpu_available:", cu.gpu_available(), "| NVRTC", nv.nvrtc_version(), "archs", nv.supported_archs())
except Exception as exc:  # report, the steps below say the rest
    print("  gpu.device/ptx (NVRTC):", type(exc).__name__, exc)
PYEOF

echo "== pytest -m 'gpu or tensorrt'"
timeout 240 "$PY" -m pytest -q -m "gpu or tensorrt" -rs -p no:cacheprovider --continue-on-collection-errors \
    tests/ 2>&1 | tee "$STEP_LOGS/gpu_pytest.log"
tests=${PIPESTATUS[0]}

echo "== kernel benchmark"
timeout 60 "$PY" benchmarks/gpu_kernels.py --json "$LOGS/gpu_kernels.json" 2>&1 | tee "$STEP_LOGS/gpu_kernels.log"
bench=${PIPESTATUS[0]}

echo "== GPU pipeline benchmark"
timeout 100 "$PY" benchmarks/gpu_pipeline.py --json "$LOGS/gpu_pipeline.json" 2>&1 | tee "$STEP_LOGS/gpu_pipeline.log"
pipe=${PIPESTATUS[0]}

echo "== skinedge bench on the GPU (paper-size networks, a few training steps on generated data)"
W=$(mktemp -d)
export W LOGS
SE=("$PY" -m skinedge)
timeout 200 bash -c '
    set -e
    "$@" data synth "$W/data" --count 40 --size 256 --seed 0 >/dev/null
    "$@" train seg --data "synthetic:$W/data" --out "$W/run" --size 256 --batch 8 --epochs 1 --device cuda >/dev/null
    "$@" train sr --data "synthetic:$W/data" --out "$W/run" --phase pretrain --max-steps 20 --batch 8 \
        --val-limit 4 --device cuda >/dev/null
    "$@" export --seg "$W/run/seg-best.pt" --sr "$W/run/sr-pretrain-best.pt" --out "$W/models" >/dev/null
    "$@" bench --models "$W/models" --backend torch --precision fp32 --precision fp16 --mode roi --mode full \
        --frames 30 --warmup 5 --size 256 --json "$LOGS/gpu_bench.json" --plot "$LOGS/gpu_bench.png"
    "$@" bench --models "$W/models" --backend torch --precision fp32 --precision fp16 --mode roi --frames 20 \
        --warmup 5 --size 1024 --json "$LOGS/gpu_bench_1024.json"
    "$@" bench --models "$W/models" --backend onnxruntime --precision fp32 --mode roi --frames 5 --warmup 1 \
        --size 256 --json "$LOGS/gpu_bench_ort_cpu.json"
' bench "${SE[@]}" 2>&1 | tee "$STEP_LOGS/gpu_bench.log"
clibench=${PIPESTATUS[0]}

verdict() { if [ "$1" -eq 0 ]; then echo pass; elif [ "$1" -eq 124 ]; then echo "FAIL (timeout)"; else echo "FAIL (rc $1)"; fi; }
echo "== summary"
echo "nvidia-smi:        $(verdict "$smi")"
echo "pytest gpu/trt:    $(verdict "$tests")  $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$STEP_LOGS/gpu_pytest.log" | tail -1)"
echo "kernel benchmark:  $(verdict "$bench")"
echo "pipeline bench:    $(verdict "$pipe")"
echo "skinedge bench:    $(verdict "$clibench")"
[ "$smi" -eq 0 ] && [ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$pipe" -eq 0 ] && [ "$clibench" -eq 0 ]
