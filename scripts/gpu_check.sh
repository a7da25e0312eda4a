#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the CUDA backend's tests (preset cuda, no text layer)
# and run the whole GPU suite: the op conformance suite against the CPU backend, the HF golden
# fixtures through CUDA, `loraserve generate --device cuda` against --device cpu, and the
# conformance suite under compute-sanitizer memcheck. Logs go to $OUT (default /tmp/gpu_check);
# a summary table is printed last. Exit status 0 only when every check passed.
#   scripts/gpu_check.sh [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
BUILD=${1:-build/cuda}
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
TARGETS="backend_conformance_test bf16_activations_test cuda_golden_test cuda_graph_test random_model_bench"
cmake --preset cuda -B "$BUILD" -DCMAKE_CUDA_COMPILER="$NVCC" -DLORASERVE_BENCH=ON \
  -DLORASERVE_TEXT=OFF >"$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
start=$(date +%s)
cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS >"$OUT/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A5 "$OUT/build.log" | head -60; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target loraserve >"$OUT/build_cli.log" 2>&1 ||
  grep -E "error|FAILED" -A5 "$OUT/build_cli.log" | head -30
echo "build: $(( $(date +%s) - start )) s"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)

declare -a rows
status=0
record() {  # name result detail
  rows+=("$(printf '%-58s %-6s %s' "$1" "$2" "$3")")
  [ "$2" = pass ] || status=1
}

# 1. gtest suites: one row per test.
run_suite() {  # binary log
  "$BUILD/tests/$1" --gtest_color=no >"$OUT/$2" 2>&1
  local rc=$?
  while read -r line; do
    name=$(echo "$line" | sed -E 's/^\[ +(OK|FAILED) +\] ([^ ,]+).*/\2/')
    if [[ "$line" == *"[       OK ]"* ]]; then record "$name" pass ""; else record "$name" FAIL "see $2"; fi
  done < <(grep -E '^\[ +(OK|FAILED) +\] .* \([0-9]+ ms\)$' "$OUT/$2")
  # A test that started and never finished crashed the binary.
  for name in $(grep -E '^\[ RUN +\] ' "$OUT/$2" | awk '{print $4}'); do
    grep -qE "^\[ +(OK|FAILED) +\] $name[ ,]" "$OUT/$2" || record "$name" FAIL "crashed, see $2"
  done
  grep -q "SKIPPED" "$OUT/$2" && record "$1: skipped tests" FAIL "no GPU seen?"
  [ $rc = 0 ] || record "$1 exit status" FAIL "rc=$rc"
}
run_suite backend_conformance_test conformance.log
run_suite bf16_activations_test bf16_activations.log
run_suite cuda_golden_test golden.log
run_suite cuda_graph_test graphs.log

# 2. The CLI: generate on a golden fixture with --device cuda equals --device cpu (greedy),
#    with an fp32 page pool and with a bf16 one (both devices round the same values).
fx=tests/fixtures/golden/gqa_bf16
args="--model $fx --lora a=$fx/adapters/$(ls $fx/adapters | head -1) --adapter a --prompt-ids 1,5,9,13 --max-tokens 8 --output json"
tok() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"])' "$1" 2>/dev/null; }
for kvd in fp32 bf16; do
  "$BUILD/apps/loraserve/loraserve" generate $args --kv-cache-dtype $kvd --device cuda \
    >"$OUT/gen_cuda_$kvd.json" 2>"$OUT/gen_cuda_$kvd.err"
  rc_c=$?
  "$BUILD/apps/loraserve/loraserve" generate $args --kv-cache-dtype $kvd --device cpu \
    >"$OUT/gen_cpu_$kvd.json" 2>"$OUT/gen_cpu_$kvd.err"
  t_c=$(tok "$OUT/gen_cuda_$kvd.json")
  if [ $rc_c = 0 ] && [ -n "$t_c" ] && [ "$t_c" = "$(tok "$OUT/gen_cpu_$kvd.json")" ]; then
    record "loraserve generate --device cuda == cpu ($kvd KV)" pass "$t_c"
  else
    record "loraserve generate --device cuda == cpu ($kvd KV)" FAIL "rc=$rc_c, see gen_*_$kvd.json/err"
  fi
done

# 3. Real shapes with random bf16 weights made on the GPU, mixed adapters through the engine.
for shape in llama2-7b llama3-8b; do
  "$BUILD/bench/random_model_bench" --shape $shape --device cuda --adapters 8 \
    --ranks 8,16,64,128 --requests 16 --prompt-len 128 --max-tokens 16 >"$OUT/random_$shape.log" 2>&1
  if [ $? = 0 ]; then record "random $shape: 8 adapters, 16 requests" pass "$(grep -o '[0-9.]* tok/s' "$OUT/random_$shape.log")";
  else record "random $shape: 8 adapters, 16 requests" FAIL "see random_$shape.log"; fi
done

# 3b. Decode graphs against --enforce-eager on the 7B shape: same greedy tokens, both speeds.
for mode in graphs eager; do
  extra=""; [ $mode = eager ] && extra="--enforce-eager"
  "$BUILD/bench/random_model_bench" --shape llama2-7b --device cuda --adapters 32 --ranks 16 \
    --requests 64 --prompt-len 64 --max-tokens 128 $extra >"$OUT/decode_$mode.log" 2>&1
done
tok_g=$(grep -o "first request's tokens:.*" "$OUT/decode_graphs.log")
tok_e=$(grep -o "first request's tokens:.*" "$OUT/decode_eager.log")
rate() { grep -o '[0-9.]* tok/s' "$OUT/decode_$1.log"; }
if grep -q "all requests complete" "$OUT/decode_graphs.log" && [ -n "$tok_g" ] && [ "$tok_g" = "$tok_e" ] &&
   grep -q "[1-9][0-9]* replays, 0 eager" "$OUT/decode_graphs.log"; then
  record "7B decode, 64 seqs x 32 adapters: graphs == eager" pass "graphs $(rate graphs), eager $(rate eager)"
else
  record "7B decode, 64 seqs x 32 adapters: graphs == eager" FAIL "see decode_*.log"
fi

# 4. compute-sanitizer memcheck on the conformance suite.
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/backend_conformance_test" \
    --gtest_color=no >"$OUT/memcheck.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then record "compute-sanitizer memcheck (conformance suite)" pass "";
  else record "compute-sanitizer memcheck (conformance suite)" FAIL "rc=$rc, see memcheck.log"; fi
else
  record "compute-sanitizer memcheck (conformance suite)" FAIL "compute-sanitizer not found"
fi
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/bf16_activations_test" \
    --gtest_color=no >"$OUT/memcheck_bf16.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then record "compute-sanitizer memcheck (bf16 activations, flash attention)" pass "";
  else record "compute-sanitizer memcheck (bf16 activations, flash attention)" FAIL "rc=$rc, see memcheck_bf16.log"; fi
  compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/cuda_graph_test" \
    --gtest_color=no --gtest_filter='*mha_f32*:*/0' >"$OUT/memcheck_graphs.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then record "compute-sanitizer memcheck (CUDA graphs, mha_f32)" pass "";
  else record "compute-sanitizer memcheck (CUDA graphs, mha_f32)" FAIL "rc=$rc, see memcheck_graphs.log"; fi
fi

echo
echo "GPU: $gpu"
grep -h "^\[ golden" "$OUT/golden.log" || true
grep -h "^\[ flash" "$OUT/bf16_activations.log" || true
grep -h "^\[ graphs" "$OUT/graphs.log" || true
grep -h "decode graphs:\|tok/s" "$OUT"/decode_*.log || true
cat "$OUT"/random_*.log 2>/dev/null | grep -E "^(shape|device|page|[0-9]+ requests)" || true
printf '%-58s %-6s %s\n' "check" "result" "detail"
printf '%s\n' "${rows[@]}"
exit $status
