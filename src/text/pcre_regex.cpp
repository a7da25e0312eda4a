// PCRE2 compile/match. Match data and the JIT stack are per thread: a compiled pattern is shared
// by every request thread, but PCRE2's scratch state must not be.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pcre_regex.h"

#include <pcre2.h>

namespace ls::tok {

namespace {

std::string pcre_error(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// One per thread: a 1-pair ovector (we only need the whole match) and a JIT stack that can grow
// to 8 MiB, enough for lookaheads over megabyte-long whitespace runs.
struct ThreadScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadScratch() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
  ThreadScratch(const ThreadScratch&) = delete;
  ThreadScratch& operator=(const ThreadScratch&) = delete;
};

ThreadScratch& scratch() {
  thread_local ThreadScratch s;
  return s;
}

}  // namespace

Result<std::shared_ptr<const PcreRegex>> PcreRegex::compile(std::string_view pattern,
                                                            bool literal) {
  std::shared_ptr<PcreRegex> re(new PcreRegex());
  re->pattern_ = std::string(pattern);
  re->literal_ = literal;
  if (literal) return std::shared_ptr<const PcreRegex>(std::move(re));  // plain substring search
  // MULTILINE: Oniguruma's default (Ruby) syntax makes ^ and $ line anchors.
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &err, &offset, nullptr);
  if (!code) {
    return invalid_argument("bad regex '" + std::string(pattern) + "' at offset " +
                            std::to_string(offset) + ": " + pcre_error(err));
  }
  re->code_ = code;
  re->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::shared_ptr<const PcreRegex>(std::move(re));
}

PcreRegex::~PcreRegex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Status PcreRegex::find_all(std::string_view text,
                           std::vector<std::pair<size_t, size_t>>* out) const {
  if (literal_) {
    if (pattern_.empty()) return ok_status();
    for (size_t pos = 0; (pos = text.find(pattern_, pos)) != std::string_view::npos;) {
      out->emplace_back(pos, pos + pattern_.size());
      pos += pattern_.size();
    }
    return ok_status();
  }
  ThreadScratch& s = scratch();
  if (!s.data || !s.context) return resource_exhausted("out of memory for regex match data");
  auto* code = static_cast<pcre2_code*>(code_);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc =
        jit_ ? pcre2_jit_match(code, subject, text.size(), pos, 0, s.data, s.context)
             : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return resource_exhausted("regex '" + pattern_ + "' failed on a " +
                                std::to_string(text.size()) + "-byte input: " + pcre_error(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    size_t start = ov[0], end = ov[1];
    if (end > start) {
      out->emplace_back(start, end);
      pos = end;
      continue;
    }
    // An empty match adds no piece; step over one character and search again.
    if (start >= text.size()) break;
    pos = start + 1;
    while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
  }
  return ok_status();
}

}  // namespace ls::tok
