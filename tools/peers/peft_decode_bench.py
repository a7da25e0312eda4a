#!/usr/bin/env python3
"""The Hugging Face transformers + PEFT peer of issue 7 (target 5), measured on the same GPU.

Builds a Llama-2-7B-shaped LlamaForCausalLM with random bf16 weights straight on the GPU from a
LlamaConfig (no download), measures greedy generation of a batch (default 32 prompts of 256
random tokens, 128 new tokens, no early stop) on the base model, then wraps it with PEFT: 32
distinct rank-16 LoRA adapters on q,k,v,o (get_peft_model + add_adapter, lora_B randomised so
they are not zero) and measures the same batch as one mixed-adapter batch through
`generate(..., adapter_names=[...])`. Prints output tokens/s of both and writes JSON (command,
machine, versions, figures). Our side of the same workload is section "peer" of
bench/gpu_perf_bench.cpp; scripts/gpu_perf.sh runs both and prints the ratio.

Output tokens/s = batch x new tokens / wall time of generate() (prefill included), after one
short untimed warm-up generate of each kind. Needs torch, transformers and peft (the GPU
machine has them; nothing is downloaded).

    python3 tools/peers/peft_decode_bench.py --out /tmp/gpu_perf/peft_decode.json
    python3 tools/peers/peft_decode_bench.py --quick            # 32 new tokens
"""
import argparse
import json
import os
import platform
import socket
import sys
import time
import traceback

SHAPES = {
    # meta-llama/Llama-2-7b-hf config.json
    "llama2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0),
    # for trying the script on a small GPU or the CPU
    "tiny": dict(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                 rms_norm_eps=1e-6, rope_theta=10000.0),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def log(msg):
    print(msg, flush=True)


def build_model(torch, shape, device, seed):
    """LlamaForCausalLM with random bf16 weights made on `device` (no host copy of 13 GB)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(**SHAPES[shape], tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                      pad_token_id=0, hidden_act="silu")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.bfloat16)  # parameters made in bf16 directly
    except (TypeError, RuntimeError):
        pass  # an older torch: made in fp32 on the device (27 GB for 7B), then cast
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=torch.bfloat16).eval()
    model.generation_config.pad_token_id = 0
    return model


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_generate(torch, model, device, ids, new_tokens, **extra):
    """One generate() of exactly `new_tokens` greedy tokens per row; (seconds, tokens made)."""
    mask = torch.ones_like(ids)
    sync(torch, device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, use_cache=True, **extra)
    sync(torch, device)
    seconds = time.perf_counter() - t0
    made = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return seconds, int(made)


def add_adapters(torch, model, n, rank, adapter_dtype, seed):
    """n distinct rank-`rank` LoRA adapters on q,k,v,o with random non-zero lora_B."""
    from peft import LoraConfig, get_peft_model

    def config():  # a fresh config per adapter: PEFT keeps (and may mutate) the object
        return LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(TARGETS),
                          lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")

    names = [f"a{i:02d}" for i in range(n)]
    pm = get_peft_model(model, config(), adapter_name=names[0])
    for name in names[1:]:
        pm.add_adapter(name, config())
    gen = torch.Generator(device="cpu").manual_seed(seed)
    randomised = 0
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if "lora_B" in pname:
                # Small enough that activations stay finite, large enough to change outputs.
                p.copy_((torch.randn(p.shape, generator=gen) * (0.5 / rank)).to(p.dtype))
                randomised += 1
            if adapter_dtype == "bf16" and ("lora_A" in pname or "lora_B" in pname):
                p.data = p.data.to(torch.bfloat16)
    pm.eval()
    lora_dtypes = sorted({str(p.dtype) for n_, p in pm.named_parameters() if "lora_" in n_})
    return pm, names, randomised, lora_dtypes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--shape", default="llama2-7b", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens per row")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--adapters", type=int, default=32, help="distinct adapters in the batch")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--adapter-dtype", default="peft", choices=["peft", "bf16"],
                    help="peft: PEFT's default (autocast_adapter_dtype upcasts LoRA weights of a "
                         "bf16 model to fp32); bf16: LoRA weights cast to bf16 afterwards")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="32 new tokens (a smoke pass)")
    ap.add_argument("--skip-base", action="store_true", help="only the mixed-adapter batch")
    ap.add_argument("--out", default="peft_decode.json")
    args = ap.parse_args()
    if args.quick:
        args.new_tokens = min(args.new_tokens, 32)

    result = {"benchmark": "peft_decode", "issue": 7, "command": " ".join(sys.argv),
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "config": {k: getattr(args, k) for k in
                         ("shape", "batch", "prompt", "new_tokens", "adapters", "rank",
                          "adapter_dtype", "device", "seed", "quick")},
              "machine": {"hostname": socket.gethostname(), "python": platform.python_version()},
              "results": {}, "errors": []}

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)

    try:
        import torch
        import transformers
        import peft
    except ImportError as e:
        result["errors"].append(f"import: {e}")
        save()
        log(f"peft_decode_bench: needs torch, transformers and peft: {e}")
        return 1
    result["machine"].update({"torch": torch.__version__, "transformers": transformers.__version__,
                              "peft": peft.__version__, "cuda": torch.version.cuda})
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            result["errors"].append("torch sees no CUDA device")
            save()
            log("peft_decode_bench: torch sees no CUDA device")
            return 1
        p = torch.cuda.get_device_properties(0)
        result["machine"].update({"gpu": p.name, "gpu_memory_bytes": p.total_memory})
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, peft "
        f"{peft.__version__}, {result['machine'].get('gpu', args.device)}")

    t0 = time.perf_counter()
    model = build_model(torch, args.shape, args.device, args.seed)
    result["model_build_s"] = time.perf_counter() - t0
    result["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    log(f"{args.shape} with random bf16 weights on {args.device} in {result['model_build_s']:.1f} s "
        f"(attention: {result['attn_implementation']})")
    vocab = SHAPES[args.shape]["vocab_size"]
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    ids = torch.randint(3, vocab, (args.batch, args.prompt), generator=gen).to(args.device)
    warm_ids = ids[:, :8]

    rows = []
    if not args.skip_base:
        try:
            timed_generate(torch, model, args.device, warm_ids, 2)
            s, made = timed_generate(torch, model, args.device, ids, args.new_tokens)
            result["results"]["base"] = {"seconds": s, "output_tokens": made,
                                         "output_tok_s": made / s}
            rows.append(("base model (no adapters)", s, made))
            log(f"base: {made} tokens in {s:.2f} s = {made / s:.1f} tok/s")
        except Exception as e:  # noqa: BLE001 - recorded, the adapter run still goes on
            result["errors"].append(f"base: {e!r}")
            traceback.print_exc()
        save()

    try:
        t0 = time.perf_counter()
        pm, names, randomised, lora_dtypes = add_adapters(torch, model, args.adapters, args.rank,
                                                          args.adapter_dtype, args.seed + 1)
        result["adapters_build_s"] = time.perf_counter() - t0
        result["lora_b_tensors_randomised"] = randomised
        result["lora_dtypes"] = lora_dtypes
        log(f"{len(names)} rank-{args.rank} adapters on {','.join(TARGETS)} in "
            f"{result['adapters_build_s']:.1f} s; {randomised} lora_B tensors randomised; "
            f"LoRA dtypes {lora_dtypes}")
        mixed = [names[i % len(names)] for i in range(args.batch)]
        timed_generate(torch, pm, args.device, warm_ids, 2, adapter_names=mixed)
        s, made = timed_generate(torch, pm, args.device, ids, args.new_tokens,
                                 adapter_names=mixed)
        result["results"]["peft_mixed"] = {"seconds": s, "output_tokens": made,
                                           "output_tok_s": made / s,
                                           "distinct_adapters": len(set(mixed))}
        rows.append((f"PEFT, {len(set(mixed))} distinct adapters (adapter_names)", s, made))
        log(f"PEFT mixed batch: {made} tokens in {s:.2f} s = {made / s:.1f} tok/s")
    except TypeError as e:
        msg = f"peft_mixed: {e!r} (adapter_names in generate needs peft >= 0.10)"
        result["errors"].append(msg)
        log(msg)
    except Exception as e:  # noqa: BLE001 - recorded in the JSON
        result["errors"].append(f"peft_mixed: {e!r}")
        traceback.print_exc()
    if args.device.startswith("cuda"):
        result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    save()

    print(f"\n[peer] transformers + PEFT, {args.shape}, batch {args.batch}, prompt {args.prompt}, "
          f"{args.new_tokens} new tokens")
    print(f" {'workload':52s} {'seconds':>8s} {'tokens':>7s} {'tokens/s':>9s}")
    for name, s, made in rows:
        print(f" {name:52s} {s:8.2f} {made:7d} {made / s:9.1f}")
    print(f"wrote {args.out}")
    return 0 if "peft_mixed" in result["results"] else 1


if __name__ == "__main__":
    sys.exit(main())
