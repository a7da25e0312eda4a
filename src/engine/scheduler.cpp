// Scheduling steps; see scheduler.h for the policy. Invariants: a running sequence holds pages
// for exactly ceil(num_computed / page_size) tokens after update(); a finished or preempted one
// holds none; an adapter is pinned exactly while a running sequence uses it.
#include "engine/scheduler.h"

#include <algorithm>

#include "base/check.h"

namespace ls {

struct Scheduler::Slot {
  Sequence* seq;
  int32_t tokens;
};

namespace {
int32_t pages_for(int64_t tokens, int32_t page_size) {
  return static_cast<int32_t>((tokens + page_size - 1) / page_size);
}
}  // namespace

Scheduler::Scheduler(SchedulerConfig config, PagePool& pool, AdapterResidency& adapters,
                     std::unique_ptr<AdmissionPolicy> policy, EarlyAbortPolicy early_abort)
    : config_(std::move(config)),
      pool_(pool),
      adapters_(adapters),
      policy_(std::move(policy)),
      early_abort_(early_abort) {}

Scheduler::~Scheduler() {
  for (Sequence* s : running_)
    if (s->adapter_pinned) adapters_.unpin(s->req.adapter);
}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  seq->status = SeqStatus::kWaiting;
  seq->pages = PageList(&pool_, PageKind::kKv);
  seq->all_ids = seq->req.prompt_ids;
  seq->rng = Rng(seq->req.sampling.seed);
  if (seq->req.sampling.has_penalties())
    for (int32_t id : seq->req.prompt_ids) seq->seen.emplace(id, 0);
  if (!seq->req.adapter.empty()) adapters_.note_request(seq->req.adapter);
  prompt_tokens_ += static_cast<int64_t>(seq->req.prompt_ids.size());
  waiting_.push_back(seq.get());
  seqs_[seq->id] = std::move(seq);
}

void Scheduler::finish(Sequence& s, const std::string& reason, const std::string& error) {
  s.pages.release();
  if (s.adapter_pinned) {
    adapters_.unpin(s.req.adapter);
    s.adapter_pinned = false;
    s.adapter = nullptr;
  }
  s.status = SeqStatus::kFinished;
  ++(error.empty() && reason != "cancelled" && reason != "abort" ? finished_ : failed_);
  if (s.on_event) {
    TokenEvent e;
    e.id = s.id;
    e.finished = true;
    e.finish_reason = reason;
    e.error = error;
    s.on_event(e);
  }
}

void Scheduler::drop_finished() {
  auto done = [](Sequence* s) { return s->status == SeqStatus::kFinished; };
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), done), waiting_.end());
  running_.erase(std::remove_if(running_.begin(), running_.end(), done), running_.end());
  for (auto it = seqs_.begin(); it != seqs_.end();)
    it = it->second->status == SeqStatus::kFinished ? seqs_.erase(it) : std::next(it);
}

bool Scheduler::cancel(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end() || it->second->status == SeqStatus::kFinished) return false;
  finish(*it->second, "cancelled", "");
  drop_finished();
  return true;
}

void Scheduler::cancel_all() {
  for (auto& [id, s] : seqs_)
    if (s->status != SeqStatus::kFinished) finish(*s, "cancelled", "");
  drop_finished();
}

void Scheduler::preempt(Sequence& s) {
  s.pages.release();
  s.num_computed = 0;  // recompute prompt + generated tokens on readmission
  if (s.adapter_pinned) {
    adapters_.unpin(s.req.adapter);
    s.adapter_pinned = false;
    s.adapter = nullptr;
  }
  s.status = SeqStatus::kWaiting;
  ++s.num_preemptions;
  ++preemptions_;
  running_.erase(std::find(running_.begin(), running_.end(), &s));
  waiting_.push_front(&s);
}

// Pages for `tokens` more tokens of `s`: evicts idle adapters, then preempts the newest running
// sequences other than `protect`; false when even that is not enough.
bool Scheduler::grow_pages(Sequence& s, int32_t tokens, const Sequence* protect) {
  const int32_t need =
      pages_for(s.num_computed + tokens, config_.page_size) - static_cast<int32_t>(s.pages.size());
  if (need <= 0) return true;
  while (!s.pages.grow(static_cast<size_t>(need)).ok()) {
    if (adapters_.evict_one()) continue;
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it)
      if (*it != &s && *it != protect) {
        victim = *it;
        break;
      }
    if (!victim) return false;
    preempt(*victim);
  }
  return true;
}

void Scheduler::fail_adapter(const std::string& adapter, const std::string& error) {
  for (Sequence* s : waiting_)
    if (s->req.adapter == adapter) finish(*s, "error", "adapter '" + adapter + "': " + error);
}

void Scheduler::admit(Clock::time_point now, int32_t* budget, std::vector<Slot>* slots) {
  auto ready = [&](const Sequence& s) {
    return s.req.adapter.empty() || adapters_.resident(s.req.adapter);
  };
  while (*budget > 0 && static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    const int idx = policy_->pick(waiting_, ready, now);
    if (idx < 0) break;
    Sequence& s = *waiting_[static_cast<size_t>(idx)];
    const int32_t take = std::min(s.num_tokens() - s.num_computed, *budget);
    const int32_t need = pages_for(take, config_.page_size);
    const int32_t prompt_pages = pages_for(s.num_tokens(), config_.page_size);
    // Pin first, so the evictions below cannot take this request's own adapter.
    if (!s.req.adapter.empty()) {
      s.adapter = adapters_.pin(s.req.adapter);
      s.adapter_pinned = true;
    }
    auto give_up = [&] {
      if (s.adapter_pinned) adapters_.unpin(s.req.adapter);
      s.adapter_pinned = false;
      s.adapter = nullptr;
    };
    // Room for the whole prompt plus the reserve; idle adapters give way to new work.
    while (pool_.num_free() < prompt_pages + config_.reserve_pages && adapters_.evict_one()) {
    }
    if ((pool_.num_free() < prompt_pages + config_.reserve_pages && !running_.empty()) ||
        !s.pages.grow(static_cast<size_t>(need)).ok()) {
      give_up();
      break;
    }
    waiting_.erase(waiting_.begin() + idx);
    s.status = SeqStatus::kRunning;
    if (s.first_admitted == Clock::time_point()) s.first_admitted = Clock::now();
    running_.push_back(&s);
    policy_->on_admitted(s);
    slots->push_back({&s, take});
    *budget -= take;
  }
}

StepPlan Scheduler::schedule(Clock::time_point now) {
  for (const auto& [adapter, error] : adapters_.take_failures()) fail_adapter(adapter, error);
  if (early_abort_.enabled())
    for (Sequence* s : waiting_)
      if (early_abort_.should_abort(*s, now))
        finish(*s, "abort", "time-to-first-token SLO missed before the request could start");
  drop_finished();

  int32_t budget = config_.max_tokens_per_step;
  std::vector<Slot> slots;
  // Running sequences first, in admission order: decodes take one token, prefills a chunk.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* s = running_[i];
    const int32_t take = std::min(s->num_tokens() - s->num_computed, budget);
    if (take <= 0) continue;
    if (!grow_pages(*s, take, nullptr)) {
      preempt(*s);  // nothing else left to give way: s waits for pages
      --i;
      continue;
    }
    slots.push_back({s, take});
    budget -= take;
  }
  // Preemption may have removed sequences planned earlier in this step.
  slots.erase(std::remove_if(slots.begin(), slots.end(),
                             [](const Slot& sl) { return sl.seq->status != SeqStatus::kRunning; }),
              slots.end());
  admit(now, &budget, &slots);
  int32_t prefetched = 0;
  for (Sequence* s : waiting_) {
    if (prefetched >= config_.prefetch_depth) break;
    if (s->req.adapter.empty() || !policy_->may_prefetch(s->req.adapter)) continue;
    adapters_.request(s->req.adapter);
    ++prefetched;
  }
  return build(slots);
}

StepPlan Scheduler::build(const std::vector<Slot>& slots) {
  StepPlan plan;
  ForwardBatch& fb = plan.batch;
  fb.kv_indptr.push_back(0);
  std::map<std::string, int32_t> slot_of;
  const int32_t ps = config_.page_size;
  for (const Slot& sl : slots) {
    Sequence& s = *sl.seq;
    const int32_t seq_index = fb.num_seqs();
    int32_t lora_slot = -1;
    if (!s.req.adapter.empty()) {
      auto [it, inserted] =
          slot_of.emplace(s.req.adapter, static_cast<int32_t>(fb.lora_slots.size()));
      LS_CHECK(s.adapter != nullptr);
      if (inserted) fb.lora_slots.push_back(s.adapter);
      lora_slot = it->second;
    }
    const auto& pages = s.pages.pages();
    for (int32_t i = 0; i < sl.tokens; ++i) {
      const int32_t pos = s.num_computed + i;
      fb.tokens.push_back(s.all_ids[static_cast<size_t>(pos)]);
      fb.positions.push_back(pos);
      fb.token_seq.push_back(seq_index);
      fb.slot_mapping.push_back(static_cast<int64_t>(pages[static_cast<size_t>(pos / ps)]) * ps +
                                pos % ps);
      fb.token_lora_slot.push_back(lora_slot);
    }
    const int32_t used = pages_for(s.num_computed + sl.tokens, ps);
    fb.kv_indices.insert(fb.kv_indices.end(), pages.begin(), pages.begin() + used);
    fb.kv_indptr.push_back(static_cast<int32_t>(fb.kv_indices.size()));
    PlannedSeq ps_out;
    ps_out.id = s.id;
    ps_out.num_tokens = sl.tokens;
    if (s.num_computed + sl.tokens == s.num_tokens()) {
      ps_out.logit_row = static_cast<int32_t>(fb.logit_rows.size());
      fb.logit_rows.push_back(static_cast<int32_t>(fb.tokens.size()) - 1);
      ps_out.want_full_logprobs = s.req.full_logprobs && s.num_generated == 0;
      ps_out.top_logprobs = s.req.top_logprobs;
      plan.top_logprobs = std::max(plan.top_logprobs, s.req.top_logprobs);
      const SamplingConfig& sc = s.req.sampling;
      plan.sample_params.push_back({sc.temperature, sc.top_p, sc.top_k, s.rng.uniform(), sc.min_p});
      add_penalties(s, &plan);
    }
    plan.seqs.push_back(ps_out);
  }
  return plan;
}

void Scheduler::add_penalties(const Sequence& s, StepPlan* plan) {
  PenaltyPlan& pp = plan->penalties;
  const SamplingConfig& sc = s.req.sampling;
  if (pp.empty() && !sc.has_penalties()) return;
  if (pp.empty()) {  // the first row with penalties: earlier rows get empty lists
    const size_t earlier = plan->sample_params.size() - 1;
    pp.indptr.assign(earlier + 1, 0);
    pp.presence.assign(earlier, 0.0f);
    pp.frequency.assign(earlier, 0.0f);
    pp.repetition.assign(earlier, 1.0f);
  }
  if (sc.has_penalties())
    for (const auto& [id, count] : s.seen) {
      pp.ids.push_back(id);
      pp.output_counts.push_back(count);
    }
  pp.indptr.push_back(static_cast<int32_t>(pp.ids.size()));
  pp.presence.push_back(sc.presence_penalty);
  pp.frequency.push_back(sc.frequency_penalty);
  pp.repetition.push_back(sc.repetition_penalty);
}

void Scheduler::update(const StepPlan& plan, const StepOutput& out, Clock::time_point now) {
  for (const PlannedSeq& p : plan.seqs) {
    auto it = seqs_.find(p.id);
    if (it == seqs_.end() || it->second->status != SeqStatus::kRunning) continue;  // cancelled
    Sequence& s = *it->second;
    s.num_computed += p.num_tokens;
    policy_->on_tokens(s, p.num_tokens);
    if (p.logit_row < 0) continue;
    const size_t row = static_cast<size_t>(p.logit_row);
    const int32_t tok = out.tokens[row];
    s.all_ids.push_back(tok);
    if (s.req.sampling.has_penalties()) ++s.seen[tok];
    ++s.num_generated;
    ++generation_tokens_;
    if (s.num_generated == 1) s.first_token_time = now;
    const auto& eos = config_.eos_token_ids;
    const auto& stops = s.req.stop_token_ids;
    const bool stop = (s.req.stop_at_eos && std::find(eos.begin(), eos.end(), tok) != eos.end()) ||
                      std::find(stops.begin(), stops.end(), tok) != stops.end();
    const bool done = stop || s.num_generated >= s.req.max_tokens;
    if (s.on_event) {
      TokenEvent e;
      e.id = s.id;
      e.token = tok;
      e.logprob = out.logprobs[row];
      if (s.num_generated == 1)
        e.queue_s = std::chrono::duration<double>(s.first_admitted - s.arrival).count();
      if (p.want_full_logprobs && row < out.full.size()) e.prompt_last_logprobs = out.full[row];
      for (int32_t j = 0; j < p.top_logprobs && j < out.top_k; ++j) {
        const size_t at = row * static_cast<size_t>(out.top_k) + static_cast<size_t>(j);
        e.top.emplace_back(out.top_ids[at], out.top_logprobs[at]);
      }
      s.on_event(e);
    }
    if (done) finish(s, stop ? "stop" : "length", "");
  }
  drop_finished();
}

}  // namespace ls
