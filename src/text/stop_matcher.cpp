// Stop-string search over the held-back tail plus the new text; the tail is bounded by the
// longest stop string, so each push costs O((tail + new) * stops * longest stop).
#include "text/stop_matcher.h"

#include <algorithm>

namespace ls {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;
    stops_.push_back(std::move(stops[i]));
    index_.push_back(static_cast<int>(i));
  }
}

StopMatcher::Output StopMatcher::push(std::string_view text) {
  Output out;
  if (stopped_) return out;
  pending_.append(text);
  size_t best = std::string::npos;
  int best_k = -1;
  for (size_t k = 0; k < stops_.size(); ++k) {
    size_t pos = pending_.find(stops_[k]);
    if (pos < best) {
      best = pos;
      best_k = static_cast<int>(k);
    }
  }
  if (best_k >= 0) {
    out.text = pending_.substr(0, best);
    out.stopped = true;
    out.stop_index = index_[best_k];
    stopped_ = true;
    pending_.clear();
    return out;
  }
  // Hold the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  // Never split a UTF-8 character between what is sent and what is held.
  size_t cut = pending_.size() - hold;
  while (cut > 0 && cut < pending_.size() &&
         (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80)
    --cut;
  out.text = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string StopMatcher::finish() {
  if (stopped_) return std::string();
  std::string rest = std::move(pending_);
  pending_.clear();
  return rest;
}

}  // namespace ls
