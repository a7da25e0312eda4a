#!/usr/bin/env python3
"""Trains the small tokenizer.json fixtures (ours, so they can be committed) with HF `tokenizers`.

Each one exercises components the real tokenizers under ../shared/tokenizers do not:
  bytelevel  byte-level BPE with the Llama-3 split regex, NFKC, ignore_merges, "a b" string
             merges, ByteLevel + TemplateProcessing post-processors, added tokens with
             lstrip/rstrip, single_word and normalized=True.
  spbpe      SentencePiece-style BPE with byte fallback (Prepend + Replace normalizers, no
             pre-tokenizer, <0xNN> tokens only in the model vocab), fused unk, the llama2
             decoder chain, a normalized added token whose normalized form differs.
  wordish    NFD + Lowercase + Strip, Split(removed) + Whitespace + Digits(contiguous),
             end_of_word_suffix, BPEDecoder, BertProcessing, a normalized added token.
  metaspace  NFKC + Replace(regex) + right Strip, WhitespaceSplit + Punctuation + Split
             (merged_with_next, contiguous, inverted merged_with_previous) + Metaspace(always),
             continuing_subword_prefix, Metaspace decoder, RobertaProcessing.
Vocabularies are small (1000-1500) so the files stay small. Needs `tokenizers` (the GPU machine
has it); tools/make_tokenizer_refs.py calls train_all() and returns the files with the refs.

    python3 tools/train_tokenizers.py --corpus tests/fixtures/text/tokenizers/corpus.jsonl \
        --out tests/fixtures/text/tokenizers/trained
"""
import argparse
import json
import os
import random

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def training_texts(corpus_path):
    """The corpus plus seeded English-like sentences, so merges look like real ones."""
    with open(corpus_path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    words = ("the a of and to in is you that it he was for on are as with his they at be this have "
             "from or one had by word but not what all were we when your can said there use an each "
             "which she do how their if will up other about out many then them these so some her "
             "would make like him into time has look two more write go see number no way could people "
             "Lily Tom girl boy dog cat happy sad big little day play park tree ball sun").split()
    rng = random.Random(7)
    for _ in range(3000):
        n = rng.randint(4, 16)
        s = " ".join(rng.choice(words) for _ in range(n))
        texts.append(s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", "."]))
    return texts


def edit_json(path, fn):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    fn(j)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
    Tokenizer.from_file(path)  # must still load


def train_bytelevel(texts, path):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                  special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos, eos = tok.token_to_id("<|bos|>"), tok.token_to_id("<|eos|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|bos|> $A <|eos|>",
                                      pair="<|bos|> $A <|eos|> $B:1 <|eos|>:1",
                                      special_tokens=[("<|bos|>", bos), ("<|eos|>", eos)]),
    ])
    tok.add_tokens([
        AddedToken("<tool_call>", lstrip=True, rstrip=True, normalized=False, special=False),
        AddedToken("New York", single_word=True, normalized=True, special=False),
    ])
    tok.add_special_tokens([AddedToken("[MASK]", single_word=True, normalized=False, special=True)])
    tok.save(path)

    def fix(j):
        j["model"]["ignore_merges"] = True
        # Older files spell merges "a b"; byte-level tokens hold no spaces, so this is lossless.
        j["model"]["merges"] = [m if isinstance(m, str) else m[0] + " " + m[1]
                                for m in j["model"]["merges"]]
    edit_json(path, fix)


def train_spbpe(texts, path):
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    # Train with a Metaspace split so merges stay inside words, then drop it (as llama2 does).
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never",
                                                 split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  limit_alphabet=150,
                                  special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens)
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", bos)])
    tok.add_tokens([AddedToken("hello world", normalized=True, special=False)])
    tok.add_special_tokens([
        AddedToken("<|tool|>", normalized=False, special=True),
        AddedToken("[MASK]", single_word=True, lstrip=True, rstrip=True, normalized=False,
                   special=True),
    ])
    tok.save(path)

    def fix(j):
        j["pre_tokenizer"] = None
        # Byte tokens live in the model vocab only, as in llama2's tokenizer.json.
        j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] not in byte_tokens]
    edit_json(path, fix)


def train_from_spec(texts, path, model, trainer, spec, set_api, added=(), special=()):
    """Trains `model`; the saved file's components are then exactly `spec` (tokenizer.json
    fragments; a callable gets the saved JSON, for ids). `set_api` sets the same components
    through the Python API so training sees them; if this version's constructors refuse their
    arguments, training falls back to whitespace words and the spec still defines the file."""
    tok = Tokenizer(model)
    try:
        set_api(tok)
    except Exception as e:  # noqa: BLE001 - any constructor mismatch
        print(f"{path}: Python API refused a component ({e}); training on whitespace words")
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(texts, trainer)
    if added:
        tok.add_tokens(list(added))
    if special:
        tok.add_special_tokens(list(special))
    tok.save(path)

    def fix(j):
        for key, value in spec.items():
            j[key] = value(j) if callable(value) else value
    edit_json(path, fix)


def train_wordish(texts, path):
    def set_api(tok):
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                               normalizers.Strip(left=True, right=True)])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"[\x00-\x08]"), behavior="removed"),
            pre_tokenizers.Whitespace(),
            pre_tokenizers.Digits(individual_digits=False),
        ])
    vocab_id = lambda j, t: j["model"]["vocab"][t]  # noqa: E731
    spec = {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Lowercase"},
            {"type": "Strip", "strip_left": True, "strip_right": True}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"[\x00-\x08]"}, "behavior": "Removed",
             "invert": False},
            {"type": "Whitespace"},
            {"type": "Digits", "individual_digits": False}]},
        "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
        "post_processor": lambda j: {"type": "BertProcessing",
                                     "sep": ["[SEP]", vocab_id(j, "[SEP]")],
                                     "cls": ["[CLS]", vocab_id(j, "[CLS]")]},
    }
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                  limit_alphabet=120, end_of_word_suffix="</w>",
                                  special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"])
    train_from_spec(texts, path,
                    models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>", fuse_unk=False),
                    trainer, spec, set_api,
                    added=[AddedToken("ok google", normalized=True, special=False)],
                    special=[AddedToken("[MASK]", lstrip=True, normalized=False, special=True)])


def train_metaspace(texts, path):
    meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}

    def set_api(tok):
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(),
                                               normalizers.Replace(Regex(" {2,}"), " "),
                                               normalizers.Strip(left=False, right=True)])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(behavior="contiguous"),
            pre_tokenizers.Split("-", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"\d"), behavior="contiguous"),
            pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="merged_with_previous", invert=True),
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        ])
    vocab_id = lambda j, t: j["model"]["vocab"][t]  # noqa: E731
    spec = {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            {"type": "Strip", "strip_left": False, "strip_right": True}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Punctuation", "behavior": "Contiguous"},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": r"\d"}, "behavior": "Contiguous",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": "[aeiou]"}, "behavior": "MergedWithPrevious",
             "invert": True},
            meta]},
        "decoder": meta,
        "post_processor": lambda j: {"type": "RobertaProcessing",
                                     "sep": ["</s>", vocab_id(j, "</s>")],
                                     "cls": ["<s>", vocab_id(j, "<s>")],
                                     "trim_offsets": True, "add_prefix_space": False},
    }
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                  limit_alphabet=120, continuing_subword_prefix="##",
                                  special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    train_from_spec(texts, path,
                    models.BPE(unk_token="<unk>", continuing_subword_prefix="##", fuse_unk=False),
                    trainer, spec, set_api,
                    added=[AddedToken("<sep>", rstrip=True, normalized=False, special=False)])


TRAINERS = {"bytelevel": train_bytelevel, "spbpe": train_spbpe, "wordish": train_wordish,
            "metaspace": train_metaspace}


def train_all(corpus_path, out_dir):
    """Trains every tokenizer into out_dir/<name>/tokenizer.json; returns {name: path}."""
    texts = training_texts(corpus_path)
    paths = {}
    for name, fn in TRAINERS.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        fn(texts, path)
        paths[name] = path
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="tests/fixtures/text/tokenizers/corpus.jsonl")
    ap.add_argument("--out", default="tests/fixtures/text/tokenizers/trained")
    args = ap.parse_args()
    for name, path in train_all(args.corpus, args.out).items():
        print(f"trained {name}: {path}")


if __name__ == "__main__":
    main()
