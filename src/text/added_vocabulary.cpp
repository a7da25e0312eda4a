// Added-token matching. A byte trie gives the longest token at each position; scanning left to
// right and resuming after each match (kept or discarded) reproduces aho-corasick's
// LeftmostLongest iteration that HF filters.
#include "text/added_vocabulary.h"

#include <algorithm>
#include <map>

#include "text/unicode_props.h"
#include "text/utf8.h"

namespace ls::tok {

class AddedVocabulary::Trie {
 public:
  void add(std::string_view pattern, int32_t id) {
    if (pattern.empty()) return;
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    int32_t node = 0;
    for (unsigned char b : pattern) {
      auto it = nodes_[node].children.find(b);
      if (it == nodes_[node].children.end()) {
        nodes_.push_back({});
        it = nodes_[node].children.emplace(b, int32_t(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    if (nodes_[node].id < 0) nodes_[node].id = id;  // first pattern wins a duplicate
  }
  bool empty() const { return nodes_.size() == 1; }
  // Longest pattern starting at text[pos]: its length (0 if none) and id.
  size_t longest_at(std::string_view text, size_t pos, int32_t* id) const {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) return 0;
    int32_t node = 0;
    size_t best = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = nodes_[node].children.find(static_cast<unsigned char>(text[i]));
      if (it == nodes_[node].children.end()) break;
      node = it->second;
      if (nodes_[node].id >= 0) {
        best = i + 1 - pos;
        *id = nodes_[node].id;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::map<unsigned char, int32_t> children;
    int32_t id = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_byte_[256] = {};
};

AddedVocabulary::AddedVocabulary() = default;
AddedVocabulary::~AddedVocabulary() = default;

Result<std::unique_ptr<AddedVocabulary>> AddedVocabulary::from_json(const Json& tokens,
                                                                    const Normalizer* normalizer) {
  std::unique_ptr<AddedVocabulary> v(new AddedVocabulary());
  v->raw_trie_ = std::make_unique<Trie>();
  v->normalized_trie_ = std::make_unique<Trie>();
  if (tokens.is_null()) return v;
  if (!tokens.is_array()) return invalid_argument("added_tokens must be an array");
  for (const Json& t : tokens) {
    AddedToken a;
    LS_ASSIGN_OR_RETURN(int64_t id, json_uint(t, "id", -1));
    if (id < 0 || id >= (1 << 24)) return invalid_argument("added token without a valid 'id'");
    a.id = static_cast<int32_t>(id);
    LS_ASSIGN_OR_RETURN(a.content, json_string(t, "content", true));
    LS_ASSIGN_OR_RETURN(a.single_word, json_bool(t, "single_word", false));
    LS_ASSIGN_OR_RETURN(a.lstrip, json_bool(t, "lstrip", false));
    LS_ASSIGN_OR_RETURN(a.rstrip, json_bool(t, "rstrip", false));
    LS_ASSIGN_OR_RETURN(a.normalized, json_bool(t, "normalized", true));
    LS_ASSIGN_OR_RETURN(a.special, json_bool(t, "special", false));
    if (a.content.empty()) continue;  // HF ignores empty tokens
    std::string decoded = a.content;
    std::string pattern = a.content;
    if (a.normalized && normalizer) {
      LS_RETURN_IF_ERROR(normalizer->normalize(&pattern));
      decoded = pattern;
    }
    (a.normalized ? v->normalized_trie_ : v->raw_trie_)->add(pattern, a.id);
    v->content_to_id_[a.content] = a.id;
    if (a.special) v->special_contents_.insert(a.content);
    if (a.id >= static_cast<int32_t>(v->index_by_id_.size())) v->index_by_id_.resize(a.id + 1, -1);
    v->index_by_id_[a.id] = static_cast<int32_t>(v->tokens_.size());
    v->tokens_.push_back(std::move(a));
    v->decode_text_.push_back(std::move(decoded));
  }
  return v;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(index_by_id_.size()) || index_by_id_[id] < 0)
    return nullptr;
  return &tokens_[index_by_id_[id]];
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = content_to_id_.find(content);
  if (it == content_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::decode_text(int32_t id) const {
  if (!by_id(id)) return nullptr;
  return &decode_text_[index_by_id_[id]];
}

const std::string* AddedVocabulary::content(int32_t id) const {
  const AddedToken* t = by_id(id);
  return t ? &t->content : nullptr;
}

bool AddedVocabulary::is_special_text(std::string_view text) const {
  return special_contents_.find(text) != special_contents_.end();
}

void AddedVocabulary::split(std::string_view text, bool normalized_set,
                            std::vector<Segment>* out) const {
  const Trie& trie = normalized_set ? *normalized_trie_ : *raw_trie_;
  if (trie.empty() || text.empty()) {
    out->push_back({0, text.size(), -1});
    return;
  }
  find(text, trie, out);
}

namespace {

// Regex \w at the end of / start of a string (Rust regex, Unicode).
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return is_word_char(next_code_point(s, &start));
}
bool starts_with_word(std::string_view s) {
  size_t i = 0;
  return !s.empty() && is_word_char(next_code_point(s, &i));
}
// Start of the White_Space run that ends `s` (s.size() when none).
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!is_white_space(next_code_point(s, &i))) break;
    end = start;
  }
  return end;
}
// Length of the White_Space run that starts `s`.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_white_space(next_code_point(s, &j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedVocabulary::find(std::string_view text, const Trie& trie,
                           std::vector<Segment>* out) const {
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t id = -1;
    size_t len = trie.longest_at(text, pos, &id);
    if (len == 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // the match is consumed whether or not it is kept
    const AddedToken* tok = by_id(id);
    if (tok->single_word) {
      bool start_ok = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_ok = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (tok->lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (tok->rstrip) stop += leading_space_length(text.substr(stop));
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({start_offset, text.size(), -1});
}

}  // namespace ls::tok
