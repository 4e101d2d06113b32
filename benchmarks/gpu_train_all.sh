#!/usr/bin/env bash
# Issue 20's GPU check, one call on a lent GPU machine: `skinedge train all --minutes 9.5 --device cuda` on the three
# shared dev sets, then the run's card, report and state copied to $OUT. 9.5, not 10: one device command may run
# 600 s, Python's start and the wheels included, and --minutes is the whole command's budget.
#
#   bash benchmarks/gpu_train_all.sh DATA_DIR          (DATA_DIR holds isic2017-val96, isic2017-dev290, isic2018-crop512-dev1561)
#
# The device tool sends the checkout only (64 MiB): the sets travel as a packed copy (58 MB) in the ignored folder
# .gpu/data, made by `python benchmarks/pack_shared_data.py`. Wheels in .gpu/whl (segmentation-models-pytorch,
# onnxslim: pure Python, for the device's Python 3.12: `pip download --no-deps --only-binary=:all: --python-version
# 3.12 -d .gpu/whl segmentation-models-pytorch onnxslim`) are installed into /tmp/site first. Run once
# (2026-12-04, H200, MINUTES=8): both networks trained and FP16 passed, then the command ran out inside INT8
# calibration (docs/models.md says what it gave and why).
set -u
cd "$(dirname "$0")/.." || exit 2
DATA=${1:?give the folder that holds the three sets}
PY=${PYTHON:-$(command -v python3 || command -v python)}
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi -L
nproc
"$PY" -c "import skinedge.cli, segmentation_models_pytorch, onnxslim, onnxruntime, torch; assert torch.cuda.is_available()" \
    || exit 3  # fail in seconds, not minutes, on a missing package
MODELS=$(mktemp -d)/models
set -o pipefail
LIMIT=$(awk -v m="${MINUTES:-9.5}" 'BEGIN { printf "%d", m * 60 + 15 }')
timeout "$LIMIT" "$PY" -m skinedge train all --data "isic2018:$DATA/isic2017-val96" --data "isic2018:$DATA/isic2017-dev290" \
    --data "isic2018:$DATA/isic2018-crop512-dev1561" --out "$MODELS" --minutes "${MINUTES:-9.5}" --device cuda \
    2>&1 | tee "$OUT/train_all.log"
rc=$?
echo "train all: exit $rc"
cp "$MODELS/MODEL_CARD.md" "$MODELS/report/report.md" "$MODELS/train/state.json" "$MODELS/train/fingerprint.json" \
    "$MODELS/models.json" "$OUT/" 2>/dev/null
ls -la "$MODELS" "$MODELS/train" 2>/dev/null | head -40
exit $rc
