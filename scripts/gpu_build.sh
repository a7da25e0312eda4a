# Sourced by the scripts/gpu_*.sh scripts (GPU machine): configures the CUDA build (preset cuda,
# benchmarks on, no text layer: the GPU machine has no PCRE2) and builds the targets given.
#   gpu_build BUILD_DIR LOG_DIR TARGET...   logs in LOG_DIR/{configure,build}.log; exits on error
gpu_build() {
  local build=$1 logs=$2
  shift 2
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake --preset cuda -B "$build" -DCMAKE_CUDA_COMPILER="$nvcc" -DLORASERVE_BENCH=ON \
    -DLORASERVE_TEXT=OFF >"$logs/configure.log" 2>&1 || { tail -20 "$logs/configure.log"; exit 1; }
  cmake --build "$build" -j"$(nproc)" --target "$@" >"$logs/build.log" 2>&1 ||
    { grep -E "error|FAILED" -A5 "$logs/build.log" | head -60; exit 1; }
}
