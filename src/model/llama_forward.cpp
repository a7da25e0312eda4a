// One forward of the Llama family over a mixed batch:
//   residual = embed(tokens)
//   per layer: x = norm(residual); q,k,v = x W^T (+bias) + LoRA; rope; store k,v in pages;
//              attn over pages; residual += attn W_o^T + LoRA; x = norm(residual);
//              residual += (silu(x W_g^T + LoRA) * (x W_u^T + LoRA)) W_d^T + LoRA
//   logits = norm(residual)[logit_rows] W_lm^T
// The batch's tables (tokens, positions, page tables, and the LoRA tables: pointers, ranks,
// scales per layer, module and slot) are uploaded once per forward and read by every layer.
// Compressed adapters (Compress then Serve) add U S V^T x through the shared-basis op, with
// their own tables (bases per cluster, S per slot, tokens sorted by cluster in tiles).
// Decode batches go through CUDA graphs where the backend has them (decode_graphs.h): the
// same layer code (run_device) is captured once per bucket and replayed.
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "backend/attention_tiles.h"
#include "base/check.h"
#include "model/decode_graphs.h"
#include "model/device_batch.h"
#include "model/llama_model.h"

namespace ls {

int32_t LoraHostTables::max_rank() const {
  int32_t r = 0;
  for (int32_t m : module_max_rank) r = std::max(r, m);
  return r;
}

uint32_t LoraHostTables::target_mask() const {
  uint32_t mask = 0;
  for (size_t m = 0; m < module_max_rank.size(); ++m)
    if (module_max_rank[m] > 0) mask |= 1u << (m % kNumLoraTargets);
  return mask;
}

LoraHostTables build_lora_tables(const ModelConfig& c, const ForwardBatch& b, int32_t slot_capacity,
                                 int64_t chunk_elems) {
  LoraHostTables t;
  const size_t ns = static_cast<size_t>(slot_capacity);
  LS_CHECK(b.lora_slots.size() <= ns);
  const size_t modules = static_cast<size_t>(c.num_layers) * kNumLoraTargets;
  t.firsts.assign(2 * modules * ns, 0);  // a_first then bt_first per module
  t.ranks.assign(modules * ns, 0);
  t.scales.assign(modules * ns, 0.0f);
  t.module_max_rank.assign(modules, 0);
  for (size_t m = 0; m < modules; ++m) {
    const size_t layer = m / kNumLoraTargets, target = m % kNumLoraTargets;
    for (size_t s = 0; s < b.lora_slots.size(); ++s) {
      const auto& mod = b.lora_slots[s]->layers[layer][target];
      if (!mod) continue;
      LS_CHECK(b.lora_slots[s]->chunk_elems == chunk_elems);
      t.firsts[(2 * m) * ns + s] = static_cast<int64_t>(t.chunks.size());
      t.chunks.insert(t.chunks.end(), mod->a_chunks.begin(), mod->a_chunks.end());
      t.firsts[(2 * m + 1) * ns + s] = static_cast<int64_t>(t.chunks.size());
      t.chunks.insert(t.chunks.end(), mod->bt_chunks.begin(), mod->bt_chunks.end());
      t.ranks[m * ns + s] = mod->rank;
      t.scales[m * ns + s] = mod->scale;
      t.module_max_rank[m] = std::max(t.module_max_rank[m], mod->rank);
    }
  }
  return t;
}

CompressedHostTables build_compressed_tables(const ModelConfig& c, const ForwardBatch& b) {
  CompressedHostTables t;
  const size_t ns = b.lora_slots.size();
  std::vector<const void*> clusters;
  std::vector<const CompressedAdapter*> comp(ns, nullptr);
  t.slot_group.assign(ns, -1);
  for (size_t s = 0; s < ns; ++s) {
    const CompressedAdapter* a = b.lora_slots[s]->compressed.get();
    if (a == nullptr) continue;
    comp[s] = a;
    auto it = std::find(clusters.begin(), clusters.end(), a->cluster);
    t.slot_group[s] = static_cast<int32_t>(it - clusters.begin());
    if (it == clusters.end()) clusters.push_back(a->cluster);
  }
  t.num_groups = static_cast<int32_t>(clusters.size());
  if (t.num_groups == 0) return t;
  const size_t ng = clusters.size(), modules = static_cast<size_t>(c.num_layers) * kNumLoraTargets;
  const size_t stride = 2 * ng + ns;
  t.ptrs.assign(modules * stride, nullptr);
  t.dims.assign(modules * ng * 3, 0);
  t.module_k.assign(modules, 0);
  for (size_t m = 0; m < modules; ++m) {
    const size_t layer = m / kNumLoraTargets, target = m % kNumLoraTargets;
    for (size_t s = 0; s < ns; ++s) {
      if (comp[s] == nullptr) continue;
      const CompressedModule& cm = comp[s]->layers[layer][target];
      if (cm.ku == 0) continue;
      const auto g = static_cast<size_t>(t.slot_group[s]);
      t.ptrs[m * stride + g] = cm.vt;
      t.ptrs[m * stride + ng + g] = cm.ut;
      t.ptrs[m * stride + 2 * ng + s] = cm.s;
      int32_t* dims = &t.dims[(m * ng + g) * 3];
      dims[0] = cm.ku;
      dims[1] = cm.kv;
      dims[2] = comp[s]->diag ? 1 : 0;
      t.module_k[m] = std::max({t.module_k[m], cm.ku, cm.kv});
      t.k_max = std::max(t.k_max, t.module_k[m]);
    }
  }
  std::vector<int32_t> token_group(b.token_lora_slot.size(), -1);
  for (size_t i = 0; i < token_group.size(); ++i) {
    const int32_t s = b.token_lora_slot[i];
    if (s >= 0) token_group[i] = t.slot_group[static_cast<size_t>(s)];
  }
  CompressedTiles tiles = build_compressed_tiles(token_group, t.num_groups);
  t.rows = std::move(tiles.rows);
  t.tiles = std::move(tiles.tiles);
  return t;
}

namespace {

template <typename T>
Buffer upload_vec(Backend& backend, const std::vector<T>& v) {
  Buffer buf = backend.alloc(std::max<size_t>(1, v.size()) * sizeof(T));
  backend.upload(buf.data, v.data(), v.size() * sizeof(T));
  return buf;
}

// The op view of module `target` of `layer`; nullopt when the forward skips it.
std::optional<LoraModuleBatch> lora_module(const ModelConfig& c, const DeviceBatch& d,
                                           int32_t layer, LoraTarget target) {
  if (d.lora_slots == 0) return std::nullopt;
  const size_t m = static_cast<size_t>(layer) * kNumLoraTargets + static_cast<size_t>(target);
  if (d.module_rank[m] == 0) return std::nullopt;
  const size_t ns = static_cast<size_t>(d.lora_slots);
  LoraModuleBatch lb;
  lb.num_slots = d.lora_slots;
  lb.max_rank = d.v_stride;
  lb.in_dim = lora_in_dim(c, target);
  lb.out_dim = lora_out_dim(c, target);
  lb.chunk_elems = d.chunk_elems;
  lb.dtype = d.chunk_dtype;
  lb.chunks = d.chunks;
  lb.a_first = d.firsts + (2 * m) * ns;
  lb.bt_first = d.firsts + (2 * m + 1) * ns;
  lb.rank = d.ranks + m * ns;
  lb.scale = d.scales + m * ns;
  lb.token_slot = d.token_slot;
  lb.num_segments = d.num_segments;
  lb.seg_start = d.seg_start;
  lb.seg_slot = d.seg_slot;
  return lb;
}

// The shared-basis op view of module `target` of `layer`; nullopt when no compressed adapter
// of the forward has it.
std::optional<CompressedLoraBatch> compressed_module(const ModelConfig& c, const DeviceBatch& d,
                                                     int32_t layer, LoraTarget target,
                                                     float* scratch) {
  if (d.comp_groups == 0) return std::nullopt;
  const size_t m = static_cast<size_t>(layer) * kNumLoraTargets + static_cast<size_t>(target);
  if (d.comp_module_k[m] == 0) return std::nullopt;
  const auto ng = static_cast<size_t>(d.comp_groups);
  const size_t stride = 2 * ng + static_cast<size_t>(d.lora_slots);
  CompressedLoraBatch cb;
  cb.in_dim = lora_in_dim(c, target);
  cb.out_dim = lora_out_dim(c, target);
  cb.num_groups = d.comp_groups;
  cb.num_slots = d.lora_slots;
  cb.k_max = d.comp_k_max;
  cb.vt = d.comp_ptrs + m * stride;
  cb.ut = d.comp_ptrs + m * stride + ng;
  cb.slot_s = d.comp_ptrs + m * stride + 2 * ng;
  cb.dims = d.comp_dims + m * ng * 3;
  cb.slot_group = d.comp_slot_group;
  cb.token_slot = d.token_slot;
  cb.rows = d.comp_rows;
  cb.num_tiles = d.comp_num_tiles;
  cb.tiles = d.comp_tiles;
  cb.scratch = scratch;
  return cb;
}

}  // namespace

LlamaModel::LlamaModel(ModelConfig config, Backend& backend)
    : config_(std::move(config)), backend_(backend) {}

LlamaModel::~LlamaModel() = default;

void LlamaModel::set_max_graph_batch(int32_t max_batch) {
  std::lock_guard<std::mutex> lock(graph_mu_);
  max_graph_batch_ = std::max(0, max_batch);
  graphs_.reset();
}

GraphStats LlamaModel::graph_stats() const {
  std::lock_guard<std::mutex> lock(graph_mu_);
  return graphs_ ? graphs_->stats() : GraphStats{};
}

Buffer LlamaModel::forward(const ForwardBatch& b, const PageStore& kv) const {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  LS_CHECK(n > 0);
  LS_CHECK(b.positions.size() == b.tokens.size() && b.token_seq.size() == b.tokens.size() &&
           b.slot_mapping.size() == b.tokens.size() && b.token_lora_slot.size() == b.tokens.size());
  for (int32_t id : b.tokens) LS_CHECK(id >= 0 && id < c.vocab_size);

  if (max_graph_batch_ > 0 && be.supports_graphs() && DecodeGraphs::eligible(b, max_graph_batch_)) {
    std::lock_guard<std::mutex> lock(graph_mu_);
    if (!graphs_) graphs_ = std::make_unique<DecodeGraphs>(*this, max_graph_batch_);
    if (auto logits = graphs_->run(b, kv)) return *logits;
  }

  DeviceBatch d;
  d.n = n;
  d.num_seqs = b.num_seqs();
  Buffer d_tokens = upload_vec(be, b.tokens);
  Buffer d_pos = upload_vec(be, b.positions);
  Buffer d_seq = upload_vec(be, b.token_seq);
  Buffer d_slots = upload_vec(be, b.slot_mapping);
  Buffer d_indptr = upload_vec(be, b.kv_indptr);
  Buffer d_indices = upload_vec(be, b.kv_indices);
  Buffer d_rows = upload_vec(be, b.logit_rows);
  d.tokens = d_tokens.as<int32_t>();
  d.positions = d_pos.as<int32_t>();
  d.token_seq = d_seq.as<int32_t>();
  d.slot_mapping = d_slots.as<int64_t>();
  d.kv_indptr = d_indptr.as<int32_t>();
  d.kv_indices = d_indices.as<int32_t>();
  d.logit_rows = d_rows.as<int32_t>();
  // Prefill tiles only pay off when some sequence brings a run of tokens.
  Buffer d_tiles, d_rest;
  if (n > d.num_seqs) {
    AttentionTiles tiles = build_attention_tiles(b.token_seq, b.positions);
    if (tiles.num_tiles() > 0) {
      d_tiles = upload_vec(be, tiles.tiles);
      d_rest = upload_vec(be, tiles.rest);
      d.num_tiles = tiles.num_tiles();
      d.tiles = d_tiles.as<int32_t>();
      d.num_rest = static_cast<int64_t>(tiles.rest.size());
      d.rest_tokens = d_rest.as<int32_t>();
      d.runs = std::move(tiles.runs);
    }
  }
  d.num_logit_rows = static_cast<int64_t>(b.logit_rows.size());
  Buffer logits =
      be.alloc(static_cast<size_t>(std::max<int64_t>(1, d.num_logit_rows) * c.vocab_size) * 4);
  d.logits = logits.as<float>();

  Buffer chunk_buf, first_buf, rank_buf, scale_buf, tok_buf, seg_start_buf, seg_slot_buf;
  if (!b.lora_slots.empty()) {
    const auto ns = static_cast<int32_t>(b.lora_slots.size());
    LoraHostTables t = build_lora_tables(c, b, ns, kv.chunk_elems());
    std::vector<int32_t> seg_start, seg_slot;
    for (int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<size_t>(i);
      if (i == 0 || b.token_lora_slot[u] != b.token_lora_slot[u - 1]) {
        seg_start.push_back(static_cast<int32_t>(i));
        seg_slot.push_back(b.token_lora_slot[u]);
      }
    }
    d.num_segments = static_cast<int32_t>(seg_slot.size());
    seg_start.push_back(static_cast<int32_t>(n));
    chunk_buf = upload_vec(be, t.chunks);
    first_buf = upload_vec(be, t.firsts);
    rank_buf = upload_vec(be, t.ranks);
    scale_buf = upload_vec(be, t.scales);
    tok_buf = upload_vec(be, b.token_lora_slot);
    seg_start_buf = upload_vec(be, seg_start);
    seg_slot_buf = upload_vec(be, seg_slot);
    d.lora_slots = ns;
    d.v_stride = std::max(1, t.max_rank());
    d.module_rank = std::move(t.module_max_rank);
    d.chunk_elems = kv.chunk_elems();
    d.chunk_dtype = kv.dtype();
    d.chunks = chunk_buf.as<const void*>();
    d.firsts = first_buf.as<int64_t>();
    d.ranks = rank_buf.as<int32_t>();
    d.scales = scale_buf.as<float>();
    d.token_slot = tok_buf.as<int32_t>();
    d.seg_start = seg_start_buf.as<int32_t>();
    d.seg_slot = seg_slot_buf.as<int32_t>();
  }
  Buffer comp_ptr_buf, comp_dim_buf, comp_group_buf, comp_row_buf, comp_tile_buf;
  if (!b.lora_slots.empty()) {
    CompressedHostTables ct = build_compressed_tables(c, b);
    if (ct.num_groups > 0) {
      comp_ptr_buf = upload_vec(be, ct.ptrs);
      comp_dim_buf = upload_vec(be, ct.dims);
      comp_group_buf = upload_vec(be, ct.slot_group);
      comp_row_buf = upload_vec(be, ct.rows);
      comp_tile_buf = upload_vec(be, ct.tiles);
      d.comp_groups = ct.num_groups;
      d.comp_k_max = ct.k_max;
      d.comp_module_k = std::move(ct.module_k);
      d.comp_ptrs = comp_ptr_buf.as<const float*>();
      d.comp_dims = comp_dim_buf.as<int32_t>();
      d.comp_slot_group = comp_group_buf.as<int32_t>();
      d.comp_rows = comp_row_buf.as<int32_t>();
      d.comp_num_tiles = static_cast<int32_t>(ct.tiles.size() / 2);
      d.comp_tiles = comp_tile_buf.as<int32_t>();
    }
  }
  run_device(d, kv);
  return logits;
}

void LlamaModel::run_device(const DeviceBatch& d, const PageStore& kv) const {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const int64_t n = d.n;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  auto f32 = [&](int64_t count) { return be.alloc(static_cast<size_t>(count) * sizeof(float)); };
  Buffer residual = f32(n * H), x = f32(n * std::max(H, Q)), q = f32(n * Q), k = f32(n * KV),
         v = f32(n * KV), attn = f32(n * Q), out = f32(n * H), gate = f32(n * I), up = f32(n * I),
         lora_v = f32(kMaxLoraGroup * n * d.v_stride);
  Buffer comp_t;  // x V of the compressed adapters' tokens, only when there are any
  if (d.comp_groups > 0) comp_t = f32(n * d.comp_k_max);

  // Linears that read the same input (q, k, v; gate, up; or one alone): one gemm_parts over
  // the stacked weight where the layer has one (else one per weight), each part carrying its
  // module's LoRA, so a backend can run the LoRA beside the GEMM (CUDA decode does) instead of
  // after it; then the compressed adapters.
  struct Proj {
    const Weight* w;
    const Weight* bias;
    LoraTarget target;
    float* y;
  };
  auto linears = [&](const float* in, int32_t layer, const Weight* stacked,
                     std::initializer_list<Proj> projs) {
    LS_CHECK(projs.size() <= static_cast<size_t>(kMaxGemmParts));
    GemmPart parts[kMaxGemmParts];
    LoraModuleBatch mods[kMaxGemmParts];
    int32_t np = 0;
    for (const Proj& p : projs) {
      GemmPart& part = parts[np];
      part = {p.w->rows, p.bias->empty() ? nullptr : p.bias, p.y};
      if (auto lb = lora_module(c, d, layer, p.target)) {
        mods[np] = *lb;
        part.lora = &mods[np];
        part.lora_v = lora_v.as<float>() + np * n * d.v_stride;
      }
      ++np;
    }
    if (stacked && !stacked->empty()) {
      be.gemm_parts(in, n, *stacked, parts, np);
    } else {
      int32_t i = 0;
      for (const Proj& p : projs) be.gemm_parts(in, n, *p.w, &parts[i++], 1);
    }
    for (const Proj& p : projs)
      if (auto cb = compressed_module(c, d, layer, p.target, comp_t.as<float>()))
        be.compressed_lora(in, n, *cb, p.y);
  };

  AttentionBatch ab;
  ab.num_tokens = n;
  ab.num_seqs = d.num_seqs;
  ab.token_seq = d.token_seq;
  ab.token_pos = d.positions;
  ab.kv_indptr = d.kv_indptr;
  ab.kv_indices = d.kv_indices;
  ab.num_q_heads = c.num_heads;
  ab.num_kv_heads = c.num_kv_heads;
  ab.head_dim = c.head_dim;
  ab.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  ab.sliding_window = c.sliding_window;
  ab.num_tiles = d.num_tiles;
  ab.tiles = d.tiles;
  ab.num_rest = d.num_rest;
  ab.rest_tokens = d.rest_tokens;
  ab.num_runs = static_cast<int32_t>(d.runs.size());
  ab.runs = d.runs.empty() ? nullptr : d.runs.data();
  RopeParams rp{inv_freq_.as<float>(), c.head_dim, c.num_heads, c.num_kv_heads};

  be.embedding(embed_, d.tokens, n, residual.as<float>());
  be.rms_norm(residual.as<float>(), layers_[0].input_norm, static_cast<float>(c.rms_norm_eps), n,
              x.as<float>());
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    linears(x.as<float>(), l, &L.qkv,
            {{&L.q, &L.q_bias, LoraTarget::kQ, q.as<float>()},
             {&L.k, &L.k_bias, LoraTarget::kK, k.as<float>()},
             {&L.v, &L.v_bias, LoraTarget::kV, v.as<float>()}});
    be.rope(q.as<float>(), k.as<float>(), rp, d.positions, n);
    const LayerKv layer_kv = kv.layer(l);
    be.kv_write(k.as<float>(), v.as<float>(), d.slot_mapping, n, layer_kv);
    be.attention(q.as<float>(), ab, layer_kv, attn.as<float>());
    linears(attn.as<float>(), l, nullptr, {{&L.o, &L.o_bias, LoraTarget::kO, out.as<float>()}});
    be.add_rms_norm(residual.as<float>(), out.as<float>(), L.post_norm,
                    static_cast<float>(c.rms_norm_eps), n, x.as<float>());
    linears(x.as<float>(), l, &L.gate_up,
            {{&L.gate, &L.gate_bias, LoraTarget::kGate, gate.as<float>()},
             {&L.up, &L.up_bias, LoraTarget::kUp, up.as<float>()}});
    be.silu_mul(gate.as<float>(), up.as<float>(), n, I, gate.as<float>());
    linears(gate.as<float>(), l, nullptr,
            {{&L.down, &L.down_bias, LoraTarget::kDown, out.as<float>()}});
    const Weight& next_norm =
        l + 1 < c.num_layers ? layers_[static_cast<size_t>(l + 1)].input_norm : final_norm_;
    be.add_rms_norm(residual.as<float>(), out.as<float>(), next_norm,
                    static_cast<float>(c.rms_norm_eps), n, x.as<float>());
  }
  // Gather the rows whose logits are wanted, then one GEMM with the LM head.
  const int64_t rows = d.num_logit_rows;
  if (rows == 0) return;
  Buffer picked = f32(rows * H);
  // A gather is an embedding lookup over the normalised hidden states.
  Weight hidden_table{x.data, DType::kF32, n, H, x.owner};
  be.embedding(hidden_table, d.logit_rows, rows, picked.as<float>());
  be.gemm(picked.as<float>(), rows, lm_head_, nullptr, d.logits, false);
}

}  // namespace ls
