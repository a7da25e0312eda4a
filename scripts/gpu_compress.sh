#!/usr/bin/env bash
# Issue 9 on the GPU machine (device tool), in one call: builds the CUDA targets, checks the
# shared-basis kernels against the CPU reference (conformance) and end to end (a bundle of the
# golden fixture's adapters served with the shared-basis op on CUDA equals the materialised
# bundle and the CPU), then benchmarks the S-LoRA workload on a Llama-2-7B-shaped model with
# random bf16 weights: one adapter, 1,000 ordinary rank-16 adapters, and the same 1,000 names
# as a compressed bundle (synthetic, K = 16 and 32). Writes logs and bench JSON to $OUT and
# prints a table last.
#   OUT=/tmp/gc GPU_BUDGET_S=380 scripts/gpu_compress.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_compress}
mkdir -p "$OUT"
BUILD=${BUILD:-build/cuda}
BUDGET=${GPU_BUDGET_S:-380}
t0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - t0) )); }
. scripts/gpu_build.sh
gpu_build "$BUILD" "$OUT" backend_conformance_test loraserve
echo "build: $(( $(date +%s) - t0 )) s"
LS="$BUILD/apps/loraserve/loraserve"
declare -a rows
record() { rows+=("$(printf '%-62s %-6s %s' "$1" "$2" "$3")"); }

"$BUILD/tests/backend_conformance_test" --gtest_filter='*Compressed*:*Lora*' >"$OUT/conformance.log" 2>&1
if grep -q "PASSED.*2 tests" "$OUT/conformance.log"; then record "conformance: compressed_lora + lora vs CPU" pass ""
else record "conformance: compressed_lora + lora vs CPU" FAIL "$(grep -E 'FAILED|Failure|rel' "$OUT/conformance.log" | head -3 | tr '\n' ' ')"; fi

fx=tests/fixtures/golden/gqa_bf16
"$LS" compress --model "$fx" --adapters "$fx/adapters" --rank 24 --clusters 2 --out /tmp/gc_bundle \
  >"$OUT/compress.json" 2>"$OUT/compress.err"
args="--model $fx --lora-bundle /tmp/gc_bundle --adapter all_r16_bf16 --prompt-ids 1,5,9,13,17,21 --max-tokens 12 --output json"
"$LS" generate $args --device cuda --bundle-serving shared >"$OUT/gen_cuda_shared.json" 2>"$OUT/gen.err"
"$LS" generate $args --device cuda --bundle-serving materialize >"$OUT/gen_cuda_mat.json" 2>>"$OUT/gen.err"
"$LS" generate $args --device cpu --bundle-serving shared >"$OUT/gen_cpu_shared.json" 2>>"$OUT/gen.err"
python3 - "$OUT" >"$OUT/gen_compare.txt" 2>&1 <<'PY'
import json, sys
d = sys.argv[1]
def load(n):
    return json.load(open(f"{d}/{n}.json"))
a, b, c = load("gen_cuda_shared"), load("gen_cuda_mat"), load("gen_cpu_shared")
same = a["tokens"] == b["tokens"] == c["tokens"]
dl = max(max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"])),
         max(abs(x - y) for x, y in zip(a["logprobs"], c["logprobs"])))
print("tokens", a["tokens"], "same" if same else "DIFFER", "max_dlogprob %.3g" % dl)
sys.exit(0 if same and dl < 2e-3 else 1)
PY
if [ $? = 0 ]; then record "generate: bundle shared (cuda) == materialized (cuda) == cpu" pass "$(cat "$OUT/gen_compare.txt")"
else record "generate: bundle shared (cuda) == materialized (cuda) == cpu" FAIL "$(tail -2 "$OUT/gen_compare.txt" "$OUT/gen.err" | tr '\n' ' ')"; fi

# S-LoRA workload (numpy-exact arrivals), shortened to fit the device budget.
W="--in-process --device cuda --model random:llama2-7b --ranks 16 --rate 12 --duration 20 --input-range 8,256 --output-range 8,128 --seed 42 --max-num-seqs 128"
bench() {  # label args...
  local label=$1; shift
  if [ "$(left)" -lt 60 ]; then record "bench $label" skip "budget"; return; fi
  timeout $(( $(left) - 10 )) "$LS" bench $W "$@" --out "$OUT/bench_$label.json" >"$OUT/bench_$label.log" 2>&1
  local rc=$?
  record "bench $label" "$([ $rc = 0 ] && echo ok || echo FAIL)" "rc=$rc"
}
bench single_and_1000 --num-adapters 1,1000 --adapter-variants 25 --adapter-dir /tmp/gc_adapters
bench compressed_k16 --num-adapters 1000 --synthetic-bundle 16
bench compressed_k32 --num-adapters 1000 --synthetic-bundle 32
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt"

echo; echo "== $(cat "$OUT/gpu.txt") =="
for r in "${rows[@]}"; do echo "$r"; done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
print("%-16s %-40s %6s %7s %10s %9s %9s" % ("file", "run", "reqs", "req/s", "out_tok/s", "ttft_p50", "tpot_p50"))
for f in sorted(glob.glob(sys.argv[1] + "/bench_*.json")):
    for r in json.load(open(f))["runs"]:
        m = r["metrics"]
        print("%-16s %-40s %6s %7.2f %10.1f %9.3f %9.4f" % (os.path.basename(f)[6:-5], r["label"][:40],
              m["requests"], m["request_throughput"], m["output_token_throughput"],
              m["ttft_s"]["p50"], m["tpot_s"]["p50"]))
PY
echo "total: $(( $(date +%s) - t0 )) s"
