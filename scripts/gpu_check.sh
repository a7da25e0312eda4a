#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the CUDA kernels (preset cuda) and check them against
# the CPU backend, plain and under compute-sanitizer memcheck. Prints a summary table last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
cmake --preset cuda -DCMAKE_CUDA_COMPILER="$NVCC" -DLORASERVE_BENCH=OFF -DLORASERVE_TEXT=OFF >"$OUT/gpu_configure.log" 2>&1 ||
  { tail -20 "$OUT/gpu_configure.log"; exit 1; }
cmake --build --preset cuda -j"$(nproc)" --target cuda_ops_test >"$OUT/gpu_build.log" 2>&1 ||
  { tail -30 "$OUT/gpu_build.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
build/cuda/tests/cuda_ops_test 2>&1 | tee "$OUT/cuda_ops_test.log"
plain=${PIPESTATUS[0]}
san=skipped
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 build/cuda/tests/cuda_ops_test \
    >"$OUT/memcheck.log" 2>&1 && san=clean || san="errors (see memcheck.log)"
fi
printf '\n%-28s %s\n' "check" "result"
printf '%-28s %s\n' "cuda_ops_test vs CPU" "$([ "$plain" = 0 ] && echo pass || echo FAIL)"
printf '%-28s %s\n' "compute-sanitizer memcheck" "$san"
[ "$plain" = 0 ]
