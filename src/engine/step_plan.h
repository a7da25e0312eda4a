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
};

struct StepPlan {
  ForwardBatch batch;
  std::vector<PlannedSeq> seqs;
  std::vector<SampleParams> sample_params;  // [batch.logit_rows.size()] uniforms drawn per request
  bool empty() const { return batch.tokens.empty(); }
};

// What the model runner hands back for each sampling row of a plan.
struct StepOutput {
  std::vector<int32_t> tokens;           // [rows]
  std::vector<float> logprobs;           // [rows]
  std::vector<std::vector<float>> full;  // [rows] full log-softmax where asked, else empty
};

}  // namespace ls
