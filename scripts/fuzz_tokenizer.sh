#!/usr/bin/env bash
# Builds tests/fuzz/tokenizer_fuzz.cpp with clang's libFuzzer + ASan/UBSan and runs it.
#   scripts/fuzz_tokenizer.sh [SECONDS]   (default 30)
# Seeds: the trained tokenizer.json fixtures (prefixed with an even byte: "load this") and the
# corpus strings (prefixed with odd bytes: "encode this"). Findings and the grown corpus stay in
# build/fuzz/. Exit status is libFuzzer's: non-zero when it found a crash or a broken invariant.
# LS_FUZZ_SHARED=../shared/tokenizers/llama3 adds a real tokenizer to the encode half.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-30}
OUT=build/fuzz
mkdir -p "$OUT/corpus" "$OUT/seeds"
CXX=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$CXX" ]; then
  echo "fuzz_tokenizer: clang++ not found (apt-get install clang)" >&2
  exit 2
fi

# The tokenizer sources only: src/text also holds the chat-template engine.
SOURCES=()
for f in src/text/*.cpp; do
  case "$(basename "$f")" in jinja_* | chat_template*) ;; *) SOURCES+=("$f") ;; esac
done
if [ ! -x "$OUT/tokenizer_fuzz" ] || [ -n "$(find src/text tests/fuzz -newer "$OUT/tokenizer_fuzz" -name '*.[ch]*' | head -1)" ]; then
  echo "== building $OUT/tokenizer_fuzz with $CXX"
  "$CXX" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Isrc tests/fuzz/tokenizer_fuzz.cpp "${SOURCES[@]}" src/base/file_util.cpp \
    $(pkg-config --cflags --libs libpcre2-8 libutf8proc sentencepiece) -o "$OUT/tokenizer_fuzz"
fi

python3 - "$OUT/seeds" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
for i, path in enumerate(sorted(glob.glob("tests/fixtures/text/tokenizers/trained/*/tokenizer.json"))):
    with open(path, "rb") as f:
        data = f.read()
    with open(os.path.join(out, f"load_{i}"), "wb") as f:
        f.write(b"\x00" + data)
with open(os.path.join(out, "load_min"), "wb") as f:
    f.write(b"\x02" + json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                                            "merges": ["a b"]}}).encode())
with open("tests/fixtures/text/tokenizers/corpus.jsonl", encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in f]
for i, t in enumerate(texts[::7]):
    with open(os.path.join(out, f"text_{i}"), "wb") as f:
        f.write(bytes([1 + 2 * (i % 4)]) + t.encode("utf-8"))
EOF

export LS_FUZZ_FIXTURES=tests/fixtures/text/tokenizers/trained
echo "== fuzzing for ${SECONDS_TO_RUN}s"
"$OUT/tokenizer_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=20 \
  -rss_limit_mb=4096 -artifact_prefix="$OUT/" -print_final_stats=1 "$OUT/corpus" "$OUT/seeds"
