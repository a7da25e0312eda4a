// AdmissionPolicy: which waiting request is admitted next. One policy per file; the Scheduler
// asks pick() repeatedly while sequence slots, token budget and pages last.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "engine/sequence.h"

namespace ls {

class AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;
  // Index into `waiting` (arrival order) of the next sequence to admit, or -1 for none now.
  // `ready(seq)` is true when the sequence's adapter is on the device (or it has none).
  virtual int pick(const std::deque<Sequence*>& waiting,
                   const std::function<bool(const Sequence&)>& ready, Clock::time_point now) = 0;
  virtual void on_admitted(const Sequence& seq) { (void)seq; }
  // Tokens computed for `seq` in a step (fairness accounting).
  virtual void on_tokens(const Sequence& seq, int32_t tokens) {
    (void)seq;
    (void)tokens;
  }
  // Adapters worth fetching ahead (the default: any waiting request's adapter).
  virtual bool may_prefetch(const std::string& adapter) const {
    (void)adapter;
    return true;
  }
};

// First come, first served among requests whose adapter is ready: a request waiting for its
// adapter to load never blocks requests for other adapters.
class FcfsPolicy final : public AdmissionPolicy {
 public:
  int pick(const std::deque<Sequence*>& waiting, const std::function<bool(const Sequence&)>& ready,
           Clock::time_point now) override {
    (void)now;
    for (size_t i = 0; i < waiting.size(); ++i)
      if (ready(*waiting[i])) return static_cast<int>(i);
    return -1;
  }
};

struct PolicyOptions {
  int32_t max_active_adapters = 0;  // > 0: LoRAX-style fair activation
  double adapter_cycle_ms = 0.0;
  bool vtc = false;  // virtual token counter fairness across adapters
};

std::unique_ptr<AdmissionPolicy> make_admission_policy(const PolicyOptions& options);

}  // namespace ls
