// Sequence: the engine's state of one request (owned by the Scheduler).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/rng.h"
#include "engine/request.h"
#include "memory/page_pool.h"
#include "model/adapter_layout.h"

namespace ls {

enum class SeqStatus { kWaiting, kRunning, kFinished };

struct Sequence {
  RequestId id = 0;
  EngineRequest req;
  TokenCallback on_event;
  SeqStatus status = SeqStatus::kWaiting;
  PageList pages;                // KV pages; grows as tokens are computed
  int32_t num_computed = 0;      // tokens whose K/V are in the pages
  std::vector<int32_t> all_ids;  // prompt, then generated tokens
  int32_t num_generated = 0;
  Rng rng{0};
  bool adapter_pinned = false;
  const ResidentAdapter* adapter = nullptr;  // set while pinned
  Clock::time_point arrival;
  Clock::time_point first_token_time;  // epoch when none yet
  Clock::time_point first_admitted;    // first time it left the waiting queue
  int32_t num_preemptions = 0;
  // Distinct ids seen -> times generated (0: prompt only); kept only when penalties are on.
  std::unordered_map<int32_t, int32_t> seen;

  int32_t num_tokens() const { return static_cast<int32_t>(all_ids.size()); }
  bool prefill_done() const { return num_computed >= num_tokens() - 1; }
};

}  // namespace ls
