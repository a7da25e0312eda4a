#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: every performance target of issue 7 in one command. Builds
# gpu_perf_bench (preset cuda, no text layer, benchmarks on, into build/cuda as gpu_check.sh
# does), runs its eight sections (copy/GEMM ceilings, decode roofline, prefill, LoRA overhead,
# kernels, adapter loading, capacity, our side of the peer workload; each in its own process,
# see bench/gpu_perf_bench.cpp), then the transformers + PEFT peer
# (tools/peers/peft_decode_bench.py), and prints a summary with the ours/PEFT ratio.
# Everything lands in $OUT (default /tmp/gpu_perf): gpu_perf.json and peft_decode.json (command,
# machine, every figure), the logs, summary.txt. Adapters written to disk for the run go to a
# temp dir outside $OUT and are removed. The whole script keeps to GPU_PERF_BUDGET_S seconds
# (default 570, build included): the bench gets what the build and the peer's share leave, and
# sections it cannot start in time are reported as skipped.
#   scripts/gpu_perf.sh                      everything (~6-8 min on an H100 with a fresh build)
#   scripts/gpu_perf.sh --quick              a short smoke pass of every section
#   scripts/gpu_perf.sh --build-only         just the build (then a second call runs in full)
#   scripts/gpu_perf.sh --sections decode,lora --no-peft [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_perf}
mkdir -p "$OUT"
BUDGET=${GPU_PERF_BUDGET_S:-570}
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }

QUICK="" SECTIONS="" PEFT=1 BUILD_ONLY=0 BUILD=build/cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --sections) SECTIONS="${2:-}"; shift ;;
    --sections=*) SECTIONS="${1#*=}" ;;
    --no-peft) PEFT=0 ;;
    --build-only) BUILD_ONLY=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "gpu_perf.sh: unknown option $1 (see --help)"; exit 2 ;;
    *) BUILD="$1" ;;
  esac
  shift
done

. scripts/gpu_build.sh
gpu_build "$BUILD" "$OUT" gpu_perf_bench
echo "build: $(elapsed) s ($BUILD/bench/gpu_perf_bench)"
[ $BUILD_ONLY = 1 ] && exit 0

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
echo "GPU: ${gpu:-none seen by nvidia-smi}"

# The peer needs ~2.5 min in full (PEFT decodes ~4k tokens at tens of tokens/s), ~1 min quick.
peft_share=0
if [ $PEFT = 1 ]; then peft_share=150; [ -n "$QUICK" ] && peft_share=70; fi
bench_budget=$((BUDGET - $(elapsed) - peft_share - 15))
[ $bench_budget -lt 60 ] && bench_budget=60
section_timeout=$((bench_budget < 240 ? bench_budget : 240))
args=(--out "$OUT/gpu_perf.json" --time-budget "$bench_budget" --section-timeout "$section_timeout")
[ -n "$QUICK" ] && args+=(--quick)
[ -n "$SECTIONS" ] && args+=(--sections "$SECTIONS")
echo "bench: budget ${bench_budget} s, at most ${section_timeout} s per section"
"$BUILD/bench/gpu_perf_bench" "${args[@]}" 2>&1 | tee "$OUT/gpu_perf.log"
bench_rc=${PIPESTATUS[0]}

peft_rc=0
if [ $PEFT = 1 ]; then
  left=$((BUDGET - $(elapsed) - 10))
  if [ $left -gt 30 ]; then
    echo
    echo "=== peer: transformers + PEFT (at most ${left} s) ==="
    timeout -k 10 "$left" python3 tools/peers/peft_decode_bench.py --out "$OUT/peft_decode.json" \
      $QUICK 2>&1 | tee "$OUT/peft.log"
    peft_rc=${PIPESTATUS[0]}
    [ $peft_rc = 124 ] && echo "peer: stopped after ${left} s (GPU_PERF_BUDGET_S)"
  else
    echo "peer: skipped, no time left of GPU_PERF_BUDGET_S=${BUDGET}"
    peft_rc=1
  fi
fi

echo
python3 - "$OUT/gpu_perf.json" "$OUT/peft_decode.json" "$gpu" "$(elapsed)" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
bench_path, peft_path, gpu, secs = sys.argv[1:5]
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
bench, peft = load(bench_path), load(peft_path)
print(f"=== issue 7 summary: {gpu or 'GPU unknown'}; {secs} s ===")
if bench is None:
    print(f"no bench results ({bench_path})")
else:
    print(f"command: {bench.get('command', '')}")
    print(f"{'section':12s} {'status':8s} {'target':6s} result")
    for name, r in bench.get("sections", {}).items():
        ok = r.get("status") == "ok"
        print(f"{name:12s} {r.get('status', '?'):8s} {r.get('verdict', '-') if ok else '-':6s} "
              f"{r.get('headline', '') if ok else r.get('error', '')}")
ours = ((bench or {}).get("sections", {}).get("peer", {}) or {}).get("data", {})
res = (peft or {}).get("results", {})
o, ob = ours.get("ours_tok_s"), ours.get("ours_base_tok_s")
p, pb = res.get("peft_mixed", {}).get("output_tok_s"), res.get("base", {}).get("output_tok_s")
print()
print(f"peer (batch {ours.get('batch', '?')}, prompt {ours.get('prompt', '?')}, "
      f"{ours.get('new_tokens', '?')} new tokens, {ours.get('adapters', '?')} distinct rank-16 "
      "q,k,v,o adapters):")
fmt = lambda x: f"{x:.1f}" if isinstance(x, (int, float)) else "n/a"
print(f"  output tok/s with adapters: ours {fmt(o)}, transformers+PEFT {fmt(p)}"
      + (f", ratio {o / p:.1f}x (target >= 20x: {'met' if o / p >= 20 else 'not met'})"
         if o and p else ""))
print(f"  output tok/s base model:    ours {fmt(ob)}, transformers {fmt(pb)}"
      + (f", ratio {ob / pb:.1f}x" if ob and pb else ""))
if peft and peft.get("errors"):
    print(f"  PEFT errors: {peft['errors']}")
if ours and peft and peft.get("config", {}).get("new_tokens") != ours.get("new_tokens"):
    print("  note: the two sides ran different token counts (--quick on one side?)")
print(f"files: {os.path.dirname(bench_path)}/{{gpu_perf.json,peft_decode.json,gpu_perf.log,"
      f"peft.log,summary.txt}}")
EOF
[ $bench_rc = 0 ] && [ $peft_rc = 0 ]
