#!/usr/bin/env python3
"""The Hugging Face half of the tokenizer speed benchmark (bench/tokenizer_bench.cpp is ours).

  --write-inputs DIR   writes english.txt and mixed.txt (about 1 MB each, one paragraph a line,
                       seeded, no third-party text); both benchmarks read these same files.
  --measure DIR        times HF `tokenizers` encode (add_special_tokens=False) single-threaded
                       (RAYON_NUM_THREADS=1) on each file with each --tokenizer NAME=tokenizer.json
                       and prints/writes MB/s: best of --repeats passes after one warm-up pass,
                       for per-line encode() and for encode_batch() on one thread.

    python3 tools/tokenizer_bench_hf.py --write-inputs /tmp/bench
    python3 tools/tokenizer_bench_hf.py --measure /tmp/bench \
        --tokenizer llama3=../shared/tokenizers/llama3/tokenizer.json --json /tmp/hf.json
"""
import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TARGET_BYTES = 1 << 20


def english_lines(rng):
    import make_tokenizer_corpus as corpus
    words = corpus.WORDS
    weights = [1.0 / (i + 1) for i in range(len(words))]  # Zipf-like, as real text
    lines, size = [], 0
    while size < TARGET_BYTES:
        sentences = []
        for _ in range(rng.randint(3, 9)):
            ws = rng.choices(words, weights, k=rng.randint(5, 22))
            ws[0] = ws[0].capitalize()
            if rng.random() < 0.15:
                ws.insert(rng.randrange(len(ws)), str(rng.randint(1, 2030)))
            if rng.random() < 0.2:
                i = rng.randrange(len(ws))
                ws[i] = ws[i] + ","
            if rng.random() < 0.1:
                ws.insert(rng.randrange(len(ws)), rng.choice(["don't", "it's", "we'll", "I'm", "they're"]))
            sentences.append(" ".join(ws) + rng.choice([".", ".", ".", "!", "?"]))
        line = " ".join(sentences)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return lines


def mixed_lines(rng):
    import make_tokenizer_corpus as corpus
    fixed = corpus.MULTILINGUAL + corpus.EMOJI + corpus.COMBINING + corpus.NUMBERS + corpus.CODE
    lines, size = [], 0
    while size < TARGET_BYTES:
        parts = []
        for _ in range(rng.randint(4, 10)):
            parts.append(rng.choice(fixed) if rng.random() < 0.5 else corpus.random_text(rng))
        line = " ".join(parts).replace("\n", " ").replace("\r", " ")
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return lines


def write_inputs(d):
    os.makedirs(d, exist_ok=True)
    for name, fn in (("english", english_lines), ("mixed", mixed_lines)):
        lines = fn(random.Random(12345))
        with open(os.path.join(d, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {d}/{name}.txt ({sum(len(x.encode()) for x in lines)} bytes, {len(lines)} lines)")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip("\n")]


def best_time(fn, repeats):
    fn()  # warm-up fills HF's word cache, as ours is warmed
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(d, specs, repeats, json_path):
    import tokenizers
    from tokenizers import Tokenizer
    results = {"tokenizers_version": tokenizers.__version__,
               "rayon_threads": os.environ.get("RAYON_NUM_THREADS"), "results": []}
    for spec in specs:
        name, path = spec.split("=", 1)
        tok = Tokenizer.from_file(path)
        tok.no_padding()
        tok.no_truncation()
        for text_name in ("english", "mixed"):
            lines = read_lines(os.path.join(d, text_name + ".txt"))
            nbytes = sum(len(x.encode("utf-8")) for x in lines)
            t_single = best_time(lambda: [tok.encode(x, add_special_tokens=False) for x in lines], repeats)
            t_batch = best_time(lambda: tok.encode_batch(lines, add_special_tokens=False), repeats)
            ntok = sum(len(tok.encode(x, add_special_tokens=False).ids) for x in lines)
            row = {"tokenizer": name, "text": text_name, "bytes": nbytes, "tokens": ntok,
                   "encode_mb_s": nbytes / t_single / 1e6, "encode_batch_mb_s": nbytes / t_batch / 1e6}
            results["results"].append(row)
            print(f"HF {name:8s} {text_name:8s} encode {row['encode_mb_s']:7.2f} MB/s  "
                  f"encode_batch(1 thread) {row['encode_batch_mb_s']:7.2f} MB/s  {ntok} tokens", flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-inputs", metavar="DIR")
    ap.add_argument("--measure", metavar="DIR")
    ap.add_argument("--tokenizer", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.write_inputs:
        write_inputs(args.write_inputs)
    if args.measure:
        measure(args.measure, args.tokenizer, args.repeats, args.json)
    if not args.write_inputs and not args.measure:
        ap.error("give --write-inputs and/or --measure")


if __name__ == "__main__":
    main()
