#!/usr/bin/env bash
# Quick start, command (a): install dependencies, build (release), create the embedded demo
# model and adapters, start `loraserve serve` on it, send one request per adapter (and one to
# the base model) through the OpenAI API, and stop the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target loraserve
BIN=build/release/apps/loraserve/loraserve
DEMO=build/demo
PORT=${LORASERVE_PORT:-8000}
"$BIN" make-demo "$DEMO" >/dev/null
echo "== loraserve serve: the demo model; adapters pirate, poet, coder from --lora-root =="
"$BIN" serve --model "$DEMO/model" --served-model-name demo --lora-root "$DEMO/adapters" \
  --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "loraserve serve exited" >&2; exit 1; }
  sleep 0.1
done
for model in demo pirate poet coder; do
  echo "-- POST /v1/completions model=$model"
  curl -sf "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$model\", \"prompt\": \"Once upon a time\", \"max_tokens\": 12, \"temperature\": 0}"
  echo
done
echo "-- POST /v1/chat/completions model=pirate"
curl -sf "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "pirate", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8}'
echo
kill -TERM $SERVER
wait $SERVER
trap - EXIT
