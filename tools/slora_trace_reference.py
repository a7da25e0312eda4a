#!/usr/bin/env python3
"""Reference traces for bench/lib/workload: S-LoRA's generate_requests (benchmarks/trace.py of
github.com/S-LoRA/S-LoRA) restated with numpy's legacy RandomState, one JSON line per request
({"timestamp", "adapter", "input_len", "output_len"}, adapter as an index). Needs python3-numpy.

Usage: slora_trace_reference.py N ALPHA RATE CV DURATION IN_LO IN_HI OUT_LO OUT_HI [SEED]
Wrote tests/fixtures/bench/slora_trace_*.jsonl (see tests/unit/bench/workload_test.cpp)."""
import json
import sys

import numpy as np


def generate(num_adapters, alpha, rate, cv, duration, input_range, output_range, seed=42):
    np.random.seed(seed)
    total = int(rate * duration)
    ind = (np.random.power(alpha, total) * num_adapters).astype(int)
    input_lens = np.random.randint(input_range[0], input_range[1], total)
    output_lens = np.random.randint(output_range[0], output_range[1], total)
    intervals = np.random.gamma(1 / (cv * cv), cv * cv / rate, total)
    tic = 0
    for i in range(total):
        tic += intervals[i]
        yield {"timestamp": float(tic), "adapter": int(ind[i]), "input_len": int(input_lens[i]),
               "output_len": int(output_lens[i])}


def main():
    a = sys.argv[1:]
    if len(a) not in (9, 10):
        sys.exit(__doc__)
    seed = int(a[9]) if len(a) == 10 else 42
    for r in generate(int(a[0]), float(a[1]), float(a[2]), float(a[3]), float(a[4]),
                      (int(a[5]), int(a[6])), (int(a[7]), int(a[8])), seed):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
