// StopMatcher: finds OpenAI-style stop strings in streamed text, across token boundaries, and
// holds back only the tail that could still grow into a stop string (never more than the longest
// stop minus one byte), so everything else streams at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ls {

class StopMatcher {
 public:
  // Empty stop strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  struct Output {
    std::string text;      // safe to send now
    bool stopped = false;  // a stop string was found; `text` ends right before it
    int stop_index = -1;   // which of the constructor's strings matched (first in list on ties)
  };
  // Appends newly detokenized text. After a stop, further calls return nothing.
  Output push(std::string_view text);
  // End of generation without a stop: releases the held-back tail.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::vector<int> index_;  // stops_[k] is the constructor's stops[index_[k]]
  std::string pending_;     // received but not released: may be the start of a stop string
  bool stopped_ = false;
};

}  // namespace ls
