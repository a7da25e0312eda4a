// Scale of `loraserve compress`: N synthetic rank-r adapters of a Llama-2-7B-shaped model (q, k,
// v, o of 4096 x 4096 in each of 32 layers), compressed at several K. 1,000 such adapters are
// 67 GB in fp32, so each (layer, module) is generated in memory from seeds, fitted and dropped
// (streaming per module), two modules at a time on ThreadPool::shared(). --layers runs fewer
// layers than the model has and extrapolates the time linearly (every layer is the same work).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/thread_pool.h"
#include "compress/joint_fit.h"
#include "compress/synthetic.h"

namespace ls::compress {
namespace {

double peak_rss_mib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

std::vector<int32_t> parse_list(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

struct Flags {
  int32_t adapters = 1000;
  int32_t lora_rank = 16;
  std::string ks = "16,32,64";
  int32_t layers = 32;        // layers actually run
  int32_t model_layers = 32;  // layers of the model (for extrapolation)
  int32_t modules = 4;        // q, k, v, o
  int64_t dim = 4096;
  int32_t iters = 10;
  std::string mode = "full";
  int32_t shared_dim = 64;
  double noise = 0.5;
  std::string out;
};

int run(const Flags& f, const std::string& command) {
  use_single_threaded_blas();
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (int32_t k : parse_list(f.ks)) {
    const int32_t tasks = f.layers * f.modules;
    std::vector<double> mean_err(static_cast<size_t>(tasks)), max_err(static_cast<size_t>(tasks));
    std::vector<double> gen_s(static_cast<size_t>(tasks)), fit_s(static_cast<size_t>(tasks));
    std::vector<int32_t> steps(static_cast<size_t>(tasks));
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    ThreadPool::shared().parallel_for(tasks, [&](int64_t b, int64_t e) {
      for (int64_t task = b; task < e; ++task) {
        const auto g0 = std::chrono::steady_clock::now();
        SubspaceGenerator gen(f.dim, f.dim, f.shared_dim, f.noise, 1000 + task);
        const auto per = static_cast<size_t>(f.lora_rank * f.dim);
        std::vector<float> a(per * static_cast<size_t>(f.adapters)), bt(a.size());
        std::vector<FactorView> views;
        for (int32_t i = 0; i < f.adapters; ++i) {
          gen.make(f.lora_rank, static_cast<uint64_t>(task) * 100003ull + i, a.data() + i * per,
                   bt.data() + i * per);
          views.push_back({f.lora_rank, 2.0, a.data() + i * per, bt.data() + i * per});
        }
        const auto g1 = std::chrono::steady_clock::now();
        FitOptions o;
        o.mode = f.mode == "diag" ? Mode::kDiag : Mode::kFull;
        o.rank = k;
        o.iters = f.iters;
        o.seed = static_cast<uint64_t>(task) + 1;
        ModuleFit fit = fit_module(f.dim, f.dim, views, o);
        const auto g2 = std::chrono::steady_clock::now();
        double sum = 0, worst = 0;
        for (const auto& c : fit.coeffs) {
          sum += c.rel_error;
          worst = std::max(worst, c.rel_error);
        }
        const auto t = static_cast<size_t>(task);
        mean_err[t] = sum / static_cast<double>(fit.coeffs.size());
        steps[t] = fit.iters_run;
        max_err[t] = worst;
        gen_s[t] = std::chrono::duration<double>(g1 - g0).count();
        fit_s[t] = std::chrono::duration<double>(g2 - g1).count();
      }
    });
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    double gen_total = 0, fit_total = 0, err = 0, worst = 0, steps_total = 0;
    for (int32_t t = 0; t < tasks; ++t) {
      gen_total += gen_s[static_cast<size_t>(t)];
      fit_total += fit_s[static_cast<size_t>(t)];
      steps_total += steps[static_cast<size_t>(t)];
      err += mean_err[static_cast<size_t>(t)];
      worst = std::max(worst, max_err[static_cast<size_t>(t)]);
    }
    const double scale = static_cast<double>(f.model_layers) / f.layers;
    nlohmann::ordered_json row = {
        {"K", k},
        {"layers_run", f.layers},
        {"modules_run", tasks},
        {"wall_s", wall},
        {"process_cpu_s", cpu},
        {"extrapolated_full_model_cpu_s", cpu * scale},
        {"extrapolated_full_model_wall_s_on_2_idle_cores", cpu * scale / 2},
        {"fit_task_wall_s_sum", fit_total},
        {"generate_task_wall_s_sum", gen_total},
        {"fit_wall_s_per_module", fit_total / tasks},
        {"mean_alternating_steps", steps_total / tasks},
        {"extrapolated_full_model_wall_s", wall * scale},
        {"extrapolated_full_model_fit_only_wall_s",
         wall * scale * fit_total / (fit_total + gen_total)},
        {"mean_rel_error", err / tasks},
        {"max_rel_error", worst},
        {"peak_rss_mib_so_far", peak_rss_mib()}};
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
    results.push_back(row);
  }
  nlohmann::ordered_json j = {
      {"benchmark", "compress_scale"},
      {"command", command},
      {"machine",
       {{"cpu", "AMD EPYC VM"}, {"hardware_threads", std::thread::hardware_concurrency()}}},
      {"workload",
       {{"adapters", f.adapters},
        {"lora_rank", f.lora_rank},
        {"shape", "Llama-2-7B attention: 32 layers x {q,k,v,o} of 4096 x 4096"},
        {"module_dim", f.dim},
        {"modules_per_layer", f.modules},
        {"model_layers", f.model_layers},
        {"mode", f.mode},
        {"iters", f.iters},
        {"adapters_structure",
         f.shared_dim > 0 ? "rows in a shared " + std::to_string(f.shared_dim) +
                                "-dim subspace per module plus noise " + std::to_string(f.noise)
                          : std::string("independent random")},
        {"precision", "fp32 factors in, fp64 fitting (OpenBLAS dgemm, LAPACK dgeqrf/dorgqr)"}}},
      {"note",
       "streamed per (layer, module): generated from seeds, fitted, dropped; two modules at a "
       "time (2 cores). Full-model time = measured x model_layers / layers_run. The machine is "
       "shared with other engineers' builds, so wall time is inflated; process CPU time / 2 "
       "is the estimate for two idle cores."},
      {"results", results}};
  if (!f.out.empty()) {
    std::ofstream out(f.out);
    out << j.dump(2) << "\n";
    if (!out.good()) {
      std::fprintf(stderr, "cannot write %s\n", f.out.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace ls::compress

int main(int argc, char** argv) {
  ls::compress::Flags f;
  CLI::App app{"Compression of many synthetic Llama-2-7B-shaped LoRA adapters: time and memory"};
  app.add_option("--adapters", f.adapters, "Number of adapters");
  app.add_option("--lora-rank", f.lora_rank, "Rank of each adapter");
  app.add_option("--ks", f.ks, "Comma-separated K values");
  app.add_option("--layers", f.layers, "Layers to run (time is extrapolated to --model-layers)");
  app.add_option("--model-layers", f.model_layers, "Layers of the model");
  app.add_option("--modules", f.modules, "Modules per layer (q, k, v, o)");
  app.add_option("--dim", f.dim, "Module width");
  app.add_option("--iters", f.iters, "Alternating steps per fit");
  app.add_option("--mode", f.mode, "full or diag")->check(CLI::IsMember({"full", "diag"}));
  app.add_option("--shared-dim", f.shared_dim,
                 "Shared subspace dim of the synthetic adapters (0 = independent)");
  app.add_option("--noise", f.noise, "Noise relative to the shared part");
  app.add_option("--out", f.out, "Write the JSON result here");
  CLI11_PARSE(app, argc, argv);
  std::string command = "./build/release/bench/compress_scale_bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  return ls::compress::run(f, command);
}
