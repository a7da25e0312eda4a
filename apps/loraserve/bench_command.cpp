// `loraserve bench`: S-LoRA's synthetic workload against the engine in process, once per
// number of adapters; prints a table and writes JSON with the command and the full config.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench_in_process.h"
#include "commands.h"
#include "model/demo_model.h"

namespace ls {

namespace {

struct BenchFlags {
  bool in_process = false;
  std::string model, adapter_dir, out;
  std::vector<int32_t> num_adapters = {1, 100, 1000};
  std::vector<int32_t> ranks = {8, 16, 32, 64};
  double alpha = 1.0, rate = 4.0, cv = 1.0, duration = 10.0, slo = 6.0;
  std::vector<int32_t> input_range = {8, 64}, output_range = {8, 32};
  uint64_t seed = 42;
  int32_t max_num_seqs = 32;
  int64_t host_bytes = 1ll << 30, pool_bytes = 256ll << 20;
  std::string argv;
  PolicyOptions policy;
  double ttft_slo_ms = 0.0;
};

int run_bench(const BenchFlags& f) {
  if (!f.in_process)
    return fail(
        "only --in-process is available in this build (the HTTP client comes with the "
        "server); pass --in-process");
  std::string model_dir = f.model, tmp;
  if (model_dir.empty()) {
    tmp = std::filesystem::temp_directory_path().string() + "/loraserve_bench_" +
          std::to_string(::getpid());
    auto demo = make_demo(tmp);
    if (!demo.ok()) return fail(demo.status().message());
    model_dir = tmp + "/model";
  }
  auto backend = make_cpu_backend();
  auto model = LlamaModel::load(model_dir, *backend);
  if (!model.ok()) return fail(model.status().message());
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  std::printf("%-9s %-8s %-9s %-10s %-9s %-9s %-8s %-10s %-9s %-9s\n", "adapters", "requests",
              "req/s", "out_tok/s", "ttft_p50", "ttft_p99", "slo", "disk_load", "dev_hits",
              "dev_evict");
  for (int32_t n : f.num_adapters) {
    InProcessBenchConfig cfg;
    cfg.model_dir = model_dir;
    cfg.adapter_dir =
        (f.adapter_dir.empty()
             ? (tmp.empty() ? std::string("/tmp/loraserve_bench_adapters") : tmp + "/adapters")
             : f.adapter_dir);
    cfg.workload.num_adapters = n;
    cfg.workload.ranks = f.ranks;
    cfg.workload.alpha = f.alpha;
    cfg.workload.rate = f.rate;
    cfg.workload.cv = f.cv;
    cfg.workload.duration_s = f.duration;
    cfg.workload.input_lo = f.input_range[0];
    cfg.workload.input_hi = f.input_range[1];
    cfg.workload.output_lo = f.output_range[0];
    cfg.workload.output_hi = f.output_range[1];
    cfg.workload.seed = f.seed;
    cfg.engine.max_num_seqs = f.max_num_seqs;
    cfg.engine.pool_bytes = f.pool_bytes;
    cfg.engine.adapters.host_budget_bytes = f.host_bytes;
    cfg.slo_ttft_s = f.slo;
    cfg.engine.policy = f.policy;
    cfg.engine.ttft_slo_ms = f.ttft_slo_ms;
    auto r = run_in_process_bench(cfg, *model.value());
    if (!r.ok()) return fail(r.status().message());
    const auto& m = r.value()["metrics"];
    const auto& e = r.value()["engine"];
    std::printf("%-9d %-8d %-9.2f %-10.1f %-9.3f %-9.3f %-8.3f %-10lld %-9lld %-9lld\n", n,
                m["requests"].get<int>(), m["request_throughput"].get<double>(),
                m["output_token_throughput"].get<double>(), m["ttft_s"]["p50"].get<double>(),
                m["ttft_s"]["p99"].get<double>(), m["slo_attainment"].get<double>(),
                e["disk_loads"].get<long long>(), e["device_hits"].get<long long>(),
                e["device_evictions"].get<long long>());
    std::fflush(stdout);
    runs.push_back(r.value());
  }
  if (!f.out.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    nlohmann::ordered_json doc = {{"benchmark", "slora_workload_in_process"},
                                  {"command", f.argv},
                                  {"machine",
                                   {{"hostname", host},
                                    {"hardware_threads", std::thread::hardware_concurrency()},
                                    {"backend", "cpu"}}},
                                  {"model", model_dir},
                                  {"runs", runs}};
    std::ofstream out(f.out);
    out << doc.dump(2) << "\n";
    if (!out) return fail(f.out + ": cannot write");
  }
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* sub = app.add_subcommand("bench", "S-LoRA's synthetic multi-adapter workload (in process)");
  sub->add_flag("--in-process", f->in_process, "Drive the engine directly (no HTTP)");
  sub->add_option("--model", f->model,
                  "Model directory (default: the demo model, made on the fly)");
  sub->add_option("--adapter-dir", f->adapter_dir, "Where the random adapters are written/reused");
  sub->add_option("--num-adapters", f->num_adapters, "Numbers of adapters, one run each")
      ->delimiter(',');
  sub->add_option("--ranks", f->ranks, "Ranks the adapters cycle through")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  sub->add_option("--alpha", f->alpha, "Power-law popularity (1 = uniform)")
      ->check(CLI::Range(1e-3, 1e3));
  sub->add_option("--rate", f->rate, "Requests per second")->check(CLI::Range(1e-3, 1e6));
  sub->add_option("--cv", f->cv, "Coefficient of variation of inter-arrivals (1 = Poisson)")
      ->check(CLI::Range(1e-3, 1e3));
  sub->add_option("--duration", f->duration, "Seconds of arrivals")->check(CLI::Range(1e-3, 1e6));
  sub->add_option("--input-range", f->input_range, "Prompt length LO,HI (uniform in [LO, HI))")
      ->delimiter(',')
      ->expected(2);
  sub->add_option("--output-range", f->output_range, "Output length LO,HI")
      ->delimiter(',')
      ->expected(2);
  sub->add_option("--seed", f->seed, "Workload seed");
  sub->add_option("--slo-ttft", f->slo, "TTFT SLO in seconds for attainment/goodput");
  sub->add_option("--max-num-seqs", f->max_num_seqs, "Running sequences cap")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--host-adapter-cache-bytes", f->host_bytes, "Host tier budget");
  sub->add_option("--pool-bytes", f->pool_bytes, "Page pool (KV + adapters) bytes");
  sub->add_option("--out", f->out, "JSON results file");
  add_policy_flags(sub, &f->policy, &f->ttft_slo_ms);
  sub->footer(
      "Example:\n  loraserve bench --in-process --num-adapters 1,100,1000 --rate 4 --duration 10 "
      "--out bench/results/cpu_in_process.json");
  return {sub, [f]() {
            for (auto* r : {&f->input_range, &f->output_range})
              if ((*r)[0] < 1 || (*r)[1] <= (*r)[0])
                return fail("--input-range/--output-range need 1 <= LO < HI");
            if (f->num_adapters.empty() || f->ranks.empty())
              return fail("--num-adapters and --ranks need values");
            for (int32_t n : f->num_adapters)
              if (n < 1) return fail("--num-adapters values must be >= 1");
            f->argv = command_line();
            return run_bench(*f);
          }};
}

}  // namespace ls
