// The demo model's tokenizer: a byte-level BPE tokenizer.json (GPT-2 style) whose merges are
// learned from a short built-in English text, plus tokenizer_config.json with a ChatML chat
// template, so the embedded default takes text prompts and chat requests with no download.
#pragma once

#include <string>

#include "base/status.h"

namespace ls {

// Writes tokenizer.json and tokenizer_config.json into `dir` (which exists) for a vocabulary of
// exactly `vocab_size` ids (>= 300): <unk> 0, <s> 1, </s> 2, <|im_start|> 3, <|im_end|> 4, the 256
// bytes, then learned merges.
Status write_demo_tokenizer(const std::string& dir, int32_t vocab_size);

}  // namespace ls
