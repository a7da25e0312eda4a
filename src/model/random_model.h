// Real model shapes without files: Llama-2-7B and Llama-3-8B configs, a LlamaModel whose
// weights are random numbers made by a fill function (on the GPU with cuda_random_weight, so no
// 13-16 GB host copy), and random in-memory LoRA adapters of any rank. Benchmarks use these.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "model/llama_model.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

// "llama2-7b" or "llama3-8b" (the published config.json shapes), or "tiny" for tests.
Result<ModelConfig> model_shape_config(const std::string& shape);

// Makes a weight [rows, cols] of `dtype` with elements uniform in offset + [-scale, scale].
using RandomWeightFn = std::function<Result<Weight>(DType dtype, int64_t rows, int64_t cols,
                                                    uint64_t seed, float scale, float offset)>;
// The fill for any backend: random host data, then make_weight.
RandomWeightFn host_random_weights(Backend& backend);

// A model of `config` with random `dtype` weights: norms 1, embeddings uniform +-1, linear
// layers uniform with variance 1 / in_features (activations keep their scale through layers).
Result<std::unique_ptr<LlamaModel>> make_random_model(const ModelConfig& config, Backend& backend,
                                                      DType dtype, uint64_t seed,
                                                      const RandomWeightFn& fill);

// An adapter of rank `rank` on every target module of every layer, A uniform with variance
// 1 / in_features, B^T small (0.01 / rank), scale alpha / rank with alpha = 2 * rank.
LoraAdapter make_random_adapter(const ModelConfig& config, const std::string& name, int32_t rank,
                                uint64_t seed);

}  // namespace ls
