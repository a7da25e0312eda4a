// Decode steps as CUDA graphs: see decode_graphs.h.
#include "model/decode_graphs.h"

#include <algorithm>

#include "base/check.h"

namespace ls {

DecodeGraphs::DecodeGraphs(const LlamaModel& model, int32_t max_batch)
    : model_(model),
      be_(model.backend()),
      max_batch_(max_batch),
      max_bucket_(bucket(std::max(1, max_batch))) {}

int32_t DecodeGraphs::bucket(int32_t n) {
  if (n <= 1) return 1;
  if (n <= 2) return 2;
  if (n <= 4) return 4;
  const int32_t step = n <= 64 ? 8 : n <= 128 ? 16 : 32;
  return (n + step - 1) / step * step;
}

bool DecodeGraphs::eligible(const ForwardBatch& b, int32_t max_batch) {
  const auto n = static_cast<int64_t>(b.tokens.size());
  if (n == 0 || n > max_batch || b.num_seqs() != n || b.logit_rows.size() != b.tokens.size())
    return false;
  for (int64_t t = 0; t < n; ++t) {
    const auto u = static_cast<size_t>(t);
    if (b.token_seq[u] != t || b.logit_rows[u] != t) return false;
  }
  // Compressed adapters run eagerly (their tables are not in the graphs' fixed buffers).
  for (const ResidentAdapter* a : b.lora_slots)
    if (a->compressed) return false;
  return b.lora_slots.size() <= static_cast<size_t>(n);
}

GraphStats DecodeGraphs::stats() const {
  GraphStats s = stats_;
  s.graphs = static_cast<int32_t>(graphs_.size());
  return s;
}

template <typename T>
void DecodeGraphs::upload(const Buffer& dst, const std::vector<T>& v) {
  LS_CHECK(v.size() * sizeof(T) <= dst.bytes);
  be_.upload(dst.data, v.data(), v.size() * sizeof(T));
}

void DecodeGraphs::reallocate(size_t pages, size_t chunks) {
  graphs_.clear();  // they read the old buffers
  lora_cached_ = false;
  const ModelConfig& c = model_.config();
  const auto B = static_cast<size_t>(max_bucket_);
  const size_t modules = static_cast<size_t>(c.num_layers) * kNumLoraTargets;
  auto make = [&](size_t bytes) { return be_.alloc(std::max<size_t>(bytes, 1)); };
  t_.page_capacity = std::max<size_t>(2 * pages, 1024);
  t_.chunk_capacity = std::max<size_t>(2 * chunks, 1024);
  t_.tokens = make(B * 4);
  t_.positions = make(B * 4);
  t_.token_seq = make(B * 4);
  t_.slots = make(B * 8);
  t_.indptr = make((B + 1) * 4);
  t_.indices = make(t_.page_capacity * 4);
  t_.rows = make(B * 4);
  t_.token_slot = make(B * 4);
  t_.chunks = make(t_.chunk_capacity * sizeof(const void*));
  t_.firsts = make(2 * modules * B * 8);
  t_.ranks = make(modules * B * 4);
  t_.scales = make(modules * B * 4);
  t_.logits = make(B * static_cast<size_t>(c.vocab_size) * 4);
}

DeviceBatch DecodeGraphs::device_batch(const Key& key) const {
  const ModelConfig& c = model_.config();
  DeviceBatch d;
  d.n = key.batch;
  d.num_seqs = key.batch;
  d.tokens = t_.tokens.as<int32_t>();
  d.positions = t_.positions.as<int32_t>();
  d.token_seq = t_.token_seq.as<int32_t>();
  d.slot_mapping = t_.slots.as<int64_t>();
  d.kv_indptr = t_.indptr.as<int32_t>();
  d.kv_indices = t_.indices.as<int32_t>();
  d.logit_rows = t_.rows.as<int32_t>();
  d.num_logit_rows = key.batch;
  d.logits = t_.logits.as<float>();
  if (key.v_stride > 0) {
    d.lora_slots = key.batch;
    d.v_stride = key.v_stride;
    d.module_rank.assign(static_cast<size_t>(c.num_layers) * kNumLoraTargets, 0);
    for (size_t m = 0; m < d.module_rank.size(); ++m)
      if (key.mask & (1u << (m % kNumLoraTargets))) d.module_rank[m] = key.v_stride;
    d.chunk_elems = chunk_elems_;
    d.chunk_dtype = chunk_dtype_;
    d.chunks = t_.chunks.as<const void*>();
    d.firsts = t_.firsts.as<int64_t>();
    d.ranks = t_.ranks.as<int32_t>();
    d.scales = t_.scales.as<float>();
    d.token_slot = t_.token_slot.as<int32_t>();
  }
  return d;
}

std::optional<Buffer> DecodeGraphs::run(const ForwardBatch& b, const PageStore& kv) {
  if (failed_) {
    ++stats_.eager;
    return std::nullopt;
  }
  const ModelConfig& c = model_.config();
  const auto n = static_cast<int32_t>(b.tokens.size());
  Key key;
  key.batch = bucket(n);

  std::vector<void*> signature;
  for (int32_t l = 0; l < kv.num_layers(); ++l) {
    const LayerKv lk = kv.layer(l);
    signature.push_back(lk.k);
    signature.push_back(lk.v);
  }
  signature.push_back(reinterpret_cast<void*>(static_cast<intptr_t>(kv.page_size())));
  signature.push_back(reinterpret_cast<void*>(static_cast<intptr_t>(kv.dtype())));
  const bool store_changed =
      signature != store_signature_ || b.kv_indices.size() > t_.page_capacity;

  // The LoRA tables: those of the step before when its adapters are the same placements.
  std::vector<uint64_t> serials;
  bool cacheable = !b.lora_slots.empty();
  for (const ResidentAdapter* a : b.lora_slots) {
    serials.push_back(a->serial);
    cacheable = cacheable && a->serial != 0;
  }
  const bool reuse = cacheable && lora_cached_ && !store_changed && key.batch == lora_batch_ &&
                     serials == lora_serials_;
  LoraHostTables lora;
  uint32_t mask = 0;
  int32_t max_rank = 0;
  if (reuse) {
    mask = lora_mask_;
    max_rank = lora_max_rank_;
  } else if (!b.lora_slots.empty()) {
    lora = build_lora_tables(c, b, key.batch, kv.chunk_elems());
    mask = lora.target_mask();
    max_rank = lora.max_rank();
  }
  key.mask = mask;
  if (key.mask != 0) {
    key.v_stride = 8;  // ranks bucketed to powers of two
    while (key.v_stride < max_rank) key.v_stride *= 2;
  }

  if (store_changed || lora.chunks.size() > t_.chunk_capacity) {
    reallocate(b.kv_indices.size(), lora.chunks.size());
    store_signature_ = std::move(signature);
    chunk_elems_ = kv.chunk_elems();
    chunk_dtype_ = kv.dtype();
  }

  // The batch padded to the bucket.
  const auto B = static_cast<size_t>(key.batch);
  std::vector<int32_t> tokens(b.tokens), positions(b.positions), seq(b.token_seq),
      indptr(b.kv_indptr), rows(b.logit_rows), token_slot(b.token_lora_slot);
  std::vector<int64_t> slots(b.slot_mapping);
  tokens.resize(B, 0);
  positions.resize(B, 0);
  slots.resize(B, -1);
  indptr.resize(B + 1, indptr.back());
  token_slot.resize(B, -1);
  for (size_t i = static_cast<size_t>(n); i < B; ++i) {
    seq.push_back(static_cast<int32_t>(i));
    rows.push_back(static_cast<int32_t>(i));
  }
  upload(t_.tokens, tokens);
  upload(t_.positions, positions);
  upload(t_.token_seq, seq);
  upload(t_.slots, slots);
  upload(t_.indptr, indptr);
  upload(t_.indices, b.kv_indices);
  upload(t_.rows, rows);
  if (key.v_stride > 0) {
    upload(t_.token_slot, token_slot);
    if (reuse) {
      ++stats_.lora_tables_reused;
    } else {
      upload(t_.chunks, lora.chunks);
      upload(t_.firsts, lora.firsts);
      upload(t_.ranks, lora.ranks);
      upload(t_.scales, lora.scales);
    }
  }
  if (!reuse) {
    lora_cached_ = cacheable && key.v_stride > 0;
    lora_serials_ = std::move(serials);
    lora_batch_ = key.batch;
    lora_mask_ = mask;
    lora_max_rank_ = max_rank;
  }

  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    be_.begin_capture();
    model_.run_device(device_batch(key), kv);
    Backend::Graph g = be_.end_capture();
    if (!g) {
      failed_ = true;
      ++stats_.eager;
      return std::nullopt;
    }
    ++stats_.captures;
    it = graphs_.emplace(key, std::move(g)).first;
  }
  be_.replay(it->second);
  ++stats_.replays;
  Buffer logits = t_.logits;
  logits.bytes = static_cast<size_t>(n) * static_cast<size_t>(c.vocab_size) * 4;
  return logits;
}

}  // namespace ls
