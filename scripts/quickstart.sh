#!/usr/bin/env bash
# Quick start, command (a): install dependencies, build (release), create the embedded demo
# model and adapters, and generate once per adapter and for the base model in one mixed batch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target loraserve
BIN=build/release/apps/loraserve/loraserve
DEMO=build/demo
"$BIN" make-demo "$DEMO" >/dev/null
cat > "$DEMO/requests.jsonl" <<'JSONL'
{"adapter": null, "prompt_ids": [1, 15, 300, 42], "max_tokens": 16}
{"adapter": "pirate", "prompt_ids": [1, 15, 300, 42], "max_tokens": 16}
{"adapter": "poet", "prompt_ids": [1, 15, 300, 42], "max_tokens": 16}
{"adapter": "coder", "prompt_ids": [1, 15, 300, 42], "max_tokens": 16}
JSONL
echo "== loraserve generate: the demo base model and three LoRA adapters in one mixed batch =="
"$BIN" generate --model "$DEMO/model" \
  --lora pirate="$DEMO/adapters/pirate" --lora poet="$DEMO/adapters/poet" \
  --lora coder="$DEMO/adapters/coder" \
  --requests "$DEMO/requests.jsonl" --output jsonl |
  sed -E -e 's/^\{"adapter":("[a-z]+"|null),"prompt_ids":\[([0-9,]+)\],"tokens":\[([0-9,]+)\].*/\1 [\2] -> [\3]/' \
    -e 's/^null/base    /' -e 's/^"([a-z]+)"/\1        /' -e 's/^(.{8}) */\1 /'
