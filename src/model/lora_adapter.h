// A PEFT LoRA adapter loaded into host memory, validated against the base model: per layer and
// target module the factors A [rank, in] and B^T [rank, out] in fp32 and the scale PEFT uses.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/model_config.h"

namespace ls {

enum class LoraTarget : int32_t { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int32_t kNumLoraTargets = 7;
std::string_view lora_target_name(LoraTarget t);  // "q_proj", ...
// PEFT module key of a target in a layer: "model.layers.3.self_attn.q_proj".
std::string lora_module_key(int32_t layer, LoraTarget t);
// Input and output width of a target's base Linear in this model.
int64_t lora_in_dim(const ModelConfig& c, LoraTarget t);
int64_t lora_out_dim(const ModelConfig& c, LoraTarget t);

struct LoraModule {
  int32_t rank = 0;
  float scale = 0.0f;     // lora_alpha / rank, or lora_alpha / sqrt(rank) with use_rslora
  std::vector<float> a;   // [rank, in_dim]
  std::vector<float> bt;  // [rank, out_dim]  (PEFT's lora_B.weight [out, rank], transposed)
};

struct LoraAdapter {
  std::string name;
  std::string dir;
  int32_t max_rank = 0;
  // [num_layers][kNumLoraTargets]; empty where the adapter leaves the module alone.
  std::vector<std::array<std::optional<LoraModule>, kNumLoraTargets>> layers;
  size_t host_bytes() const;
};

struct LoraLoadOptions {
  int32_t max_rank = 256;  // larger ranks are refused
};

// Loads adapter_config.json + adapter_model.safetensors from `dir`. Refuses with a clear
// message what we do not serve: DoRA, modules_to_save, LoRA bias, embedding/lm_head LoRA,
// pickled adapter_model.bin, and adapters whose shapes do not fit this base model.
Result<LoraAdapter> load_lora_adapter(const std::string& dir, const std::string& name,
                                      const ModelConfig& model, const LoraLoadOptions& opts = {});

}  // namespace ls
