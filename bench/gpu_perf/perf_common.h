// Shared pieces of gpu_perf_bench (issue 7): the run context (flags and the ceilings measured
// by the "copy" section), a real-shape model with random bf16 weights made on the device,
// memory arithmetic that decides what fits before anything is allocated, forward batches whose
// KV pages are "already filled" (page tables over allocated pages; the values do not matter for
// timing), adapters placed into pages, timing helpers and a plain-text table printer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "memory/page_pool.h"
#include "memory/page_store.h"
#include "model/adapter_layout.h"
#include "model/llama_model.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls::perf {

using Json = nlohmann::ordered_json;

struct Flags {
  std::string device = "cuda";  // cpu runs every section on a tiny shape (a smoke test)
  std::string shape = "llama2-7b";
  bool quick = false;
  uint64_t seed = 1;
  double gpu_memory_utilization = 0.92;  // engine sections: page pool as the server sizes it
  double capacity_utilization = 0.97;    // the capacity count: as much of the GPU as is sane
  double margin_gib = 1.5;               // kept free beyond each configuration's computed need
  int warmup = 3;                        // untimed repetitions before each measurement
  int iters = 10;                        // timed repetitions (the median is reported)
  int context = 512;                     // decode context per sequence
  std::vector<int> decode_batches = {1, 8, 32, 64, 128, 256};
  int64_t copy_mib = 2048;  // device-to-device copy size
  int gemm_n = 8192;        // cuBLAS bf16 GEMM n x n x n
  double host_budget_gib = 16;
  int loader_threads = 2;
  int loading_probes = 3;        // cold and warm adapter requests each (median reported)
  int capacity_adapters = 2000;  // registered adapters for the throughput run
  int capacity_requests = 256;   // requests of that run (uniform popularity)
  int capacity_disk_dirs = 16;   // distinct adapter directories the names point at
  int peer_batch = 32, peer_prompt = 256, peer_new = 128, peer_adapters = 32;
  double section_timeout_s = 300;  // a section still running then is killed (fork mode)
  std::string work_dir;            // adapters written to disk go here (a temp dir by default)
  int skinny_gemm_max_rows = 0;    // CudaBackendOptions: the skinny kernel (0: off)
  int decode_gemm_max_rows = 16;   // CudaBackendOptions: the tensor-core decode GEMM (0: off)
  bool lora_beside_gemm = true;    // CudaBackendOptions: decode LoRA on a stream beside the GEMM
  bool pdl = true;                 // CudaBackendOptions: programmatic dependent launch
  bool bf16_activations = false;   // CudaBackendOptions: bf16 cuBLAS GEMMs and flash prefill
  DType kv_dtype = DType::kBF16;   // of every page store (KV and adapter rows)
};

// Device ceilings measured in the same run: the floors of the other sections divide by them.
struct Ceilings {
  double copy_gbps = 0;    // device-to-device copy, (read + write) bytes / s / 1e9
  double gemm_tflops = 0;  // large bf16 GEMM on cuBLAS (CPU: the backend's GEMM)
  std::string source;      // where they came from
};

struct Ctx {
  Flags f;
  Ceilings ceil;
};

// What a section hands back: its figures (JSON), one summary line, and the target verdict.
struct SectionOut {
  Json data = Json::object();
  std::string headline;
  std::string verdict = "n/a";  // "pass", "FAIL" or "n/a" (nothing measured against a target)
};

// Unwraps a Result / Status or throws with `what` in front of the message.
template <typename T>
T must(Result<T> r, const std::string& what) {
  if (!r.ok()) throw std::runtime_error(what + ": " + r.status().message());
  return std::move(r).value();
}
void must(const Status& s, const std::string& what);

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string gib(double bytes);  // "12.55 GiB"
double seconds_since(int64_t start_ns);
int64_t now_ns();

// Aligned plain-text table; print() writes it to stdout and flushes (children of the fork
// runner share the terminal with the parent).
// Text columns are left-aligned (the first always), figures right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header)
      : header_(std::move(header)), left_(header_.size(), false) {
    if (!left_.empty()) left_[0] = true;
  }
  Table& left(std::initializer_list<size_t> cols) {
    for (size_t c : cols)
      if (c < left_.size()) left_[c] = true;
    return *this;
  }
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void print(const std::string& title) const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> left_;
  std::vector<std::vector<std::string>> rows_;
};
// Prints "  skip: <reason>" and records it under data["skipped"].
void note_skip(SectionOut& out, const std::string& reason);
// Runs `body`; running out of memory there (std::bad_alloc: the CUDA allocator clears the
// error, so the backend stays usable) becomes a skip of `what`. False when skipped.
bool skip_on_oom(SectionOut& out, const std::string& what, const std::function<void()>& body);

// ---- the model ----
struct Rig {
  std::unique_ptr<Backend> be;
  ModelConfig c;
  std::unique_ptr<LlamaModel> model;
  bool cuda = false;
  Buffer probe;  // 4 bytes; downloading it waits for the backend's stream
  void sync();
};
// The backend of --device, and (with_model) the --shape model with random bf16 weights.
Rig make_rig(const Ctx& ctx, bool with_model);

struct DeviceMem {
  int64_t total = 0, free = 0, in_use = 0;
};
// CUDA: the backend's view (free includes its cached blocks). CPU: available host memory.
DeviceMem device_mem(Rig& rig);
// Empty when `need` bytes fit in free memory minus the margin, else the reason (for a skip).
std::string check_fits(Rig& rig, const Ctx& ctx, int64_t need, const std::string& what);

// ---- byte and FLOP counts from the config ----
// Parameters of every Linear a token passes through (q,k,v,o,gate,up,down of each layer) and
// of the LM head; norms and the embedding row are negligible and left out.
int64_t layer_linear_params(const ModelConfig& c);
int64_t lm_head_params(const ModelConfig& c);
// Bytes a decode step reads for weights in bf16: all layers' linears, the LM head, the norms.
int64_t decode_weight_bytes(const ModelConfig& c);
// K and V of one token over all layers at `elem_bytes` per element (4 = fp32 as stored now).
int64_t kv_token_bytes(const ModelConfig& c, int elem_bytes);
// Bytes one page of the PageStore takes (page_size 1: the fp32 K and V of one token).
int64_t page_bytes(const ModelConfig& c, DType kv_dtype);

// ---- batches over pages that exist ----
// `seqs` sequences; sequence s owns pages[s * (context + 1) + p] for p in [0, context] (page
// ids are 0, 1, ... when `pages` is empty) and feeds one token at position `context` (decode).
// seq_slot[s] picks its adapter (empty: none).
ForwardBatch decode_batch(const ModelConfig& c, int seqs, int context,
                          const std::vector<int32_t>& pages,
                          const std::vector<const ResidentAdapter*>& slots,
                          const std::vector<int>& seq_slot, uint64_t seed);
// `seqs` sequences of `len` prompt tokens from position 0 over pages[s * len + p] (prefill);
// logits of each sequence's last token.
ForwardBatch prefill_batch(const ModelConfig& c, int seqs, int len,
                           const std::vector<int32_t>& pages,
                           const std::vector<const ResidentAdapter*>& slots,
                           const std::vector<int>& seq_slot, uint64_t seed);
// Zeroes every layer's K and V (so "filled" pages hold finite values).
void zero_store(Backend& be, const PageStore& store);

// ---- adapters ----
// make_random_adapter() on every module, then only the modules in `keep`.
// Drops every module of `a` whose target is not in `keep`.
void keep_targets(LoraAdapter& a, const std::vector<LoraTarget>& keep);
LoraAdapter random_adapter(const ModelConfig& c, const std::string& name, int rank,
                           const std::vector<LoraTarget>& keep, uint64_t seed);
// The first `rank` rows of `proto` under a new name (scale alpha / r with alpha = 2r).
LoraAdapter truncated(const LoraAdapter& proto, const std::string& name, int rank);
// An adapter of `rank` on `targets` with shapes only, no weights: enough for
// adapter_pages_needed / place_adapter when the page contents do not matter.
LoraAdapter shape_adapter(const ModelConfig& c, const std::string& name, int rank,
                          const std::vector<LoraTarget>& targets);
std::vector<LoraTarget> qkvo();
std::vector<LoraTarget> all_targets();

// Places `host` into fresh pages of `pool`/`store` and (copy) copies its weights there.
std::unique_ptr<ResidentAdapter> place(const LoraAdapter& host, const ModelConfig& c,
                                       PagePool& pool, const PageStore& store, Backend& be,
                                       bool copy);

// ---- timing ----
struct Timing {
  double median_s = 0, min_s = 0, max_s = 0;
  int samples = 0;
  // time_forward only: median host time until forward() returned (the launches and the
  // tables it built and uploaded); a step is host-bound where this nears median_s.
  double host_median_s = 0;
  Json json() const;
};
Timing summarize_times(std::vector<double> t);
// forward + wait, `warmup` untimed, then `iters` timed.
Timing time_forward(Rig& rig, const ForwardBatch& fb, const PageStore& store, int warmup,
                    int iters);
// `calls` back-to-back calls of `op` then one wait, per sample; returns per-call times.
Timing time_op(Rig& rig, const std::function<void()>& op, int calls, int warmup, int samples);

// Uploads a host vector into a new backend buffer.
template <typename T>
Buffer upload_vec(Backend& be, const std::vector<T>& v) {
  Buffer b = be.alloc(std::max<size_t>(1, v.size()) * sizeof(T));
  if (!v.empty()) be.upload(b.data, v.data(), v.size() * sizeof(T));
  return b;
}

// ---- ceilings (ceilings.cpp) ----
// Measures what is still missing in ctx.ceil (the copy section did not run or failed).
void ensure_ceilings(Ctx& ctx, Rig& rig, bool need_gemm);

}  // namespace ls::perf
