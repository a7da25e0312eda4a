// Virtual token counter fairness (Sheng et al., "Fairness in serving LLMs"): each adapter has
// a counter of tokens served; the ready request whose adapter has the smallest counter goes
// first. An adapter that returns after idling is lifted to the smallest counter among adapters
// with queued work, so idle time earns no credit.
#pragma once

#include <map>
#include <string>

#include "engine/admission_policy.h"

namespace ls {

class VtcPolicy final : public AdmissionPolicy {
 public:
  int pick(const std::deque<Sequence*>& waiting, const std::function<bool(const Sequence&)>& ready,
           Clock::time_point now) override;
  void on_tokens(const Sequence& seq, int32_t tokens) override;
  double counter(const std::string& adapter) const;

 private:
  std::map<std::string, double> counters_;
};

}  // namespace ls
