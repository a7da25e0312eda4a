#!/usr/bin/env python3
"""PNG plots of `loraserve bench --out` reports (and tools/peers/peft_serve.py's, same format).

  python3 tools/bench_plot.py table3.json table3-base.json peft.json --out-dir plots/

writes plots/throughput_vs_adapters.png (request throughput against the number of adapters,
one line per report and rank set; the legend names each report by its file name) and
plots/latency_cdf_<report>.png (CDFs of TTFT and end-to-end latency, one curve per run). Needs
python3-matplotlib (Debian: apt-get install python3-matplotlib); without it the script says so
and exits with status 3, writing nothing.
"""
import argparse
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_plot.py: error: {path}: {e}")
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        sys.exit(f"bench_plot.py: error: {path}: not a benchmark report (no 'runs')")
    for i, r in enumerate(doc["runs"]):
        if "metrics" not in r or "request_throughput" not in r["metrics"]:
            sys.exit(f"bench_plot.py: error: {path}: run {i} has no metrics")
    return doc


def series(doc):
    """(rank set label, [(num_adapters, req/s)]) for the runs that have a workload."""
    groups = {}
    for r in doc["runs"]:
        w = r.get("workload", {})
        if "num_adapters" not in w:
            continue
        key = "ranks " + ",".join(str(x) for x in w.get("ranks", []))
        groups.setdefault(key, []).append((w["num_adapters"], r["metrics"]["request_throughput"]))
    return {k: sorted(v) for k, v in groups.items()}


def cdf(values):
    v = sorted(values)
    return v, [(i + 1) / len(v) for i in range(len(v))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", help="JSON reports (loraserve bench --out)")
    p.add_argument("--out-dir", default=".", help="where the PNG files go")
    args = p.parse_args()
    docs = [(os.path.splitext(os.path.basename(path))[0], load(path)) for path in args.reports]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_plot.py: python3-matplotlib is not installed (Debian: apt-get install "
              "python3-matplotlib); no plots written", file=sys.stderr)
        sys.exit(3)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = 0
    for name, doc in docs:
        for key, points in series(doc).items():
            if len(points) < 1:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=f"{name} ({key})")
            lines += 1
    if lines:
        ax.set_xscale("log")
        ax.set_xlabel("number of adapters")
        ax.set_ylabel("request throughput (req/s)")
        ax.set_title("Throughput vs number of adapters")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        path = os.path.join(args.out_dir, "throughput_vs_adapters.png")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        written.append(path)
    plt.close(fig)

    for name, doc in docs:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for r in doc["runs"]:
            s = r.get("samples", {})
            for ax, key in zip(axes, ("ttft_s", "e2e_s")):
                if s.get(key):
                    xs, ys = cdf(s[key])
                    ax.step(xs, ys, where="post", label=r.get("label", "?"))
        for ax, title in zip(axes, ("TTFT (s)", "end-to-end latency (s)")):
            ax.set_xlabel(title)
            ax.set_ylabel("fraction of requests")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        fig.suptitle(f"Latency CDFs: {name}")
        fig.tight_layout()
        path = os.path.join(args.out_dir, f"latency_cdf_{name}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
