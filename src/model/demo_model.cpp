// Demo weights: random, scaled (as tools/make_golden.py does) so greedy outputs are varied
// rather than one token repeated, and adapters with non-zero B so each visibly changes them.
#include "model/demo_model.h"

#include "model/demo_tokenizer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/dtype.h"
#include "base/file_util.h"
#include "base/rng.h"
#include "model/lora_adapter.h"
#include "model/lora_config.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace ls {

namespace {

Status make_dirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return not_found(cur + ": cannot create directory");
    }
    if (i < path.size()) cur.push_back(path[i]);
  }
  return ok_status();
}

TensorToWrite random_tensor(Rng& rng, const std::string& name, DType dtype,
                            std::vector<int64_t> shape, double std, double mean = 0.0) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  TensorToWrite t{name, dtype, shape, {}};
  t.bytes.resize(static_cast<size_t>(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(mean + std * rng.normal());
    unsigned char* dst = t.bytes.data() + static_cast<size_t>(i) * dtype_size(dtype);
    if (dtype == DType::kF32) {
      std::memcpy(dst, &v, 4);
    } else {
      uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(dst, &h, 2);
    }
  }
  return t;
}

nlohmann::ordered_json demo_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 512},
          {"hidden_size", 128},
          {"intermediate_size", 352},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 32},
          {"max_position_embeddings", 1024},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"tie_word_embeddings", false},
          {"hidden_act", "silu"},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", "bfloat16"}};
}

Status write_adapter(const std::string& dir, const ModelConfig& mc, const RandomAdapterSpec& spec,
                     Rng& rng) {
  LS_RETURN_IF_ERROR(make_dirs(dir));
  nlohmann::ordered_json cfg = {{"peft_type", "LORA"},
                                {"task_type", "CAUSAL_LM"},
                                {"r", spec.r},
                                {"lora_alpha", spec.alpha},
                                {"use_rslora", spec.rslora},
                                {"lora_dropout", 0.0},
                                {"bias", "none"},
                                {"use_dora", false},
                                {"modules_to_save", nullptr},
                                {"fan_in_fan_out", false},
                                {"base_model_name_or_path", "loraserve-demo"}};
  nlohmann::ordered_json targets = nlohmann::ordered_json::array();
  for (LoraTarget t : spec.targets) targets.push_back(std::string(lora_target_name(t)));
  cfg["target_modules"] = targets;
  nlohmann::ordered_json rp = nlohmann::ordered_json::object();
  for (const auto& [k, v] : spec.rank_pattern) rp[k] = v;
  cfg["rank_pattern"] = rp;
  cfg["alpha_pattern"] = nlohmann::ordered_json::object();
  LS_RETURN_IF_ERROR(write_text_file(dir + "/adapter_config.json", cfg.dump(2) + "\n"));
  LS_ASSIGN_OR_RETURN(LoraConfig lc, LoraConfig::from_json(cfg));
  std::vector<TensorToWrite> tensors;
  for (int32_t l = 0; l < mc.num_layers; ++l) {
    for (LoraTarget t : spec.targets) {
      const std::string key = lora_module_key(l, t);
      const int32_t rank = lc.rank_for(key);
      const int64_t in = lora_in_dim(mc, t), out = lora_out_dim(mc, t);
      const std::string base = "base_model.model." + key;
      tensors.push_back(random_tensor(rng, base + ".lora_A.weight", spec.dtype, {rank, in},
                                      1.0 / std::sqrt(static_cast<double>(in))));
      tensors.push_back(
          random_tensor(rng, base + ".lora_B.weight", spec.dtype, {out, rank},
                        0.6 / (lc.scale_for(key) * std::sqrt(static_cast<double>(rank)))));
    }
  }
  return write_safetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
}

Status write_model(const std::string& dir, const nlohmann::ordered_json& cfg_json,
                   const ModelConfig& c, Rng& rng) {
  LS_RETURN_IF_ERROR(make_dirs(dir));
  LS_RETURN_IF_ERROR(write_text_file(dir + "/config.json", cfg_json.dump(2) + "\n"));
  const DType dt = DType::kBF16;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  const double emb = 3.0 / std::sqrt(static_cast<double>(H));
  auto proj = [](int64_t in, double gain = 1.0) {
    return gain / std::sqrt(static_cast<double>(in));
  };
  std::vector<TensorToWrite> t;
  t.push_back(random_tensor(rng, "model.embed_tokens.weight", dt, {c.vocab_size, H}, emb));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back(random_tensor(rng, p + "input_layernorm.weight", dt, {H}, 0.2, 1.0));
    t.push_back(random_tensor(rng, p + "self_attn.q_proj.weight", dt, {Q, H}, proj(H, 2.5)));
    t.push_back(random_tensor(rng, p + "self_attn.k_proj.weight", dt, {KV, H}, proj(H, 2.5)));
    t.push_back(random_tensor(rng, p + "self_attn.v_proj.weight", dt, {KV, H}, proj(H)));
    t.push_back(random_tensor(rng, p + "self_attn.o_proj.weight", dt, {H, Q}, proj(Q)));
    t.push_back(random_tensor(rng, p + "post_attention_layernorm.weight", dt, {H}, 0.2, 1.0));
    t.push_back(random_tensor(rng, p + "mlp.gate_proj.weight", dt, {I, H}, proj(H)));
    t.push_back(random_tensor(rng, p + "mlp.up_proj.weight", dt, {I, H}, proj(H)));
    t.push_back(random_tensor(rng, p + "mlp.down_proj.weight", dt, {H, I}, proj(I)));
  }
  t.push_back(random_tensor(rng, "model.norm.weight", dt, {H}, 0.2, 1.0));
  t.push_back(random_tensor(rng, "lm_head.weight", dt, {c.vocab_size, H}, emb));
  return write_safetensors(dir + "/model.safetensors", t, {{"format", "pt"}});
}

}  // namespace

Status write_random_adapter(const std::string& dir, const ModelConfig& config,
                            const RandomAdapterSpec& spec, uint64_t seed) {
  Rng rng(seed);
  return write_adapter(dir, config, spec, rng);
}

Result<std::vector<DemoAdapterInfo>> make_demo(const std::string& dir, uint64_t seed) {
  Rng rng(seed);
  const auto cfg_json = demo_config();
  LS_ASSIGN_OR_RETURN(ModelConfig mc, ModelConfig::from_json(cfg_json));
  LS_RETURN_IF_ERROR(write_model(dir + "/model", cfg_json, mc, rng));
  LS_RETURN_IF_ERROR(write_demo_tokenizer(dir + "/model", mc.vocab_size));
  using T = LoraTarget;
  const std::vector<RandomAdapterSpec> specs = {
      {"pirate", 8, 16, false, {T::kQ, T::kV}, DType::kF32, {}},
      {"poet",
       16,
       32,
       false,
       {T::kQ, T::kK, T::kV, T::kO, T::kGate, T::kUp, T::kDown},
       DType::kBF16,
       {}},
      {"coder",
       64,
       32,
       true,
       {T::kO, T::kGate, T::kUp, T::kDown},
       DType::kF16,
       {{"down_proj", 32}}},
  };
  std::vector<DemoAdapterInfo> out;
  for (const auto& spec : specs) {
    const std::string adir = dir + "/adapters/" + spec.name;
    LS_RETURN_IF_ERROR(write_adapter(adir, mc, spec, rng));
    out.push_back({spec.name, adir});
  }
  return out;
}

}  // namespace ls
