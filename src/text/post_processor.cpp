// Post-processors reduced to "ids before" and "ids after": every supported processor only adds
// special tokens around a single sequence, and a Sequence of them nests the wrappings in order.
#include "text/post_processor.h"

namespace ls::tok {

namespace {
constexpr int kMaxDepth = 16;

// BertProcessing / RobertaProcessing store a token as ["text", id].
Result<int32_t> token_pair_id(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
      !j[key][1].is_number_integer() || j[key][1].get<int64_t>() < 0 ||
      j[key][1].get<int64_t>() >= (1 << 24))
    return invalid_argument(std::string("'") + key + "' must be [token, id]");
  return static_cast<int32_t>(j[key][1].get<int64_t>());
}
}  // namespace

Result<std::unique_ptr<PostProcessor>> PostProcessor::from_json(const Json& j) {
  std::unique_ptr<PostProcessor> p(new PostProcessor());
  LS_RETURN_IF_ERROR(add(j, &p->prefix_, &p->suffix_, 0));
  return p;
}

Status PostProcessor::add(const Json& j, std::vector<int32_t>* prefix, std::vector<int32_t>* suffix,
                          int depth) {
  if (depth > kMaxDepth) return invalid_argument("post_processor Sequences nested too deeply");
  LS_ASSIGN_OR_RETURN(std::string type, json_type(j, "post_processor"));
  if (type == "Sequence") {
    LS_ASSIGN_OR_RETURN(const Json* list, json_array(j, "processors"));
    for (const Json& sub : *list) LS_RETURN_IF_ERROR(add(sub, prefix, suffix, depth + 1));
    return ok_status();
  }
  if (type == "ByteLevel") return ok_status();  // trims offsets only
  std::vector<int32_t> before, after;
  if (type == "TemplateProcessing") {
    LS_RETURN_IF_ERROR(add_template(j, &before, &after).with_context("TemplateProcessing"));
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    LS_ASSIGN_OR_RETURN(int32_t cls, token_pair_id(j, "cls"));
    LS_ASSIGN_OR_RETURN(int32_t sep, token_pair_id(j, "sep"));
    before.push_back(cls);
    after.push_back(sep);
  } else {
    return unimplemented("post_processor type '" + type +
                         "' is not supported (TemplateProcessing, BertProcessing, "
                         "RobertaProcessing, ByteLevel, Sequence)");
  }
  // A later processor wraps what the earlier ones produced.
  prefix->insert(prefix->begin(), before.begin(), before.end());
  suffix->insert(suffix->end(), after.begin(), after.end());
  return ok_status();
}

Status PostProcessor::add_template(const Json& j, std::vector<int32_t>* prefix,
                                   std::vector<int32_t>* suffix) {
  Json single_items;
  if (j.contains("single") && j["single"].is_string()) {
    // The string form "<s> $A" (what the Python constructor takes): pieces split on spaces,
    // an optional ":type_id" ignored.
    std::string text = j["single"].get<std::string>();
    single_items = Json::array();
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find(' ', pos);
      if (end == std::string::npos) end = text.size();
      std::string piece = text.substr(pos, end - pos);
      pos = end + 1;
      if (piece.empty()) continue;
      if (piece[0] == '$') {
        std::string seq = piece.substr(
            1, piece.find(':') == std::string::npos ? std::string::npos : piece.find(':') - 1);
        single_items.push_back({{"Sequence", {{"id", seq.empty() ? "A" : seq}}}});
      } else {
        single_items.push_back({{"SpecialToken", {{"id", piece.substr(0, piece.rfind(':'))}}}});
      }
    }
  } else {
    LS_ASSIGN_OR_RETURN(const Json* items, json_array(j, "single"));
    single_items = *items;
  }
  const Json* single = &single_items;
  const Json* specials = j.contains("special_tokens") ? &j["special_tokens"] : nullptr;
  bool seen_sequence = false;
  for (const Json& item : *single) {
    if (!item.is_object() || item.size() != 1)
      return invalid_argument("template items must be {\"SpecialToken\"|\"Sequence\": ...}");
    if (item.contains("Sequence")) {
      const Json& s = item["Sequence"];
      if (!s.is_object() || !s.contains("id") || s["id"] != "A")
        return unimplemented("single template may only use sequence $A");
      if (seen_sequence) return unimplemented("single template uses $A twice");
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].is_object())
      return invalid_argument("template items must be {\"SpecialToken\"|\"Sequence\": ...}");
    LS_ASSIGN_OR_RETURN(std::string name, json_string(item["SpecialToken"], "id", true));
    if (!specials || !specials->is_object() || !specials->contains(name))
      return invalid_argument("special token '" + name + "' is not in special_tokens");
    LS_ASSIGN_OR_RETURN(const Json* ids, json_array((*specials)[name], "ids"));
    for (const Json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
        return invalid_argument("special token '" + name + "' has a bad id");
      (seen_sequence ? suffix : prefix)->push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  if (!seen_sequence) return invalid_argument("single template has no $A");
  return ok_status();
}

void PostProcessor::apply(std::vector<int32_t>* ids) const {
  ids->insert(ids->begin(), prefix_.begin(), prefix_.end());
  ids->insert(ids->end(), suffix_.begin(), suffix_.end());
}

}  // namespace ls::tok
