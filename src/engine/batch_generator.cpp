// Submits every request, gathers the token events per request, waits for the engine to idle.
#include "engine/batch_generator.h"

#include <mutex>

namespace ls {

namespace {
// The pool always fits the largest possible request together with the largest adapter, so any
// request can run; a smaller byte cap only makes requests queue for pages.
EngineOptions engine_options(const LlamaModel& model, const BatchGenerator::AdapterMap& adapters,
                             const BatchGeneratorOptions& o) {
  const ModelConfig& c = model.config();
  const int32_t ps = std::max(1, o.page_size);
  int32_t largest_adapter = 0;
  for (const auto& [name, a] : adapters)
    largest_adapter = std::max(largest_adapter,
                               adapter_pages_needed(*a, c, static_cast<int64_t>(ps) * c.kv_dim()));
  const int64_t page_bytes = PageStore::page_bytes(c.num_layers, ps, c.kv_dim(), o.kv_dtype);
  const int64_t floor_pages = (c.max_position_embeddings + ps - 1) / ps + largest_adapter;
  const int64_t pages = o.num_pages > 0 ? o.num_pages : o.max_kv_bytes / page_bytes;
  EngineOptions e;
  e.num_pages = static_cast<int32_t>(std::max(pages, floor_pages));
  e.max_num_seqs = std::max(1, o.max_num_seqs);
  e.max_tokens_per_step = std::max(1, o.max_tokens_per_step);
  e.page_size = std::max(1, o.page_size);
  e.kv_dtype = o.kv_dtype;
  e.reserve_pages = 0;
  e.policy = o.policy;
  e.ttft_slo_ms = o.ttft_slo_ms;
  return e;
}
}  // namespace

BatchGenerator::BatchGenerator(const LlamaModel& model, const AdapterMap& adapters,
                               BatchGeneratorOptions options)
    : engine_(std::make_unique<Engine>(model, engine_options(model, adapters, options))) {
  for (const auto& [name, adapter] : adapters) {
    Status st = engine_->adapters().register_loaded(adapter);
    LS_CHECK_MSG(st.ok(), "duplicate adapter in BatchGenerator");
  }
}

EngineRequest BatchGenerator::to_engine(const GenerationRequest& r) {
  EngineRequest e;
  e.prompt_ids = r.prompt_ids;
  e.adapter = r.adapter;
  e.max_tokens = r.max_tokens;
  e.sampling = r.sampling;
  e.stop_at_eos = r.stop_at_eos;
  e.full_logprobs = r.full_logprobs;
  return e;
}

Status BatchGenerator::validate(const GenerationRequest& r) const {
  return engine_->validate(to_engine(r));
}

Result<std::vector<GenerationResult>> BatchGenerator::run(
    const std::vector<GenerationRequest>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    Status st = validate(requests[i]);
    if (!st.ok()) return st.with_context("request " + std::to_string(i + 1));
  }
  std::vector<GenerationResult> results(requests.size());
  std::vector<std::string> errors(requests.size());
  std::mutex mu;
  for (size_t i = 0; i < requests.size(); ++i) {
    auto id = engine_->submit(to_engine(requests[i]), [&, i](const TokenEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      GenerationResult& r = results[i];
      if (e.token >= 0) {
        r.tokens.push_back(e.token);
        r.logprobs.push_back(e.logprob);
      }
      if (!e.prompt_last_logprobs.empty()) r.prompt_last_logprobs = e.prompt_last_logprobs;
      if (e.finished) {
        r.finish_reason = e.finish_reason;
        errors[i] = e.error;
      }
    });
    if (!id.ok()) return id.status().with_context("request " + std::to_string(i + 1));
  }
  engine_->wait_idle();
  for (size_t i = 0; i < requests.size(); ++i)
    if (!errors[i].empty())
      return internal_error("request " + std::to_string(i + 1) + ": " + errors[i]);
  return results;
}

}  // namespace ls
