// The --device flag and the backend factory behind it (see device_flag.h).
#include "device_flag.h"

#include <algorithm>

#include "memory/page_store.h"

#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {

void add_device_flag(CLI::App* sub, std::string* device) {
  sub->add_option("--device", *device,
                  "cpu or cuda (default: cuda when this build has it and a GPU is visible)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->envname("LORASERVE_DEVICE");
}

void add_gpu_memory_flag(CLI::App* sub, double* utilization) {
  sub->add_option("--gpu-memory-utilization", *utilization,
                  "Fraction of GPU memory for weights, workspace and the page pool (cuda)")
      ->check(CLI::Range(0.01, 1.0))
      ->envname("LORASERVE_GPU_MEMORY_UTILIZATION");
}

void add_enforce_eager_flag(CLI::App* sub, bool* enforce_eager) {
  sub->add_flag("--enforce-eager", *enforce_eager,
                "Run every step op by op: no CUDA graphs for decode steps (cuda)")
      ->envname("LORASERVE_ENFORCE_EAGER");
}

void add_kv_cache_dtype_flag(CLI::App* sub, std::string* kv_dtype) {
  sub->add_option("--kv-cache-dtype", *kv_dtype,
                  "Element type of the KV cache and of resident adapter rows: auto (bf16 on cuda, "
                  "fp32 on cpu), fp32 or bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->envname("LORASERVE_KV_CACHE_DTYPE");
}

void add_activation_dtype_flag(CLI::App* sub, std::string* activation_dtype) {
  sub->add_option("--activation-dtype", *activation_dtype,
                  "Activations the CUDA GEMMs and prefill attention take: fp32 (default: hi + lo "
                  "bf16 halves, matches the fp32 reference to ~1e-5) or bf16 (about twice the "
                  "prefill rate, vLLM's precision; results depend on the batch)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->envname("LORASERVE_ACTIVATION_DTYPE");
}

Result<DType> kv_cache_dtype(const std::string& flag, const Backend& backend) {
  if (flag.empty() || flag == "auto") return backend.name() == "cuda" ? DType::kBF16 : DType::kF32;
  if (flag == "fp32") return DType::kF32;
  if (flag == "bf16") return DType::kBF16;
  return invalid_argument("--kv-cache-dtype must be auto, fp32 or bf16, got '" + flag + "'");
}

std::string default_device() {
#ifdef LORASERVE_HAS_CUDA
  if (cuda_device_available()) return "cuda";
#endif
  return "cpu";
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& device, bool enforce_eager,
                                              const std::string& activation_dtype) {
  const std::string d = device.empty() ? default_device() : device;
  if (!activation_dtype.empty() && activation_dtype != "fp32" && activation_dtype != "bf16")
    return invalid_argument("--activation-dtype must be fp32 or bf16, got '" + activation_dtype +
                            "'");
  const bool bf16 = activation_dtype == "bf16";
  if (d == "cpu") {
    if (bf16)
      return invalid_argument(
          "--activation-dtype bf16 needs --device cuda (the CPU backend computes in fp32)");
    return make_cpu_backend();
  }
  if (d != "cuda") return invalid_argument("--device must be cpu or cuda, got '" + d + "'");
#ifdef LORASERVE_HAS_CUDA
  CudaBackendOptions options;
  options.graphs = !enforce_eager;
  options.bf16_activations = bf16;
  auto b = make_cuda_backend(options);
  if (!b.ok()) return b.status().with_context("--device cuda");
  return std::move(b).value();
#else
  (void)enforce_eager;
  (void)bf16;
  return failed_precondition(
      "--device cuda: this build has no CUDA backend (configure with -DLORASERVE_CUDA=ON on a "
      "machine with nvcc)");
#endif
}

Result<int64_t> kv_pool_bytes(Backend& backend, const ModelConfig& c, double utilization,
                              int32_t max_tokens_per_step, int32_t max_num_seqs, int64_t cpu_bytes,
                              DType kv_dtype) {
  if (backend.name() != "cuda") return cpu_bytes;
#ifdef LORASERVE_HAS_CUDA
  // One step's activations (fp32, plus the bf16 copies GEMMs take), the logits of every
  // running sequence and the sampling sort over them, and 256 MiB for cuBLAS and the rest.
  const int64_t n = max_tokens_per_step;
  const int64_t per_token =
      4ll * c.hidden_size + 3ll * c.q_dim() + 2ll * c.kv_dim() + 3ll * c.intermediate_size + 256;
  const int64_t rows = std::max<int64_t>(1, max_num_seqs);
  // Decode graphs keep their own activations and logits for up to 256 sequences.
  const int64_t graph_rows = std::min<int64_t>(rows, 256);
  const int64_t workspace = n * per_token * 6 + rows * static_cast<int64_t>(c.vocab_size) * 4 * 6 +
                            graph_rows * (per_token * 6 + static_cast<int64_t>(c.vocab_size) * 4) +
                            (256ll << 20);
  LS_ASSIGN_OR_RETURN(int64_t pool,
                      cuda_pool_bytes(backend, utilization, static_cast<size_t>(workspace)));
  // At most 2^24 one-token pages (16M tokens of KV): small models would otherwise get
  // hundreds of millions of pages (and page ids are int32).
  const int64_t token_bytes = PageStore::page_bytes(c.num_layers, 1, c.kv_dim(), kv_dtype);
  return std::min(pool, token_bytes << 24);
#else
  (void)c;
  (void)utilization;
  (void)max_tokens_per_step;
  (void)max_num_seqs;
  (void)kv_dtype;
  return failed_precondition("no CUDA backend in this build");
#endif
}

}  // namespace ls
