// The generation loop: admit -> build ForwardBatch -> forward -> sample -> update.
#include "engine/batch_generator.h"

#include <algorithm>
#include <deque>
#include <memory>

#include "base/check.h"
#include "base/rng.h"
#include "memory/kv_cache.h"
#include "memory/page_pool.h"

namespace ls {

namespace {

struct Sequence {
  size_t index = 0;  // position in the request list
  const GenerationRequest* req = nullptr;
  const DeviceAdapter* adapter = nullptr;
  PageList pages;
  int32_t num_fed = 0;           // tokens whose K/V are in the cache
  std::vector<int32_t> all_ids;  // prompt then generated
  Rng rng{0};
  GenerationResult result;
  bool done = false;
};

int32_t pages_for(int64_t tokens, int32_t page_size) {
  return static_cast<int32_t>((tokens + page_size - 1) / page_size);
}

}  // namespace

BatchGenerator::BatchGenerator(const LlamaModel& model,
                               const std::map<std::string, DeviceAdapter>& adapters,
                               BatchGeneratorOptions options)
    : model_(model), adapters_(adapters), options_(options) {}

Status BatchGenerator::validate(const GenerationRequest& r) const {
  const ModelConfig& c = model_.config();
  if (!r.adapter.empty() && !adapters_.count(r.adapter))
    return not_found("unknown adapter '" + r.adapter + "'");
  if (r.prompt_ids.empty()) return invalid_argument("empty prompt");
  for (int32_t id : r.prompt_ids)
    if (id < 0 || id >= c.vocab_size)
      return invalid_argument("prompt id " + std::to_string(id) + " is out of the vocabulary [0, " +
                              std::to_string(c.vocab_size) + ")");
  if (r.max_tokens < 1) return invalid_argument("max_tokens must be at least 1");
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens;
  if (total > c.max_position_embeddings)
    return invalid_argument("prompt (" + std::to_string(r.prompt_ids.size()) +
                            " tokens) + max_tokens (" + std::to_string(r.max_tokens) +
                            ") exceeds the context length " +
                            std::to_string(c.max_position_embeddings));
  if (!(r.sampling.temperature >= 0.0f) || !(r.sampling.top_p > 0.0f && r.sampling.top_p <= 1.0f) ||
      r.sampling.top_k < 0)
    return invalid_argument("sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0");
  return ok_status();
}

Result<std::vector<GenerationResult>> BatchGenerator::run(
    const std::vector<GenerationRequest>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    Status st = validate(requests[i]);
    if (!st.ok()) return st.with_context("request " + std::to_string(i + 1));
  }
  const ModelConfig& c = model_.config();
  Backend& be = model_.backend();
  const int32_t ps = options_.page_size;
  // Pool: enough for the largest running set we could admit, within the byte cap.
  int64_t want = 0, largest = 0;
  for (const auto& r : requests) {
    int64_t p = pages_for(static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens, ps);
    want += p;
    largest = std::max(largest, p);
  }
  const int64_t page_bytes =
      2ll * c.num_layers * ps * c.kv_dim() * static_cast<int64_t>(sizeof(float));
  const int64_t cap = std::max<int64_t>(largest, options_.max_kv_bytes / page_bytes);
  const auto num_pages = static_cast<int32_t>(std::max<int64_t>(1, std::min(want, cap)));
  PagePool pool(num_pages);
  KvCache kv(be, c.num_layers, num_pages, ps, c.kv_dim());

  std::vector<std::unique_ptr<Sequence>> seqs;
  std::deque<Sequence*> waiting;
  for (size_t i = 0; i < requests.size(); ++i) {
    auto s = std::make_unique<Sequence>();
    s->index = i;
    s->req = &requests[i];
    s->adapter = requests[i].adapter.empty() ? nullptr : &adapters_.at(requests[i].adapter);
    s->pages = PageList(&pool);
    s->all_ids = requests[i].prompt_ids;
    s->rng = Rng(requests[i].sampling.seed);
    waiting.push_back(s.get());
    seqs.push_back(std::move(s));
  }
  std::vector<Sequence*> running;
  while (!waiting.empty() || !running.empty()) {
    // admit in order while pages and sequence slots last
    while (!waiting.empty() && static_cast<int32_t>(running.size()) < options_.max_num_seqs) {
      Sequence* s = waiting.front();
      int64_t need =
          pages_for(static_cast<int64_t>(s->req->prompt_ids.size()) + s->req->max_tokens, ps);
      if (!s->pages.grow(static_cast<size_t>(need)).ok()) break;
      waiting.pop_front();
      running.push_back(s);
    }
    LS_CHECK(!running.empty());
    // build the batch
    ForwardBatch fb;
    fb.kv_indptr.push_back(0);
    std::map<const DeviceAdapter*, int32_t> slot_of;
    std::vector<Sequence*> sampled;  // sequences whose last fed token yields a new token
    int32_t budget = options_.max_tokens_per_step;
    for (Sequence* s : running) {
      const int32_t total = static_cast<int32_t>(s->all_ids.size());
      int32_t take = std::min(total - s->num_fed, std::max(1, budget));
      if (take <= 0 || budget <= 0) continue;
      budget -= take;
      const int32_t seq = fb.num_seqs();
      int32_t slot = -1;
      if (s->adapter) {
        auto [it, inserted] =
            slot_of.emplace(s->adapter, static_cast<int32_t>(fb.lora_slots.size()));
        if (inserted) fb.lora_slots.push_back(s->adapter);
        slot = it->second;
      }
      const auto& pages = s->pages.pages();
      for (int32_t i = 0; i < take; ++i) {
        const int32_t pos = s->num_fed + i;
        fb.tokens.push_back(s->all_ids[static_cast<size_t>(pos)]);
        fb.positions.push_back(pos);
        fb.token_seq.push_back(seq);
        fb.slot_mapping.push_back(static_cast<int64_t>(pages[static_cast<size_t>(pos / ps)]) * ps +
                                  pos % ps);
        fb.token_lora_slot.push_back(slot);
      }
      s->num_fed += take;
      const int32_t used_pages = pages_for(s->num_fed, ps);
      fb.kv_indices.insert(fb.kv_indices.end(), pages.begin(), pages.begin() + used_pages);
      fb.kv_indptr.push_back(static_cast<int32_t>(fb.kv_indices.size()));
      if (s->num_fed == total) {
        fb.logit_rows.push_back(static_cast<int32_t>(fb.tokens.size()) - 1);
        sampled.push_back(s);
      }
    }
    Buffer logits = model_.forward(fb, kv);
    const int64_t rows = static_cast<int64_t>(sampled.size());
    if (rows == 0) continue;
    std::vector<SampleParams> params(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const auto& sc = sampled[static_cast<size_t>(r)]->req->sampling;
      params[static_cast<size_t>(r)] = {sc.temperature, sc.top_p, sc.top_k,
                                        sampled[static_cast<size_t>(r)]->rng.uniform()};
    }
    Buffer d_params = be.alloc(params.size() * sizeof(SampleParams));
    be.upload(d_params.data, params.data(), params.size() * sizeof(SampleParams));
    Buffer d_tok = be.alloc(static_cast<size_t>(rows) * 4),
           d_lp = be.alloc(static_cast<size_t>(rows) * 4);
    be.sample(logits.as<float>(), rows, c.vocab_size, d_params.as<SampleParams>(),
              d_tok.as<int32_t>(), d_lp.as<float>());
    std::vector<int32_t> toks(static_cast<size_t>(rows));
    std::vector<float> lps(static_cast<size_t>(rows));
    be.download(toks.data(), d_tok.data, toks.size() * 4);
    be.download(lps.data(), d_lp.data, lps.size() * 4);
    for (int64_t r = 0; r < rows; ++r) {
      Sequence* s = sampled[static_cast<size_t>(r)];
      if (s->req->full_logprobs && s->result.tokens.empty()) {
        Buffer lsm = be.alloc(static_cast<size_t>(c.vocab_size) * 4);
        be.log_softmax(logits.as<float>() + r * c.vocab_size, 1, c.vocab_size, lsm.as<float>());
        s->result.prompt_last_logprobs.resize(static_cast<size_t>(c.vocab_size));
        be.download(s->result.prompt_last_logprobs.data(), lsm.data,
                    static_cast<size_t>(c.vocab_size) * 4);
      }
      const int32_t tok = toks[static_cast<size_t>(r)];
      s->result.tokens.push_back(tok);
      s->result.logprobs.push_back(lps[static_cast<size_t>(r)]);
      s->all_ids.push_back(tok);
      const bool eos =
          s->req->stop_at_eos &&
          std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), tok) != c.eos_token_ids.end();
      if (eos || static_cast<int32_t>(s->result.tokens.size()) >= s->req->max_tokens) {
        s->result.finish_reason = eos ? "stop" : "length";
        s->done = true;
        s->pages.release();
      }
    }
    running.erase(
        std::remove_if(running.begin(), running.end(), [](Sequence* s) { return s->done; }),
        running.end());
  }
  std::vector<GenerationResult> out;
  out.reserve(seqs.size());
  for (auto& s : seqs) out.push_back(std::move(s->result));
  return out;
}

}  // namespace ls
