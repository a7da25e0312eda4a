// Quality of compressed adapters. (1) On the golden-fixture models: every fixture's adapters
// compressed together (one cluster) at several K, JD-Full and JD-Diag; for each golden case the
// first generated step's full log-prob vector through the compressed adapter against the
// uncompressed one: mean and max |difference|. (2) Reconstruction error vs K and C for
// synthetic adapters: independent random ones, and groups sharing a low-dimensional subspace
// plus noise. Prints JSON; --out writes it.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "base/file_util.h"
#include "compress/bundle_adapters.h"
#include "compress/compressor.h"
#include "compress/synthetic.h"
#include "engine/batch_generator.h"
#include "model/llama_model.h"

namespace ls::compress {
namespace {

using json = nlohmann::ordered_json;
using AdapterList = std::vector<std::shared_ptr<const LoraAdapter>>;

struct GoldenCase {
  std::string adapter;
  std::vector<int32_t> prompt;
};

Result<json> logprob_table(const std::string& fixture_dir, const std::string& model_name,
                           const std::vector<int32_t>& ks) {
  const std::string dir = fixture_dir + "/" + model_name;
  auto backend = make_cpu_backend();
  LS_ASSIGN_OR_RETURN(auto model, LlamaModel::load(dir, *backend));
  BatchGenerator::AdapterMap orig;
  AdapterList list;
  int32_t sum_ranks = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/adapters")) {
    const std::string name = e.path().filename().string();
    LS_ASSIGN_OR_RETURN(LoraAdapter a, load_lora_adapter(e.path().string(), name, model->config()));
    sum_ranks += a.max_rank;
    auto p = std::make_shared<const LoraAdapter>(std::move(a));
    orig[name] = p;
    list.push_back(p);
  }
  LS_ASSIGN_OR_RETURN(auto gj, read_json_file(dir + "/golden.json"));
  std::vector<GenerationRequest> reqs;
  for (const auto& c : gj["cases"]) {
    if (c["adapter"].is_null()) continue;
    GenerationRequest r;
    r.adapter = c["adapter"].get<std::string>();
    r.prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    r.max_tokens = 1;
    r.full_logprobs = true;
    reqs.push_back(r);
  }
  BatchGenerator base_gen(*model, orig);
  LS_ASSIGN_OR_RETURN(auto base_res, base_gen.run(reqs));
  json rows = json::array();
  std::vector<int32_t> all_ks;  // the K values below the lossless one, then the lossless one
  for (int32_t k : ks)
    if (k < sum_ranks) all_ks.push_back(k);
  all_ks.push_back(sum_ranks);
  for (Mode mode : {Mode::kFull, Mode::kDiag})
    for (int32_t k : all_ks) {
      CompressOptions o;
      o.mode = mode;
      o.rank = k;
      o.iters = 20;
      LS_ASSIGN_OR_RETURN(Bundle b, compress_adapters(model->config(), list, o));
      BatchGenerator::AdapterMap comp;
      for (const auto& a : b.adapters)
        comp[a.name] = std::make_shared<const LoraAdapter>(materialize(b, a, "quality"));
      BatchGenerator gen(*model, comp);
      LS_ASSIGN_OR_RETURN(auto res, gen.run(reqs));
      double sum = 0, worst = 0;
      int64_t n = 0;
      int32_t same_token = 0;
      for (size_t i = 0; i < reqs.size(); ++i) {
        const auto& x = res[i].prompt_last_logprobs;
        const auto& y = base_res[i].prompt_last_logprobs;
        for (size_t v = 0; v < x.size(); ++v) {
          const double d = std::fabs(double(x[v]) - y[v]);
          sum += d;
          worst = std::max(worst, d);
          ++n;
        }
        same_token += res[i].tokens[0] == base_res[i].tokens[0];
      }
      const json rep = error_report(b);
      rows.push_back({{"model", model_name},
                      {"mode", mode_name(mode)},
                      {"K", k},
                      {"lossless_K", k >= sum_ranks},
                      {"cases", reqs.size()},
                      {"mean_abs_dlogprob", sum / static_cast<double>(n)},
                      {"max_abs_dlogprob", worst},
                      {"same_first_token", same_token},
                      {"mean_rel_error", rep["mean_rel_error"]},
                      {"max_rel_error", rep["max_rel_error"]}});
      std::fprintf(stderr, "%s\n", rows.back().dump().c_str());
    }
  return rows;
}

// The adapters' own reference point: how far the uncompressed adapter moves the base model.
Result<json> adapter_effect(const std::string& fixture_dir, const std::string& model_name) {
  const std::string dir = fixture_dir + "/" + model_name;
  auto backend = make_cpu_backend();
  LS_ASSIGN_OR_RETURN(auto model, LlamaModel::load(dir, *backend));
  BatchGenerator::AdapterMap orig;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/adapters")) {
    const std::string name = e.path().filename().string();
    LS_ASSIGN_OR_RETURN(LoraAdapter a, load_lora_adapter(e.path().string(), name, model->config()));
    orig[name] = std::make_shared<const LoraAdapter>(std::move(a));
  }
  LS_ASSIGN_OR_RETURN(auto gj, read_json_file(dir + "/golden.json"));
  std::vector<GenerationRequest> reqs, base;
  for (const auto& c : gj["cases"]) {
    if (c["adapter"].is_null()) continue;
    GenerationRequest r;
    r.adapter = c["adapter"].get<std::string>();
    r.prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    r.max_tokens = 1;
    r.full_logprobs = true;
    reqs.push_back(r);
    r.adapter = "";
    base.push_back(r);
  }
  BatchGenerator gen(*model, orig);
  LS_ASSIGN_OR_RETURN(auto a, gen.run(reqs));
  LS_ASSIGN_OR_RETURN(auto b, gen.run(base));
  double sum = 0;
  int64_t n = 0;
  for (size_t i = 0; i < reqs.size(); ++i)
    for (size_t v = 0; v < a[i].prompt_last_logprobs.size(); ++v, ++n)
      sum += std::fabs(double(a[i].prompt_last_logprobs[v]) - b[i].prompt_last_logprobs[v]);
  return json{{"model", model_name}, {"mean_abs_dlogprob_adapter_vs_base", sum / double(n)}};
}

json synthetic_table(const std::vector<int32_t>& ks, const std::vector<int32_t>& cs) {
  ModelConfig c;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  json rows = json::array();
  struct Kind {
    const char* name;
    int groups;
    int32_t shared_dim;
    double noise;
  };
  const int n = 32;
  for (const Kind& kind :
       {Kind{"random", n, 0, 0.0}, Kind{"shared_4groups_dim16_noise0.1", 4, 16, 0.1}}) {
    AdapterList list;
    for (int i = 0; i < n; ++i) {
      const int g = i % kind.groups;
      list.push_back(std::make_shared<const LoraAdapter>(
          synthetic_adapter(c, "a" + std::to_string(i), 8, {LoraTarget::kQ}, kind.shared_dim,
                            kind.noise, 500 + static_cast<uint64_t>(g), static_cast<uint64_t>(i))));
    }
    for (Mode mode : {Mode::kFull, Mode::kDiag})
      for (int32_t cl : cs)
        for (int32_t k : ks) {
          CompressOptions o;
          o.mode = mode;
          o.rank = k;
          o.clusters = cl;
          o.iters = 20;
          auto b = compress_adapters(c, list, o);
          if (!b.ok()) continue;
          const json rep = error_report(b.value());
          rows.push_back({{"adapters", kind.name},
                          {"n", n},
                          {"lora_rank", 8},
                          {"dims", "256 x 256"},
                          {"mode", mode_name(mode)},
                          {"K", k},
                          {"C", cl},
                          {"mean_rel_error", rep["mean_rel_error"]},
                          {"max_rel_error", rep["max_rel_error"]}});
          std::fprintf(stderr, "%s\n", rows.back().dump().c_str());
        }
  }
  return rows;
}

}  // namespace
}  // namespace ls::compress

int main(int argc, char** argv) {
  std::string fixtures = std::string(LS_SOURCE_DIR) + "/tests/fixtures/golden";
  std::string out;
  CLI::App app{"Quality of compressed adapters: log-prob distance and reconstruction error"};
  app.add_option("--fixtures", fixtures, "Golden fixture directory");
  app.add_option("--out", out, "Write the JSON result here");
  CLI11_PARSE(app, argc, argv);
  using ls::compress::json;
  json lp = json::array(), effect = json::array();
  for (const char* m : {"mha_f32", "gqa_bf16", "qwen2_f16", "mistral_f32"}) {
    auto rows = ls::compress::logprob_table(fixtures, m, {1, 2, 4, 8, 16, 32});
    if (!rows.ok()) {
      std::fprintf(stderr, "%s\n", rows.status().message().c_str());
      return 1;
    }
    for (auto& r : rows.value()) lp.push_back(r);
    auto e = ls::compress::adapter_effect(fixtures, m);
    if (e.ok()) effect.push_back(e.value());
  }
  std::string command = "./build/release/bench/compress_quality";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  json j = {{"benchmark", "compress_quality"},
            {"command", command},
            {"logprob_definition",
             "first generated step, full log-prob vector over the vocabulary, compressed vs "
             "uncompressed adapter, over every golden case that uses an adapter"},
            {"error_definition", "||dW - U S V^T||_F^2 / ||dW||_F^2 per adapter and module"},
            {"logprob", lp},
            {"adapter_effect_reference", effect},
            {"reconstruction", ls::compress::synthetic_table({4, 8, 16, 32, 64}, {1, 2, 4})}};
  std::printf("%s\n", j.dump(2).c_str());
  if (!out.empty()) {
    std::ofstream f(out);
    f << j.dump(2) << "\n";
  }
  return 0;
}
