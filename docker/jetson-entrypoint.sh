#!/bin/sh
# Entrypoint of the Jetson image (Dockerfile.jetson).
#
# Before the commands that run the networks (run, enhance, bench) it calls
# `skinedge build-engines` on the models volume: the first start builds the
# TensorRT engines into the engines volume (minutes on an Orin), later starts
# find engines whose sidecar manifest matches this GPU, this TensorRT and the
# current ONNX files, and reuse them (seconds). A failed build is reported and
# skinedge still starts: `--backend auto` then falls back to ONNX Runtime on the
# CPU and says so; `--backend tensorrt` stops with its own one-line error.
#
# Settings (environment):
#   SKINEDGE_MODELS          models directory           (default /data/models)
#   SKINEDGE_ENGINES         engines directory          (default /data/engines)
#   SKINEDGE_PROFILE         build profile, e.g. /opt/skinedge/export/jetson-orin-int8.toml
#                            (default: none, i.e. FP16 for both networks)
#   SKINEDGE_BUILD_ENGINES   0 skips the build step     (default 1)
set -eu

models="${SKINEDGE_MODELS:-/data/models}"
engines="${SKINEDGE_ENGINES:-/data/engines}"
profile="${SKINEDGE_PROFILE:-}"

case "${1:-}" in
    run | enhance | bench) needs_engines=1 ;;
    *) needs_engines=0 ;;
esac

if [ "$needs_engines" = 1 ] && [ "${SKINEDGE_BUILD_ENGINES:-1}" = 1 ]; then
    if [ ! -f "$models/models.json" ]; then
        echo "skinedge-entrypoint: no models.json in $models: mount a models directory made by" \
             "\`skinedge export\`/\`calibrate\` there (-v \$PWD/models:$models); engines not built" >&2
    else
        if [ -n "$profile" ]; then
            build_ok=1
            skinedge build-engines --models "$models" --out "$engines" --profile "$profile" || build_ok=0
        else
            build_ok=1
            skinedge build-engines --models "$models" --out "$engines" || build_ok=0
        fi
        if [ "$build_ok" = 0 ]; then
            echo "skinedge-entrypoint: building TensorRT engines failed (see above); is the container" \
                 "started with --runtime nvidia? Continuing without new engines." >&2
        fi
    fi
fi

exec skinedge "$@"
