// The engine thread and the request API around the Scheduler.
#include "engine/engine.h"

#include <algorithm>

#include "base/check.h"
#include "base/logging.h"

namespace ls {

Engine::Engine(const LlamaModel& model, EngineOptions options) : model_(model), options_(options) {
  const ModelConfig& c = model.config();
  Backend& be = model.backend();
  LS_CHECK_MSG(kv_dtype_supported(options_.kv_dtype), "the KV cache is fp32 or bf16");
  const int64_t page_bytes =
      PageStore::page_bytes(c.num_layers, options_.page_size, c.kv_dim(), options_.kv_dtype);
  int32_t num_pages = options_.num_pages;
  if (num_pages <= 0)
    num_pages =
        static_cast<int32_t>(std::clamp<int64_t>(options_.pool_bytes / page_bytes, 1, 1 << 30));
  pool_ = std::make_unique<PagePool>(num_pages);
  store_ = std::make_unique<PageStore>(be, c.num_layers, num_pages, options_.page_size, c.kv_dim(),
                                       options_.kv_dtype);
  SchedulerConfig sc;
  sc.max_num_seqs = options_.max_num_seqs;
  sc.max_tokens_per_step = options_.max_tokens_per_step;
  sc.page_size = options_.page_size;
  sc.reserve_pages = options_.reserve_pages >= 0 ? options_.reserve_pages
                                                 : std::min(num_pages / 10, options_.max_num_seqs);
  sc.eos_token_ids = c.eos_token_ids;
  AdapterCacheOptions ao = options_.adapters;
  ao.reserve_pages = sc.reserve_pages;
  adapters_ = std::make_unique<AdapterCache>(c, be, *pool_, *store_, ao);
  adapters_->set_notify([this] {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
    cv_.notify_all();
  });
  scheduler_ =
      std::make_unique<Scheduler>(sc, *pool_, *adapters_, make_admission_policy(options_.policy),
                                  EarlyAbortPolicy(options_.ttft_slo_ms));
  refresh_stats(0);
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  thread_.join();
  scheduler_.reset();  // releases KV pages and adapter pins before the cache and pool go
  adapters_.reset();
}

Status Engine::validate(const EngineRequest& r) const {
  const ModelConfig& c = model_.config();
  if (!r.adapter.empty() && !adapters_->known(r.adapter))
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
  if ((total + options_.page_size - 1) / options_.page_size > pool_->num_pages())
    return resource_exhausted("request needs more KV pages than the whole pool holds");
  const SamplingConfig& s = r.sampling;
  if (!(s.temperature >= 0.0f) || !(s.top_p > 0.0f && s.top_p <= 1.0f) || s.top_k < 0)
    return invalid_argument("sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0");
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) return invalid_argument("min_p must be in [0, 1]");
  if (!(s.presence_penalty >= -2.0f && s.presence_penalty <= 2.0f) ||
      !(s.frequency_penalty >= -2.0f && s.frequency_penalty <= 2.0f))
    return invalid_argument("presence_penalty and frequency_penalty must be in [-2, 2]");
  if (!(s.repetition_penalty > 0.0f && s.repetition_penalty <= 10.0f))
    return invalid_argument("repetition_penalty must be in (0, 10]");
  if (r.top_logprobs < 0 || r.top_logprobs > kMaxTopLogprobs)
    return invalid_argument("top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
  return ok_status();
}

Result<RequestId> Engine::submit(EngineRequest req, TokenCallback on_event) {
  LS_RETURN_IF_ERROR(validate(req));
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.max_queue > 0 && queued_ >= options_.max_queue)
    return resource_exhausted("the request queue is full (" + std::to_string(options_.max_queue) +
                              " waiting)");
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->req = std::move(req);
  seq->on_event = std::move(on_event);
  seq->arrival = Clock::now();
  const RequestId id = seq->id;
  incoming_.push_back(std::move(seq));
  ++queued_;
  busy_ = true;
  wake_ = true;
  cv_.notify_all();
  return id;
}

void Engine::cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancels_.push_back(id);
  wake_ = true;
  cv_.notify_all();
}

void Engine::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_ || stop_; });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.adapters = adapters_->stats();
  return s;
}

void Engine::refresh_stats(int64_t step_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.running = static_cast<int64_t>(scheduler_->num_running());
  stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting() + incoming_.size());
  stats_.preemptions_total = scheduler_->num_preemptions();
  stats_.pages_total = pool_->num_pages();
  stats_.pages_kv = pool_->num_used(PageKind::kKv);
  stats_.pages_adapter = pool_->num_used(PageKind::kAdapter);
  stats_.pages_free = pool_->num_free();
  stats_.last_step_tokens = step_tokens;
  stats_.prompt_tokens_total = scheduler_->prompt_tokens_total();
  stats_.generation_tokens_total = scheduler_->generation_tokens_total();
  stats_.requests_finished = scheduler_->requests_finished();
  stats_.requests_failed = scheduler_->requests_failed();
  if (step_tokens > 0) {
    ++stats_.steps;
    stats_.tokens_total += step_tokens;
  }
  queued_ = stats_.waiting;
}

void Engine::apply_penalties(const PenaltyPlan& pp, float* logits, int64_t rows) {
  Backend& be = model_.backend();
  auto put = [&](const auto& v) {
    Buffer b = be.alloc(std::max<size_t>(1, v.size() * sizeof(v[0])));
    if (!v.empty()) be.upload(b.data, v.data(), v.size() * sizeof(v[0]));
    return b;
  };
  Buffer indptr = put(pp.indptr), ids = put(pp.ids), counts = put(pp.output_counts),
         presence = put(pp.presence), frequency = put(pp.frequency),
         repetition = put(pp.repetition);
  PenaltyBatch pb;
  pb.rows = rows;
  pb.indptr = indptr.as<int32_t>();
  pb.ids = ids.as<int32_t>();
  pb.output_counts = counts.as<int32_t>();
  pb.presence = presence.as<float>();
  pb.frequency = frequency.as<float>();
  pb.repetition = repetition.as<float>();
  be.apply_penalties(logits, model_.config().vocab_size, pb);
}

StepOutput Engine::run_model(const StepPlan& plan) {
  Backend& be = model_.backend();
  const int64_t vocab = model_.config().vocab_size;
  Buffer logits = model_.forward(plan.batch, *store_);
  const int64_t rows = static_cast<int64_t>(plan.batch.logit_rows.size());
  StepOutput out;
  if (rows == 0) {
    // A step with no logits (prefill chunks only) still ends with the device idle, as every
    // other step does through its downloads: pages freed or handed over between steps
    // (cancels, preemption, the adapter cache's placement) are then untouched by running
    // work, which Backend::upload_scatter's adapter copies rely on.
    float probe = 0.0f;
    be.download(&probe, logits.data, sizeof(probe));
    return out;
  }
  if (!plan.penalties.empty()) apply_penalties(plan.penalties, logits.as<float>(), rows);
  if (plan.top_logprobs > 0) {
    const int32_t k = std::min<int32_t>(plan.top_logprobs, static_cast<int32_t>(vocab));
    const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(k);
    Buffer ids = be.alloc(count * 4), lps = be.alloc(count * 4);
    be.top_logprobs(logits.as<float>(), rows, vocab, k, ids.as<int32_t>(), lps.as<float>());
    out.top_k = k;
    out.top_ids.resize(count);
    out.top_logprobs.resize(count);
    be.download(out.top_ids.data(), ids.data, count * 4);
    be.download(out.top_logprobs.data(), lps.data, count * 4);
  }
  Buffer params = be.alloc(plan.sample_params.size() * sizeof(SampleParams));
  be.upload(params.data, plan.sample_params.data(),
            plan.sample_params.size() * sizeof(SampleParams));
  Buffer toks = be.alloc(static_cast<size_t>(rows) * 4),
         lps = be.alloc(static_cast<size_t>(rows) * 4);
  be.sample(logits.as<float>(), rows, vocab, params.as<SampleParams>(), toks.as<int32_t>(),
            lps.as<float>());
  out.tokens.resize(static_cast<size_t>(rows));
  out.logprobs.resize(static_cast<size_t>(rows));
  be.download(out.tokens.data(), toks.data, out.tokens.size() * 4);
  be.download(out.logprobs.data(), lps.data, out.logprobs.size() * 4);
  out.full.resize(static_cast<size_t>(rows));
  for (const PlannedSeq& p : plan.seqs) {
    if (!p.want_full_logprobs || p.logit_row < 0) continue;
    Buffer lsm = be.alloc(static_cast<size_t>(vocab) * 4);
    be.log_softmax(logits.as<float>() + p.logit_row * vocab, 1, vocab, lsm.as<float>());
    auto& row = out.full[static_cast<size_t>(p.logit_row)];
    row.resize(static_cast<size_t>(vocab));
    be.download(row.data(), lsm.data, row.size() * 4);
  }
  return out;
}

void Engine::loop() {
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> incoming;
    std::vector<RequestId> cancels;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (scheduler_->idle() && incoming_.empty()) {
        busy_ = false;
        cv_.notify_all();
      }
      // Sleep until there is something to do; while requests wait for adapter loads, the
      // loader's notify wakes us (the timeout only guards against a missed wake-up).
      cv_.wait_for(lock, std::chrono::milliseconds(scheduler_->idle() ? 1000 : 5),
                   [&] { return stop_ || wake_ || !scheduler_->idle(); });
      if (stop_) break;
      wake_ = false;
      incoming.swap(incoming_);
      cancels.swap(cancels_);
    }
    for (auto& s : incoming) scheduler_->add(std::move(s));
    for (RequestId id : cancels) scheduler_->cancel(id);
    adapters_->poll();
    StepPlan plan = scheduler_->schedule(Clock::now());
    if (plan.empty()) {
      refresh_stats(0);
      if (!scheduler_->idle()) {  // waiting for adapters or pages: do not spin
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(2), [&] { return stop_ || wake_; });
      }
      continue;
    }
    StepOutput out = run_model(plan);
    scheduler_->update(plan, out, Clock::now());
    refresh_stats(static_cast<int64_t>(plan.batch.tokens.size()));
  }
  // Whatever is left is cancelled so callers waiting on events are released.
  std::vector<std::unique_ptr<Sequence>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(incoming_);
  }
  for (auto& s : left) scheduler_->add(std::move(s));
  scheduler_->cancel_all();
}

}  // namespace ls
