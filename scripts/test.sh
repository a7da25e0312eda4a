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
  cmake --build --preset cuda -j"$(nproc)" --target ls_backend_cuda backend_conformance_test \
    cuda_golden_test
else
  echo "== nvcc not found: CUDA backend not compiled =="
fi
# The official OpenAI Node client for the server's end-to-end test (skipped when npm or the
# registry is unreachable; the test then says so).
if command -v npm >/dev/null && [ ! -d build/node-openai/node_modules/openai ]; then
  timeout 180 npm install --prefix build/node-openai openai@4.104.0 --no-audit --no-fund \
    --loglevel=error >/dev/null 2>&1 || echo "== npm install openai failed: Node client test skipped =="
fi
ctest --preset dev
echo "== fuzzing the tokenizer (libFuzzer, 30 s) =="
bash scripts/fuzz_tokenizer.sh 30
