// What a caller submits to the Engine and what it gets back, token by token.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/generation.h"

namespace ls {

using RequestId = uint64_t;
using Clock = std::chrono::steady_clock;

struct EngineRequest {
  std::vector<int32_t> prompt_ids;
  std::string adapter;  // empty = the base model
  int32_t max_tokens = 16;
  SamplingConfig sampling;
  bool stop_at_eos = false;
  std::vector<int32_t> stop_token_ids;  // extra ids that end generation
  bool full_logprobs = false;  // the log-softmax at the last prompt position with the first token
  int32_t top_logprobs = 0;    // 0..kMaxTopLogprobs alternatives with every token
};

// One event per generated token; the last event of a request has `finished` set. A request
// that fails (adapter load error, deadline missed, cancelled) gets one finished event with
// `error` (and finish_reason "error", "abort" or "cancelled").
struct TokenEvent {
  RequestId id = 0;
  int32_t token = -1;  // -1 when the event carries no token
  float logprob = 0.0f;
  bool finished = false;
  std::string finish_reason;  // "length", "stop", "abort", "cancelled", "error"
  std::string error;
  std::vector<float> prompt_last_logprobs;     // with the first token when full_logprobs
  std::vector<std::pair<int32_t, float>> top;  // top_logprobs alternatives (id, log-prob)
  double queue_s = -1.0;  // with the first token: arrival to first admission, in seconds
};

using TokenCallback = std::function<void(const TokenEvent&)>;

}  // namespace ls
