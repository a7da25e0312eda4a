// A benchmark's request list as data: generated from a WorkloadSpec or read from a JSONL trace,
// and written back as one (so peers such as tools/peers/peft_serve.py replay the identical
// requests). One JSON object per line:
//   {"timestamp": 0.31, "adapter": "lora-7", "prompt": [15, 300, 42], "output_len": 128}
// timestamp: seconds from the start, >= 0 and non-decreasing; adapter: a name, or null/absent
// for the base model; exactly one of prompt (text, or token ids) and input_len (a length; the
// prompt is then drawn at random); output_len: max_tokens, generated with EOS ignored.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "base/status.h"
#include "workload.h"

namespace ls::bench {

struct TraceRequest {
  double timestamp_s = 0.0;
  std::string adapter;              // empty: the base model
  std::vector<int32_t> prompt_ids;  // the prompt as token ids; or
  std::string prompt_text;          // the prompt as text; or neither (input_len only)
  int32_t input_len = 0;            // token ids: their count; text: 0 (the server's tokenizer)
  int32_t output_len = 0;
  bool has_prompt() const { return !prompt_ids.empty() || !prompt_text.empty(); }
};

// The generated workload as requests named adapter_name(spec, i), prompts left to
// fill_prompts.
std::vector<TraceRequest> to_trace(const WorkloadSpec& spec,
                                   const std::vector<WorkloadRequest>& workload);

// How prompts given only by length become prompts.
enum class PromptFormat {
  kTokenIds,  // ids uniform in [kFirstPromptId, vocab_size), seeded
  kText,      // S-LoRA's dummy prompt: "Hello " repeated input_len times
};
constexpr int32_t kFirstPromptId = 3;  // skips the usual special ids (pad/unk, bos, eos)
// Fills the prompt of every request that has only input_len. kTokenIds needs vocab_size >
// kFirstPromptId. Deterministic in `seed` and the order of the requests.
Status fill_prompts(std::vector<TraceRequest>* requests, PromptFormat format, int32_t vocab_size,
                    uint64_t seed);

// Reads a JSONL trace; errors name the file, the line number and what is wrong.
Result<std::vector<TraceRequest>> read_trace(const std::string& path);
Result<std::vector<TraceRequest>> parse_trace(std::istream& in, const std::string& name);
// Writes one line per request: prompt as ids or text when present, else input_len.
Status write_trace(const std::string& path, const std::vector<TraceRequest>& requests);

// The distinct adapter names of `requests` (the base model left out), in first-use order.
std::vector<std::string> trace_adapters(const std::vector<TraceRequest>& requests);

}  // namespace ls::bench
