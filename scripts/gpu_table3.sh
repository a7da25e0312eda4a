#!/usr/bin/env bash
# Issue 8 on the GPU machine (device tool): S-LoRA's Table 3 workload on a Llama-2-7B-shaped
# model with random bf16 weights, in parts that each fit one device call (a full-scale run is
# 120 s of arrivals plus the drain, eight of them plus the peers do not fit one 10-minute call).
# Builds loraserve (preset cuda, no text layer), writes the bench adapters it needs (25 real
# variants per rank, the other names linked to them), then runs the part asked for. Results:
# $OUT/t3_<part>.json (loraserve bench's JSON, command and machine inside), logs, a table.
#   scripts/gpu_table3.sh r8 5,100,1000          ranks {8}, these N
#   scripts/gpu_table3.sh rmix 1000,2000         ranks {64,32,16,8}, these N
#   scripts/gpu_table3.sh base                   the same requests (N = 5, ranks {8}) without LoRA
#   scripts/gpu_table3.sh peft SECONDS           transformers + PEFT on that trace, capped
# Env: OUT (default /tmp/gpu_table3), T3_DURATION (default 120, S-LoRA's), BUILD.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_table3}
mkdir -p "$OUT"
BUILD=${BUILD:-build/cuda}
DURATION=${T3_DURATION:-120}
part=${1:-}
arg=${2:-}
case "$part" in
  r8|rmix|base|peft) ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
t0=$(date +%s)
. scripts/gpu_build.sh
gpu_build "$BUILD" "$OUT" loraserve
echo "build: $(( $(date +%s) - t0 )) s"
LS="$BUILD/apps/loraserve/loraserve"
A=/tmp/t3_adapters
# S-LoRA's Table 3 setting, as `--suite slora-table3` runs it, one rank set at a time.
W=(--in-process --device cuda --model random:llama2-7b --alpha 1 --cv 1 --rate 10
   --duration "$DURATION" --input-range 8,512 --output-range 8,512 --seed 42
   --max-num-seqs 128 --adapter-dir "$A" --adapter-variants 25)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

case "$part" in
  r8 | rmix)
    ranks=8; [ "$part" = rmix ] && ranks=64,32,16,8
    "$LS" bench "${W[@]}" --ranks "$ranks" --num-adapters "${arg:-5,100,1000,2000}" \
      --out "$OUT/t3_${part}.json" 2>&1 | tee "$OUT/t3_${part}.log"
    rc=${PIPESTATUS[0]}
    ;;
  base)
    "$LS" bench "${W[@]}" --ranks 8 --num-adapters 5 --no-lora --out "$OUT/t3_base.json" 2>&1 |
      tee "$OUT/t3_base.log"
    rc=${PIPESTATUS[0]}
    ;;
  peft)
    "$LS" bench "${W[@]}" --ranks 8 --num-adapters 5 --write-trace "$OUT/t3_n5_r8.jsonl" \
      --dry-run >"$OUT/trace.log" 2>&1 || { cat "$OUT/trace.log"; exit 1; }
    "$LS" bench "${W[@]}" --ranks 8 --num-adapters 5 --make-adapters >>"$OUT/trace.log" 2>&1 ||
      { cat "$OUT/trace.log"; exit 1; }
    PYTHONUNBUFFERED=1 timeout -k 10 $(( ${arg:-150} + 120 )) python3 tools/peers/peft_serve.py \
      --random-shape llama2-7b --adapter-dir "$A" --trace "$OUT/t3_n5_r8.jsonl" \
      --max-seconds "${arg:-150}" --out "$OUT/t3_peft.json" 2>&1 | tee "$OUT/t3_peft.log"
    rc=${PIPESTATUS[0]}
    ;;
esac
python3 - "$OUT" <<'PY'
import glob, json, os, sys
print("%-10s %-34s %6s %6s %7s %10s %9s %9s %6s" % ("file", "run", "reqs", "done", "req/s",
      "out_tok/s", "ttft_p50", "tpot_p50", "slo"))
for f in sorted(glob.glob(sys.argv[1] + "/t3_*.json")):
    for r in json.load(open(f))["runs"]:
        m = r["metrics"]
        print("%-10s %-34s %6d %6d %7.2f %10.1f %9.3f %9.4f %6.3f" % (
            os.path.basename(f)[3:-5], r["label"][:34], m["requests"],
            m.get("completed", m["requests"] - m.get("failed", 0)), m["request_throughput"],
            m["output_token_throughput"], m["ttft_s"]["p50"], m["tpot_s"]["p50"],
            m["slo_attainment"]))
PY
echo "total: $(( $(date +%s) - t0 )) s"
exit $rc
