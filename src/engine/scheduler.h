// Scheduler: iteration-level continuous batching over one page pool. Each schedule() gives
// every running sequence its next tokens (decode first, then prefill chunks within the token
// budget), admits waiting requests while sequence slots, budget and pages last (prompt pages
// plus a reserve), and preempts the newest running sequence by recompute when decode runs out
// of pages. update() appends sampled tokens and finishes requests. Plain data in and out: it is
// tested without a model, a GPU or files.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "engine/adapter_residency.h"
#include "engine/admission_policy.h"
#include "engine/early_abort_policy.h"
#include "engine/step_plan.h"

namespace ls {

struct SchedulerConfig {
  int32_t max_num_seqs = 64;
  int32_t max_tokens_per_step = 2048;
  int32_t page_size = 1;
  int32_t reserve_pages = 0;    // kept free at admission for the decode growth of running requests
  int32_t prefetch_depth = 16;  // adapters of this many waiting requests are fetched ahead
  std::vector<int32_t> eos_token_ids;
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, PagePool& pool, AdapterResidency& adapters,
            std::unique_ptr<AdmissionPolicy> policy, EarlyAbortPolicy early_abort);
  ~Scheduler();

  void add(std::unique_ptr<Sequence> seq);
  // Finishes the request at once (pages freed, adapter unpinned); false when unknown/finished.
  bool cancel(RequestId id);
  StepPlan schedule(Clock::time_point now);
  void update(const StepPlan& plan, const StepOutput& out, Clock::time_point now);

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t num_preemptions() const { return preemptions_; }
  int64_t prompt_tokens_total() const { return prompt_tokens_; }
  int64_t generation_tokens_total() const { return generation_tokens_; }
  int64_t requests_finished() const { return finished_; }
  int64_t requests_failed() const { return failed_; }
  void cancel_all();
  bool idle() const { return waiting_.empty() && running_.empty(); }
  const AdmissionPolicy& policy() const { return *policy_; }

 private:
  struct Slot;
  void finish(Sequence& s, const std::string& reason, const std::string& error);
  void preempt(Sequence& s);
  bool grow_pages(Sequence& s, int32_t tokens, const Sequence* protect);
  void fail_adapter(const std::string& adapter, const std::string& error);
  void drop_finished();
  void admit(Clock::time_point now, int32_t* budget, std::vector<Slot>* slots);
  StepPlan build(const std::vector<Slot>& slots);
  // Appends the penalty list of s's sampling row (the last row of plan->sample_params).
  static void add_penalties(const Sequence& s, StepPlan* plan);

  SchedulerConfig config_;
  PagePool& pool_;
  AdapterResidency& adapters_;
  std::unique_ptr<AdmissionPolicy> policy_;
  EarlyAbortPolicy early_abort_;
  std::map<RequestId, std::unique_ptr<Sequence>> seqs_;
  std::deque<Sequence*> waiting_;   // arrival order (preempted ones go back to the front)
  std::vector<Sequence*> running_;  // admission order
  int64_t preemptions_ = 0;
  int64_t prompt_tokens_ = 0, generation_tokens_ = 0, finished_ = 0, failed_ = 0;
};

}  // namespace ls
