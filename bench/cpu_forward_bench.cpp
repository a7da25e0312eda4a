// CPU forward throughput of the demo model: prefill and decode tokens/s at batch 1, 8, 32,
// with no adapters and with a mixed batch of the three demo adapters. Writes JSON with the
// command line that made it. Times are medians of repeated forwards after a warm-up.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "memory/page_pool.h"
#include "memory/page_store.h"
#include "model/adapter_layout.h"
#include "model/demo_model.h"
#include "model/llama_model.h"

namespace ls {
namespace {

// B sequences; each feeds `new_tokens` tokens after `context` cached ones (pages contiguous).
ForwardBatch make_batch(int32_t batch, int32_t context, int32_t new_tokens, int32_t vocab,
                        const std::vector<const ResidentAdapter*>& adapters) {
  ForwardBatch fb;
  fb.kv_indptr.push_back(0);
  fb.lora_slots = adapters;
  const int32_t per_seq = context + new_tokens;
  for (int32_t s = 0; s < batch; ++s) {
    const int32_t slot = adapters.empty() ? -1 : s % static_cast<int32_t>(adapters.size());
    for (int32_t i = 0; i < new_tokens; ++i) {
      const int32_t pos = context + i;
      fb.tokens.push_back((7 * s + 13 * pos + 3) % vocab);
      fb.positions.push_back(pos);
      fb.token_seq.push_back(s);
      fb.slot_mapping.push_back(static_cast<int64_t>(s) * per_seq + pos);
      fb.token_lora_slot.push_back(slot);
    }
    for (int32_t p = 0; p < per_seq; ++p) fb.kv_indices.push_back(s * per_seq + p);
    fb.kv_indptr.push_back(static_cast<int32_t>(fb.kv_indices.size()));
    fb.logit_rows.push_back(static_cast<int32_t>(fb.tokens.size()) - 1);
  }
  return fb;
}

double median_seconds(const LlamaModel& model, const ForwardBatch& fb, const PageStore& kv,
                      int reps) {
  model.forward(fb, kv);  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(fb, kv);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace
}  // namespace ls

int main(int argc, char** argv) {
  CLI::App app{"CPU forward throughput of the demo model (prefill and decode)"};
  std::string out_path = "bench/results/cpu_forward.json";
  int32_t prompt = 128, context = 128, reps = 5;
  app.add_option("--out", out_path, "JSON result file");
  app.add_option("--prompt", prompt, "Prompt tokens per sequence (prefill)");
  app.add_option("--context", context, "Cached tokens per sequence (decode)");
  app.add_option("--reps", reps, "Timed repetitions (median reported)");
  CLI11_PARSE(app, argc, argv);
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);

  char tmpl[] = "/tmp/ls_bench_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto demo = ls::make_demo(dir);
  if (!demo.ok()) return std::fprintf(stderr, "%s\n", demo.status().message().c_str()), 1;
  auto backend = ls::make_cpu_backend();
  auto model = ls::LlamaModel::load(dir + "/model", *backend);
  if (!model.ok()) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 1;
  const auto& c = model.value()->config();
  const int32_t max_batch = 32, per_seq = std::max(prompt, context + 1);
  // KV of max_batch sequences, then the adapters' pages, all in one pool.
  const int32_t kv_pages = max_batch * per_seq;
  ls::PagePool pool(kv_pages + 4096);
  ls::PageStore kv(*backend, c.num_layers, pool.num_pages(), 1, c.kv_dim());
  ls::PageList kv_list(&pool, ls::PageKind::kKv);
  if (!kv_list.grow(static_cast<size_t>(kv_pages)).ok()) return 1;
  std::vector<ls::ResidentAdapter> dev;
  for (const auto& a : demo.value()) {
    auto host = ls::load_lora_adapter(a.dir, a.name, c);
    if (!host.ok()) return std::fprintf(stderr, "%s\n", host.status().message().c_str()), 1;
    ls::PageList pages(&pool, ls::PageKind::kAdapter);
    if (!pages.grow(static_cast<size_t>(ls::adapter_pages_needed(host.value(), c, kv))).ok())
      return 1;
    dev.push_back(ls::place_adapter(host.value(), c, std::move(pages), kv));
    ls::copy_adapter(host.value(), c, dev.back(), *backend);
  }
  std::vector<const ls::ResidentAdapter*> mixed;
  for (const auto& d : dev) mixed.push_back(&d);

  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::printf("%-8s %-6s %-9s %12s %12s\n", "phase", "batch", "adapters", "ms/forward", "tokens/s");
  for (const char* phase : {"prefill", "decode"}) {
    for (int32_t batch : {1, 8, 32}) {
      for (bool with_lora : {false, true}) {
        const bool prefill = std::string(phase) == "prefill";
        auto fb = ls::make_batch(batch, prefill ? 0 : context, prefill ? prompt : 1, c.vocab_size,
                                 with_lora ? mixed : std::vector<const ls::ResidentAdapter*>{});
        if (!prefill)
          model.value()->forward(ls::make_batch(batch, 0, context, c.vocab_size, {}), kv);
        double sec = ls::median_seconds(*model.value(), fb, kv, reps);
        double tps = static_cast<double>(fb.tokens.size()) / sec;
        std::printf("%-8s %-6d %-9s %12.3f %12.1f\n", phase, batch, with_lora ? "mixed3" : "none",
                    sec * 1e3, tps);
        rows.push_back({{"phase", phase},
                        {"batch", batch},
                        {"adapters", with_lora ? "mixed3" : "none"},
                        {"tokens_per_forward", fb.tokens.size()},
                        {"ms_per_forward", sec * 1e3},
                        {"tokens_per_s", tps}});
      }
    }
  }
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  nlohmann::ordered_json out = {
      {"benchmark", "cpu_forward"},
      {"command", cmd},
      {"machine", {{"hostname", host}, {"hardware_threads", std::thread::hardware_concurrency()}}},
      {"model",
       "loraserve make-demo (Llama, hidden 128, 4 layers, vocab 512, bf16 weights, fp32 math)"},
      {"prompt_tokens", prompt},
      {"decode_context", context},
      {"reps", reps},
      {"results", rows}};
  std::ofstream(out_path) << out.dump(2) << "\n";
  std::printf("wrote %s\n", out_path.c_str());
  std::filesystem::remove_all(dir);
  return 0;
}
