#!/usr/bin/env python3
"""End-to-end test of `loraserve bench` on the demo model at tiny scale (standard library only).

Runs the slora-table3 suite in process and against a launched `loraserve serve` over HTTP and
checks the JSON reports (configuration, command line, every request completed with exactly
output_len tokens, latency order, adapter-cache figures); replays a written trace; drives a
server started by hand through --url (the two-step usage) with --max-concurrency and an API
key; checks errors for bad flags, bad trace lines and a wrong key; validates the trace with
tools/peers/peft_serve.py --dry-run; and draws the plots (or checks the message saying
python3-matplotlib is missing).
Usage: bench_e2e.py LORASERVE_BINARY SOURCE_DIR. Exit code 0 when every check passed."""
import json, os, re, shutil, subprocess, sys, tempfile, time

BIN, SRC = sys.argv[1], sys.argv[2]
FAILURES = []
TMP = tempfile.mkdtemp(prefix="ls_bench_e2e_")


def check(name, cond, detail=""):
    if not cond:
        FAILURES.append(name)
        print(f"FAIL {name} {detail}"[:3000], flush=True)
    return cond


def bench(*args, timeout=600):
    t = time.time()
    r = subprocess.run([BIN, "bench", *args], capture_output=True, text=True, timeout=timeout)
    print(f"  bench {' '.join(args)[:150]} -> {r.returncode} in {time.time() - t:.1f} s", flush=True)
    return r


def trace_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def check_report(tag, path, mode, traces):
    """The report of a tiny slora-table3 run; `traces` are the requests each run sent."""
    with open(path) as f:
        doc = json.load(f)
    check(f"{tag}: command line", "--suite slora-table3" in doc["command"], doc["command"])
    check(f"{tag}: suite and scale", doc["suite"] == "slora-table3" and doc["scale"] == "tiny")
    check(f"{tag}: mode", doc["target"]["mode"] == mode, doc["target"])
    check(f"{tag}: device", doc["machine"]["device"] == "cpu", doc["machine"])
    runs = doc["runs"]
    if not check(f"{tag}: four runs", len(runs) == 4, len(runs)):
        return doc
    want = [(5, [8]), (100, [8]), (5, [64, 32, 16, 8]), (100, [64, 32, 16, 8])]
    for run, (n, ranks), reqs in zip(runs, want, traces):
        w, m = run["workload"], run["metrics"]
        name = f"{tag} {run['label']}"
        check(f"{name}: workload", w["num_adapters"] == n and w["ranks"] == ranks and w["rate"] == 8
              and w["duration_s"] == 2 and w["alpha"] == 1 and w["cv"] == 1 and w["seed"] == 42, w)
        check(f"{name}: all completed", m["requests"] == len(reqs) == m["completed"] and m["failed"] == 0,
              json.dumps(m)[:500] + json.dumps(run["errors"]))
        # ignore_eos and max_tokens = output_len: exactly the trace's output tokens
        check(f"{name}: output tokens", m["total_output_tokens"] == sum(r["output_len"] for r in reqs),
              (m["total_output_tokens"], sum(r["output_len"] for r in reqs)))
        for k in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            p = m[k]
            check(f"{name}: {k} ordered", 0 < p["p50"] <= p["p90"] <= p["p99"] and p["mean"] > 0, p)
        check(f"{name}: ttft <= e2e", m["ttft_s"]["p99"] <= m["e2e_s"]["p99"], m)
        check(f"{name}: throughput", 0 < m["request_throughput"] and m["output_token_throughput"] > 0, m)
        check(f"{name}: slo", 0 <= m["slo_attainment"] <= 1 and m["slo_ttft_s"] == 6, m)
        check(f"{name}: samples", len(run["samples"]["ttft_s"]) == m["completed"], run["samples"].keys())
        used = len({r["adapter"] for r in reqs})
        check(f"{name}: adapters used", run["adapters_used"] == used, (run["adapters_used"], used))
        cache = run["engine"] if mode == "in-process" else run["server"]["adapter_cache"]
        check(f"{name}: cache loads", 1 <= cache["disk_loads"] <= used, cache)
        check(f"{name}: cache requests", cache["device_hits"] + cache["host_hits"] + cache["cold_requests"]
              >= len(reqs), cache)
    return doc


def test_in_process_and_launch():
    adapters = os.path.join(TMP, "adapters")
    out_a, trace = os.path.join(TMP, "in_process.json"), os.path.join(TMP, "t3.jsonl")
    r = bench("--in-process", "--suite", "slora-table3", "--scale", "tiny", "--adapter-dir", adapters,
              "--out", out_a, "--write-trace", trace)
    if not check("in-process suite runs", r.returncode == 0, r.stderr[-2000:]):
        return None
    check("in-process prints a row per run", len(r.stdout.strip().splitlines()) == 5, r.stdout)
    traces = [trace_lines(os.path.join(TMP, f"t3-{i}.jsonl")) for i in range(1, 5)]
    # tools/slora_trace_reference.py 5 1 8 1 2 8 32 4 16 (S-LoRA's generator): the first request
    first = traces[0][0]
    check("trace: S-LoRA's first request", first["adapter"] == "lora-r8-1" and len(first["prompt"]) == 19
          and first["output_len"] == 8 and first["timestamp"] == 0.01626902924430608, first)
    check("trace: prompts are token ids", all(isinstance(x["prompt"], list) for x in traces[1]))
    check_report("in-process", out_a, "in-process", traces)
    for name in os.listdir(adapters):  # lora-r<rank>-<k>
        cfg = json.load(open(os.path.join(adapters, name, "adapter_config.json")))
        check(f"adapters: {name} has its rank", cfg["r"] == int(name.split("-")[1][1:]), cfg["r"])
    check("adapters: S1 and S2 share lora-r8-*, no others", sorted(os.listdir(adapters)) ==
          sorted({r["adapter"] for t in traces for r in t}), sorted(os.listdir(adapters))[:10])

    out_b = os.path.join(TMP, "launch.json")
    r = bench("--launch", "--suite", "slora-table3", "--scale", "tiny", "--adapter-dir", adapters,
              "--device", "cpu", "--out", out_b, timeout=900)
    if check("launch suite runs", r.returncode == 0, r.stderr[-2000:]):
        doc = check_report("launch", out_b, "launch", traces)
        check("launch: url", doc["runs"][0]["url"].startswith("http://127.0.0.1:"), doc["runs"][0].get("url"))
    return adapters, out_a, out_b, traces


def test_no_lora_and_replay(adapters, trace_path):
    out = os.path.join(TMP, "nolora.json")
    r = bench("--launch", "--no-lora", "--num-adapters", "5", "--rate", "8", "--duration", "1",
              "--input-range", "8,16", "--output-range", "2,6", "--out", out)
    if check("no-lora runs", r.returncode == 0, r.stderr[-2000:]):
        run = json.load(open(out))["runs"][0]
        check("no-lora: no adapter used", run["adapters_used"] == 0 and run["label"].endswith("no-lora"), run["label"])
        check("no-lora: no adapter loaded", run["server"]["adapter_cache"]["disk_loads"] == 0, run["server"]["adapter_cache"])
        check("no-lora: completed", run["metrics"]["failed"] == 0 and run["metrics"]["completed"] == 8, run["metrics"])
    out = os.path.join(TMP, "replay.json")
    r = bench("--in-process", "--trace", trace_path, "--adapter-dir", adapters, "--out", out)
    if check("replay runs", r.returncode == 0, r.stderr[-2000:]):
        m = json.load(open(out))["runs"][0]["metrics"]
        want = trace_lines(trace_path)
        check("replay: same requests", m["completed"] == len(want) and
              m["total_output_tokens"] == sum(x["output_len"] for x in want), m)


def start_server(adapters, key):
    p = subprocess.Popen([BIN, "serve", "--model", os.path.join(TMP, "demo", "model"), "--port", "0",
                          "--lora-root", adapters, "--api-key", key, "--served-model-name", "demo"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise RuntimeError("server did not start")


def test_adapter_sources():
    """Real adapters from a directory (copies as hard links) and bounded random variants."""
    demo = os.path.join(TMP, "demo")
    real_dir, out = os.path.join(TMP, "real_adapters"), os.path.join(TMP, "real.json")
    r = bench("--in-process", "--model", os.path.join(demo, "model"), "--adapters-from",
              os.path.join(demo, "adapters"), "--adapter-dir", real_dir, "--num-adapters", "6",
              "--rate", "8", "--duration", "1", "--input-range", "8,16", "--output-range", "2,6",
              "--out", out)
    if check("adapters-from runs", r.returncode == 0, r.stderr[-1500:]):
        m = json.load(open(out))["runs"][0]["metrics"]
        check("adapters-from: completed", m["failed"] == 0, m)
        # sorted demo adapters: coder, pirate, poet; lora-4 is the second (pirate)
        cfg = lambda p: json.load(open(os.path.join(p, "adapter_config.json")))
        root = real_dir
        used = [d for d in os.listdir(root) if d.startswith("lora-")]
        check("adapters-from: adapters made", len(used) >= 2, used)
        for d in used:
            i = int(d[5:])
            src = os.path.join(demo, "adapters", ["coder", "pirate", "poet"][i % 3])
            check(f"adapters-from: {d} is a copy", cfg(os.path.join(root, d))["r"] == cfg(src)["r"] and
                  os.stat(os.path.join(root, d, "adapter_model.safetensors")).st_ino ==
                  os.stat(os.path.join(src, "adapter_model.safetensors")).st_ino, d)
    var_dir = os.path.join(TMP, "variants")
    r = bench("--in-process", "--adapter-dir", var_dir, "--adapter-variants", "1", "--ranks", "8,16",
              "--num-adapters", "40", "--rate", "16", "--duration", "1", "--input-range", "8,16",
              "--output-range", "2,6")
    if check("adapter-variants runs", r.returncode == 0, r.stderr[-1500:]):
        for d in os.listdir(var_dir):
            rank = d.split("-")[1]  # lora-r8-5 -> r8
            st = os.stat(os.path.join(var_dir, d, "adapter_model.safetensors"))
            base = os.path.join(var_dir, f"lora-{rank}-0", "adapter_model.safetensors")
            check(f"adapter-variants: {d} shares lora-{rank}-0's weights", os.path.exists(base) and
                  st.st_ino == os.stat(base).st_ino, d)


def test_url(adapters):
    r = subprocess.run([BIN, "make-demo", os.path.join(TMP, "demo")], capture_output=True, text=True)
    if not check("make-demo", r.returncode == 0, r.stderr):
        return
    test_adapter_sources()
    server, port = start_server(adapters, "k1")
    try:
        url = f"http://127.0.0.1:{port}/v1"
        out = os.path.join(TMP, "url.json")
        common = ["--url", url, "--model", os.path.join(TMP, "demo", "model"), "--num-adapters", "5",
                  "--ranks", "8", "--rate", "10", "--duration", "1", "--input-range", "8,16",
                  "--output-range", "2,8"]
        r = bench(*common, "--api-key", "k1", "--max-concurrency", "2", "--out", out)
        if check("url runs", r.returncode == 0, r.stderr[-2000:]):
            doc = json.load(open(out))
            run = doc["runs"][0]
            check("url: target", doc["target"]["url"] == url and doc["target"]["max_concurrency"] == 2, doc["target"])
            check("url: completed", run["metrics"]["completed"] == 10 and run["metrics"]["failed"] == 0, run["metrics"])
            check("url: server metrics scraped", "loraserve:adapter_disk_loads_total" in run["server"]["after"], run["server"].keys())
        r = bench(*common, "--api-key", "wrong")
        check("url: wrong key fails", r.returncode == 1 and "HTTP 401" in r.stderr and "failed" in r.stderr, r.stderr)
        r = bench(*common, "--no-lora", "--api-key", "k1")
        check("url: no-lora finds the base model's id", r.returncode == 0, r.stderr[-1500:])
    finally:
        server.terminate()
        server.wait(timeout=60)
    r = bench("--url", f"http://127.0.0.1:{port}", "--vocab-size", "100", "--num-adapters", "2",
              "--duration", "1", "--rate", "2")
    check("url: connection refused is reported", r.returncode == 1 and "connect" in r.stderr, r.stderr)


def test_bad_input():
    bad = os.path.join(TMP, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"timestamp": 0, "adapter": "lora-0", "input_len": 4, "output_len": 2}\n')
        f.write('{"timestamp": 1, "adapter": "lora-0", "input_len": 4, "output_length": 2}\n')
    cases = [
        (["--in-process", "--trace", bad], ["bad.jsonl: line 2", "unknown field 'output_length'"]),
        (["--suite", "slora-table3", "--in-process", "--num-adapters", "3"], ["--num-adapters", "conflicts"]),
        (["--suite", "nope", "--in-process"], ["not a suite", "slora-table3"]),
        (["--num-adapters", "5"], ["--in-process", "--launch", "--url"]),
        (["--in-process", "--launch"], ["exclude each other"]),
        (["--url", "https://example.com", "--vocab-size", "50"], ["https is not supported"]),
        (["--url", "http://127.0.0.1:8000"], ["vocabulary size"]),
        (["--in-process", "--trace", bad, "--rate", "3"], ["--rate", "no effect with --trace"]),
        (["--in-process", "--input-range", "600,700", "--output-range", "400,500", "--num-adapters", "1"],
         ["positions", "1024"]),
    ]
    for args, words in cases:
        r = bench(*args)
        one = r.stderr.strip().splitlines()
        check(f"bad input {args}: exit 1, one line", r.returncode == 1 and len(one) == 1 and
              one[0].startswith("loraserve: error: ") and not r.stdout, (r.returncode, r.stdout, r.stderr))
        for w in words:
            check(f"bad input {args}: says '{w}'", w in r.stderr, r.stderr)


def test_peers_and_plots(traces_dir, reports):
    peft = os.path.join(SRC, "tools", "peers", "peft_serve.py")
    trace = os.path.join(traces_dir, "t3-1.jsonl")
    r = subprocess.run([sys.executable, peft, "--trace", trace, "--dry-run"], capture_output=True, text=True)
    if check("peft dry-run", r.returncode == 0, r.stderr):
        s = json.loads(r.stdout)
        lines = trace_lines(trace)
        check("peft dry-run: same requests", s["requests"] == len(lines) and
              s["output_tokens"] == sum(x["output_len"] for x in lines), s)
    r = subprocess.run([sys.executable, peft, "--trace", os.path.join(TMP, "bad.jsonl"), "--dry-run"],
                       capture_output=True, text=True)
    check("peft dry-run: bad line", r.returncode != 0 and "line 2" in r.stderr and "output_length" in r.stderr, r.stderr)
    r = subprocess.run([sys.executable, peft, "--trace", trace, "--model", "m", "--random-shape", "tiny"],
                       capture_output=True, text=True)
    check("peft: --model with --random-shape refused", r.returncode != 0 and
          "one of --model and --random-shape" in r.stderr, r.stderr)
    r = subprocess.run([sys.executable, peft, "--trace", trace, "--random-shape", "tiny", "--max-seconds", "-1"],
                       capture_output=True, text=True)
    check("peft: negative --max-seconds refused", r.returncode != 0 and "--max-seconds" in r.stderr, r.stderr)
    plot = os.path.join(SRC, "tools", "bench_plot.py")
    pythons = [sys.executable] + [p for p in ["/usr/bin/python3"] if os.path.exists(p) and p != sys.executable]
    for py in pythons:
        has_mpl = subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0
        out_dir = os.path.join(TMP, "plots_" + os.path.basename(os.path.dirname(py)))
        r = subprocess.run([py, plot, *reports, "--out-dir", out_dir], capture_output=True, text=True)
        if has_mpl:
            pngs = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
            check(f"plots with {py}", r.returncode == 0 and "throughput_vs_adapters.png" in pngs and
                  "latency_cdf_launch.png" in pngs, (r.stderr, pngs))
        else:
            check(f"plots without matplotlib ({py}) say so", r.returncode == 3 and
                  "python3-matplotlib is not installed" in r.stderr, (r.returncode, r.stderr))


def main():
    try:
        got = test_in_process_and_launch()
        test_bad_input()
        if got:
            adapters, out_a, out_b, _ = got
            test_no_lora_and_replay(adapters, os.path.join(TMP, "t3-1.jsonl"))
            test_url(adapters)
            test_peers_and_plots(TMP, [out_a, out_b])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", flush=True)
        return 1
    print("all bench checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
