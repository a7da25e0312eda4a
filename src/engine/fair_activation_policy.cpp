// Active-set bookkeeping for FairActivationPolicy.
#include "engine/fair_activation_policy.h"

#include <algorithm>
#include <chrono>

#include "engine/vtc_policy.h"

namespace ls {

FairActivationPolicy::FairActivationPolicy(int32_t max_active, double cycle_ms)
    : max_active_(std::max(1, max_active)),
      cycle_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double, std::milli>(cycle_ms))) {}

bool FairActivationPolicy::is_active(const std::string& adapter) const {
  return adapter.empty() || std::find(active_.begin(), active_.end(), adapter) != active_.end();
}

bool FairActivationPolicy::may_prefetch(const std::string& adapter) const {
  return is_active(adapter);
}

int FairActivationPolicy::pick(const std::deque<Sequence*>& waiting,
                               const std::function<bool(const Sequence&)>& ready,
                               Clock::time_point now) {
  if (last_rotation_ == Clock::time_point{}) last_rotation_ = now;
  const Sequence* oldest_inactive = nullptr;
  for (const Sequence* s : waiting)
    if (!is_active(s->req.adapter)) {
      oldest_inactive = s;
      break;
    }
  if (oldest_inactive) {
    if (static_cast<int32_t>(active_.size()) < max_active_) {
      active_.push_back(oldest_inactive->req.adapter);
    } else if (cycle_.count() > 0 && now - last_rotation_ >= cycle_) {
      active_.pop_front();  // the adapter active longest yields its place
      active_.push_back(oldest_inactive->req.adapter);
      last_rotation_ = now;
    }
  }
  for (size_t i = 0; i < waiting.size(); ++i)
    if (is_active(waiting[i]->req.adapter) && ready(*waiting[i])) return static_cast<int>(i);
  return -1;
}

std::unique_ptr<AdmissionPolicy> make_admission_policy(const PolicyOptions& options) {
  if (options.max_active_adapters > 0)
    return std::make_unique<FairActivationPolicy>(options.max_active_adapters,
                                                  options.adapter_cycle_ms);
  if (options.vtc) return std::make_unique<VtcPolicy>();
  return std::make_unique<FcfsPolicy>();
}

}  // namespace ls
