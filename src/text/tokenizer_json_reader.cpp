// SAX handler for tokenizer.json: builds the small document itself (a stack of open containers)
// and diverts the two big model fields into vectors. Any malformed vocab or merge entry stops the
// parse with an error naming it.
#include "text/tokenizer_json_reader.h"

#include <limits>

#include "text/utf8.h"

namespace ls::tok {

namespace {

constexpr int64_t kMaxId = 1 << 24;

class Reader : public nlohmann::json_sax<Json> {
 public:
  explicit Reader(TokenizerJson* out) : out_(out) {}
  const std::string& error() const { return error_; }
  bool json_error() const { return json_error_; }

  bool null() override { return value(Json()); }
  bool boolean(bool v) override { return value(Json(v)); }
  bool number_integer(number_integer_t v) override {
    return mode_ == Mode::kVocab ? vocab_id(v) : value(Json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) return vocab_id(v > uint64_t(kMaxId) ? -1 : static_cast<int64_t>(v));
    return value(Json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(Json(v)); }
  bool binary(binary_t&) override { return value(Json()); }
  bool string(string_t& s) override {
    switch (mode_) {
      case Mode::kMerges:
        return merge_string(s);
      case Mode::kMergePair:
        pair_.push_back(std::move(s));
        return true;
      default:
        return value(Json(std::move(s)));
    }
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::kVocab) {
      token_ = std::move(k);
    } else {
      keys_.back() = std::move(k);
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (mode_ != Mode::kNormal) return bad_entry();
    if (is_model_field("vocab")) {
      mode_ = Mode::kVocab;
      out_->has_vocab = true;
      out_->vocab.clear();  // a repeated key replaces the earlier value, as in serde
      return true;
    }
    open(Json::object());
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kNormal;
      return true;
    }
    close();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair;
      pair_.clear();
      return true;
    }
    if (mode_ != Mode::kNormal) return bad_entry();
    if (is_model_field("merges")) {
      mode_ = Mode::kMerges;
      out_->has_merges = true;
      out_->merges.clear();
      return true;
    }
    open(Json::array());
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_.size() != 2) return bad_entry();
      out_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kNormal;
      return true;
    }
    close();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = std::string("malformed JSON: ") + e.what();
    json_error_ = true;
    return false;
  }

 private:
  enum class Mode { kNormal, kVocab, kMerges, kMergePair };

  // True when the container about to open is the value of root["model"][name].
  bool is_model_field(const char* name) const {
    return stack_.size() == 2 && keys_[0] == "model" && stack_[1]->is_object() &&
           keys_[1] == name && stack_[0]->is_object();
  }
  Json* insert(Json v) {
    if (stack_.empty()) {
      out_->document = std::move(v);
      return &out_->document;
    }
    Json& top = *stack_.back();
    if (top.is_object()) return &(top[keys_.back()] = std::move(v));
    top.push_back(std::move(v));
    return &top.back();
  }
  bool value(Json v) {
    if (mode_ != Mode::kNormal) return bad_entry();
    insert(std::move(v));
    return true;
  }
  void open(Json container) {
    stack_.push_back(insert(std::move(container)));
    keys_.emplace_back();
  }
  void close() {
    stack_.pop_back();
    keys_.pop_back();
  }
  bool vocab_id(int64_t id) {
    if (id < 0 || id >= kMaxId) return bad_entry();
    out_->vocab.emplace_back(std::move(token_), id);
    return true;
  }
  bool merge_string(const std::string& s) {
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) return bad_entry();
    out_->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    return true;
  }
  bool bad_entry() {
    if (mode_ == Mode::kVocab) {
      error_ = "model.vocab['" + tok::quote_for_message(token_) + "'] must be an id in [0, 2^24)";
    } else {
      error_ = "merge " + std::to_string(out_->merges.size() + 1) +
               " is not \"a b\" or [a, b] of two tokens";
    }
    return false;
  }

  TokenizerJson* out_;
  std::vector<Json*> stack_;       // open containers of the document, outermost first
  std::vector<std::string> keys_;  // current key of each open container (unused for arrays)
  Mode mode_ = Mode::kNormal;
  std::string token_;              // vocab key awaiting its id
  std::vector<std::string> pair_;  // merge given as [a, b]
  std::string error_;
  bool json_error_ = false;
};

}  // namespace

Result<TokenizerJson> read_tokenizer_json(std::string_view text) {
  TokenizerJson out;
  Reader reader(&out);
  bool ok = false;
  try {
    ok = Json::sax_parse(text, &reader);
  } catch (const std::exception& e) {
    return data_loss(std::string("malformed JSON: ") + e.what());
  }
  if (!ok) {
    if (reader.json_error() || reader.error().empty())
      return data_loss(reader.error().empty() ? "malformed JSON" : reader.error());
    return invalid_argument(reader.error());
  }
  return out;
}

}  // namespace ls::tok
