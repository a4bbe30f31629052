#!/usr/bin/env bash
# GPU readiness in one go, for the day an accelerator is available (target: under 8 minutes on one H200):
#   1. the CUDA / bf16 / torch.compile tests (tests/proxies/test_gpu.py, the CUDA cases of tests/kernels),
#   2. the MFU benchmark (experiments/bench_gpu.py: train_proxy in bf16, compiled and eager, against the
#      GPU's measured bf16 matmul peak).
# Needs a CUDA build of torch in the environment (scripts/install.sh pins the CPU build; on a GPU machine
# install the CUDA wheel of the same torch version first). Nothing in CI runs this.
#
#   bash experiments/gpu_check.sh                 # results under experiments/out/gpu_check/
#   MIXOPT_PY=/path/to/python OUT=/tmp/gpu bash experiments/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${MIXOPT_PY:-.venv/bin/python}
OUT=${OUT:-experiments/out/gpu_check}
mkdir -p "$OUT"
start=$(date +%s)
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
  f"error: torch {torch.__version__} sees no CUDA device; install a CUDA build of torch")'

echo "== tests (CUDA, bf16, compile) =="
set +e
timeout 300 "$PY" -m pytest -q -rs --timeout 240 -p no:cacheprovider \
  tests/proxies/test_gpu.py tests/kernels 2>&1 | tee "$OUT/tests.txt"
tests_rc=${PIPESTATUS[0]}
echo "== MFU benchmark =="
timeout 240 "$PY" experiments/bench_gpu.py --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
bench_rc=${PIPESTATUS[0]}
set -e
echo "gpu_check: tests rc=$tests_rc, benchmark rc=$bench_rc, $(( $(date +%s) - start )) s in all; results in $OUT"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
