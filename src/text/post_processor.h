// tokenizer.json "post_processor" for one sequence: the special ids put before and after the
// encoded text when add_special_tokens is true (TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel (offsets only: no ids), Sequence). Pairs are not served.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "text/tokenizer_json.h"

namespace ls::tok {

class PostProcessor {
 public:
  static Result<std::unique_ptr<PostProcessor>> from_json(const Json& j);

  // Wraps `ids` with the template's special ids.
  void apply(std::vector<int32_t>* ids) const;
  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }

 private:
  static Status add(const Json& j, std::vector<int32_t>* prefix, std::vector<int32_t>* suffix,
                    int depth);
  static Status add_template(const Json& j, std::vector<int32_t>* prefix,
                             std::vector<int32_t>* suffix);
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace ls::tok
