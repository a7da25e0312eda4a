// `loraserve generate`: one request from flags, or a JSONL file of requests run together in
// mixed-adapter batches. Prints JSON (one object, or one line per request in input order).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "backend/backend.h"
#include "base/file_util.h"
#include "bundle_flags.h"
#include "commands.h"
#include "device_flag.h"
#include "engine/batch_generator.h"
#include "model/llama_model.h"
#include "request_json.h"
#ifdef LORASERVE_HAS_TEXT
#include "text/tokenizer.h"
#else
namespace ls {
class Tokenizer {};
}  // namespace ls
#endif

namespace ls {

namespace {

struct GenerateFlags {
  std::string model;
  std::vector<std::string> loras;
  std::vector<std::string> lora_bundles;
  std::string bundle_serving = "shared";
  std::string adapter;
  std::string prompt_ids;
  std::string prompt;
  std::string tokenizer;  // default: the model directory
  std::string requests;
  int32_t max_tokens = 0;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool full_logprobs = false;
  bool stop_at_eos = false;
  std::string output = "json";
  int32_t max_num_seqs = 64;
  int32_t max_tokens_per_step = 2048;
  int32_t max_lora_rank = 256;
  PolicyOptions policy;
  double ttft_slo_ms = 0.0;
  std::string device;  // "" = cuda when a GPU is visible, else cpu
  double gpu_memory_utilization = 0.9;
  bool enforce_eager = false;
  std::string kv_cache_dtype = "auto";
  std::string activation_dtype = "fp32";
};

Result<std::vector<GenerationRequest>> read_requests(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open");
  std::vector<GenerationRequest> out;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      return invalid_argument(path + ":" + std::to_string(line_no) +
                              ": malformed JSON: " + e.what());
    }
    auto r = request_from_json(j);
    if (!r.ok()) return r.status().with_context(path + ":" + std::to_string(line_no));
    out.push_back(std::move(r).value());
  }
  if (out.empty()) return invalid_argument(path + ": no requests");
  return out;
}

Result<std::vector<GenerationRequest>> requests_from_flags(const GenerateFlags& f) {
  if (!f.requests.empty()) {
    if (!f.prompt_ids.empty() || !f.prompt.empty())
      return invalid_argument("--requests cannot be combined with --prompt-ids/--prompt");
    return read_requests(f.requests);
  }
  if (!f.prompt.empty() && !f.prompt_ids.empty())
    return invalid_argument("give --prompt or --prompt-ids, not both");
  if (f.prompt_ids.empty() && f.prompt.empty())
    return invalid_argument("one of --prompt-ids, --prompt or --requests is required");
  if (f.max_tokens <= 0) return invalid_argument("--max-tokens must be given and at least 1");
  GenerationRequest r;
  if (f.prompt.empty()) {
    LS_ASSIGN_OR_RETURN(r.prompt_ids, parse_id_list(f.prompt_ids));
  }
  r.adapter = f.adapter;
  r.max_tokens = f.max_tokens;
  r.sampling = {f.temperature, f.top_p, f.top_k, f.seed};
  r.full_logprobs = f.full_logprobs;
  r.stop_at_eos = f.stop_at_eos;
  return std::vector<GenerationRequest>{r};
}

// --prompt TEXT: encode with the model's (or --tokenizer's) tokenizer; the output then also
// carries the decoded text of the generated tokens.
Status encode_prompt(const GenerateFlags& f, std::vector<GenerationRequest>* requests,
                     std::unique_ptr<Tokenizer>* tokenizer) {
#ifdef LORASERVE_HAS_TEXT
  if (f.prompt.empty()) return ok_status();
  auto loaded = Tokenizer::load_dir(f.tokenizer.empty() ? f.model : f.tokenizer);
  if (!loaded.ok())
    return loaded.status().with_context("--prompt (pass --tokenizer DIR, or --prompt-ids)");
  *tokenizer = std::move(loaded).value();
  auto ids = (*tokenizer)->encode(f.prompt);
  if (!ids.ok()) return ids.status().with_context("--prompt");
  if (ids.value().empty()) return invalid_argument("--prompt: the text encodes to no tokens");
  (*requests)[0].prompt_ids = std::move(ids).value();
  return ok_status();
#else
  (void)tokenizer;
  (void)requests;
  if (f.prompt.empty()) return ok_status();
  return invalid_argument("--prompt needs the text layer, which this build leaves out");
#endif
}

int run_generate(const GenerateFlags& f) {
  auto requests = requests_from_flags(f);
  if (!requests.ok()) return fail(requests.status().message());
  std::unique_ptr<Tokenizer> tokenizer;
  Status enc = encode_prompt(f, &requests.value(), &tokenizer);
  if (!enc.ok()) return fail(enc.message());
  if (!f.requests.empty() && f.output != "jsonl") return fail("--requests needs --output jsonl");
  if (f.requests.empty() && f.output != "json") return fail("a single request needs --output json");
  auto made = make_backend(f.device, f.enforce_eager, f.activation_dtype);
  if (!made.ok()) return fail(made.status().message());
  std::unique_ptr<Backend> backend = std::move(made).value();
  auto model = LlamaModel::load(f.model, *backend);
  if (!model.ok()) return fail(model.status().message());
  BatchGenerator::AdapterMap adapters;
  for (const std::string& spec : f.loras) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return fail("--lora '" + spec + "' must be NAME=DIR");
    const std::string name = spec.substr(0, eq), dir = spec.substr(eq + 1);
    if (adapters.count(name)) return fail("--lora: adapter name '" + name + "' given twice");
    auto host = load_lora_adapter(dir, name, model.value()->config(), {f.max_lora_rank});
    if (!host.ok()) return fail(host.status().message());
    adapters.emplace(name, std::make_shared<const LoraAdapter>(std::move(host).value()));
  }
  auto bundles = load_bundles(f.lora_bundles, f.bundle_serving, model.value()->config(), *backend);
  if (!bundles.ok()) return fail(bundles.status().message());
  for (auto& a : bundles.value().materialized) {
    if (adapters.count(a->name))
      return fail("--lora-bundle: adapter name '" + a->name + "' given twice");
    adapters.emplace(a->name, a);
  }
  BatchGeneratorOptions opts;
  opts.max_num_seqs = f.max_num_seqs;
  opts.max_tokens_per_step = f.max_tokens_per_step;
  opts.policy = f.policy;
  opts.ttft_slo_ms = f.ttft_slo_ms;
  auto kv_dtype = kv_cache_dtype(f.kv_cache_dtype, *backend);
  if (!kv_dtype.ok()) return fail(kv_dtype.status().message());
  opts.kv_dtype = kv_dtype.value();
  auto pool =
      kv_pool_bytes(*backend, model.value()->config(), f.gpu_memory_utilization,
                    f.max_tokens_per_step, f.max_num_seqs, opts.max_kv_bytes, opts.kv_dtype);
  if (!pool.ok()) return fail(pool.status().message());
  opts.max_kv_bytes = pool.value();
  BatchGenerator gen(*model.value(), adapters, opts);
  for (auto& a : bundles.value().resident) {
    const std::string name = a->name;
    if (!gen.engine().adapters().register_resident(std::move(a)).ok())
      return fail("--lora-bundle: adapter name '" + name + "' given twice");
  }
  auto results = gen.run(requests.value());
  if (!results.ok()) return fail(results.status().message());
  for (size_t i = 0; i < results.value().size(); ++i) {
    auto j = result_to_json(requests.value()[i], results.value()[i]);
#ifdef LORASERVE_HAS_TEXT
    if (tokenizer) j["text"] = tokenizer->decode(results.value()[i].tokens);
#endif
    std::cout << j.dump() << "\n";
  }
  std::cout.flush();
  return std::cout.good() ? 0 : fail("cannot write output");
}

}  // namespace

Command add_generate_command(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* sub =
      app.add_subcommand("generate", "Generate tokens for one request or a JSONL file of requests");
  sub->add_option("--model", f->model, "Hugging Face model directory (config.json + safetensors)")
      ->required()
      ->envname("LORASERVE_MODEL");
  sub->add_option("--lora", f->loras, "Adapter NAME=DIR (PEFT directory); repeatable");
  add_bundle_flags(sub, &f->lora_bundles, &f->bundle_serving);
  sub->add_option("--adapter", f->adapter,
                  "Adapter NAME for the single request (default: the base model)");
  sub->add_option("--prompt-ids", f->prompt_ids, "Prompt token ids, e.g. 1,2,3");
  sub->add_option("--prompt", f->prompt, "Prompt text, encoded with the model's tokenizer");
  sub->add_option("--tokenizer", f->tokenizer, "Tokenizer directory (default: --model)");
  sub->add_option("--requests", f->requests,
                  "JSONL file: {\"adapter\", \"prompt_ids\", \"max_tokens\", ...} per line");
  sub->add_option("--max-tokens", f->max_tokens, "Tokens to generate")
      ->check(CLI::Range(1, 1 << 24));
  sub->add_option("--temperature", f->temperature, "0 = greedy")->check(CLI::Range(0.0f, 100.0f));
  sub->add_option("--top-p", f->top_p, "Nucleus sampling mass")->check(CLI::Range(1e-9f, 1.0f));
  sub->add_option("--top-k", f->top_k, "Keep the k most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", f->seed, "Sampling seed");
  sub->add_flag("--full-logprobs", f->full_logprobs,
                "Also print the log-softmax at the last prompt position");
  sub->add_flag("--stop-at-eos", f->stop_at_eos, "Stop at the model's EOS token");
  sub->add_option("--output", f->output, "json (single request) or jsonl (--requests)")
      ->check(CLI::IsMember({"json", "jsonl"}));
  sub->add_option("--max-num-seqs", f->max_num_seqs, "Sequences running at once")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--max-tokens-per-step", f->max_tokens_per_step, "Token budget of one forward")
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--max-lora-rank", f->max_lora_rank, "Refuse adapters of higher rank")
      ->check(CLI::Range(1, 4096));
  add_policy_flags(sub, &f->policy, &f->ttft_slo_ms);
  add_device_flag(sub, &f->device);
  add_gpu_memory_flag(sub, &f->gpu_memory_utilization);
  add_enforce_eager_flag(sub, &f->enforce_eager);
  add_kv_cache_dtype_flag(sub, &f->kv_cache_dtype);
  add_activation_dtype_flag(sub, &f->activation_dtype);
  sub->footer(
      "Examples:\n"
      "  loraserve generate --model M --prompt-ids 1,2,3 --max-tokens 8 --output json\n"
      "  loraserve generate --model M --lora a=ADIR --adapter a --prompt-ids 1,2 --max-tokens 8 "
      "--temperature 0.8 --seed 7 --output json\n"
      "  loraserve generate --model M --lora a=ADIR --lora b=BDIR --requests reqs.jsonl --output "
      "jsonl");
  return {sub, [f]() { return run_generate(*f); }};
}

}  // namespace ls
