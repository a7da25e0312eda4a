#!/usr/bin/env python3
"""Runs the SSE transport benchmark: each server variant x each configuration, in alternating
order, --reps times; one fresh server process per run (so peak RSS and CPU are per run).
Prints tables of the medians and writes all runs plus medians as JSON."""
import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Threads", "VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_threads, self.peak_rss_kb = pid, False, 0, 0

    def run(self):
        while not self.stop:
            st = proc_status(self.pid)
            self.peak_threads = max(self.peak_threads, st.get("Threads", 0))
            self.peak_rss_kb = max(self.peak_rss_kb, st.get("VmRSS", 0))
            time.sleep(0.02)


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def pct(values):
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    v = sorted(values)
    at = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    return {"p50": at(0.5), "p99": at(0.99), "max": v[-1], "n": len(v)}


def run_one(args, variant, cfg, port):
    c = cfg["conns"]
    if variant["lib"] == "httplib":
        cmd = [f"{args.bin_dir}/sse_httplib", "--threads", str(c + 16)]
        if variant.get("backlog"):
            cmd += ["--backlog", str(variant["backlog"])]
    else:
        cmd = [f"{args.bin_dir}/sse_beast", "--threads", str(args.beast_threads)]
    cmd += ["--port", str(port), "--tick-ms", str(cfg["interval_ms"])]
    load_before = os.getloadavg()
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    banner = server.stderr.readline().strip()
    for _ in range(200):
        try:
            http_get(port, "/stats")
            break
        except OSError:
            time.sleep(0.02)
    cpu0 = proc_cpu_s(server.pid)
    sampler = Sampler(server.pid)
    sampler.start()
    client_cmd = [f"{args.bin_dir}/sse_load", "--port", str(port), "--conns", str(c),
                  "--events", str(cfg["events"]), "--interval-ms", str(cfg["interval_ms"]),
                  "--mode", cfg["mode"], "--timeout-s", str(args.timeout_s)]
    if cfg.get("close_after"):
        client_cmd += ["--close-after", str(cfg["close_after"])]
    if cfg.get("close_after_ms"):
        client_cmd += ["--close-after-ms", str(cfg["close_after_ms"])]
    client = subprocess.run(client_cmd, capture_output=True, text=True)
    time.sleep(0.3)  # let the server notice the last disconnects
    stats = http_get(port, "/stats")
    cpu_s = proc_cpu_s(server.pid) - cpu0
    hwm = proc_status(server.pid).get("VmHWM", 0)
    sampler.stop = True
    sampler.join()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if client.returncode != 0:
        raise RuntimeError(f"client failed: {client.stderr}")
    res = json.loads(client.stdout)
    detected = dict((i, t) for i, t in stats.pop("disconnects"))
    closes = res.pop("client_closes")
    lat = [(detected[i] - t) / 1e6 for i, t in closes if i in detected]
    closed_ids = {i for i, _ in closes}
    ideal_events = res["completed"] * cfg["events"] + (
        len(closes) * cfg["close_after"] if cfg.get("close_after") else
        len(closes) * (cfg.get("close_after_ms", 0) // cfg["interval_ms"]))
    return {
        "variant": variant["name"], "config": cfg["name"], "server_cmd": " ".join(cmd),
        "client_cmd": " ".join(client_cmd), "server_banner": banner,
        "load1_before": load_before[0], "loadavg_before": list(load_before), "client": res, "server_stats": stats,
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_us_per_event": round(cpu_s * 1e6 / max(1, stats["events_generated"]), 2), "server_peak_rss_mb": round(max(hwm, sampler.peak_rss_kb) / 1024, 1),
        "server_peak_threads": sampler.peak_threads,
        "disconnect": {
            "closed_by_client": len(closes),
            "detected": sum(1 for i in closed_ids if i in detected),
            "false_disconnects": sum(1 for i in detected if i not in closed_ids),
            "detect_ms": pct(lat),
            "events_generated": stats["events_generated"], "events_needed": ideal_events,
        },
    }


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def median_of(runs):
    flat = [flatten(r) for r in runs]
    keys = set().union(*flat)
    return {k: statistics.median([f[k] for f in flat if f.get(k) is not None])
            for k in sorted(keys) if any(f.get(k) is not None for f in flat)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default="build/http-bench")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conns", default="100,1000,2000")
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--interval-ms", type=int, default=20)
    ap.add_argument("--disconnect-conns", type=int, default=1000)
    ap.add_argument("--beast-threads", type=int, default=2)
    ap.add_argument("--timeout-s", type=int, default=60)
    ap.add_argument("--variants", default="cpp-httplib,cpp-httplib backlog=4096,beast")
    ap.add_argument("--out", default="bench/results/http_transport.json")
    args = ap.parse_args()

    E, T = args.events, args.interval_ms
    configs = [{"name": f"stream C={c}", "mode": "stream", "conns": c, "events": E,
                "interval_ms": T} for c in map(int, args.conns.split(","))]
    D = args.disconnect_conns
    configs.append({"name": f"disconnect stream C={D}", "mode": "stream", "conns": D, "events": E,
                    "interval_ms": T, "close_after": 10})
    configs.append({"name": f"disconnect non-stream C={D}", "mode": "complete", "conns": D,
                    "events": E, "interval_ms": T, "close_after_ms": 10 * T})
    variants = [{"name": "cpp-httplib", "lib": "httplib"},
                {"name": "cpp-httplib backlog=4096", "lib": "httplib", "backlog": 4096},
                {"name": "beast", "lib": "beast"}]
    variants = [v for v in variants if v["name"] in args.variants.split(",")]

    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# {uptime_start}", flush=True)
    runs, port = [], 20000 + os.getpid() % 5000
    for rep in range(args.reps):
        order = variants if rep % 2 == 0 else variants[::-1]
        cfgs = configs if rep % 2 == 0 else configs[::-1]
        for cfg in cfgs:
            for v in order:
                port += 1
                r = run_one(args, v, cfg, port)
                r["rep"] = rep
                runs.append(r)
                cl = r["client"]
                print(f"rep {rep} {v['name']:26s} {cfg['name']:28s} done {cl['completed']:5d} "
                      f"err {cl['errors']:4d} gap p99 {cl['gap_ms']['p99']} ms "
                      f"load {r['loadavg_before'][0]:.2f}", flush=True)
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    medians = []
    for cfg in configs:
        for v in variants:
            sel = [r for r in runs if r["variant"] == v["name"] and r["config"] == cfg["name"]]
            medians.append({"variant": v["name"], "config": cfg["name"], "reps": len(sel),
                            "median": median_of(sel)})

    print(f"\n# medians of {args.reps} runs; E={E} events at T={T} ms; {uptime_end}")
    hdr = ("| library | test | C | completed | errors | gap p50 / p99 / max ms | "
           "first event p99 ms | connect p99 ms | lag p99 ms | server RSS MB | threads | "
           "server CPU s | CPU us/event | client CPU s | load1 |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for m in medians:
        x = m["median"]
        g = lambda k: x.get(k)
        f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
        print(f"| {m['variant']} | {m['config'].rsplit(' C=', 1)[0]} | {int(g('client.conns'))} | "
              f"{int(g('client.completed'))} | {int(g('client.errors'))} | "
              f"{f(g('client.gap_ms.p50'))} / {f(g('client.gap_ms.p99'))} / "
              f"{f(g('client.gap_ms.max'))} | {f(g('client.first_event_ms.p99'))} | "
              f"{f(g('client.connect_ms.p99'))} | {f(g('client.lag_ms.p99'))} | "
              f"{f(g('server_peak_rss_mb'))} | {int(g('server_peak_threads'))} | "
              f"{f(g('server_cpu_s'), 2)} | {f(g('server_cpu_us_per_event'))} | "
              f"{f(g('client.client_cpu_s'), 2)} | "
              f"{f(g('load1_before'), 2)} |")
    print("\n| library | test | closed by client | detected | detect p50 / p99 / max ms | "
          "events generated / needed |")
    print("|---|---|---|---|---|---|")
    for m in medians:
        if "disconnect" not in m["config"]:
            continue
        x = m["median"]
        f = lambda v: "-" if v is None else f"{v:.1f}"
        print(f"| {m['variant']} | {m['config']} | {int(x['disconnect.closed_by_client'])} | "
              f"{int(x['disconnect.detected'])} | {f(x.get('disconnect.detect_ms.p50'))} / "
              f"{f(x.get('disconnect.detect_ms.p99'))} / {f(x.get('disconnect.detect_ms.max'))} | "
              f"{int(x['disconnect.events_generated'])} / {int(x['disconnect.events_needed'])} |")

    doc = {
        "benchmark": "http_transport",
        "command": " ".join([sys.argv[0]] + sys.argv[1:]),
        "nice": os.nice(0),
        "libraries": {p: subprocess.run(["dpkg-query", "-W", "-f", "${Version}", p],
                                        capture_output=True, text=True).stdout
                      for p in ("libcpp-httplib-dev", "libcpp-httplib0.11", "libboost-dev",
                                "libboost1.74-dev", "g++")},
        "machine": {"description": "2-core AMD EPYC VM, Debian 12", "hardware_threads": os.cpu_count(),
                    "kernel": platform.release(), "uptime_start": uptime_start,
                    "uptime_end": uptime_end},
        "workload": {"events": E, "interval_ms": T, "reps": args.reps,
                     "order": "configs and variants reversed on odd reps; fresh server per run",
                     "beast_io_threads": args.beast_threads, "httplib_pool_threads": "C + 16"},
        "medians": medians,
        "runs": runs,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
