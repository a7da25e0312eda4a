// SentencePiece wrapper: libsentencepiece reports failures as util::Status; any exception from it
// or protobuf is caught here, at the loader boundary.
#include "text/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "text/utf8.h"

namespace ls {

SentencePieceTokenizer::SentencePieceTokenizer() = default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::load(
    const std::string& model_path, const tok::Json& config) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  try {
    auto st = t->sp_->Load(model_path);
    if (!st.ok()) return data_loss(model_path + ": not a SentencePiece model: " + st.ToString());
  } catch (const std::exception& e) {
    return data_loss(model_path + ": not a SentencePiece model: " + e.what());
  }
  if (config.is_object()) {
    auto flag = [&](const char* key, bool fallback) {
      return config.contains(key) && config[key].is_boolean() ? config[key].get<bool>() : fallback;
    };
    t->add_bos_ = flag("add_bos_token", true);
    t->add_eos_ = flag("add_eos_token", false);
  }
  return t;
}

Result<std::vector<int32_t>> SentencePieceTokenizer::encode(std::string_view text,
                                                            bool add_special_tokens) const {
  std::string clean;
  LS_ASSIGN_OR_RETURN(text, prepare_input(text, &clean));
  std::vector<int> body;
  auto st = sp_->Encode(text, &body);
  if (!st.ok()) return internal_error("SentencePiece encode failed: " + st.ToString());
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  if (add_special_tokens && add_bos_ && sp_->bos_id() >= 0) ids.push_back(sp_->bos_id());
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_special_tokens && add_eos_ && sp_->eos_id() >= 0) ids.push_back(sp_->eos_id());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids,
                                           bool skip_special_tokens) const {
  std::vector<int> keep;
  keep.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= sp_->GetPieceSize()) continue;
    if (skip_special_tokens && is_special(id)) continue;
    keep.push_back(id);
  }
  std::string text;
  if (!sp_->Decode(keep, &text).ok()) return std::string();
  return tok::sanitize_utf8(text);
}

int32_t SentencePieceTokenizer::vocab_size() const {
  return sp_->GetPieceSize();
}

std::optional<int32_t> SentencePieceTokenizer::bos_id() const {
  if (sp_->bos_id() < 0) return std::nullopt;
  return sp_->bos_id();
}

std::vector<int32_t> SentencePieceTokenizer::eos_ids() const {
  std::vector<int32_t> out;
  if (sp_->eos_id() >= 0) out.push_back(sp_->eos_id());
  for (int32_t e : extra_eos_)
    if (e != sp_->eos_id()) out.push_back(e);
  return out;
}

std::string SentencePieceTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= sp_->GetPieceSize()) return std::string();
  return sp_->IdToPiece(id);
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  int id = sp_->PieceToId(token);
  // PieceToId answers unk_id for unknown pieces; only the unk piece itself maps there.
  if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  if (id < 0 || id >= sp_->GetPieceSize()) return false;
  return sp_->IsControl(id) || sp_->IsUnknown(id);
}

bool SentencePieceTokenizer::is_byte_token(int32_t id) const {
  return id >= 0 && id < sp_->GetPieceSize() && sp_->IsByte(id);
}

void SentencePieceTokenizer::add_eos_id(int32_t id) {
  for (int32_t e : extra_eos_)
    if (e == id) return;
  extra_eos_.push_back(id);
}

}  // namespace ls
