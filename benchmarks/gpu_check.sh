#!/usr/bin/env bash
# Every check that needs an NVIDIA GPU, as one run on a machine that has one, with a Python
# ($PYTHON, else python3) that holds a CUDA build of PyTorch (the engine only: no Qt). From the
# repository's root:
#
#   bash benchmarks/gpu_check.sh OUTDIR [more bench-shape options]
#
# Wheels of pure-Python packages that machine lacks (platformdirs, gguf) may wait in .whl/.
# OUTDIR receives the device's description, the test log, the bench log and BENCHMARKS-GPU.md
# and .json. Options after OUTDIR go to `gemma-desk-cli bench-shape` and win over its defaults
# here (4B shape, CUDA, with the compiled-step variant).
set -u -o pipefail
out=${1:?"usage: bash benchmarks/gpu_check.sh OUTDIR [bench-shape options]"}
shift
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site \
        .whl/*.whl && PYTHONPATH="$PYTHONPATH:/tmp/gpu-check-site"
fi
status=0
"$python" -m engine.cli info 2>&1 | tee "$out/device.txt"
"$python" -m pytest -q -p no:cacheprovider tests/test_graph_step.py 2>&1 | tee "$out/tests.log" \
    || status=1
"$python" -m engine.cli bench-shape --shape 4b --device cuda --compile \
    --out "$out/BENCHMARKS-GPU.md" "$@" 2>&1 | tee "$out/bench.log" || status=1
exit $status
