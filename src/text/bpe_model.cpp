// BPE loading and word tokenization, following HF's models/bpe (merge_word, Word::merge_all) so
// ties, unknown characters and byte fallback come out identical.
#include "text/bpe_model.h"

#include <algorithm>

#include "text/utf8.h"

namespace ls::tok {

namespace {
constexpr int32_t kMaxId = 1 << 24;         // ids past this are refused, not allocated for
constexpr size_t kCacheMaxWordBytes = 256;  // HF's MAX_LENGTH for cached words
constexpr size_t kCacheCapacity = 32768;    // words, over all shards
constexpr size_t kSmallChars = 0x800;

uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}
}  // namespace

// Open-addressing map (a, b) -> (rank, merged id); the merge loop's hot lookup.
class BpeModel::PairMap {
 public:
  struct Value {
    uint32_t rank;
    int32_t id;
  };
  explicit PairMap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.resize(cap);
    mask_ = cap - 1;
  }
  // A later insert of the same pair wins, as HF's HashMap collect does.
  void insert(uint64_t key, Value v) {
    size_t i = slot(key);
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    keys_[i] = key;
    values_[i] = v;
  }
  const Value* find(uint64_t key) const {
    size_t i = slot(key);
    while (true) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 29) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// Word -> ids, sharded so request threads rarely contend; full shards stop inserting.
class BpeModel::WordCache {
 public:
  bool get(std::string_view word, size_t h, std::vector<int32_t>* out) {
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(word);
    if (it == s.map.end()) return false;
    out->insert(out->end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view word, size_t h, const int32_t* ids, size_t n) {
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.size() >= kCacheCapacity / kShards) return;
    s.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    StringMap<std::vector<int32_t>> map;
  };
  std::array<Shard, kShards> shards_;
};

BpeModel::BpeModel() = default;
BpeModel::~BpeModel() = default;

Result<std::unique_ptr<BpeModel>> BpeModel::create(
    const Json& options, std::vector<std::pair<std::string, int64_t>> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  LS_ASSIGN_OR_RETURN(m->unk_token_, json_opt_string(options, "unk_token"));
  LS_ASSIGN_OR_RETURN(auto prefix, json_opt_string(options, "continuing_subword_prefix"));
  LS_ASSIGN_OR_RETURN(auto suffix, json_opt_string(options, "end_of_word_suffix"));
  m->prefix_ = prefix.value_or("");
  m->suffix_ = suffix.value_or("");
  LS_ASSIGN_OR_RETURN(m->fuse_unk_, json_bool(options, "fuse_unk", false));
  LS_ASSIGN_OR_RETURN(m->byte_fallback_, json_bool(options, "byte_fallback", false));
  LS_ASSIGN_OR_RETURN(m->ignore_merges_, json_bool(options, "ignore_merges", false));
  // dropout only randomizes training-time segmentation; inference ignores it.
  LS_RETURN_IF_ERROR(m->load_vocab(std::move(vocab)));
  LS_RETURN_IF_ERROR(m->load_merges(merges));
  m->cache_ = std::make_unique<WordCache>();
  return m;
}

Status BpeModel::load_vocab(std::vector<std::pair<std::string, int64_t>> vocab) {
  vocab_.reserve(vocab.size());
  int32_t limit = 0;
  for (auto& [token, id64] : vocab) {
    if (id64 < 0 || id64 >= kMaxId)
      return invalid_argument("model.vocab['" + quote_for_message(token) +
                              "'] must be an id in [0, 2^24)");
    int32_t id = static_cast<int32_t>(id64);
    vocab_[std::move(token)] = id;  // a repeated token keeps its last id, as serde's map does
    limit = std::max(limit, id + 1);
  }
  id_to_token_.assign(limit, nullptr);
  for (const auto& [token, id] : vocab_) id_to_token_[id] = &token;
  small_char_ids_.assign(kSmallChars, -1);
  for (const auto& [token, id] : vocab_) {
    if (token.empty() || !is_valid_utf8(token)) continue;
    size_t i = 0;
    char32_t cp = next_code_point(token, &i);
    if (i == token.size() && cp < kSmallChars) small_char_ids_[cp] = id;
  }
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
    auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  return ok_status();
}

Status BpeModel::load_merges(const std::vector<std::pair<std::string, std::string>>& merges) {
  merges_ = std::make_unique<PairMap>(merges.size());
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& a = merges[rank].first;
    const std::string& b = merges[rank].second;
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end() || b.size() < prefix_.size())
      return invalid_argument("merge " + std::to_string(rank + 1) + " uses a token not in vocab");
    merged.assign(a).append(b, prefix_.size());
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      return invalid_argument("merge " + std::to_string(rank + 1) + " makes '" +
                              quote_for_message(merged) + "', which is not in vocab");
    merges_->insert(pair_key(ia->second, ib->second), {uint32_t(rank), im->second});
  }
  return ok_status();
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit()) return nullptr;
  return id_to_token_[id];
}

int32_t BpeModel::char_id(std::string_view ch, char32_t cp) const {
  if (cp < kSmallChars) return small_char_ids_[cp];
  auto it = vocab_.find(ch);
  return it == vocab_.end() ? -1 : it->second;
}

Status BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>* ids,
                                 std::vector<uint32_t>* lens) const {
  int32_t unk_id = -1;
  uint32_t unk_len = 0;
  bool affixes = !prefix_.empty() || !suffix_.empty();
  std::string symbol;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    char32_t cp = next_code_point(word, &i);
    std::string_view ch = word.substr(start, i - start);
    int32_t id;
    std::string_view s = ch;
    if (affixes) {
      symbol.clear();
      if (start > 0) symbol.append(prefix_);
      symbol.append(ch);
      if (i == word.size()) symbol.append(suffix_);
      s = symbol;
      auto it = vocab_.find(s);
      id = it == vocab_.end() ? -1 : it->second;
    } else {
      id = char_id(ch, cp);
    }
    if (id >= 0) {
      if (unk_id >= 0) {
        ids->push_back(unk_id);
        lens->push_back(unk_len);
        unk_id = -1;
      }
      ids->push_back(id);
      lens->push_back(uint32_t(ch.size()));
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {
        // HF leaves a pending unk in place here; it is emitted after these bytes.
        for (unsigned char b : s) {
          ids->push_back(byte_ids_[b]);
          lens->push_back(1);
        }
        continue;
      }
    }
    if (!unk_token_) continue;  // no unk token: HF drops the character
    auto it = vocab_.find(*unk_token_);
    if (it == vocab_.end())
      return invalid_argument("unk_token '" + quote_for_message(*unk_token_) +
                              "' is not in the vocabulary");
    if (unk_id >= 0 && fuse_unk_) {
      unk_len += uint32_t(ch.size());
      continue;
    }
    if (unk_id >= 0) {
      ids->push_back(unk_id);
      lens->push_back(unk_len);
    }
    unk_id = it->second;
    unk_len = uint32_t(ch.size());
  }
  if (unk_id >= 0) {
    ids->push_back(unk_id);
    lens->push_back(unk_len);
  }
  return ok_status();
}

void BpeModel::merge(std::vector<int32_t>* ids, std::vector<uint32_t>* lens) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2) return;
  struct Cand {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Cand> heap;  // min-heap on (rank, pos), reused across words
  auto later = [](const Cand& a, const Cand& b) { return a > b; };
  prev.resize(n);
  next.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::vector<int32_t>& id = *ids;
  std::vector<uint32_t>& len = *lens;
  heap.clear();
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const PairMap::Value* v = merges_->find(pair_key(id[i], id[i + 1])))
      heap.push_back({v->rank, i, v->id});
  std::make_heap(heap.begin(), heap.end(), later);
  auto push = [&](const PairMap::Value* v, int32_t pos) {
    heap.push_back({v->rank, pos, v->id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Cand top = heap.back();
    heap.pop_back();
    int32_t p = top.pos;
    if (len[p] == 0 || next[p] < 0) continue;
    int32_t r = next[p];
    const PairMap::Value* v = merges_->find(pair_key(id[p], id[r]));
    if (!v || v->id != top.new_id) continue;  // stale: a neighbour merged since
    id[p] = top.new_id;
    len[p] += len[r];
    len[r] = 0;
    next[p] = next[r];
    if (next[r] >= 0) prev[next[r]] = p;
    if (prev[p] >= 0)
      if (const PairMap::Value* pv = merges_->find(pair_key(id[prev[p]], id[p]))) push(pv, prev[p]);
    if (next[p] >= 0)
      if (const PairMap::Value* nv = merges_->find(pair_key(id[p], id[next[p]]))) push(nv, p);
  }
  size_t w = 0;
  for (int32_t i = 0; i < n; ++i)
    if (len[i] != 0) id[w++] = id[i];
  id.resize(w);
}

Status BpeModel::tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return ok_status();
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return ok_status();
    }
  }
  bool cacheable = word.size() < kCacheMaxWordBytes;
  size_t h = cacheable ? StringHash()(word) : 0;
  if (cacheable && cache_->get(word, h, out)) return ok_status();
  thread_local std::vector<int32_t> ids;
  thread_local std::vector<uint32_t> lens;
  ids.clear();
  lens.clear();
  LS_RETURN_IF_ERROR(initial_symbols(word, &ids, &lens));
  merge(&ids, &lens);
  if (cacheable) cache_->put(word, h, ids.data(), ids.size());
  out->insert(out->end(), ids.begin(), ids.end());
  return ok_status();
}

}  // namespace ls::tok
