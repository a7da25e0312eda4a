// One forward of the Llama family over a mixed batch:
//   residual = embed(tokens)
//   per layer: x = norm(residual); q,k,v = x W^T (+bias) + LoRA; rope; store k,v in pages;
//              attn over pages; residual += attn W_o^T + LoRA; x = norm(residual);
//              residual += (silu(x W_g^T + LoRA) * (x W_u^T + LoRA)) W_d^T + LoRA
//   logits = norm(residual)[logit_rows] W_lm^T
// LoRA tables (pointers, ranks, scales per layer, module and slot) are built and uploaded
// once per forward and read by every layer.
#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "model/llama_model.h"

namespace ls {

namespace {

// Host-built LoRA tables for the whole forward, uploaded once: all chunk pointers of every
// (layer, module, slot), per-(module, slot) first-chunk indices, ranks and scales, the slot of
// each token and the runs of tokens sharing a slot.
class LoraTables {
 public:
  LoraTables(Backend& backend, const ModelConfig& c, const ForwardBatch& b, int64_t chunk_floats)
      : chunk_floats_(chunk_floats) {
    num_slots_ = static_cast<int32_t>(b.lora_slots.size());
    n_ = static_cast<int64_t>(b.tokens.size());
    if (num_slots_ == 0) return;
    const size_t ns = static_cast<size_t>(num_slots_);
    const size_t modules = static_cast<size_t>(c.num_layers) * kNumLoraTargets;
    std::vector<const float*> chunks;
    std::vector<int64_t> firsts(2 * modules * ns, 0);  // a_first then bt_first per module
    std::vector<int32_t> ranks(modules * ns, 0);
    std::vector<float> scales(modules * ns, 0.0f);
    max_rank_.assign(modules, 0);
    for (size_t m = 0; m < modules; ++m) {
      const size_t layer = m / kNumLoraTargets, target = m % kNumLoraTargets;
      for (size_t s = 0; s < ns; ++s) {
        const auto& mod = b.lora_slots[s]->layers[layer][target];
        if (!mod) continue;
        LS_CHECK(b.lora_slots[s]->chunk_floats == chunk_floats);
        firsts[(2 * m) * ns + s] = static_cast<int64_t>(chunks.size());
        chunks.insert(chunks.end(), mod->a_chunks.begin(), mod->a_chunks.end());
        firsts[(2 * m + 1) * ns + s] = static_cast<int64_t>(chunks.size());
        chunks.insert(chunks.end(), mod->bt_chunks.begin(), mod->bt_chunks.end());
        ranks[m * ns + s] = mod->rank;
        scales[m * ns + s] = mod->scale;
        max_rank_[m] = std::max(max_rank_[m], mod->rank);
      }
    }
    std::vector<int32_t> tok(b.token_lora_slot), seg_start, seg_slot;
    for (int64_t t = 0; t < n_; ++t) {
      if (t == 0 || tok[static_cast<size_t>(t)] != tok[static_cast<size_t>(t - 1)]) {
        seg_start.push_back(static_cast<int32_t>(t));
        seg_slot.push_back(tok[static_cast<size_t>(t)]);
      }
    }
    num_segments_ = static_cast<int32_t>(seg_slot.size());
    seg_start.push_back(static_cast<int32_t>(n_));
    chunk_buf_ = upload(backend, chunks);
    first_buf_ = upload(backend, firsts);
    rank_buf_ = upload(backend, ranks);
    scale_buf_ = upload(backend, scales);
    tok_buf_ = upload(backend, tok);
    seg_start_buf_ = upload(backend, seg_start);
    seg_slot_buf_ = upload(backend, seg_slot);
  }

  int32_t max_rank_overall() const {
    int32_t r = 0;
    for (int32_t m : max_rank_) r = std::max(r, m);
    return r;
  }

  // The op view for module `target` of `layer`; nullopt when no slot touches it.
  std::optional<LoraModuleBatch> module(const ModelConfig& c, int32_t layer, LoraTarget target,
                                        int32_t v_stride) const {
    if (num_slots_ == 0) return std::nullopt;
    const size_t m = static_cast<size_t>(layer) * kNumLoraTargets + static_cast<size_t>(target);
    if (max_rank_[m] == 0) return std::nullopt;
    const size_t ns = static_cast<size_t>(num_slots_);
    LoraModuleBatch lb;
    lb.num_slots = num_slots_;
    lb.max_rank = v_stride;
    lb.in_dim = lora_in_dim(c, target);
    lb.out_dim = lora_out_dim(c, target);
    lb.chunk_floats = chunk_floats_;
    lb.chunks = chunk_buf_.as<const float*>();
    lb.a_first = first_buf_.as<int64_t>() + (2 * m) * ns;
    lb.bt_first = first_buf_.as<int64_t>() + (2 * m + 1) * ns;
    lb.rank = rank_buf_.as<int32_t>() + m * ns;
    lb.scale = scale_buf_.as<float>() + m * ns;
    lb.token_slot = tok_buf_.as<int32_t>();
    lb.num_segments = num_segments_;
    lb.seg_start = seg_start_buf_.as<int32_t>();
    lb.seg_slot = seg_slot_buf_.as<int32_t>();
    return lb;
  }

 private:
  template <typename T>
  static Buffer upload(Backend& backend, const std::vector<T>& v) {
    Buffer buf = backend.alloc(std::max<size_t>(1, v.size()) * sizeof(T));
    backend.upload(buf.data, v.data(), v.size() * sizeof(T));
    return buf;
  }

  int64_t chunk_floats_ = 0;
  int32_t num_slots_ = 0;
  int32_t num_segments_ = 0;
  int64_t n_ = 0;
  std::vector<int32_t> max_rank_;  // [layers * targets]
  Buffer chunk_buf_, first_buf_, rank_buf_, scale_buf_, tok_buf_, seg_start_buf_, seg_slot_buf_;
};

template <typename T>
Buffer upload_vec(Backend& backend, const std::vector<T>& v) {
  Buffer buf = backend.alloc(std::max<size_t>(1, v.size()) * sizeof(T));
  backend.upload(buf.data, v.data(), v.size() * sizeof(T));
  return buf;
}

}  // namespace

Buffer LlamaModel::forward(const ForwardBatch& b, const PageStore& kv) const {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  LS_CHECK(n > 0);
  LS_CHECK(b.positions.size() == b.tokens.size() && b.token_seq.size() == b.tokens.size() &&
           b.slot_mapping.size() == b.tokens.size() && b.token_lora_slot.size() == b.tokens.size());
  for (int32_t id : b.tokens) LS_CHECK(id >= 0 && id < c.vocab_size);
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;

  Buffer d_tokens = upload_vec(be, b.tokens);
  Buffer d_pos = upload_vec(be, b.positions);
  Buffer d_seq = upload_vec(be, b.token_seq);
  Buffer d_slots = upload_vec(be, b.slot_mapping);
  Buffer d_indptr = upload_vec(be, b.kv_indptr);
  Buffer d_indices = upload_vec(be, b.kv_indices);
  LoraTables lora(be, c, b, kv.chunk_floats());
  const int32_t v_stride = std::max(1, lora.max_rank_overall());

  auto f32 = [&](int64_t count) { return be.alloc(static_cast<size_t>(count) * sizeof(float)); };
  Buffer residual = f32(n * H), x = f32(n * std::max(H, Q)), q = f32(n * Q), k = f32(n * KV),
         v = f32(n * KV), attn = f32(n * Q), out = f32(n * H), gate = f32(n * I), up = f32(n * I),
         lora_v = f32(n * v_stride);

  auto linear = [&](const float* in, const Weight& w, const Weight& bias, int32_t layer,
                    LoraTarget target, float* y) {
    be.gemm(in, n, w, bias.empty() ? nullptr : &bias, y, false);
    if (auto lb = lora.module(c, layer, target, v_stride)) {
      be.lora_shrink(in, n, *lb, lora_v.as<float>());
      be.lora_expand(lora_v.as<float>(), n, *lb, y);
    }
  };

  AttentionBatch ab;
  ab.num_tokens = n;
  ab.num_seqs = b.num_seqs();
  ab.token_seq = d_seq.as<int32_t>();
  ab.token_pos = d_pos.as<int32_t>();
  ab.kv_indptr = d_indptr.as<int32_t>();
  ab.kv_indices = d_indices.as<int32_t>();
  ab.num_q_heads = c.num_heads;
  ab.num_kv_heads = c.num_kv_heads;
  ab.head_dim = c.head_dim;
  ab.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  ab.sliding_window = c.sliding_window;
  RopeParams rp{inv_freq_.as<float>(), c.head_dim, c.num_heads, c.num_kv_heads};

  be.embedding(embed_, d_tokens.as<int32_t>(), n, residual.as<float>());
  be.rms_norm(residual.as<float>(), layers_[0].input_norm, static_cast<float>(c.rms_norm_eps), n,
              x.as<float>());
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    linear(x.as<float>(), L.q, L.q_bias, l, LoraTarget::kQ, q.as<float>());
    linear(x.as<float>(), L.k, L.k_bias, l, LoraTarget::kK, k.as<float>());
    linear(x.as<float>(), L.v, L.v_bias, l, LoraTarget::kV, v.as<float>());
    be.rope(q.as<float>(), k.as<float>(), rp, d_pos.as<int32_t>(), n);
    const LayerKv layer_kv = kv.layer(l);
    be.kv_write(k.as<float>(), v.as<float>(), d_slots.as<int64_t>(), n, layer_kv);
    be.attention(q.as<float>(), ab, layer_kv, attn.as<float>());
    linear(attn.as<float>(), L.o, L.o_bias, l, LoraTarget::kO, out.as<float>());
    be.add_rms_norm(residual.as<float>(), out.as<float>(), L.post_norm,
                    static_cast<float>(c.rms_norm_eps), n, x.as<float>());
    linear(x.as<float>(), L.gate, L.gate_bias, l, LoraTarget::kGate, gate.as<float>());
    linear(x.as<float>(), L.up, L.up_bias, l, LoraTarget::kUp, up.as<float>());
    be.silu_mul(gate.as<float>(), up.as<float>(), n, I, gate.as<float>());
    linear(gate.as<float>(), L.down, L.down_bias, l, LoraTarget::kDown, out.as<float>());
    const Weight& next_norm =
        l + 1 < c.num_layers ? layers_[static_cast<size_t>(l + 1)].input_norm : final_norm_;
    be.add_rms_norm(residual.as<float>(), out.as<float>(), next_norm,
                    static_cast<float>(c.rms_norm_eps), n, x.as<float>());
  }
  // Gather the rows whose logits are wanted, then one GEMM with the LM head.
  const int64_t rows = static_cast<int64_t>(b.logit_rows.size());
  Buffer logits = f32(std::max<int64_t>(1, rows) * c.vocab_size);
  if (rows == 0) return logits;
  Buffer picked_ids = upload_vec(be, b.logit_rows);
  Buffer picked = f32(rows * H);
  // A gather is an embedding lookup over the normalised hidden states.
  Weight hidden_table{x.data, DType::kF32, n, H, x.owner};
  be.embedding(hidden_table, picked_ids.as<int32_t>(), rows, picked.as<float>());
  be.gemm(picked.as<float>(), rows, lm_head_, nullptr, logits.as<float>(), false);
  return logits;
}

}  // namespace ls
