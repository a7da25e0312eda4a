// LoRAX-style fair activation: at most `max_active` adapters are active; only requests for
// active adapters (and the base model) are admitted. Free active places go to the adapter of the
// oldest waiting request; every `cycle_ms`, if other adapters wait, the adapter active longest
// gives its place up (round robin), trading some throughput for bounded queue waits.
#pragma once

#include <deque>
#include <string>

#include "engine/admission_policy.h"

namespace ls {

class FairActivationPolicy final : public AdmissionPolicy {
 public:
  FairActivationPolicy(int32_t max_active, double cycle_ms);
  int pick(const std::deque<Sequence*>& waiting, const std::function<bool(const Sequence&)>& ready,
           Clock::time_point now) override;
  bool may_prefetch(const std::string& adapter) const override;
  const std::deque<std::string>& active() const { return active_; }

 private:
  bool is_active(const std::string& adapter) const;

  int32_t max_active_;
  Clock::duration cycle_;
  std::deque<std::string> active_;  // oldest activation first
  Clock::time_point last_rotation_{};
};

}  // namespace ls
