#!/usr/bin/env python3
"""Peer baseline: Hugging Face transformers + PEFT serving a `loraserve bench` trace.

Replays the identical request list that `loraserve bench --write-trace FILE` wrote (JSONL:
timestamp, adapter, prompt token ids or input_len, output_len) open loop: requests arrive at
their timestamps; whenever the model is free, every arrived request (up to --max-batch-size)
forms one static batch with mixed adapters (PEFT's `adapter_names=` in generate, "__base__" for
requests without one), generated greedily to its longest output with EOS ignored. Adapters are
loaded on first use from --adapter-dir/<name> and the least recently used ones deleted beyond
--max-loaded-adapters. Writes the same metrics JSON as `loraserve bench --out` (throughput,
TTFT, TPOT, ITL, E2E, SLO attainment, goodput), so tools/bench_plot.py draws both.

  python3 tools/peers/peft_serve.py --model DIR --adapter-dir ADIR --trace t3.jsonl --out peft.json
  python3 tools/peers/peft_serve.py --trace t3.jsonl --dry-run   # validates; needs no torch
  python3 tools/peers/peft_serve.py --random-shape llama2-7b --adapter-dir ADIR --trace t3.jsonl \
      --max-seconds 120 --out peft.json   # `loraserve bench --model random:llama2-7b`'s twin

--random-shape builds the model with random bf16 weights on the GPU (as peft_decode_bench.py;
the trace must carry token ids). --max-seconds stops serving after that many seconds, even in
the middle of a batch: requests not finished by then count as not completed (request
throughput counts completed requests, output-token throughput every token generated).

Needs torch, transformers >= 4.39 and peft >= 0.10 (mixed-adapter batches; a GPU machine);
--dry-run needs only the standard library.
"""
import argparse
import collections
import json
import math
import os
import platform
import sys
import time

FIELDS = {"timestamp", "adapter", "prompt", "input_len", "output_len"}


class TraceError(Exception):
    pass


def _positive_int(v, field):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"'{field}' must be an integer, got {json.dumps(v)}")
    if v < 1 or v > 2**31 - 1:
        raise ValueError(f"'{field}' must be between 1 and 2^31-1, got {v}")
    return v


def _parse_line(line, previous):
    try:
        j = json.loads(line)
    except ValueError as e:
        raise ValueError(f"not valid JSON ({e})")
    if not isinstance(j, dict):
        raise ValueError(f"expected a JSON object, got {type(j).__name__}")
    for k in j:
        if k not in FIELDS:
            raise ValueError(f"unknown field '{k}' (fields: {', '.join(sorted(FIELDS))})")
    if "timestamp" not in j:
        raise ValueError("missing 'timestamp'")
    ts = j["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        raise ValueError(f"'timestamp' must be a number of seconds >= 0, got {json.dumps(ts)}")
    if ts < previous:
        raise ValueError(f"'timestamp' {ts} is earlier than the line before ({previous}); sort the trace")
    adapter = j.get("adapter")
    if adapter is not None and (not isinstance(adapter, str) or not adapter):
        raise ValueError(f"'adapter' must be a non-empty string or null, got {json.dumps(adapter)}")
    if ("prompt" in j) == ("input_len" in j):
        raise ValueError("give either 'prompt' (text or token ids) or 'input_len', exactly one")
    prompt = j.get("prompt")
    if prompt is not None:
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("'prompt' must not be empty")
        elif isinstance(prompt, list):
            if not prompt:
                raise ValueError("'prompt' must not be empty")
            for i, t in enumerate(prompt):
                if not isinstance(t, int) or isinstance(t, bool) or t < 0 or t > 2**31 - 1:
                    raise ValueError(f"'prompt' token {i} is not a token id (an integer >= 0): {json.dumps(t)}")
        else:
            raise ValueError("'prompt' must be a string or a list of token ids")
        input_len = len(prompt) if isinstance(prompt, list) else 0
    else:
        input_len = _positive_int(j["input_len"], "input_len")
    if "output_len" not in j:
        raise ValueError("missing 'output_len'")
    return {"timestamp": float(ts), "adapter": adapter, "prompt": prompt, "input_len": input_len,
            "output_len": _positive_int(j["output_len"], "output_len")}


def read_trace(path):
    """The trace's requests; TraceError names the file, the line and the problem."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise TraceError(f"{path}: cannot open the trace file ({e.strerror})")
    out, previous = [], 0.0
    with f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = _parse_line(line, previous)
            except ValueError as e:
                raise TraceError(f"{path}: line {number}: {e}")
            previous = r["timestamp"]
            out.append(r)
    if not out:
        raise TraceError(f"{path}: no requests (an empty trace)")
    return out


def percentiles(values):
    """Mean and nearest-rank p50/p90/p99, as bench/lib/metrics.cpp."""
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    v = sorted(values)
    at = lambda q: v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]
    return {"mean": sum(v) / len(v), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def summarize(timing, wall, slo):
    """The metrics object of `loraserve bench` (bench/lib/metrics.cpp: summarize)."""
    ok = [t for t in timing if t["ok"]]
    generated = sum(t["out"] for t in timing)  # partial requests' tokens too (--max-seconds)
    ttft = [t["first"] - t["arrival"] for t in ok]
    e2e = [t["finish"] - t["arrival"] for t in ok]
    tpot = [(t["finish"] - t["first"]) / (t["out"] - 1) for t in ok if t["out"] > 1]
    itl = [b - a for t in ok for a, b in zip(t["times"], t["times"][1:])]
    within = sum(1 for x in ttft if x < slo)
    wall = wall if wall > 0 else 1e-9
    return {"requests": len(timing), "completed": len(ok), "failed": len(timing) - len(ok),
            "wall_s": wall, "request_throughput": len(ok) / wall,
            "input_token_throughput": sum(t["in"] for t in ok) / wall,
            "output_token_throughput": generated / wall,
            "total_output_tokens": generated,
            "ttft_s": percentiles(ttft), "tpot_s": percentiles(tpot), "itl_s": percentiles(itl),
            "e2e_s": percentiles(e2e), "slo_ttft_s": slo,
            "slo_attainment": within / len(timing) if timing else 0.0, "goodput_rps": within / wall,
            "max_send_lag_s": 0.0}, {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e}


class Server:
    """The model with adapters loaded on demand (LRU) and static mixed-adapter batches."""

    def __init__(self, args, requests):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.torch, self.args = torch, args
        dtype = getattr(torch, args.dtype)
        if args.random_shape:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from peft_decode_bench import build_model
            self.model = build_model(torch, args.random_shape, args.device, 42)
            self.tokenizer, self.pad = None, 0
        else:
            self.model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dtype).to(args.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(args.model)
            self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.loaded = collections.OrderedDict()  # adapter name -> None, least recently used first
        self.peft = None
        for r in requests:  # text prompts become ids once, before the clock starts
            if isinstance(r["prompt"], str):
                if self.tokenizer is None:
                    raise SystemExit("peft_serve.py: --random-shape has no tokenizer; the trace needs "
                                     "token ids (`loraserve bench --model random:SHAPE --write-trace`)")
                r["prompt"] = self.tokenizer(r["prompt"]).input_ids
            elif r["prompt"] is None:
                raise SystemExit("peft_serve.py: requests given by input_len need prompts; write the "
                                 "trace with `loraserve bench --write-trace` (token ids)")
            r["input_len"] = len(r["prompt"])

    def _ensure(self, names):
        from peft import PeftModelForCausalLM  # also for adapters whose config has no task_type
        for name in names:
            if name in self.loaded:
                self.loaded.move_to_end(name)
                continue
            path = os.path.join(self.args.adapter_dir, name)
            if self.peft is None:
                self.peft = PeftModelForCausalLM.from_pretrained(self.model, path, adapter_name=name).eval()
                self.first = name  # PEFT's active adapter: kept loaded
            else:
                self.peft.load_adapter(path, adapter_name=name)
            self.loaded[name] = None
            while len(self.loaded) > self.args.max_loaded_adapters:
                victim = next((n for n in self.loaded if n not in names and n != self.first), None)
                if victim is None:
                    break
                self.peft.delete_adapter(victim)
                del self.loaded[victim]

    def generate(self, batch, on_step, deadline=None):
        torch = self.torch
        names = sorted({r["adapter"] for r in batch if r["adapter"]})
        self._ensure(names)
        width = max(r["input_len"] for r in batch)
        ids = [[self.pad] * (width - r["input_len"]) + list(r["prompt"]) for r in batch]
        mask = [[0] * (width - r["input_len"]) + [1] * r["input_len"] for r in batch]
        steps = max(r["output_len"] for r in batch)
        kwargs = {}
        if self.peft is not None:
            kwargs["adapter_names"] = [r["adapter"] or "__base__" for r in batch]
        model = self.peft if self.peft is not None else self.model
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Clock(StoppingCriteria):
            def __call__(self, input_ids, scores, **_):
                if input_ids.is_cuda:
                    torch.cuda.synchronize()
                now = time.perf_counter()
                on_step(now)
                stop = deadline is not None and now >= deadline
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        with torch.no_grad():
            model.generate(input_ids=torch.tensor(ids, device=self.args.device),
                           attention_mask=torch.tensor(mask, device=self.args.device),
                           max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                           pad_token_id=self.pad, stopping_criteria=StoppingCriteriaList([Clock()]),
                           **kwargs)


def serve(args, requests):
    server = Server(args, requests)
    timing = [None] * len(requests)
    pending = collections.deque(range(len(requests)))
    start = time.perf_counter()
    deadline = start + args.max_seconds if args.max_seconds else None
    while pending:
        now = time.perf_counter() - start
        if deadline is not None and now + start >= deadline:
            break
        head = requests[pending[0]]["timestamp"]
        if head > now:
            time.sleep(min(head - now, deadline - start - now) if deadline is not None else head - now)
            continue
        batch = []
        while pending and len(batch) < args.max_batch_size and requests[pending[0]]["timestamp"] <= now:
            batch.append(pending.popleft())
        steps = []
        server.generate([requests[i] for i in batch], lambda t: steps.append(t - start), deadline)
        for i in batch:
            r = requests[i]
            times = steps[:r["output_len"]]
            timing[i] = {"arrival": r["timestamp"], "first": times[0] if times else 0.0,
                         "finish": times[-1] if times else 0.0,
                         "times": times, "in": r["input_len"], "out": len(times),
                         "ok": len(times) == r["output_len"]}
    wall = time.perf_counter() - start
    for i in pending:  # never started before --max-seconds
        r = requests[i]
        timing[i] = {"arrival": r["timestamp"], "first": 0.0, "finish": 0.0, "times": [],
                     "in": r["input_len"], "out": 0, "ok": False}
    return timing, wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", required=True, help="JSONL written by loraserve bench --write-trace")
    p.add_argument("--model", help="Hugging Face model directory")
    p.add_argument("--random-shape", choices=["llama2-7b", "tiny"],
                   help="random bf16 weights of this shape instead of --model (trace of token ids)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop serving after this many seconds (0: serve the whole trace)")
    p.add_argument("--adapter-dir", help="directory of PEFT adapters <name>/ (loraserve bench --adapter-dir)")
    p.add_argument("--out", help="metrics JSON (loraserve bench's format)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-loaded-adapters", type=int, default=64)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--slo-ttft", type=float, default=6.0)
    p.add_argument("--dry-run", action="store_true", help="validate the trace (and adapters); no torch")
    args = p.parse_args()
    if args.max_seconds < 0 or not math.isfinite(args.max_seconds):
        sys.exit("peft_serve.py: error: --max-seconds must be a number >= 0")
    try:
        requests = read_trace(args.trace)
    except TraceError as e:
        sys.exit(f"peft_serve.py: error: {e}")
    adapters = sorted({r["adapter"] for r in requests if r["adapter"]})
    if args.adapter_dir:
        missing = [a for a in adapters if not os.path.isfile(os.path.join(args.adapter_dir, a, "adapter_config.json"))]
        if missing:
            sys.exit(f"peft_serve.py: error: {len(missing)} adapter(s) not in {args.adapter_dir}, e.g. {missing[0]}")
    if args.dry_run:
        print(json.dumps({"trace": args.trace, "requests": len(requests), "adapters": len(adapters),
                          "input_tokens": sum(r["input_len"] for r in requests),
                          "output_tokens": sum(r["output_len"] for r in requests),
                          "last_arrival_s": requests[-1]["timestamp"]}))
        return
    if bool(args.model) == bool(args.random_shape) or (adapters and not args.adapter_dir):
        sys.exit("peft_serve.py: error: one of --model and --random-shape (and --adapter-dir when the "
                 "trace names adapters) are required")
    if args.max_batch_size < 1 or args.max_loaded_adapters < 1:
        sys.exit("peft_serve.py: error: --max-batch-size and --max-loaded-adapters must be >= 1")
    timing, wall = serve(args, requests)
    metrics, samples = summarize(timing, wall, args.slo_ttft)
    print(json.dumps({k: metrics[k] for k in ("requests", "request_throughput", "output_token_throughput")}))
    if args.out:
        report = {"benchmark": "peft_serve", "command": " ".join(sys.argv),
                  "machine": {"hostname": platform.node(), "device": args.device},
                  "model": args.model or f"random:{args.random_shape}", "no_lora": not adapters,
                  "max_seconds": args.max_seconds, "target": {"mode": "peft"},
                  "engine": {"max_batch_size": args.max_batch_size,
                             "max_loaded_adapters": args.max_loaded_adapters, "dtype": args.dtype},
                  "slo_ttft_s": args.slo_ttft,
                  "runs": [{"label": "peft " + os.path.basename(args.trace), "workload": {"trace": args.trace},
                            "adapters_used": len(adapters), "metrics": metrics, "errors": [],
                            "samples": samples}]}
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
