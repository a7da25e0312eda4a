// Pre-tokenizer steps with the semantics of HF's NormalizedString::split: a character predicate
// makes one match per character, a regex one per match; behaviors then merge or drop them.
#include "text/pre_tokenizer.h"

#include <algorithm>

#include "text/unicode_props.h"
#include "text/utf8.h"

namespace ls::tok {

namespace {

constexpr int kMaxDepth = 16;

// GPT-2's split regex, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<Span> spans_from_matches(size_t n, const std::vector<std::pair<size_t, size_t>>& m) {
  std::vector<Span> spans;
  spans.reserve(2 * m.size() + 1);
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (prev != b) spans.push_back({prev, b, false});
    spans.push_back({b, e, true});
    prev = e;
  }
  if (prev != n || spans.empty()) spans.push_back({prev, n, false});
  return spans;
}

template <typename Pred>
std::vector<Span> spans_from_predicate(const std::string& s, Pred pred) {
  std::vector<Span> spans;
  size_t gap = 0;
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    char32_t cp = next_code_point(s, &i);
    if (!pred(cp)) continue;
    if (gap < start) spans.push_back({gap, start, false});
    spans.push_back({start, i, true});
    gap = i;
  }
  if (gap < s.size() || spans.empty()) spans.push_back({gap, s.size(), false});
  return spans;
}

// HF's Whitespace pre-tokenizer: keeps the matches of \w+|[^\w\s]+ and drops the rest.
void split_whitespace_words(Piece&& in, std::vector<Piece>* out) {
  const std::string& s = in.text;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    char32_t cp = next_code_point(s, &i);
    if (is_white_space(cp) && !is_word_char(cp)) continue;
    bool word = is_word_char(cp);
    size_t end = i;
    while (end < s.size()) {
      size_t j = end;
      char32_t c = next_code_point(s, &j);
      bool c_word = is_word_char(c);
      if (word ? !c_word : (c_word || is_white_space(c))) break;
      end = j;
    }
    out->push_back({s.substr(start, end - start), in.at_start && start == 0});
    i = end;
  }
}

Result<SplitBehavior> parse_behavior(const Json& j, SplitBehavior fallback) {
  LS_ASSIGN_OR_RETURN(std::string b, json_string(j, "behavior", false));
  if (b.empty()) return fallback;
  if (b == "Removed" || b == "removed") return SplitBehavior::kRemoved;
  if (b == "Isolated" || b == "isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious" || b == "merged_with_previous")
    return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext" || b == "merged_with_next") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous" || b == "contiguous") return SplitBehavior::kContiguous;
  return invalid_argument("unknown split behavior '" + b + "'");
}

// ByteLevel: an optional leading space, an optional GPT-2 split, then each byte written as its
// character of the byte alphabet.
Status byte_level(bool add_prefix_space, const PcreRegex* re, Piece&& in, std::vector<Piece>* out) {
  if (add_prefix_space && (in.text.empty() || in.text[0] != ' ')) in.text = " " + in.text;
  std::vector<Piece> parts;
  if (re) {
    std::vector<std::pair<size_t, size_t>> matches;
    LS_RETURN_IF_ERROR(re->find_all(in.text, &matches));
    split_piece(in, spans_from_matches(in.text.size(), matches), SplitBehavior::kIsolated, &parts);
  } else {
    parts.push_back(std::move(in));
  }
  const auto& table = byte_level_chars();
  for (Piece& p : parts) {
    std::string mapped;
    mapped.reserve(p.text.size() * 2);
    for (unsigned char b : p.text) mapped.append(table[b]);
    if (!mapped.empty()) out->push_back({std::move(mapped), p.at_start});
  }
  return ok_status();
}

// Metaspace: spaces become `rep`, `rep` is prepended when asked and not already there, and with
// `split` every `rep` starts a new word.
void metaspace(const std::string& rep, bool prepend, bool split, Piece&& in,
               std::vector<Piece>* out) {
  std::string& t = in.text;
  for (size_t pos = 0; (pos = t.find(' ', pos)) != std::string::npos;) {
    t.replace(pos, 1, rep);
    pos += rep.size();
  }
  if (prepend && t.compare(0, rep.size(), rep) != 0) t = rep + t;
  if (!split) {
    if (!t.empty()) out->push_back(std::move(in));
    return;
  }
  size_t i0 = 0;
  char32_t cp = next_code_point(rep, &i0);
  split_piece(in, spans_from_predicate(t, [cp](char32_t c) { return c == cp; }),
              SplitBehavior::kMergedWithNext, out);
}

}  // namespace

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = to_utf8(printable ? char32_t(b) : char32_t(256 + n++));
    }
    return t;
  }();
  return table;
}

void split_piece(const Piece& in, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>* out) {
  std::vector<std::pair<size_t, size_t>> keep;
  keep.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) keep.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.is_match) keep.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !previous_match && !keep.empty()) {
          keep.back().first = s.begin;
        } else {
          keep.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
  }
  for (auto [b, e] : keep)
    if (e > b) out->push_back({in.text.substr(b, e - b), in.at_start && b == 0});
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::from_json(const Json& j) {
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  LS_RETURN_IF_ERROR(add_steps(j, &p->steps_, 0));
  return p;
}

Status PreTokenizer::add_steps(const Json& j, std::vector<Step>* steps, int depth) {
  if (depth > kMaxDepth) return invalid_argument("pre_tokenizer Sequences nested too deeply");
  LS_ASSIGN_OR_RETURN(std::string type, json_type(j, "pre_tokenizer"));
  if (type == "Sequence") {
    LS_ASSIGN_OR_RETURN(const Json* list, json_array(j, "pretokenizers"));
    for (const Json& sub : *list) LS_RETURN_IF_ERROR(add_steps(sub, steps, depth + 1));
    return ok_status();
  }
  auto step = parse_step(type, j);
  if (!step.ok()) return step.status().with_context("pre_tokenizer " + type);
  steps->push_back(std::move(step).value());
  return ok_status();
}

Result<PreTokenizer::Step> PreTokenizer::parse_step(const std::string& type, const Json& j) {
  Step st;
  if (type == "Split") {
    st.kind = Kind::kSplit;
    LS_ASSIGN_OR_RETURN(JsonPattern p, json_pattern(j, "pattern"));
    LS_ASSIGN_OR_RETURN(st.behavior, parse_behavior(j, SplitBehavior::kIsolated));
    LS_ASSIGN_OR_RETURN(st.invert, json_bool(j, "invert", false));
    if (!p.text.empty()) {
      LS_ASSIGN_OR_RETURN(st.regex, PcreRegex::compile(p.text, !p.is_regex));
    }
  } else if (type == "ByteLevel") {
    st.kind = Kind::kByteLevel;
    LS_ASSIGN_OR_RETURN(st.add_prefix_space, json_bool(j, "add_prefix_space", true));
    LS_ASSIGN_OR_RETURN(bool use_regex, json_bool(j, "use_regex", true));
    if (use_regex) {
      LS_ASSIGN_OR_RETURN(st.regex, PcreRegex::compile(kGpt2Pattern, false));
    }
  } else if (type == "Metaspace") {
    st.kind = Kind::kMetaspace;
    LS_ASSIGN_OR_RETURN(st.replacement, json_char(j, "replacement"));
    LS_ASSIGN_OR_RETURN(st.split, json_bool(j, "split", true));
    LS_ASSIGN_OR_RETURN(std::string scheme, json_string(j, "prepend_scheme", false));
    if (scheme.empty() || scheme == "always") {
      st.prepend = Prepend::kAlways;
    } else if (scheme == "first") {
      st.prepend = Prepend::kFirst;
    } else if (scheme == "never") {
      st.prepend = Prepend::kNever;
    } else {
      return invalid_argument("unknown prepend_scheme '" + scheme + "'");
    }
    // Files from before prepend_scheme existed say add_prefix_space instead.
    LS_ASSIGN_OR_RETURN(bool add_prefix, json_bool(j, "add_prefix_space", true));
    if (!add_prefix) st.prepend = Prepend::kNever;
  } else if (type == "Digits") {
    st.kind = Kind::kDigits;
    LS_ASSIGN_OR_RETURN(st.individual_digits, json_bool(j, "individual_digits", false));
  } else if (type == "Whitespace") {
    st.kind = Kind::kWhitespace;
  } else if (type == "WhitespaceSplit") {
    st.kind = Kind::kWhitespaceSplit;
  } else if (type == "Punctuation") {
    st.kind = Kind::kPunctuation;
    LS_ASSIGN_OR_RETURN(st.behavior, parse_behavior(j, SplitBehavior::kIsolated));
  } else if (type == "CharDelimiterSplit") {
    st.kind = Kind::kCharDelimiter;
    LS_ASSIGN_OR_RETURN(std::string d, json_char(j, "delimiter"));
    size_t i = 0;
    st.delimiter = next_code_point(d, &i);
  } else if (type == "BertPreTokenizer") {
    st.kind = Kind::kBert;
  } else {
    return unimplemented(
        "type is not supported (Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, "
        "WhitespaceSplit, Punctuation, CharDelimiterSplit, BertPreTokenizer)");
  }
  return st;
}

Status PreTokenizer::run(std::vector<Piece>* pieces) const {
  std::vector<Piece> next;
  for (const Step& st : steps_) {
    next.clear();
    next.reserve(pieces->size() * 2);
    for (Piece& p : *pieces) LS_RETURN_IF_ERROR(apply(st, std::move(p), &next));
    pieces->swap(next);
  }
  return ok_status();
}

Status PreTokenizer::apply(const Step& st, Piece&& in, std::vector<Piece>* out) const {
  switch (st.kind) {
    case Kind::kSplit: {
      std::vector<std::pair<size_t, size_t>> matches;
      if (st.regex) LS_RETURN_IF_ERROR(st.regex->find_all(in.text, &matches));
      std::vector<Span> spans = spans_from_matches(in.text.size(), matches);
      if (st.invert)
        for (Span& s : spans) s.is_match = !s.is_match;
      split_piece(in, spans, st.behavior, out);
      return ok_status();
    }
    case Kind::kByteLevel:
      return byte_level(st.add_prefix_space, st.regex.get(), std::move(in), out);
    case Kind::kMetaspace: {
      bool prepend =
          st.prepend == Prepend::kAlways || (st.prepend == Prepend::kFirst && in.at_start);
      metaspace(st.replacement, prepend, st.split, std::move(in), out);
      return ok_status();
    }
    case Kind::kDigits:
      split_piece(in, spans_from_predicate(in.text, is_numeric),
                  st.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                  out);
      return ok_status();
    case Kind::kWhitespace:
      split_whitespace_words(std::move(in), out);
      return ok_status();
    case Kind::kWhitespaceSplit:
      split_piece(in, spans_from_predicate(in.text, is_white_space), SplitBehavior::kRemoved, out);
      return ok_status();
    case Kind::kPunctuation:
      split_piece(in, spans_from_predicate(in.text, is_punctuation), st.behavior, out);
      return ok_status();
    case Kind::kCharDelimiter: {
      char32_t d = st.delimiter;
      split_piece(in, spans_from_predicate(in.text, [d](char32_t c) { return c == d; }),
                  SplitBehavior::kRemoved, out);
      return ok_status();
    }
    case Kind::kBert: {
      std::vector<Piece> words;
      split_piece(in, spans_from_predicate(in.text, is_white_space), SplitBehavior::kRemoved,
                  &words);
      for (const Piece& w : words)
        split_piece(w, spans_from_predicate(w.text, is_punctuation), SplitBehavior::kIsolated, out);
      return ok_status();
    }
  }
  return ok_status();
}

}  // namespace ls::tok
