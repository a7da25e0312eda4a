// Normalizer steps with HF's semantics: Prepend only touches non-empty text, Strip uses Unicode
// White_Space, Lowercase maps code point by code point with full mappings.
#include "text/normalizer.h"

#include "text/utf8.h"

namespace ls::tok {

namespace {
constexpr int kMaxDepth = 16;  // nested Sequences; deeper input is refused, not recursed into
}

Result<std::unique_ptr<Normalizer>> Normalizer::from_json(const Json& j) {
  std::unique_ptr<Normalizer> n(new Normalizer());
  LS_RETURN_IF_ERROR(add_steps(j, &n->steps_, 0));
  return n;
}

Status Normalizer::add_steps(const Json& j, std::vector<Step>* steps, int depth) {
  if (depth > kMaxDepth) return invalid_argument("normalizer Sequences nested too deeply");
  auto type_or = json_type(j, "normalizer");  // (not LS_ASSIGN_OR_RETURN: GCC 12 -O3 warns)
  if (!type_or.ok()) return type_or.status();
  const std::string& type = type_or.value();
  Step st;
  if (type == "Sequence") {
    LS_ASSIGN_OR_RETURN(const Json* list, json_array(j, "normalizers"));
    for (const Json& sub : *list) LS_RETURN_IF_ERROR(add_steps(sub, steps, depth + 1));
    return ok_status();
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    st.kind = Kind::kForm;
    st.form = type == "NFC"    ? NormalForm::kNfc
              : type == "NFD"  ? NormalForm::kNfd
              : type == "NFKC" ? NormalForm::kNfkc
                               : NormalForm::kNfkd;
  } else if (type == "Lowercase") {
    st.kind = Kind::kLowercase;
  } else if (type == "Strip") {
    st.kind = Kind::kStrip;
    LS_ASSIGN_OR_RETURN(st.left, json_bool(j, "strip_left", true));
    LS_ASSIGN_OR_RETURN(st.right, json_bool(j, "strip_right", true));
  } else if (type == "Prepend") {
    st.kind = Kind::kPrepend;
    LS_ASSIGN_OR_RETURN(st.text, json_string(j, "prepend", true));
  } else if (type == "Replace") {
    st.kind = Kind::kReplace;
    LS_ASSIGN_OR_RETURN(JsonPattern p, json_pattern(j, "pattern"));
    LS_ASSIGN_OR_RETURN(st.text, json_string(j, "content", true));
    if (p.is_regex && st.text.find('$') != std::string::npos)
      return unimplemented(
          "Replace normalizer: $n group references in 'content' are not supported");
    LS_ASSIGN_OR_RETURN(st.pattern, PcreRegex::compile(p.text, !p.is_regex));
  } else {
    return unimplemented("normalizer type '" + type +
                         "' is not supported (Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
                         "Prepend, Replace)");
  }
  steps->push_back(std::move(st));
  return ok_status();
}

std::string strip_white_space(const std::string& s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t i = begin;
      if (!is_white_space(next_code_point(s, &i))) break;
      begin = i;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      size_t i = start;
      if (!is_white_space(next_code_point(s, &i))) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

Result<std::string> replace_all(const PcreRegex& re, const std::string& s,
                                const std::string& content) {
  std::vector<std::pair<size_t, size_t>> matches;
  LS_RETURN_IF_ERROR(re.find_all(s, &matches));
  if (matches.empty()) return s;
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (auto [b, e] : matches) {
    out.append(s, prev, b - prev);
    out.append(content);
    prev = e;
  }
  out.append(s, prev, std::string::npos);
  return out;
}

Status Normalizer::normalize(std::string* s) const {
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Kind::kForm: {
        std::string out;
        if (!normalize_unicode(*s, st.form, &out))
          return resource_exhausted("Unicode normalization failed");
        *s = std::move(out);
        break;
      }
      case Kind::kLowercase: {
        std::string out;
        out.reserve(s->size());
        for (size_t i = 0; i < s->size();) append_lowercase(&out, next_code_point(*s, &i));
        *s = std::move(out);
        break;
      }
      case Kind::kStrip:
        *s = strip_white_space(*s, st.left, st.right);
        break;
      case Kind::kPrepend:
        if (!s->empty()) s->insert(0, st.text);
        break;
      case Kind::kReplace: {
        LS_ASSIGN_OR_RETURN(*s, replace_all(*st.pattern, *s, st.text));
        break;
      }
    }
  }
  return ok_status();
}

}  // namespace ls::tok
