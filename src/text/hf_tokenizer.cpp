// HfTokenizer: the encode pipeline of HF's TokenizerImpl::encode_single_sequence and the
// decode of TokenizerImpl::decode, component by component.
#include "text/hf_tokenizer.h"

#include "text/utf8.h"

namespace ls {

using tok::Json;

namespace {

// tokenizer_config.json names a token as "text" or as an AddedToken object {"content": ...}.
std::optional<std::string> config_token(const Json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const Json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

bool is_byte_token_text(const std::string& t) {
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4]);
}

}  // namespace

Result<std::unique_ptr<HfTokenizer>> HfTokenizer::create(tok::TokenizerJson json,
                                                         const Json& config) {
  if (!json.document.is_object()) return invalid_argument("tokenizer.json must be a JSON object");
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  LS_RETURN_IF_ERROR(t->load_components(std::move(json)));
  if (auto bos = config_token(config, "bos_token")) t->bos_id_ = t->token_to_id(*bos);
  if (auto eos = config_token(config, "eos_token"))
    if (auto id = t->token_to_id(*eos)) t->eos_ids_.push_back(*id);
  return t;
}

Status HfTokenizer::load_components(tok::TokenizerJson parts) {
  const Json& json = parts.document;
  if (!json.contains("model") || !json["model"].is_object())
    return invalid_argument("tokenizer.json has no 'model' object");
  const Json& model = json["model"];
  std::string type = model.contains("type") && model["type"].is_string()
                         ? model["type"].get<std::string>()
                         : (parts.has_merges ? "BPE" : "");
  if (type != "BPE") {
    return unimplemented("tokenizer.json model type '" + type +
                         "' is not supported: loraserve serves BPE tokenizers (byte-level or "
                         "SentencePiece-style); WordPiece, Unigram and WordLevel are not");
  }
  if (!parts.has_vocab) return invalid_argument("model.vocab must be an object of token -> id");
  auto m = tok::BpeModel::create(model, std::move(parts.vocab), parts.merges);
  if (!m.ok()) return m.status().with_context("model");
  model_ = std::move(m).value();

  auto section = [&](const char* key) -> const Json* {
    return json.contains(key) && !json[key].is_null() ? &json[key] : nullptr;
  };
  if (const Json* n = section("normalizer")) {
    auto r = tok::Normalizer::from_json(*n);
    if (!r.ok()) return r.status().with_context("normalizer");
    normalizer_ = std::move(r).value();
  }
  if (const Json* p = section("pre_tokenizer")) {
    auto r = tok::PreTokenizer::from_json(*p);
    if (!r.ok()) return r.status().with_context("pre_tokenizer");
    pre_tokenizer_ = std::move(r).value();
  }
  if (const Json* p = section("post_processor")) {
    auto r = tok::PostProcessor::from_json(*p);
    if (!r.ok()) return r.status().with_context("post_processor");
    post_processor_ = std::move(r).value();
  }
  if (const Json* d = section("decoder")) {
    auto r = tok::TokenDecoder::from_json(*d);
    if (!r.ok()) return r.status().with_context("decoder");
    decoder_ = std::move(r).value();
    has_byte_fallback_decoder_ = decoder_->has_byte_fallback();
  }
  static const Json kNoTokens;
  const Json* added = section("added_tokens");
  auto a = tok::AddedVocabulary::from_json(added ? *added : kNoTokens, normalizer_.get());
  if (!a.ok()) return a.status().with_context("added_tokens");
  added_ = std::move(a).value();

  vocab_size_ = static_cast<int32_t>(model_->vocab_entries());
  for (const tok::AddedToken& at : added_->tokens())
    if (!model_->token_to_id(at.content)) ++vocab_size_;
  return ok_status();
}

Result<std::vector<int32_t>> HfTokenizer::encode(std::string_view text,
                                                 bool add_special_tokens) const {
  std::string clean;
  LS_ASSIGN_OR_RETURN(text, prepare_input(text, &clean));
  std::vector<int32_t> ids;
  std::vector<tok::Segment> raw, normalized;
  added_->split(text, /*normalized_set=*/false, &raw);
  std::string segment;
  for (const tok::Segment& seg : raw) {
    if (seg.token_id >= 0) {
      ids.push_back(seg.token_id);
      continue;
    }
    segment.assign(text.substr(seg.begin, seg.end - seg.begin));
    if (normalizer_) LS_RETURN_IF_ERROR(normalizer_->normalize(&segment));
    if (segment.empty()) continue;
    normalized.clear();
    added_->split(segment, /*normalized_set=*/true, &normalized);
    for (const tok::Segment& sub : normalized) {
      if (sub.token_id >= 0) {
        ids.push_back(sub.token_id);
      } else if (sub.end > sub.begin) {
        std::string_view plain = std::string_view(segment).substr(sub.begin, sub.end - sub.begin);
        LS_RETURN_IF_ERROR(encode_plain(plain, seg.begin == 0 && sub.begin == 0, &ids));
      }
    }
  }
  if (add_special_tokens && post_processor_) post_processor_->apply(&ids);
  return ids;
}

Status HfTokenizer::encode_plain(std::string_view segment, bool at_start,
                                 std::vector<int32_t>* ids) const {
  if (!pre_tokenizer_) return model_->tokenize(segment, ids);
  std::vector<tok::Piece> pieces;
  pieces.push_back({std::string(segment), at_start});
  LS_RETURN_IF_ERROR(pre_tokenizer_->run(&pieces));
  for (const tok::Piece& p : pieces) LS_RETURN_IF_ERROR(model_->tokenize(p.text, ids));
  return ok_status();
}

const std::string* HfTokenizer::decode_token(int32_t id) const {
  if (const std::string* t = added_->decode_text(id)) return t;
  return model_->id_to_token(id);
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = decode_token(id);
    if (!t || (skip_special_tokens && added_->is_special_text(*t))) continue;
    tokens.push_back(*t);
  }
  if (decoder_) return decoder_->decode(std::move(tokens));
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out.push_back(' ');
    out.append(tokens[i]);
  }
  return out;
}

std::string HfTokenizer::token_text(int32_t id) const {
  const std::string* t = added_->content(id);
  if (!t) t = model_->id_to_token(id);
  return t ? *t : std::string();
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_->token_to_id(token)) return id;
  return model_->token_to_id(token);
}

bool HfTokenizer::is_special(int32_t id) const {
  const std::string* t = decode_token(id);
  return t && added_->is_special_text(*t);
}

bool HfTokenizer::is_byte_token(int32_t id) const {
  if (!has_byte_fallback_decoder_) return false;
  const std::string* t = decode_token(id);
  return t && is_byte_token_text(*t);
}

void HfTokenizer::add_eos_id(int32_t id) {
  for (int32_t e : eos_ids_)
    if (e == id) return;
  eos_ids_.push_back(id);
}

}  // namespace ls
