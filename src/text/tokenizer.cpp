// Tokenizer loading: picks tokenizer.json or tokenizer.model and reads BOS/EOS settings. JSON
// parse errors (nlohmann throws) are caught here and become data_loss.
#include "text/tokenizer.h"

#include "base/file_util.h"
#include "text/hf_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/utf8.h"

namespace ls {

namespace {

Result<tok::Json> parse_json(std::string_view text, const std::string& name) {
  try {
    return tok::Json::parse(text);
  } catch (const std::exception& e) {
    return data_loss(name + ": malformed JSON: " + e.what());
  }
}

// An optional JSON file of the model directory: null when absent.
Result<tok::Json> read_optional_json(const std::string& path) {
  if (!file_exists(path)) return tok::Json();
  LS_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_json(text, path);
}

// generation_config.json's eos_token_id: an int or a list of ints.
std::vector<int32_t> generation_eos(const tok::Json& gen) {
  std::vector<int32_t> out;
  if (!gen.is_object() || !gen.contains("eos_token_id")) return out;
  const tok::Json& e = gen["eos_token_id"];
  auto add = [&](const tok::Json& v) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < (1 << 24))
      out.push_back(static_cast<int32_t>(v.get<int64_t>()));
  };
  if (e.is_array()) {
    for (const auto& v : e) add(v);
  } else {
    add(e);
  }
  return out;
}

}  // namespace

Result<std::string_view> Tokenizer::prepare_input(std::string_view text, std::string* storage) {
  if (text.size() > kMaxInputBytes)
    return resource_exhausted("input of " + std::to_string(text.size()) +
                              " bytes is over the tokenizer limit of " +
                              std::to_string(kMaxInputBytes));
  if (tok::is_valid_utf8(text)) return text;
  *storage = tok::sanitize_utf8(text);
  return std::string_view(*storage);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json_text(std::string_view json_text,
                                                             std::string_view config_json) {
  auto parts = tok::read_tokenizer_json(json_text);
  if (!parts.ok()) return parts.status().with_context("tokenizer.json");
  tok::Json config;
  if (!config_json.empty()) {
    LS_ASSIGN_OR_RETURN(config, parse_json(config_json, "tokenizer_config.json"));
  }
  try {
    LS_ASSIGN_OR_RETURN(auto t, HfTokenizer::create(std::move(parts).value(), config));
    return std::unique_ptr<Tokenizer>(std::move(t));
  } catch (const std::exception& e) {  // a JSON shape our field checks missed
    return data_loss(std::string("tokenizer.json: unexpected structure: ") + e.what());
  }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::load_dir(const std::string& dir) {
  const std::string json_path = dir + "/tokenizer.json";
  const std::string model_path = dir + "/tokenizer.model";
  LS_ASSIGN_OR_RETURN(tok::Json config, read_optional_json(dir + "/tokenizer_config.json"));
  LS_ASSIGN_OR_RETURN(tok::Json gen, read_optional_json(dir + "/generation_config.json"));
  if (file_exists(json_path)) {
    LS_ASSIGN_OR_RETURN(std::string text, read_text_file(json_path));
    auto parts = tok::read_tokenizer_json(text);
    if (!parts.ok()) return parts.status().with_context(json_path);
    text.clear();
    text.shrink_to_fit();
    try {
      auto t = HfTokenizer::create(std::move(parts).value(), config);
      if (!t.ok()) return t.status().with_context(json_path);
      for (int32_t id : generation_eos(gen)) t.value()->add_eos_id(id);
      return std::unique_ptr<Tokenizer>(std::move(t).value());
    } catch (const std::exception& e) {
      return data_loss(json_path + ": unexpected structure: " + e.what());
    }
  }
  if (file_exists(model_path)) {
    auto t = SentencePieceTokenizer::load(model_path, config);
    if (!t.ok()) return t.status();
    for (int32_t id : generation_eos(gen)) t.value()->add_eos_id(id);
    return std::unique_ptr<Tokenizer>(std::move(t).value());
  }
  return not_found(dir + ": no tokenizer.json or tokenizer.model");
}

}  // namespace ls
