#!/usr/bin/env bash
# Quick start, command (b): install dependencies, check formatting, build with ASan/UBSan
# (preset dev) and run the whole test suite; where nvcc exists, also compile the CUDA backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/check_format.sh
cmake --preset dev >/dev/null
cmake --build --preset dev -j"$(nproc)"
if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null; then
  echo "== nvcc found: compiling the CUDA backend (preset cuda) =="
  cmake --preset cuda >/dev/null
  cmake --build --preset cuda -j"$(nproc)" --target ls_backend_cuda cuda_ops_test
else
  echo "== nvcc not found: CUDA backend not compiled =="
fi
ctest --preset dev
echo "== fuzzing the tokenizer (libFuzzer, 30 s) =="
bash scripts/fuzz_tokenizer.sh 30
