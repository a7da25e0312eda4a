// A Llama-2-7B- or Llama-3-8B-shaped model with random weights made directly on the device
// (no download, no files), N random adapters of given ranks, and a batch of requests mixing
// them through the engine. Prints load time, memory, the pool and step throughput; later
// benchmarks start from here.
//   random_model_bench --shape llama3-8b --device cuda --adapters 8 --ranks 8,16,64,128
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "base/rng.h"
#include "device_flag.h"
#include "engine/batch_generator.h"
#include "model/random_model.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {
namespace {

struct Flags {
  std::string shape = "llama2-7b";
  std::string device;
  int32_t adapters = 4;
  std::vector<int32_t> ranks = {8, 16, 64, 128};
  int32_t requests = 16;
  int32_t prompt_len = 128;
  int32_t max_tokens = 16;
  double gpu_memory_utilization = 0.9;
  uint64_t seed = 1;
  bool enforce_eager = false;
  std::string activation_dtype = "fp32";
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run(const Flags& f) {
  auto config = model_shape_config(f.shape);
  if (!config.ok()) return std::fprintf(stderr, "%s\n", config.status().message().c_str()), 1;
  const ModelConfig& c = config.value();
  auto made = make_backend(f.device, f.enforce_eager, f.activation_dtype);
  if (!made.ok()) return std::fprintf(stderr, "%s\n", made.status().message().c_str()), 1;
  std::unique_ptr<Backend> be = std::move(made).value();
  RandomWeightFn fill = host_random_weights(*be);
#ifdef LORASERVE_HAS_CUDA
  if (be->name() == "cuda")
    fill = [&](DType t, int64_t rows, int64_t cols, uint64_t seed, float scale, float offset) {
      return cuda_random_weight(*be, t, rows, cols, seed, scale, offset);
    };
#endif
  auto t0 = std::chrono::steady_clock::now();
  auto model = make_random_model(c, *be, DType::kBF16, f.seed, fill);
  if (!model.ok()) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 1;
  float probe = 0;  // a download waits for the device
  Buffer probe_buf = be->alloc(sizeof probe);
  be->fill_zero(probe_buf.data, sizeof probe);
  be->download(&probe, probe_buf.data, sizeof probe);
  const double load_s = seconds_since(t0);
  BatchGenerator::AdapterMap adapters;
  for (int32_t i = 0; i < f.adapters; ++i) {
    const int32_t r = f.ranks[static_cast<size_t>(i) % f.ranks.size()];
    const std::string name = "a" + std::to_string(i) + "_r" + std::to_string(r);
    adapters.emplace(name, std::make_shared<const LoraAdapter>(
                               make_random_adapter(c, name, r, f.seed + 1000 + i)));
  }
  BatchGeneratorOptions opts;
  opts.kv_dtype = kv_cache_dtype("auto", *be).value();
  auto pool = kv_pool_bytes(*be, c, f.gpu_memory_utilization, opts.max_tokens_per_step,
                            opts.max_num_seqs, 1ll << 30, opts.kv_dtype);
  if (!pool.ok()) return std::fprintf(stderr, "%s\n", pool.status().message().c_str()), 1;
  opts.max_kv_bytes = pool.value();
  BatchGenerator gen(*model.value(), adapters, opts);
  std::vector<GenerationRequest> reqs;
  Rng rng(f.seed);
  std::vector<std::string> names;
  for (const auto& [name, a] : adapters) names.push_back(name);
  for (int32_t i = 0; i < f.requests; ++i) {
    GenerationRequest r;
    for (int32_t j = 0; j < f.prompt_len; ++j)
      r.prompt_ids.push_back(static_cast<int32_t>(rng.uniform() * c.vocab_size));
    r.max_tokens = f.max_tokens;
    // Every fifth request runs on the base model; the rest cycle through the adapters.
    if (i % 5 != 4 && !names.empty()) r.adapter = names[static_cast<size_t>(i) % names.size()];
    reqs.push_back(r);
  }
  t0 = std::chrono::steady_clock::now();
  auto res = gen.run(reqs);
  const double run_s = seconds_since(t0);
  if (!res.ok()) return std::fprintf(stderr, "%s\n", res.status().message().c_str()), 1;
  int64_t generated = 0;
  bool ok = true;
  for (const auto& r : res.value()) {
    generated += static_cast<int64_t>(r.tokens.size());
    ok = ok && r.tokens.size() == static_cast<size_t>(f.max_tokens);
    for (int32_t t : r.tokens) ok = ok && t >= 0 && t < c.vocab_size;
  }
  const EngineStats st = gen.engine().stats();
  std::printf("shape %s on %s: %d layers, hidden %d, vocab %d; random bf16 weights in %.2f s\n",
              f.shape.c_str(), std::string(be->name()).c_str(), c.num_layers, c.hidden_size,
              c.vocab_size, load_s);
#ifdef LORASERVE_HAS_CUDA
  if (be->name() == "cuda") {
    auto m = cuda_memory_info(*be);
    if (m.ok())
      std::printf("device memory: %.1f GiB total, %.1f GiB held by the backend\n",
                  static_cast<double>(m.value().total) / (1ull << 30),
                  static_cast<double>(m.value().in_use) / (1ull << 30));
  }
#endif
  std::printf("page pool %.1f GiB (%lld pages); %d adapters (ranks",
              opts.max_kv_bytes / 1073741824.0, static_cast<long long>(st.pages_total), f.adapters);
  for (int32_t r : f.ranks) std::printf(" %d", r);
  std::printf(
      ")\n%d requests x (%d prompt + %d new) tokens: %.2f s, %lld tokens out, %.1f tok/s, "
      "%lld steps\n",
      f.requests, f.prompt_len, f.max_tokens, run_s, static_cast<long long>(generated),
      static_cast<double>(generated) / run_s, static_cast<long long>(st.steps));
  const GraphStats gs = model.value()->graph_stats();
  std::printf("decode graphs: %lld captured, %lld replays, %lld eager fallbacks%s\n",
              static_cast<long long>(gs.captures), static_cast<long long>(gs.replays),
              static_cast<long long>(gs.eager), f.enforce_eager ? " (--enforce-eager)" : "");
  std::printf("first request's tokens:");
  for (int32_t t : res.value()[0].tokens) std::printf(" %d", t);
  std::printf("\n%s\n", ok ? "all requests complete, tokens in vocabulary" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace ls

int main(int argc, char** argv) {
  ls::Flags f;
  CLI::App app{"Random-weight real-shape model through the engine"};
  app.add_option("--shape", f.shape, "llama2-7b, llama3-8b or tiny");
  ls::add_device_flag(&app, &f.device);
  ls::add_gpu_memory_flag(&app, &f.gpu_memory_utilization);
  ls::add_enforce_eager_flag(&app, &f.enforce_eager);
  ls::add_activation_dtype_flag(&app, &f.activation_dtype);
  app.add_option("--adapters", f.adapters, "Random adapters")->check(CLI::Range(0, 100000));
  app.add_option("--ranks", f.ranks, "Adapter ranks, cycled (e.g. 8,16,64)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  app.add_option("--requests", f.requests)->check(CLI::Range(1, 100000));
  app.add_option("--prompt-len", f.prompt_len)->check(CLI::Range(1, 100000));
  app.add_option("--max-tokens", f.max_tokens)->check(CLI::Range(1, 100000));
  app.add_option("--seed", f.seed);
  CLI11_PARSE(app, argc, argv);
  return ls::run(f);
}
