// --device cpu|cuda and --gpu-memory-utilization for subcommands that build a Backend
// (generate, bench, serve): the flag, the backend behind it, and the page-pool size on a GPU.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "base/status.h"
#include "model/model_config.h"

namespace ls {

// Adds --device (env LORASERVE_DEVICE): "cpu", "cuda", or empty for the default.
void add_device_flag(CLI::App* sub, std::string* device);
// Adds --gpu-memory-utilization (env LORASERVE_GPU_MEMORY_UTILIZATION), a fraction in (0, 1].
void add_gpu_memory_flag(CLI::App* sub, double* utilization);
// Adds --enforce-eager (env LORASERVE_ENFORCE_EAGER): no CUDA graphs for decode steps.
void add_enforce_eager_flag(CLI::App* sub, bool* enforce_eager);
// Adds --kv-cache-dtype auto|fp32|bf16 (env LORASERVE_KV_CACHE_DTYPE).
void add_kv_cache_dtype_flag(CLI::App* sub, std::string* kv_dtype);
// Adds --activation-dtype fp32|bf16 (env LORASERVE_ACTIVATION_DTYPE): bf16 is the CUDA
// backend's fast mode (CudaBackendOptions::bf16_activations); fp32, the default, is exact.
void add_activation_dtype_flag(CLI::App* sub, std::string* activation_dtype);

// The page pool's dtype for the --kv-cache-dtype value on `backend`: "auto" (or empty) is bf16
// on cuda (vLLM's choice: half the bytes of KV and adapter rows) and fp32 on the CPU (the exact
// reference).
Result<DType> kv_cache_dtype(const std::string& flag, const Backend& backend);

// "cuda" when this build has the CUDA backend and a GPU is visible, else "cpu".
std::string default_device();

// The backend for `device` ("" = default_device()). "cuda" without a CUDA build or without a
// GPU is an error that says so. enforce_eager turns CUDA graphs off. activation_dtype "bf16"
// (the --activation-dtype value; "" or "fp32": exact) is CUDA only: on the CPU it is an error.
Result<std::unique_ptr<Backend>> make_backend(const std::string& device, bool enforce_eager = false,
                                              const std::string& activation_dtype = "");

// Bytes for the page pool (KV + adapters). On CUDA: utilization x device memory, minus what
// is in use now (call after the weights are loaded) and the step workspace estimated from the
// model and the batch limits. On the CPU: cpu_bytes.
// kv_dtype sizes the cap of 2^24 one-token pages.
Result<int64_t> kv_pool_bytes(Backend& backend, const ModelConfig& c, double utilization,
                              int32_t max_tokens_per_step, int32_t max_num_seqs, int64_t cpu_bytes,
                              DType kv_dtype);

}  // namespace ls
