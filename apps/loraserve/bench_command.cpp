// `loraserve bench`: flags, their checks, and the list of runs (a suite, or the product of the
// workload flags, or one replayed trace); bench_runner.cpp does the rest.
#include <functional>
#include <sstream>

#include "bench_options.h"
#include "bundle_flags.h"
#include "commands.h"
#include "device_flag.h"

namespace ls {

namespace {

struct BenchFlags {
  BenchOptions o;
  bool in_process = false, launch = false;
  std::string prompt_format = "ids", serve_args;
  // Workload (one run per number of adapters unless a suite is given)
  std::vector<int32_t> num_adapters = {1, 100, 1000};
  std::vector<int32_t> ranks = {8, 16, 32, 64};
  double alpha = 1.0, rate = 4.0, cv = 1.0, duration = 10.0;
  std::vector<int32_t> input_range = {8, 64}, output_range = {8, 32};
  uint32_t seed = 42;
  std::string scale = "full";
  CLI::Option *o_num = nullptr, *o_ranks = nullptr, *o_alpha = nullptr, *o_rate = nullptr,
              *o_cv = nullptr, *o_duration = nullptr, *o_input = nullptr, *o_output = nullptr,
              *o_seed = nullptr, *o_scale = nullptr, *o_gpu = nullptr;
};

// Applies the workload flags the user gave to every run of a suite; a flag for the parameter
// the suite sweeps is an error.
Status apply_overrides(const BenchFlags& f, const SuiteInfo& info, std::vector<BenchRun>* runs) {
  struct Override {
    CLI::Option* opt;
    std::function<void(bench::WorkloadSpec&)> set;
  };
  const std::vector<Override> all = {
      {f.o_num, [&](auto& s) { s.num_adapters = f.num_adapters[0]; }},
      {f.o_ranks, [&](auto& s) { s.ranks = f.ranks; }},
      {f.o_alpha, [&](auto& s) { s.alpha = f.alpha; }},
      {f.o_rate, [&](auto& s) { s.rate = f.rate; }},
      {f.o_cv, [&](auto& s) { s.cv = f.cv; }},
      {f.o_duration, [&](auto& s) { s.duration_s = f.duration; }},
      {f.o_input,
       [&](auto& s) {
         s.input_lo = f.input_range[0];
         s.input_hi = f.input_range[1];
       }},
      {f.o_output,
       [&](auto& s) {
         s.output_lo = f.output_range[0];
         s.output_hi = f.output_range[1];
       }},
      {f.o_seed, [&](auto& s) { s.seed = f.seed; }},
  };
  for (const Override& ov : all) {
    if (ov.opt->count() == 0) continue;
    for (const std::string& swept : info.swept)
      if (ov.opt->check_name(swept))
        return invalid_argument(swept + " conflicts with --suite " + info.name +
                                ", which sets it per run");
    if (ov.opt == f.o_num && f.num_adapters.size() != 1)
      return invalid_argument("--num-adapters with --suite takes one value");
    for (BenchRun& r : *runs) ov.set(r.spec);
  }
  for (BenchRun& r : *runs) r.label = run_label(r.spec);
  return ok_status();
}

Result<std::vector<BenchRun>> make_runs(const BenchFlags& f) {
  std::vector<BenchRun> runs;
  if (!f.o.trace.empty()) {
    for (CLI::Option* opt :
         {f.o_num, f.o_alpha, f.o_rate, f.o_cv, f.o_duration, f.o_input, f.o_output, f.o_seed})
      if (opt->count() > 0)
        return invalid_argument(opt->get_name() +
                                " has no effect with --trace (the trace gives "
                                "the requests)");
    if (!f.o.suite.empty()) return invalid_argument("--trace and --suite exclude each other");
    BenchRun r;
    r.spec.ranks = f.ranks;
    r.label = "trace " + f.o.trace;
    runs.push_back(r);
    return runs;
  }
  if (!f.o.suite.empty()) {
    LS_ASSIGN_OR_RETURN(runs, suite_runs(f.o.suite, f.scale));
    for (const SuiteInfo& info : suite_infos())
      if (info.name == f.o.suite) LS_RETURN_IF_ERROR(apply_overrides(f, info, &runs));
  } else {
    if (f.o_scale->count() > 0) return invalid_argument("--scale needs --suite");
    for (int32_t n : f.num_adapters) {
      BenchRun r;
      r.spec.num_adapters = n;
      r.spec.ranks = f.ranks;
      r.spec.alpha = f.alpha;
      r.spec.rate = f.rate;
      r.spec.cv = f.cv;
      r.spec.duration_s = f.duration;
      r.spec.input_lo = f.input_range[0];
      r.spec.input_hi = f.input_range[1];
      r.spec.output_lo = f.output_range[0];
      r.spec.output_hi = f.output_range[1];
      r.spec.seed = f.seed;
      r.label = run_label(r.spec);
      runs.push_back(r);
    }
  }
  for (const BenchRun& r : runs)
    if (std::string e = bench::check_workload(r.spec); !e.empty())
      return invalid_argument(r.label + ": " + e);
  return runs;
}

// Checks the flag combinations and fills the options.
Status finish(BenchFlags& f) {
  BenchOptions& o = f.o;
  const int modes = int(f.in_process) + int(f.launch) + int(!o.url.empty());
  if (modes > 1) return invalid_argument("--in-process, --launch and --url exclude each other");
  if (modes == 0 && !o.dry_run && !o.make_adapters)
    return invalid_argument(
        "say where to run: --in-process (the engine in this process), --launch (start loraserve "
        "serve) or --url http://HOST:PORT (any OpenAI-compatible server)");
  o.mode = f.launch ? BenchMode::kLaunch : !o.url.empty() ? BenchMode::kUrl : BenchMode::kInProcess;
#ifndef LORASERVE_HAS_SERVER
  if (o.mode == BenchMode::kLaunch)
    return invalid_argument(
        "--launch needs `loraserve serve`, which this build leaves out "
        "(LORASERVE_SERVER); use --in-process, or --url with a server");
#endif
#ifndef LORASERVE_HAS_BENCH_HTTP
  if (o.mode != BenchMode::kInProcess)
    return invalid_argument(
        "--url and --launch need the HTTP client, which this build leaves "
        "out (it needs Boost: apt-get install libboost-dev)");
#endif
  if (o.make_adapters && (o.dry_run || o.no_lora || (o.model.empty() && o.mode == BenchMode::kUrl)))
    return invalid_argument(
        "--make-adapters needs adapters to make (not --no-lora or --dry-run) "
        "and the model they are for (--model)");
  if ((o.dry_run || o.make_adapters) && !o.out.empty())
    return invalid_argument(
        "--dry-run and --make-adapters run nothing, so --out has nothing to write (traces: "
        "--write-trace)");
  if (o.mode == BenchMode::kUrl && !o.adapters_from.empty() && !o.make_adapters)
    return invalid_argument(
        "--adapters-from makes adapters for --in-process, --launch or --make-adapters; with "
        "--url the server must already have them");
  if (o.mode == BenchMode::kInProcess && (o.max_concurrency > 0 || !o.api_key.empty()))
    return invalid_argument("--max-concurrency and --api-key apply to --launch and --url only");
  if (o.mode != BenchMode::kLaunch && !f.serve_args.empty())
    return invalid_argument("--serve-args applies to --launch only");
  if (o.mode == BenchMode::kUrl && (!o.device.empty() || f.o_gpu->count() > 0))
    return invalid_argument(
        "--device and --gpu-memory-utilization do not apply to --url (the "
        "server chose its device)");
  o.prompt_format =
      f.prompt_format == "text" ? bench::PromptFormat::kText : bench::PromptFormat::kTokenIds;
  if (o.mode == BenchMode::kInProcess && o.prompt_format == bench::PromptFormat::kText)
    return invalid_argument("--prompt-format text applies to --launch and --url only");
  if (o.mode == BenchMode::kUrl && o.model.empty() && o.vocab_size == 0 &&
      o.prompt_format == bench::PromptFormat::kTokenIds && o.trace.empty())
    return invalid_argument(
        "--url with token-id prompts needs the vocabulary size: --model DIR "
        "(its config.json) or --vocab-size N; or --prompt-format text");
  for (auto* r : {&f.input_range, &f.output_range})
    if ((*r)[0] < 1 || (*r)[1] <= (*r)[0])
      return invalid_argument("--input-range/--output-range need 1 <= LO < HI");
  std::istringstream words(f.serve_args);
  for (std::string w; words >> w;) o.serve_args.push_back(w);
  o.gpu_memory_given = f.o_gpu->count() > 0;
  o.scale = o.suite.empty() ? "" : f.scale;
  LS_ASSIGN_OR_RETURN(o.runs, make_runs(f));
  if (o.no_lora)
    for (BenchRun& r : o.runs) r.label += " no-lora";
  o.command = command_line();
  return ok_status();
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  BenchOptions& o = f->o;
  auto* sub = app.add_subcommand(
      "bench",
      "S-LoRA's multi-adapter workloads against the engine or any OpenAI-compatible server");
  // Where
  sub->add_flag("--in-process", f->in_process, "Drive the engine in this process (no HTTP)");
  sub->add_flag("--launch", f->launch,
                "Start `loraserve serve` on --model with the adapters as --lora-root, per run");
  sub->add_option("--url", o.url, "Any OpenAI-compatible server, http://HOST:PORT[/v1]");
  sub->add_option("--api-key", o.api_key, "Bearer key for --url (and the launched server)");
  sub->add_option("--served-model", o.served_model,
                  "--url: the base model's id for requests without an adapter (default: the first "
                  "of /v1/models)");
  sub->add_option("--max-concurrency", o.max_concurrency,
                  "HTTP: at most this many requests in flight (0 = open loop, unbounded)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--request-timeout", o.request_timeout_s, "HTTP: seconds per request")
      ->check(CLI::Range(0.1, 1e6));
  sub->add_option("--launch-timeout", o.launch_timeout_s,
                  "--launch: seconds the server may take to load and listen")
      ->check(CLI::Range(1.0, 1e5));
  sub->add_option(
      "--serve-args", f->serve_args,
      "--launch: extra `loraserve serve` flags, split at spaces, e.g. \"--page-size 16\"");
  sub->add_option("--prompt-format", f->prompt_format,
                  "HTTP prompts: ids (token-id arrays; default) or text (\"Hello \" x length, as "
                  "S-LoRA, for servers that take only text)")
      ->check(CLI::IsMember({"ids", "text"}));
  sub->add_option("--vocab-size", o.vocab_size, "--url without --model: ids drawn below this")
      ->check(CLI::Range(4, 1 << 30));
  // What
  sub->add_option("--suite", o.suite,
                  "Preset: slora-table3, num-adapters, alpha, cv or rate (docs/BENCHMARKS.md)");
  f->o_scale = sub->add_option("--scale", f->scale, "Suite size: full (S-LoRA's) or tiny (CPU)")
                   ->check(CLI::IsMember({"tiny", "full"}));
  sub->add_option("--trace", o.trace,
                  "Replay a JSONL trace: {timestamp, adapter, prompt | input_len, output_len}");
  f->o_num = sub->add_option("--num-adapters", f->num_adapters, "Numbers of adapters, one run each")
                 ->delimiter(',')
                 ->check(CLI::Range(1, 1 << 24));
  f->o_ranks = sub->add_option("--ranks", f->ranks, "Ranks the adapters cycle through")
                   ->delimiter(',')
                   ->check(CLI::Range(1, 4096));
  f->o_alpha = sub->add_option("--alpha", f->alpha, "Power-law popularity (1 = uniform)")
                   ->check(CLI::Range(1e-3, 1e3));
  f->o_rate =
      sub->add_option("--rate", f->rate, "Requests per second")->check(CLI::Range(1e-3, 1e6));
  f->o_cv =
      sub->add_option("--cv", f->cv, "Coefficient of variation of inter-arrivals (1 = Poisson)")
          ->check(CLI::Range(1e-3, 1e3));
  f->o_duration = sub->add_option("--duration", f->duration, "Seconds of arrivals")
                      ->check(CLI::Range(1e-3, 1e6));
  f->o_input =
      sub->add_option("--input-range", f->input_range, "Prompt length LO,HI (uniform in [LO, HI))")
          ->delimiter(',')
          ->expected(2);
  f->o_output = sub->add_option("--output-range", f->output_range, "Output length LO,HI")
                    ->delimiter(',')
                    ->expected(2);
  f->o_seed = sub->add_option("--seed", f->seed, "Workload seed (numpy's, as S-LoRA)");
  sub->add_flag("--no-lora", o.no_lora, "Same requests, adapters stripped: the base-only bound");
  // Model and adapters
  sub->add_option("--model", o.model, "Model directory (default: the demo model, made on the fly)");
  sub->add_option("--adapter-dir", o.adapter_dir,
                  "Where the adapters are written and reused (lora-<i>/; default: a temp dir)");
  sub->add_option("--adapters-from", o.adapters_from,
                  "Real PEFT adapters: lora-<i> is a copy of the (i mod k)-th adapter in this dir");
  sub->add_option("--adapter-variants", o.adapter_variants,
                  "Random adapters: only this many distinct weight files per rank, the rest hard "
                  "links (0 = all distinct)")
      ->check(CLI::Range(0, 1 << 20));
  // Engine (in process and launched)
  add_bundle_flags(sub, &o.lora_bundles, &o.bundle_serving);
  sub->add_option("--synthetic-bundle", o.synthetic_bundle_rank,
                  "In process: serve every adapter of the trace from a synthetic compressed "
                  "bundle of this rank K (random bases and S; for throughput, which depends "
                  "only on the shapes)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--synthetic-bundle-clusters", o.synthetic_bundle_clusters,
                  "Clusters of --synthetic-bundle")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--max-num-seqs", o.max_num_seqs, "Running sequences cap")
      ->check(CLI::Range(1, 1 << 16));
  sub->add_option("--max-tokens-per-step", o.max_tokens_per_step, "Token budget of one step")
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--host-adapter-cache-bytes", o.host_bytes, "Host tier budget")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  sub->add_option("--pool-bytes", o.pool_bytes, "Page pool (KV + adapters) bytes on the CPU")
      ->check(CLI::Range(int64_t{1} << 16, int64_t{1} << 50));
  add_policy_flags(sub, &o.policy, &o.ttft_slo_ms);
  add_device_flag(sub, &o.device);
  add_gpu_memory_flag(sub, &o.gpu_memory_utilization);
  add_kv_cache_dtype_flag(sub, &o.kv_cache_dtype);
  f->o_gpu = sub->get_option("--gpu-memory-utilization");
  // Output
  sub->add_option("--slo-ttft", o.slo_ttft_s, "TTFT SLO in seconds for attainment and goodput")
      ->check(CLI::Range(1e-6, 1e6));
  sub->add_option("--out", o.out, "JSON report (plot with tools/bench_plot.py)");
  sub->add_option("--write-trace", o.write_trace,
                  "Write each run's requests as JSONL (several runs: FILE-1.jsonl, ...)");
  sub->add_flag("--dry-run", o.dry_run, "Build the requests (and --write-trace), run nothing");
  sub->add_flag("--make-adapters", o.make_adapters,
                "Write the adapters the runs need into --adapter-dir and stop (for a server "
                "started by hand: serve --lora-root DIR)");
  sub->add_flag("--allow-failures", o.allow_failures,
                "Exit 0 even when requests failed (they are counted in the report)");
  sub->footer(
      "Examples:\n"
      "  loraserve bench --in-process --suite slora-table3 --scale tiny --out table3.json\n"
      "  loraserve bench --launch --model DIR --device cuda --suite slora-table3 --out t3.json\n"
      "  loraserve bench --launch --model DIR --suite slora-table3 --no-lora --out t3-base.json\n"
      "  loraserve bench --url http://127.0.0.1:8000 --model DIR --num-adapters 100 --rate 10\n"
      "  loraserve bench --suite slora-table3 --model DIR --write-trace t3.jsonl --dry-run\n"
      "  python3 tools/bench_plot.py t3.json t3-base.json --out-dir plots/");
  return {sub, [f]() {
            Status st = finish(*f);
            if (!st.ok()) return fail(st.message());
            return run_bench(f->o);
          }};
}

}  // namespace ls
