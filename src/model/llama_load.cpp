// Loading Llama-family weights: every expected tensor must exist with the right shape and a
// float dtype; extra tensors (old rotary buffers) are ignored.
#include <cmath>

#include "model/llama_model.h"
#include "model/safetensors.h"

namespace ls {

namespace {

Result<Weight> take(const WeightFiles& files, Backend& backend, const std::string& name,
                    std::vector<int64_t> shape) {
  const TensorRef* t = files.find(name);
  if (!t) return not_found("missing tensor '" + name + "'");
  if (t->shape != shape) {
    std::string got, want;
    for (auto d : t->shape) got += std::to_string(d) + ",";
    for (auto d : shape) want += std::to_string(d) + ",";
    return invalid_argument(t->file + ": tensor '" + name + "' has shape [" + got + "] expected [" +
                            want + "]");
  }
  if (!t->dtype ||
      (*t->dtype != DType::kF32 && *t->dtype != DType::kF16 && *t->dtype != DType::kBF16))
    return invalid_argument(t->file + ": tensor '" + name + "' has dtype " + t->dtype_name +
                            " (F32, F16 or BF16 expected)");
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.back();
  return backend.make_weight(*t->dtype, t->data, rows, cols);
}

}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const std::string& dir, Backend& backend) {
  LS_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::load(dir));
  LS_ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::open_dir(dir));
  return from_weights(config, backend,
                      [&](const std::string& name, const std::vector<int64_t>& shape) {
                        return take(files, backend, name, shape);
                      });
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::from_weights(const ModelConfig& config,
                                                             Backend& backend,
                                                             const WeightSource& source) {
  std::unique_ptr<LlamaModel> m(new LlamaModel(config, backend));
  const ModelConfig& c = m->config_;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  auto take = [&](const std::string& name, std::vector<int64_t> shape) {
    return source(name, shape);
  };
  LS_ASSIGN_OR_RETURN(m->embed_, take("model.embed_tokens.weight", {c.vocab_size, H}));
  LS_ASSIGN_OR_RETURN(m->final_norm_, take("model.norm.weight", {H}));
  if (c.tie_word_embeddings) {
    m->lm_head_ = m->embed_;
  } else {
    LS_ASSIGN_OR_RETURN(m->lm_head_, take("lm_head.weight", {c.vocab_size, H}));
  }
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    LS_ASSIGN_OR_RETURN(L.input_norm, take(p + "input_layernorm.weight", {H}));
    LS_ASSIGN_OR_RETURN(L.post_norm, take(p + "post_attention_layernorm.weight", {H}));
    LS_ASSIGN_OR_RETURN(L.q, take(p + "self_attn.q_proj.weight", {Q, H}));
    LS_ASSIGN_OR_RETURN(L.k, take(p + "self_attn.k_proj.weight", {KV, H}));
    LS_ASSIGN_OR_RETURN(L.v, take(p + "self_attn.v_proj.weight", {KV, H}));
    LS_ASSIGN_OR_RETURN(L.o, take(p + "self_attn.o_proj.weight", {H, Q}));
    if (c.qkv_bias) {
      LS_ASSIGN_OR_RETURN(L.q_bias, take(p + "self_attn.q_proj.bias", {Q}));
      LS_ASSIGN_OR_RETURN(L.k_bias, take(p + "self_attn.k_proj.bias", {KV}));
      LS_ASSIGN_OR_RETURN(L.v_bias, take(p + "self_attn.v_proj.bias", {KV}));
    }
    if (c.o_bias) {
      LS_ASSIGN_OR_RETURN(L.o_bias, take(p + "self_attn.o_proj.bias", {H}));
    }
    LS_ASSIGN_OR_RETURN(L.gate, take(p + "mlp.gate_proj.weight", {I, H}));
    LS_ASSIGN_OR_RETURN(L.up, take(p + "mlp.up_proj.weight", {I, H}));
    LS_ASSIGN_OR_RETURN(L.down, take(p + "mlp.down_proj.weight", {H, I}));
    if (c.mlp_bias) {
      LS_ASSIGN_OR_RETURN(L.gate_bias, take(p + "mlp.gate_proj.bias", {I}));
      LS_ASSIGN_OR_RETURN(L.up_bias, take(p + "mlp.up_proj.bias", {I}));
      LS_ASSIGN_OR_RETURN(L.down_bias, take(p + "mlp.down_proj.bias", {H}));
    }
    // One weight per group of linears that read the same input, so a backend can run each
    // group as one GEMM (gemm_parts); the separate weights become views of its rows.
    if (L.q.dtype == L.k.dtype && L.q.dtype == L.v.dtype) {
      const Weight parts[3] = {L.q, L.k, L.v};
      L.qkv = backend.stack_rows(parts, 3);
      L.q = weight_rows(L.qkv, 0, Q);
      L.k = weight_rows(L.qkv, Q, KV);
      L.v = weight_rows(L.qkv, Q + KV, KV);
    }
    if (L.gate.dtype == L.up.dtype) {
      const Weight parts[2] = {L.gate, L.up};
      L.gate_up = backend.stack_rows(parts, 2);
      L.gate = weight_rows(L.gate_up, 0, I);
      L.up = weight_rows(L.gate_up, I, I);
    }
    m->layers_.push_back(std::move(L));
  }
  std::vector<float> inv = rope_inv_freq(c);
  m->inv_freq_ = backend.alloc(inv.size() * sizeof(float));
  backend.upload(m->inv_freq_.data, inv.data(), inv.size() * sizeof(float));
  return m;
}

}  // namespace ls
