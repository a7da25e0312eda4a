// Requests and results of batch generation: the in-process interface `loraserve generate` uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ls {

struct SamplingConfig {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;  // 0 = no limit
  uint64_t seed = 0;
  float min_p = 0.0f;               // 0 = off
  float presence_penalty = 0.0f;    // OpenAI, over generated tokens; [-2, 2]
  float frequency_penalty = 0.0f;   // OpenAI, over generated tokens; [-2, 2]
  float repetition_penalty = 1.0f;  // HF/vLLM, over prompt and generated tokens; > 0
  bool has_penalties() const {
    return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f;
  }
};

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;
  std::string adapter;  // empty = the base model
  int32_t max_tokens = 16;
  SamplingConfig sampling;
  bool full_logprobs = false;  // return the log-softmax at the last prompt position
  bool stop_at_eos = false;
};

struct GenerationResult {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // log-prob of each token under the unmodified distribution
  std::vector<float> prompt_last_logprobs;  // [vocab] when full_logprobs
  std::string finish_reason;                // "length" or "stop"
};

}  // namespace ls
