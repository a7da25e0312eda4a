// S-LoRA's early abort: a waiting request that has not produced its first token within the
// time-to-first-token SLO can no longer meet it; aborting it frees its queue place and pages
// for requests that still can. Off when the SLO is 0.
#pragma once

#include <chrono>

#include "engine/sequence.h"

namespace ls {

class EarlyAbortPolicy {
 public:
  explicit EarlyAbortPolicy(double ttft_slo_ms)
      : slo_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double, std::milli>(ttft_slo_ms))) {}
  bool enabled() const { return slo_.count() > 0; }
  bool should_abort(const Sequence& s, Clock::time_point now) const {
    return enabled() && s.num_generated == 0 && now - s.arrival > slo_;
  }

 private:
  Clock::duration slo_;
};

}  // namespace ls
