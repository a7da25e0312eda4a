// Decoder steps after HF's decoders/*: ByteLevel maps the byte alphabet back and decodes the
// whole byte string lossily; ByteFallback turns each run of <0xNN> tokens into its UTF-8 text, or
// one U+FFFD per byte when the run is not valid UTF-8.
#include "text/token_decoder.h"

#include <unordered_map>

#include "text/normalizer.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace ls::tok {

namespace {
constexpr int kMaxDepth = 16;

// Character of GPT-2's byte alphabet -> byte.
const std::unordered_map<char32_t, unsigned char>& char_bytes() {
  static const auto* table = [] {
    auto* m = new std::unordered_map<char32_t, unsigned char>();
    const auto& chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      size_t i = 0;
      (*m)[next_code_point(chars[b], &i)] = static_cast<unsigned char>(b);
    }
    return m;
  }();
  return *table;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1. Like Rust's from_str_radix, either case of hex digit is accepted.
int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

void flush_bytes(std::string* bytes, std::vector<std::string>* out) {
  if (bytes->empty()) return;
  if (is_valid_utf8(*bytes)) {
    out->push_back(std::move(*bytes));
  } else {
    for (size_t i = 0; i < bytes->size(); ++i) out->push_back("\xEF\xBF\xBD");
  }
  bytes->clear();
}

std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size();) {
    starts.push_back(i);
    i += char_length(static_cast<unsigned char>(s[i]));
  }
  return starts;
}
}  // namespace

Result<std::unique_ptr<TokenDecoder>> TokenDecoder::from_json(const Json& j) {
  std::unique_ptr<TokenDecoder> d(new TokenDecoder());
  LS_RETURN_IF_ERROR(add_steps(j, &d->steps_, 0));
  return d;
}

Status TokenDecoder::add_steps(const Json& j, std::vector<Step>* steps, int depth) {
  if (depth > kMaxDepth) return invalid_argument("decoder Sequences nested too deeply");
  LS_ASSIGN_OR_RETURN(std::string type, json_type(j, "decoder"));
  Step st;
  if (type == "Sequence") {
    LS_ASSIGN_OR_RETURN(const Json* list, json_array(j, "decoders"));
    for (const Json& sub : *list) LS_RETURN_IF_ERROR(add_steps(sub, steps, depth + 1));
    return ok_status();
  } else if (type == "ByteLevel") {
    st.kind = Kind::kByteLevel;
  } else if (type == "Metaspace") {
    st.kind = Kind::kMetaspace;
    LS_ASSIGN_OR_RETURN(st.text, json_char(j, "replacement"));
    LS_ASSIGN_OR_RETURN(std::string scheme, json_string(j, "prepend_scheme", false));
    LS_ASSIGN_OR_RETURN(bool add_prefix, json_bool(j, "add_prefix_space", true));
    st.prepend = scheme != "never" && add_prefix;
  } else if (type == "Replace") {
    st.kind = Kind::kReplace;
    LS_ASSIGN_OR_RETURN(JsonPattern p, json_pattern(j, "pattern"));
    LS_ASSIGN_OR_RETURN(st.content, json_string(j, "content", true));
    if (p.is_regex && st.content.find('$') != std::string::npos)
      return unimplemented("Replace decoder: $n group references in 'content' are not supported");
    LS_ASSIGN_OR_RETURN(st.pattern, PcreRegex::compile(p.text, !p.is_regex));
  } else if (type == "ByteFallback") {
    st.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    st.kind = Kind::kFuse;
  } else if (type == "Strip") {
    st.kind = Kind::kStrip;
    LS_ASSIGN_OR_RETURN(st.text, json_char(j, "content"));
    LS_ASSIGN_OR_RETURN(int64_t start, json_uint(j, "start", 0));
    LS_ASSIGN_OR_RETURN(int64_t stop, json_uint(j, "stop", 0));
    st.start = static_cast<size_t>(start);
    st.stop = static_cast<size_t>(stop);
  } else if (type == "BPEDecoder") {
    st.kind = Kind::kBpe;
    LS_ASSIGN_OR_RETURN(st.text, json_string(j, "suffix", false));
    if (!j.contains("suffix")) st.text = "</w>";
  } else {
    return unimplemented("decoder type '" + type +
                         "' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
                         "Strip, BPEDecoder, Sequence)");
  }
  steps->push_back(std::move(st));
  return ok_status();
}

namespace {

// ByteLevel: each token's characters back to bytes (a token with a character outside the byte
// alphabet keeps its own UTF-8), then one lossy UTF-8 decode of everything.
void byte_level(std::vector<std::string>* t) {
  const auto& table = char_bytes();
  std::string bytes;
  for (const std::string& tok : *t) {
    std::string mapped;
    bool all = true;
    for (size_t i = 0; i < tok.size() && all;) {
      auto it = table.find(next_code_point(tok, &i));
      if (it == table.end()) {
        all = false;
      } else {
        mapped.push_back(static_cast<char>(it->second));
      }
    }
    bytes.append(all ? mapped : tok);
  }
  t->assign(1, sanitize_utf8(bytes));
}

// Replaces each `from` in token k by `first` when k == 0, by `other` after.
void replace_in_tokens(std::vector<std::string>* t, const std::string& from,
                       const std::string& first, const std::string& other,
                       const std::string& last) {
  for (size_t k = 0; k < t->size(); ++k) {
    const std::string& with = k == 0 ? first : k + 1 == t->size() ? last : other;
    std::string& tok = (*t)[k];
    std::string out;
    size_t pos = 0;
    for (size_t f; !from.empty() && (f = tok.find(from, pos)) != std::string::npos;
         pos = f + from.size())
      out.append(tok, pos, f - pos).append(with);
    out.append(tok, pos, std::string::npos);
    tok = std::move(out);
  }
}

void byte_fallback(std::vector<std::string>* t) {
  std::vector<std::string> out;
  out.reserve(t->size());
  std::string bytes;
  for (std::string& tok : *t) {
    int b = byte_token_value(tok);
    if (b >= 0) {
      bytes.push_back(static_cast<char>(b));
      continue;
    }
    flush_bytes(&bytes, &out);
    out.push_back(std::move(tok));
  }
  flush_bytes(&bytes, &out);
  *t = std::move(out);
}

// Strip: up to `start` leading and `stop` trailing characters equal to `c`, per token.
void strip(std::vector<std::string>* t, const std::string& c, size_t start, size_t stop) {
  for (std::string& tok : *t) {
    std::vector<size_t> starts = char_starts(tok);
    size_t n = starts.size();
    auto char_at = [&](size_t k) {
      size_t e = k + 1 < n ? starts[k + 1] : tok.size();
      return std::string_view(tok).substr(starts[k], e - starts[k]);
    };
    size_t start_cut = 0;
    for (size_t k = 0; k < std::min(start, n) && char_at(k) == c; ++k) start_cut = k + 1;
    size_t stop_cut = n;
    for (size_t k = 0; k < std::min(stop, n - start_cut); ++k) {
      if (char_at(n - k - 1) != c) break;
      stop_cut = n - k - 1;
    }
    size_t b = start_cut < n ? starts[start_cut] : tok.size();
    size_t e = stop_cut < n ? starts[stop_cut] : tok.size();
    tok = tok.substr(b, e > b ? e - b : 0);
  }
}

}  // namespace

void TokenDecoder::apply(const Step& st, std::vector<std::string>* tokens) {
  switch (st.kind) {
    case Kind::kByteLevel:
      byte_level(tokens);
      break;
    case Kind::kMetaspace:  // the first token's U+2581s vanish unless prepend_scheme is never
      replace_in_tokens(tokens, st.text, st.prepend ? "" : " ", " ", " ");
      break;
    case Kind::kReplace:
      for (std::string& tok : *tokens) {
        auto r = replace_all(*st.pattern, tok, st.content);
        if (r.ok()) tok = std::move(r).value();
      }
      break;
    case Kind::kByteFallback:
      byte_fallback(tokens);
      break;
    case Kind::kFuse: {
      std::string all;
      for (const std::string& tok : *tokens) all.append(tok);
      tokens->assign(1, std::move(all));
      break;
    }
    case Kind::kStrip:
      strip(tokens, st.text, st.start, st.stop);
      break;
    case Kind::kBpe:  // the suffix ends a word: a space, except after the last token
      replace_in_tokens(tokens, st.text, tokens->size() == 1 ? "" : " ", " ", "");
      break;
  }
}

bool TokenDecoder::has_byte_fallback() const {
  for (const Step& st : steps_)
    if (st.kind == Kind::kByteFallback) return true;
  return false;
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  for (const Step& st : steps_) apply(st, &tokens);
  std::string out;
  for (const std::string& t : tokens) out.append(t);
  return out;
}

}  // namespace ls::tok
