// Random-weight models of real shapes and random adapters (see random_model.h).
#include "model/random_model.h"

#include <cmath>

#include "base/rng.h"

namespace ls {

Result<ModelConfig> model_shape_config(const std::string& shape) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.num_layers = 32;
  c.num_heads = 32;
  c.head_dim = 128;
  c.eos_token_ids = {2};
  c.bos_token_id = 1;
  if (shape == "llama2-7b") {  // meta-llama/Llama-2-7b-hf config.json
    c.vocab_size = 32000;
    c.intermediate_size = 11008;
    c.num_kv_heads = 32;
    c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
  } else if (shape == "llama3-8b") {  // meta-llama/Meta-Llama-3-8B config.json
    c.vocab_size = 128256;
    c.intermediate_size = 14336;
    c.num_kv_heads = 8;
    c.max_position_embeddings = 8192;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.eos_token_ids = {128001};
    c.bos_token_id = 128000;
  } else if (shape == "tiny") {
    c.vocab_size = 256;
    c.hidden_size = 64;
    c.intermediate_size = 160;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.max_position_embeddings = 512;
  } else {
    return invalid_argument("unknown model shape '" + shape + "' (llama2-7b, llama3-8b or tiny)");
  }
  return c;
}

RandomWeightFn host_random_weights(Backend& backend) {
  return [&backend](DType dtype, int64_t rows, int64_t cols, uint64_t seed, float scale,
                    float offset) -> Result<Weight> {
    if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16)
      return invalid_argument("random weights must be f32, bf16 or f16");
    const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
    Rng rng(seed);
    std::vector<float> v(count);
    for (float& x : v) x = offset + scale * static_cast<float>(2.0 * rng.uniform() - 1.0);
    if (dtype == DType::kF32) return backend.make_weight(dtype, v.data(), rows, cols);
    std::vector<uint16_t> h(count);
    for (size_t i = 0; i < count; ++i)
      h[i] = dtype == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    return backend.make_weight(dtype, h.data(), rows, cols);
  };
}

Result<std::unique_ptr<LlamaModel>> make_random_model(const ModelConfig& config, Backend& backend,
                                                      DType dtype, uint64_t seed,
                                                      const RandomWeightFn& fill) {
  uint64_t next = seed;
  return LlamaModel::from_weights(
      config, backend,
      [&](const std::string& name, const std::vector<int64_t>& shape) -> Result<Weight> {
        const int64_t rows = shape.size() == 2 ? shape[0] : 1, cols = shape.back();
        const uint64_t s = next++ * 0x9e3779b97f4a7c15ull + 1;
        if (name.find("norm") != std::string::npos) return fill(dtype, rows, cols, s, 0.0f, 1.0f);
        if (name.find("embed_tokens") != std::string::npos)
          return fill(dtype, rows, cols, s, 1.0f, 0.0f);
        // uniform(-a, a) has variance a^2 / 3: a = sqrt(3 / in) keeps activations' scale.
        const float a = static_cast<float>(std::sqrt(3.0 / static_cast<double>(cols)));
        return fill(dtype, rows, cols, s, shape.size() == 2 ? a : 0.02f, 0.0f);
      });
}

LoraAdapter make_random_adapter(const ModelConfig& c, const std::string& name, int32_t rank,
                                uint64_t seed) {
  Rng rng(seed);
  LoraAdapter a;
  a.name = name;
  a.dir = "<random>";
  a.max_rank = rank;
  a.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& layer : a.layers)
    for (int32_t t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      const int64_t in = lora_in_dim(c, target), out = lora_out_dim(c, target);
      LoraModule m;
      m.rank = rank;
      m.scale = 2.0f;  // alpha / r with alpha = 2r
      m.a.resize(static_cast<size_t>(rank * in));
      m.bt.resize(static_cast<size_t>(rank * out));
      const double sa = std::sqrt(3.0 / static_cast<double>(in)), sb = 0.01 / rank;
      for (float& x : m.a) x = static_cast<float>(sa * (2.0 * rng.uniform() - 1.0));
      for (float& x : m.bt) x = static_cast<float>(sb * (2.0 * rng.uniform() - 1.0));
      layer[static_cast<size_t>(t)] = std::move(m);
    }
  return a;
}

}  // namespace ls
