#!/usr/bin/env python3
"""Writes the Hugging Face golden fixtures under tests/fixtures/golden/.

Builds tiny Llama-family models with random weights and PEFT LoRA adapters with non-zero B,
saves them with transformers' and PEFT's own save_pretrained, reloads them from disk and runs
the reference forward in float64 (the weights are rounded to their storage dtype first, so the
reference is "fp64 math on the stored weights"; our fp32 math lands within ~1e-5 of it).

Needs torch, transformers and peft (the GPU machine has them). Run:
    python3 tools/make_golden.py --out tests/fixtures/golden
"""
import argparse
import copy
import json
import math
import os
import shutil

import torch
import transformers
import peft
from transformers import AutoConfig, AutoModelForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

NEW_TOKENS = 12

# Each model: its config.json (hub/legacy format), storage dtype, shard size, adapters.
MODELS = [
    {
        "name": "mha_f32",
        "dtype": torch.float32,
        "config": {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": 256, "hidden_size": 64, "intermediate_size": 160,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "rope_scaling": {"type": "linear", "factor": 2.0},
            "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1,
            "eos_token_id": 2, "torch_dtype": "float32",
        },
        "keep_legacy_config": False,
        "shard": None,
        "adapters": [
            {"name": "qv_r8", "r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"], "dtype": torch.float32},
            {"name": "all_r32_rslora", "r": 32, "alpha": 8, "use_rslora": True,
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
             "dtype": torch.float32},
            {"name": "pattern_r4", "r": 4, "alpha": 8, "targets": ["q_proj", "o_proj", "down_proj"],
             "rank_pattern": {"o_proj": 12, "model.layers.1.mlp.down_proj": 6},
             "alpha_pattern": {"q_proj": 3}, "dtype": torch.float32},
        ],
        "prompts": [[1, 17, 200, 45, 9, 130, 77], [1, 250, 3], [1, 5, 99, 160, 33, 12, 64, 128, 7, 81, 44]],
    },
    {
        "name": "gqa_bf16",
        "dtype": torch.bfloat16,
        "config": {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": 320, "hidden_size": 96, "intermediate_size": 192,
            "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
            "head_dim": 32, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            "tie_word_embeddings": True, "hidden_act": "silu", "bos_token_id": 1,
            "eos_token_id": 2, "torch_dtype": "bfloat16", "attention_bias": False, "mlp_bias": False,
        },
        "keep_legacy_config": True,
        "embed_std": 0.3,
        "qk_gain": 2.5,
        "shard": "60KB",
        "adapters": [
            {"name": "all_r16_bf16", "r": 16, "alpha": 32,
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
             "dtype": torch.bfloat16},
            {"name": "attn_r64_layers", "r": 64, "alpha": 16, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
             "layers_to_transform": [0, 2], "dtype": torch.float16},
            {"name": "regex_r8", "r": 8, "alpha": 24,
             "targets": r".*\.(self_attn\.(q|v)_proj|mlp\.up_proj)",
             "dtype": torch.float32},
        ],
        "prompts": [[1, 300, 42, 8, 19, 270, 5, 66], [1, 77], [1, 12, 13, 14, 15, 200, 201, 202, 9, 10, 11, 150, 3]],
    },
    {
        "name": "qwen2_f16",
        "dtype": torch.float16,
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "tie_word_embeddings": False, "hidden_act": "silu", "use_sliding_window": False,
            "sliding_window": None, "max_window_layers": 2, "bos_token_id": 1, "eos_token_id": 2,
            "torch_dtype": "float16",
        },
        "keep_legacy_config": False,
        "shard": None,
        "adapters": [
            {"name": "all_r8", "r": 8, "alpha": 16,
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
             "dtype": torch.float32},
            {"name": "mlp_r24_f16", "r": 24, "alpha": 48, "targets": ["gate_proj", "up_proj", "down_proj"],
             "dtype": torch.float16},
        ],
        "prompts": [[1, 99, 100, 101, 7, 8], [1, 200, 201, 12, 13, 250, 251, 3, 4]],
    },
    {
        "name": "mistral_f32",
        "dtype": torch.float32,
        "config": {
            "architectures": ["MistralForCausalLM"], "model_type": "mistral",
            "vocab_size": 192, "hidden_size": 48, "intermediate_size": 96,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
            "head_dim": 12, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False,
            "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
        },
        "keep_legacy_config": True,
        "shard": None,
        "adapters": [
            {"name": "kvo_r12", "r": 12, "alpha": 6, "targets": ["k_proj", "v_proj", "o_proj"],
             "dtype": torch.float32},
        ],
        "prompts": [[1, 150, 151, 4, 5, 6, 7, 8, 9], [1, 60, 61, 180, 2, 33]],
    },
]


def init_weights(model, gen, embed_std, qk_gain):
    """Random weights large enough that greedy outputs are not degenerate."""
    hidden = model.config.hidden_size
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * (embed_std or 3.0 / math.sqrt(hidden)))
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            else:  # projection weights [out, in]
                gain = qk_gain if ("q_proj" in name or "k_proj" in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / math.sqrt(p.shape[1])))


def init_lora(model, gen, scale_of):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            elif "lora_B" in name:
                r = p.shape[1]
                s = scale_of(name)
                p.copy_(torch.randn(p.shape, generator=gen) * (0.4 / (s * math.sqrt(r))))


def greedy(model, prompt):
    ids = list(prompt)
    tokens, logprobs, margins, first = [], [], [], None
    with torch.no_grad():
        for step in range(NEW_TOKENS):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            lp = torch.log_softmax(logits, dim=-1)
            top = torch.topk(lp, 2)
            tok = int(top.indices[0])
            if step == 0:
                first = [float(f"{v:.9g}") for v in lp.tolist()]
            tokens.append(tok)
            logprobs.append(float(lp[tok]))
            margins.append(float(top.values[0] - top.values[1]))
            ids.append(tok)
    return {"tokens": tokens, "logprobs": logprobs, "margins": margins, "first_logprobs": first}


def load_reference(model_dir):
    m = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    return m.double().eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="make only this model")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
    gen = torch.Generator().manual_seed(1234)
    for spec in MODELS:
        if args.only and spec["name"] != args.only:
            continue
        mdir = os.path.join(args.out, spec["name"])
        shutil.rmtree(mdir, ignore_errors=True)
        os.makedirs(mdir)
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(spec["config"], f, indent=2)
        cfg = AutoConfig.from_pretrained(mdir)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
        init_weights(model, gen, spec.get("embed_std"), spec.get("qk_gain", 1.0))
        model = model.to(spec["dtype"])
        kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
        model.save_pretrained(mdir, **kw)
        if spec["keep_legacy_config"]:  # hub-style config.json, not the one save_pretrained wrote
            with open(os.path.join(mdir, "config.json"), "w") as f:
                json.dump(spec["config"], f, indent=2)
        for extra in ("generation_config.json",):
            p = os.path.join(mdir, extra)
            if os.path.exists(p):
                os.remove(p)
        ref = load_reference(mdir)
        cases = []
        for i, prompt in enumerate(spec["prompts"]):
            r = greedy(ref, prompt)
            r.update({"adapter": None, "prompt_ids": prompt})
            cases.append(r)
        for ai, a in enumerate(spec["adapters"]):
            adir = os.path.join(mdir, "adapters", a["name"])
            base = AutoModelForCausalLM.from_pretrained(mdir, attn_implementation="eager").float()
            lcfg = LoraConfig(
                r=a["r"], lora_alpha=a["alpha"], target_modules=a["targets"],
                use_rslora=a.get("use_rslora", False), rank_pattern=a.get("rank_pattern", {}),
                alpha_pattern=a.get("alpha_pattern", {}),
                layers_to_transform=a.get("layers_to_transform"), lora_dropout=0.0,
                init_lora_weights=False, task_type="CAUSAL_LM")
            pm = get_peft_model(base, lcfg)
            scales = {}
            for mname, mod in pm.named_modules():
                if hasattr(mod, "scaling") and isinstance(mod.scaling, dict) and "default" in mod.scaling:
                    scales[mname] = mod.scaling["default"]

            def scale_of(pname):
                mname = pname.split(".lora_B")[0]
                return scales[mname]

            init_lora(pm, gen, scale_of)
            pm = pm.to(a["dtype"])
            pm.save_pretrained(adir)
            for extra in ("README.md",):
                p = os.path.join(adir, extra)
                if os.path.exists(p):
                    os.remove(p)
            pref = PeftModel.from_pretrained(load_reference(mdir), adir).double().eval()
            prompt = spec["prompts"][ai % len(spec["prompts"])]
            r = greedy(pref, prompt)
            r.update({"adapter": a["name"], "prompt_ids": prompt})
            cases.append(r)
            # the same adapter on another prompt, so a mixed batch has repeated adapters
            prompt2 = spec["prompts"][(ai + 1) % len(spec["prompts"])]
            r2 = greedy(pref, prompt2)
            r2.update({"adapter": a["name"], "prompt_ids": prompt2})
            cases.append(r2)
        base_tokens = {tuple(c["prompt_ids"]): c["tokens"] for c in cases if c["adapter"] is None}
        for c in cases:
            distinct = len(set(c["tokens"]))
            differs = c["adapter"] is None or c["tokens"] != base_tokens[tuple(c["prompt_ids"])]
            print(f"{spec['name']:12s} {str(c['adapter']):18s} distinct={distinct:2d} "
                  f"differs_from_base={differs} min_margin={min(c['margins']):.4f} tokens={c['tokens']}")
        golden = {
            "_note": "made by tools/make_golden.py: float64 HF transformers + PEFT reference on the "
                     "stored weights; greedy, no EOS stop; first_logprobs = full log-softmax at the "
                     "last prompt position",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__},
            "tolerance": 1e-3 if spec["dtype"] == torch.float32 else 2e-3,
            "cases": cases,
        }
        with open(os.path.join(mdir, "golden.json"), "w") as f:
            json.dump(golden, f)


if __name__ == "__main__":
    main()
