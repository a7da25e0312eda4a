// Counter updates and the min-counter pick of VtcPolicy.
#include "engine/vtc_policy.h"

#include <limits>

namespace ls {

int VtcPolicy::pick(const std::deque<Sequence*>& waiting,
                    const std::function<bool(const Sequence&)>& ready, Clock::time_point now) {
  (void)now;
  double floor = std::numeric_limits<double>::infinity();
  for (const Sequence* s : waiting) {
    auto it = counters_.find(s->req.adapter);
    if (it != counters_.end()) floor = std::min(floor, it->second);
  }
  if (floor == std::numeric_limits<double>::infinity()) floor = 0.0;
  for (const Sequence* s : waiting) {
    auto [it, inserted] = counters_.emplace(s->req.adapter, floor);
    if (!inserted && it->second < floor) it->second = floor;
  }
  int best = -1;
  for (size_t i = 0; i < waiting.size(); ++i) {
    if (!ready(*waiting[i])) continue;
    if (best < 0 || counters_[waiting[i]->req.adapter] <
                        counters_[waiting[static_cast<size_t>(best)]->req.adapter])
      best = static_cast<int>(i);
  }
  return best;
}

void VtcPolicy::on_tokens(const Sequence& seq, int32_t tokens) {
  counters_[seq.req.adapter] += tokens;
}

double VtcPolicy::counter(const std::string& adapter) const {
  auto it = counters_.find(adapter);
  return it == counters_.end() ? 0.0 : it->second;
}

}  // namespace ls
