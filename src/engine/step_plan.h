// StepPlan: plain data built once per step by the Scheduler and read by the model runner.
#pragma once

#include <vector>

#include "engine/request.h"
#include "model/llama_model.h"

namespace ls {

struct PlannedSeq {
  RequestId id = 0;
  int32_t num_tokens = 0;  // tokens fed this step
  int32_t logit_row = -1;  // row in the logits when this step samples a token, else -1
  bool want_full_logprobs = false;
  int32_t top_logprobs = 0;
};

// Penalty lists of the sampling rows (CSR, see PenaltyBatch); empty when no row has penalties.
struct PenaltyPlan {
  std::vector<int32_t> indptr;  // [rows + 1]
  std::vector<int32_t> ids;
  std::vector<int32_t> output_counts;
  std::vector<float> presence, frequency, repetition;  // [rows]
  bool empty() const { return indptr.empty(); }
};

struct StepPlan {
  ForwardBatch batch;
  std::vector<PlannedSeq> seqs;
  std::vector<SampleParams> sample_params;  // [batch.logit_rows.size()] uniforms drawn per request
  PenaltyPlan penalties;
  int32_t top_logprobs = 0;  // the largest top_logprobs of any sampling row
  bool empty() const { return batch.tokens.empty(); }
};

// What the model runner hands back for each sampling row of a plan.
struct StepOutput {
  std::vector<int32_t> tokens;           // [rows]
  std::vector<float> logprobs;           // [rows]
  std::vector<std::vector<float>> full;  // [rows] full log-softmax where asked, else empty
  int32_t top_k = 0;                     // alternatives per row in top_ids / top_logprobs
  std::vector<int32_t> top_ids;          // [rows, top_k]
  std::vector<float> top_logprobs;       // [rows, top_k]
};

}  // namespace ls
