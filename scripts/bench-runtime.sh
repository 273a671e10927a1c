#!/usr/bin/env bash
# Latency of edgemm's runtime next to TFLite (builtin kernels and XNNPACK) and onnxruntime on
# real-sized models (MLPerf Tiny KWS DS-CNN, VWW MobileNet-v1 0.25, IC ResNet-8, AD autoencoder,
# and MobileNet-v2 1.0 224), int8 and float32, one thread (more with --threads 1,2), on this
# machine. Run by hand, never by CI:
#
#   scripts/bench-runtime.sh                       # all models, int8 + float32, 1 thread, R=3
#   scripts/bench-runtime.sh --threads 1,2         # and a second table with 2 threads
#   scripts/bench-runtime.sh --models kws,ae --dtypes int8 --repeat 5
#   scripts/bench-runtime.sh --quick               # smoke run (R=1, ~0.3 s per measurement)
#   scripts/bench-runtime.sh --help                # every option
#
# It makes a venv ($EDGEMM_BENCH_VENV, default /work/venv-bench; python3 with venv, CPython
# 3.9-3.13) and installs the pins of scripts/requirements-bench.txt from PyPI (again only when
# that file changes), builds and converts the models once into $EDGEMM_BENCH_MODELS (default
# /work/bench-models; seeded random weights, nothing downloaded), builds target/release/edgemm
# with `cargo build --release --bin edgemm` when src/bin/edgemm.rs exists (the edgemm column is
# skipped, with a note, when it does not), then runs scripts/bench_runtime.py, which prints the
# machine, the runtimes' versions and the tables, and writes a CSV (--csv PATH). edgemm runs the
# .tflite files and, for float32, also the .onnx file onnxruntime runs (column "edgemm ONNX",
# NCHW input as the file declares, like onnxruntime's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"   # no cd: --csv and --edgemm paths stay relative to
                                           # the caller's folder, where the CSV goes by default

venv="${EDGEMM_BENCH_VENV:-/work/venv-bench}"
req="$root/scripts/requirements-bench.txt"

py="$(command -v python3 || true)"
[ -n "$py" ] || { echo "error: python3 not found" >&2; exit 1; }
if ! "$py" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 13)))'; then
    echo "error: tensorflow-cpu 2.21 needs CPython 3.9-3.13; python3 is $("$py" -V 2>&1)" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "creating venv $venv" >&2
    if ! "$py" -m venv "$venv"; then
        echo "error: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.edgemm-bench-requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "installing $req into $venv (tensorflow-cpu, onnxruntime, tf2onnx: ~700 MB)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$req"
    echo "$want" > "$stamp"
fi

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
export CUDA_VISIBLE_DEVICES=""
# TensorFlow's C++ side logs through absl before Python can silence it: drop those lines only.
exec "$venv/bin/python" "$root/scripts/bench_runtime.py" "$@" \
    2> >(grep --line-buffered -v -E '^(WARNING: All log messages before absl|INFO: Created TensorFlow Lite XNNPACK delegate|[IW][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_]+\.cc:[0-9]+\])' >&2)
