#!/usr/bin/env python3
"""Writes the reference token ids our tokenizer tests compare against (HF `tokenizers`).

For every tokenizer.json (the real ones under ../shared, copied beside this run, and the ones
tools/train_tokenizers.py trains) and every corpus string it records:
  ids                 encode(text, add_special_tokens=True)  (padding/truncation disabled)
  decoded             decode(ids, skip_special_tokens=True), only when it differs from text
  ids_no_special      encode(text, add_special_tokens=False), every third string
  decoded_keep        decode(ids_no_special, skip_special_tokens=False), same strings
plus random id sequences (byte tokens, specials, any id) with both decodes, so decoders are
checked on sequences encode never makes. For tokenizer.model files it records SentencePiece's
ids with the BOS/EOS settings of tokenizer_config.json (the path loraserve takes when a model
directory has no tokenizer.json). Only strings and ids are written: never the tokenizer files
of ../shared.

    python3 tools/make_tokenizer_refs.py --shared ../shared --out /tmp/refs [--only a,b] [--debug]
writes /tmp/refs/refs/*.jsonl and /tmp/refs/trained/*/tokenizer.json (copy both into
tests/fixtures/text/tokenizers/); --debug adds HF's normalized text and pre-tokens per string,
to locate a mismatch. Needs tokenizers and sentencepiece (the GPU machine has both).
"""
import argparse
import json
import os
import random
import sys
import time

import tokenizers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_tokenizers  # noqa: E402

SHARED = {  # name -> directory under --shared
    "llama3": "tokenizers/llama3", "llama2": "tokenizers/llama2", "mistral": "tokenizers/mistral",
    "qwen2": "tokenizers/qwen2", "smollm": "tokenizers/smollm", "gemma": "tokenizers/gemma",
    "stories260k": "models/stories260k",
}
SENTENCEPIECE = ["llama2", "mistral"]


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def dump(f, obj):
    f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def random_sequences(tok, rng):
    """Id sequences mixing byte tokens, added tokens and arbitrary ids."""
    vocab = tok.get_vocab(with_added_tokens=True)
    size = max(vocab.values()) + 1
    bytes_ids = [i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")]
    added = list(tok.get_added_tokens_decoder().keys())
    out = []
    for _ in range(60):
        seq = []
        for _ in range(rng.randint(1, 24)):
            r = rng.random()
            if bytes_ids and r < 0.35:
                seq.append(rng.choice(bytes_ids))
            elif added and r < 0.45:
                seq.append(rng.choice(added))
            else:
                seq.append(rng.randrange(size))
        out.append(seq)
    return out


def hf_refs(name, path, corpus, out_dir):
    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    t0 = time.time()
    with open(os.path.join(out_dir, f"{name}.jsonl"), "w", encoding="utf-8") as f:
        dump(f, {"meta": {"tokenizers": tokenizers.__version__,
                          "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                          "strings": len(corpus)}})
        for i, text in enumerate(corpus):
            ids = tok.encode(text, add_special_tokens=True).ids
            rec = {"i": i, "ids": ids}
            dec = tok.decode(ids, skip_special_tokens=True)
            if dec != text:
                rec["decoded"] = dec
            if i % 3 == 0:
                ns = tok.encode(text, add_special_tokens=False).ids
                rec["ids_no_special"] = ns
                rec["decoded_keep"] = tok.decode(ns, skip_special_tokens=False)
            dump(f, rec)
        try:
            rng = random.Random(sum(map(ord, name)))
            for seq in random_sequences(tok, rng):
                dump(f, {"random": seq, "decoded": tok.decode(seq, skip_special_tokens=True),
                         "decoded_keep": tok.decode(seq, skip_special_tokens=False)})
        except Exception as e:  # the corpus refs above are still good
            print(f"{name}: random decode refs FAILED {type(e).__name__}: {e}", flush=True)
    print(f"{name}: {len(corpus)} strings in {time.time() - t0:.1f}s", flush=True)


def debug_dump(name, path, corpus, out_dir):
    """What HF's normalizer and pre-tokenizer make of each whole string (not committed: it only
    helps locate a mismatch without another run)."""
    tok = Tokenizer.from_file(path)
    with open(os.path.join(out_dir, f"{name}.debug.jsonl"), "w", encoding="utf-8") as f:
        for i, text in enumerate(corpus):
            rec = {"i": i}
            norm = text
            if tok.normalizer is not None:
                norm = tok.normalizer.normalize_str(text)
                rec["normalized"] = norm
            if tok.pre_tokenizer is not None:
                rec["pre"] = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(norm)]
            rec["tokens"] = tok.encode(text, add_special_tokens=False).tokens
            dump(f, rec)


def sp_refs(name, d, corpus, out_dir):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    cfg = {}
    if os.path.exists(os.path.join(d, "tokenizer_config.json")):
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    add_bos = cfg.get("add_bos_token", True)
    add_eos = cfg.get("add_eos_token", False)
    special = {i for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)}
    with open(os.path.join(out_dir, f"{name}.sp.jsonl"), "w", encoding="utf-8") as f:
        dump(f, {"meta": {"sentencepiece": spm.__version__, "add_bos": add_bos, "add_eos": add_eos,
                          "vocab_size": sp.get_piece_size(), "strings": len(corpus)}})
        for i, text in enumerate(corpus):
            body = sp.encode(text)
            ids = ([sp.bos_id()] if add_bos else []) + body + ([sp.eos_id()] if add_eos else [])
            rec = {"i": i, "ids": ids}
            dec = sp.decode([t for t in ids if t not in special])
            if dec != text:
                rec["decoded"] = dec
            dump(f, rec)
    print(f"{name}: sentencepiece refs written", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, help="directory laid out like ../shared")
    ap.add_argument("--corpus", default="tests/fixtures/text/tokenizers/corpus.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--debug", action="store_true", help="also write <name>.debug.jsonl")
    ap.add_argument("--only", default="", help="comma-separated names (default: all)")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "refs"), exist_ok=True)
    corpus = load_corpus(args.corpus)
    print(f"tokenizers {tokenizers.__version__}, {len(corpus)} strings", flush=True)

    failures = 0
    only = set(filter(None, args.only.split(",")))
    wanted = lambda name: not only or name in only  # noqa: E731
    texts = train_tokenizers.training_texts(args.corpus)
    jobs = []
    for name, train in train_tokenizers.TRAINERS.items():
        if not wanted(name):
            continue
        d = os.path.join(args.out, "trained", name)
        os.makedirs(d, exist_ok=True)
        try:
            train(texts, os.path.join(d, "tokenizer.json"))
            jobs.append((name, os.path.join(d, "tokenizer.json")))
        except Exception as e:
            failures += 1
            print(f"training {name}: FAILED {type(e).__name__}: {e}", flush=True)
    jobs += [(n, os.path.join(args.shared, d, "tokenizer.json")) for n, d in SHARED.items()
             if wanted(n)]
    for name, path in jobs:
        try:
            hf_refs(name, path, corpus, os.path.join(args.out, "refs"))
            if args.debug:
                os.makedirs(os.path.join(args.out, "debug"), exist_ok=True)
                debug_dump(name, path, corpus, os.path.join(args.out, "debug"))
        except Exception as e:  # keep going: one broken tokenizer must not cost the others
            failures += 1
            print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
    for name in SENTENCEPIECE:
        if not wanted(name):
            continue
        try:
            sp_refs(name, os.path.join(args.shared, SHARED[name]), corpus,
                    os.path.join(args.out, "refs"))
        except Exception as e:
            failures += 1
            print(f"{name} (sentencepiece): FAILED {type(e).__name__}: {e}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
