// CudaBackend: the Backend interface on one NVIDIA GPU. Base GEMMs through cuBLAS: bf16/f16
// weights on the tensor cores with the fp32 activations split into two halves of the weight
// type (hi + lo, ~16 mantissa bits, so results match the fp32 reference to ~1e-5), fp32
// accumulation and output; decode GEMMs (n <= 16 rows) through our tensor-core decode GEMM
// instead (the same split in registers, weights read once, one launch); f32 weights in plain
// fp32 SGEMM (no TF32). Long prefill runs'
// attention through cuBLAS SGEMMs (attention_runs). Everything else through our kernels
// (cuda_ops.h). With CudaBackendOptions::bf16_activations, the GEMMs cuBLAS runs take x rounded
// to the weight type once (n rows, not 2n), and prefill runs over a bf16 cache take the bf16
// flash attention kernel.
//
// Streams: every op runs on one compute stream, in call order, so ops need no events between
// them and cached device blocks are reused safely. The one exception stays inside an op:
// gemm_parts forks the decode LoRA onto a side stream (an event) and joins it back (another)
// before its combine, and frees its scratch only after that, so to every other op it is in
// stream order too. Uploads go through pinned staging memory
// (the caller's bytes are copied before upload returns, the DMA runs asynchronously). An
// upload from the thread that runs the ops is enqueued on the compute stream; an upload from
// any other thread (the adapter loader threads) runs on a separate copy stream, after the
// compute work enqueued so far (an event, so pages freed by the last step are not overwritten
// under it) and before any compute work enqueued afterwards (a second event), so adapter
// copies overlap the next steps' compute. upload_scatter() from such a thread (an adapter's
// page chunks) packs the pieces into a few large DMAs and scatters them with a kernel on a
// stream of its own (cuda_allocator.h) and waits for them itself, with neither event (its
// caller hands over destinations no running work touches). download() waits for the compute
// stream.
//
// Graphs: begin_capture() starts stream capture of the compute stream (relaxed mode, so the
// allocator may cudaMalloc new graph-private blocks while capturing) and switches the allocator
// to its graph-private pool; end_capture() instantiates the graph. cuBLAS gets a fixed
// workspace at start so its kernels capture without allocating. Uploads from the op thread
// are refused while capturing (they would record a copy from a staging block that is reused).
// Uploads from loader threads wait until the capture ends (a capture holds the copy mutex):
// their event waits on the compute stream would otherwise join the copy stream into the
// graph. Captures are short (one forward's launches, no GPU work), so loaders barely notice.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "backend/cuda/cuda_allocator.h"
#include "backend/cuda/cuda_attention_runs.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_ops.h"
#include "base/check.h"

namespace ls {

using cuda::check_cublas;
using cuda::check_cuda;

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

}  // namespace

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<CudaBackend>> create(const CudaBackendOptions& o) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      return failed_precondition(std::string("no CUDA device: ") +
                                 (err != cudaSuccess ? cudaGetErrorString(err) : "none found"));
    }
    if (o.device < 0 || o.device >= count)
      return invalid_argument("CUDA device " + std::to_string(o.device) + " does not exist (" +
                              std::to_string(count) + " found)");
    std::unique_ptr<CudaBackend> b(new CudaBackend(o));
    return b;
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(compute_);
    cudaStreamSynchronize(copy_);
    cudaStreamSynchronize(side_);
    compute_ring_.reset();
    copy_ring_.reset();
    scatter_.reset();
    cublasDestroy(cublas_);
    if (cublas_workspace_) cudaFree(cublas_workspace_);
    if (decode_counters_) cudaFree(decode_counters_);
    cudaEventDestroy(compute_mark_);
    cudaEventDestroy(copy_done_);
    cudaEventDestroy(fork_);
    cudaEventDestroy(join_);
    cudaStreamDestroy(side_);
    cudaStreamDestroy(compute_);
    cudaStreamDestroy(copy_);
  }

  std::string_view name() const override { return "cuda"; }

  Weight random_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed, float scale,
                       float offset) {
    begin_op();
    const int64_t count = rows * cols;
    Buffer b = alloc(static_cast<size_t>(count) * dtype_size(dtype));
    check_cuda(cuda::fill_random(b.data, dtype, count, seed, scale, offset, compute_),
               "random weight");
    Weight w;
    w.data = b.data;
    w.dtype = dtype;
    w.rows = rows;
    w.cols = cols;
    w.owner = b.owner;
    return w;
  }

  CudaMemoryInfo memory_info() {
    set_device();
    CudaMemoryInfo m;
    check_cuda(cudaMemGetInfo(&m.free, &m.total), "cudaMemGetInfo");
    m.free += allocator_->bytes_cached();
    m.in_use = allocator_->bytes_in_use();
    return m;
  }

  // ---- memory ----
  Buffer alloc(size_t bytes) override {
    set_device();
    void* p = allocator_->allocate(bytes);
    if (!p) throw std::bad_alloc();
    Buffer b;
    b.data = p;
    b.bytes = bytes;
    std::shared_ptr<cuda::CudaAllocator> a = allocator_;
    b.owner = std::shared_ptr<void>(p, [a](void* q) { a->release(q); });
    return b;
  }

  void upload(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    set_device();
    if (std::this_thread::get_id() == op_thread_.load()) {
      LS_CHECK_MSG(!capturing_, "upload from the op thread while capturing a graph");
      check_cuda(compute_ring_->upload(dst, host_src, bytes, compute_), "upload");
      return;
    }
    std::lock_guard<std::mutex> lock(copy_mu_);
    check_cuda(cudaEventRecord(compute_mark_, compute_), "upload: record compute");
    check_cuda(cudaStreamWaitEvent(copy_, compute_mark_, 0), "upload: copy waits");
    check_cuda(copy_ring_->upload(dst, host_src, bytes, copy_), "upload (copy stream)");
    check_cuda(cudaEventRecord(copy_done_, copy_), "upload: record copy");
    check_cuda(cudaStreamWaitEvent(compute_, copy_done_, 0), "upload: compute waits");
  }

  void upload_scatter(const UploadPiece* pieces, size_t count) override {
    if (count == 0) return;
    set_device();
    if (std::this_thread::get_id() == op_thread_.load()) {
      // On the op thread: one upload() per piece, on the compute stream (the default).
      Backend::upload_scatter(pieces, count);
      return;
    }
    // Off the op thread (the adapter loader): packed into a few DMAs plus scatter kernels on
    // the uploader's own stream (cuda_allocator.h), waited for here, so compute work enqueued
    // after this returns sees the data with no event on the compute stream. Unlike upload(),
    // the copy is not ordered after compute work already enqueued (see
    // Backend::upload_scatter): recording an event on the compute stream from this thread
    // blocked for a whole decode step (~9 ms of a 7B load). It takes neither the copy mutex
    // nor the compute stream, so a graph capture neither waits for it nor captures it.
    std::lock_guard<std::mutex> lock(scatter_mu_);
    check_cuda(scatter_->upload(pieces, count), "upload_scatter");
    check_cuda(scatter_->synchronize(), "upload_scatter: wait");
  }

  void download(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    set_device();
    LS_CHECK_MSG(!capturing_, "download while capturing a graph");
    check_cuda(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, compute_), "download");
    check_cuda(cudaStreamSynchronize(compute_), "download: synchronize");
  }

  void fill_zero(void* dst, size_t bytes) override {
    if (bytes == 0) return;
    set_device();
    check_cuda(cudaMemsetAsync(dst, 0, bytes, compute_), "fill_zero");
  }

  Weight make_weight(DType dtype, const void* host_data, int64_t rows, int64_t cols) override {
    LS_CHECK(rows >= 1 && cols >= 1);
    LS_CHECK_MSG(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
                 "CUDA weights must be f32, f16 or bf16");
    const size_t bytes = static_cast<size_t>(rows) * static_cast<size_t>(cols) * dtype_size(dtype);
    Buffer b = alloc(bytes);
    upload(b.data, host_data, bytes);
    Weight w;
    w.data = b.data;
    w.dtype = dtype;
    w.rows = rows;
    w.cols = cols;
    w.owner = b.owner;
    return w;
  }

  Weight stack_rows(const Weight* parts, int32_t count) override {
    const int64_t rows = stack_rows_count(parts, count);
    const size_t row_bytes = static_cast<size_t>(parts[0].cols) * dtype_size(parts[0].dtype);
    Buffer b = alloc(static_cast<size_t>(rows) * row_bytes);
    begin_op();
    size_t at = 0;
    for (int32_t i = 0; i < count; ++i) {
      const size_t bytes = static_cast<size_t>(parts[i].rows) * row_bytes;
      check_cuda(cudaMemcpyAsync(static_cast<char*>(b.data) + at, parts[i].data, bytes,
                                 cudaMemcpyDeviceToDevice, compute_),
                 "stack_rows");
      at += bytes;
    }
    Weight w;
    w.data = b.data;
    w.dtype = parts[0].dtype;
    w.rows = rows;
    w.cols = parts[0].cols;
    w.owner = b.owner;
    return w;
  }

  // ---- ops ----
  void embedding(const Weight& table, const int32_t* ids, int64_t n, float* out) override {
    begin_op();
    check_cuda(
        cuda::embedding(table.data, table.dtype, table.rows, ids, n, table.cols, out, compute_),
        "embedding");
  }

  void rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) override {
    begin_op();
    check_cuda(cuda::rms_norm(x, w.data, w.dtype, eps, n, w.cols, out, compute_), "rms_norm");
  }

  void add_rms_norm(float* residual, const float* delta, const Weight& w, float eps, int64_t n,
                    float* out) override {
    begin_op();
    check_cuda(cuda::add_rms_norm(residual, delta, w.data, w.dtype, eps, n, w.cols, out, compute_),
               "add_rms_norm");
  }

  void gemm(const float* x, int64_t n, const Weight& w, const Weight* bias, float* out,
            bool accumulate) override {
    if (n == 0) return;
    begin_op();
    const int64_t m = w.rows, k = w.cols;
    LS_CHECK(m <= INT_MAX && k <= INT_MAX && n <= INT_MAX);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // Row-major out[n, m] = x[n, k] W[m, k]^T is column-major out^T = W^T(op T) * x^T.
    if (w.dtype == DType::kF32) {
      check_cublas(
          cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                      static_cast<int>(k), &alpha, static_cast<const float*>(w.data),
                      static_cast<int>(k), x, static_cast<int>(k), &beta, out, static_cast<int>(m)),
          "cublasSgemm");
    } else if (n <= skinny_max_rows_ && cuda::skinny_gemm_fits(x, n, k, w.data, w.dtype)) {
      const bool has_bias = bias && !bias->empty();
      check_cuda(cuda::skinny_gemm(x, n, k, w.data, w.dtype, m, has_bias ? bias->data : nullptr,
                                   has_bias ? bias->dtype : DType::kF32, accumulate, out, compute_),
                 "gemm: skinny");
      return;
    } else if (decode_gemm_takes(x, n, w)) {
      const cuda::DecodeGemmOut o = gemm_out(m, out, bias);
      decode_gemm(x, n, w, &o, 1, accumulate);
      return;
    } else if (bf16_act_) {
      const Buffer xh = round_x(x, n, w, false);
      half_gemm(xh.data, n, w, 0, m, out, accumulate ? 1.0f : 0.0f);
    } else {
      // out = y[hi] + y[lo] (+ bias) (+ out) over split_gemm's 2n rows.
      const Buffer y2 = split_gemm(x, n, w);
      const bool has_bias = bias && !bias->empty();
      check_cuda(
          cuda::combine_split(y2.as<float>(), n, m, has_bias ? bias->data : nullptr,
                              has_bias ? bias->dtype : DType::kF32, accumulate, out, compute_),
          "gemm: combine");
      return;
    }
    if (bias && !bias->empty())
      check_cuda(cuda::add_bias(out, n, m, bias->data, bias->dtype, compute_), "gemm: bias");
  }

  // Stacked bf16/f16 weights as one GEMM: the decode GEMM for its rows, else one split, one
  // cuBLAS GEMM over all the rows and one combine into the parts. The parts' decode LoRA
  // (per-token kernels) runs beside the GEMM on the side stream into scratch that the combine
  // adds (lora_beside_gemm); otherwise lora_group runs after it. Anything else (f32 weights,
  // a single part without the side stream): the default, per part.
  void gemm_parts(const float* x, int64_t n, const Weight& w, const GemmPart* parts,
                  int32_t count) override {
    const int64_t m = gemm_parts_rows(w, parts, count), k = w.cols;
    if (n == 0) return;
    LoraModuleBatch mods[kMaxGemmParts];
    float* v[kMaxGemmParts];
    float* y[kMaxGemmParts];
    const int32_t nl = gemm_parts_lora(parts, count, mods, v, y);
    const bool half = w.dtype == DType::kBF16 || w.dtype == DType::kF16;
    const bool fits =
        half && n > skinny_max_rows_ && m <= INT_MAX && k <= INT_MAX && 2 * n <= INT_MAX;
    const bool decode = fits && decode_gemm_takes(x, n, w);
    if (fits && bf16_act_ && !decode && n >= kDirectPartRows) {
      // Large bf16 GEMMs: x rounded once, one GEMM per part straight into its output.
      begin_op();
      const Buffer xh = round_x(x, n, w, false);
      int64_t first = 0;
      for (int32_t i = 0; i < count; ++i) {
        half_gemm(xh.data, n, w, first, parts[i].rows, parts[i].out, 0.0f);
        first += parts[i].rows;
        const Weight* b = parts[i].bias;
        if (b && !b->empty())
          check_cuda(cuda::add_bias(parts[i].out, n, parts[i].rows, b->data, b->dtype, compute_),
                     "gemm_parts: bias");
      }
      if (nl > 0) lora_group(x, n, mods, nl, v, y);
      return;
    }
    bool beside = nl > 0 && lora_beside_ && fits;
    for (int32_t i = 0; i < nl; ++i)
      beside = beside && !by_segment(n, mods[i]) && mods[i].dtype == mods[0].dtype &&
               mods[i].num_slots > 0;
    if (!fits || (count == 1 && !beside)) {
      Backend::gemm_parts(x, n, w, parts, count);
      return;
    }
    begin_op();
    cuda::DecodeGemmOut outs[kMaxGemmParts], adds[kMaxGemmParts];
    for (int32_t i = 0; i < count; ++i)
      outs[i] = gemm_out(parts[i].rows, parts[i].out, parts[i].bias);
    Buffer z;  // beside: the LoRA terms [n, rows] of each part that has one (written, not added)
    if (beside) {
      int64_t z_floats = 0;
      for (int32_t i = 0; i < nl; ++i) z_floats += n * mods[i].out_dim;
      z = alloc(static_cast<size_t>(z_floats) * sizeof(float));
      float* zs[kMaxGemmParts];
      int64_t at = 0;
      for (int32_t i = 0, j = 0; i < count; ++i) {
        if (!parts[i].lora) continue;
        zs[j] = z.as<float>() + at;
        outs[i].add = zs[j];
        adds[j] = outs[i];
        adds[j++].bias = nullptr;
        at += n * parts[i].rows;
      }
      check_cuda(cudaEventRecord(fork_, compute_), "gemm_parts: fork");
      check_cuda(cudaStreamWaitEvent(side_, fork_, 0), "gemm_parts: side waits");
      check_cuda(cuda::lora_group(x, n, mods, nl, v, zs, true, side_), "gemm_parts: LoRA");
      check_cuda(cudaEventRecord(join_, side_), "gemm_parts: join");
    }
    Buffer y2;
    if (decode)
      decode_gemm(x, n, w, outs, count, false);  // ignores outs[i].add
    else
      y2 = split_gemm(x, n, w, !bf16_act_);
    if (beside) check_cuda(cudaStreamWaitEvent(compute_, join_, 0), "gemm_parts: wait for LoRA");
    if (!decode)
      check_cuda(cuda::combine_split_parts(y2.as<float>(), n, outs, count, compute_, !bf16_act_),
                 "gemm_parts: combine");
    else if (beside)
      check_cuda(cuda::combine_split_parts(nullptr, n, adds, nl, compute_), "gemm_parts: add LoRA");
    if (nl > 0 && !beside) lora_group(x, n, mods, nl, v, y);
  }

  void rope(float* q, float* k, const RopeParams& p, const int32_t* positions, int64_t n) override {
    begin_op();
    check_cuda(cuda::rope(q, k, p, positions, n, compute_), "rope");
  }

  void kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                const LayerKv& kv) override {
    begin_op();
    check_cuda(cuda::kv_write(k, v, slot_mapping, n, kv, compute_), "kv_write");
  }

  void attention(const float* q, const AttentionBatch& batch, const LayerKv& kv,
                 float* out) override {
    if (batch.num_tokens == 0) return;
    begin_op();
    const bool flash = flash_runs(q, batch, kv, out);
    const bool gemm_runs = flash || runs_as_gemms(batch);
    if (flash)
      flash_attention(q, batch, kv, out);
    else if (gemm_runs)
      cuda::attention_runs(*this, cublas_, compute_, q, batch, kv, out);
    const int splits = cuda::attention_splits(cuda::attention_token_rows(batch), sm_count_);
    const size_t scratch_floats = cuda::attention_scratch_floats(batch, splits);
    Buffer scratch;
    if (scratch_floats) scratch = alloc(scratch_floats * sizeof(float));
    check_cuda(
        cuda::attention(q, batch, kv, out, splits, scratch.as<float>(), !gemm_runs, compute_),
        "attention");
  }

  void silu_mul(const float* gate, const float* up, int64_t n, int64_t inter, float* out) override {
    begin_op();
    check_cuda(cuda::silu_mul(gate, up, n * inter, out, compute_), "silu_mul");
  }

  void lora_shrink(const float* x, int64_t n, const LoraModuleBatch& lora, float* v) override {
    begin_op();
    const bool seg = by_segment(n, lora);
    const size_t scratch_floats = seg ? cuda::lora_shrink_scratch_floats(n, lora) : 0;
    Buffer scratch;
    if (scratch_floats > 0) scratch = alloc(scratch_floats * sizeof(float));
    check_cuda(cuda::lora_shrink(x, n, lora, v, seg, scratch.as<float>(), scratch_floats, compute_,
                                 bf16_act_),
               "lora_shrink");
  }

  void lora_expand(const float* v, int64_t n, const LoraModuleBatch& lora, float* y) override {
    begin_op();
    check_cuda(cuda::lora_expand(v, n, lora, y, by_segment(n, lora), compute_, bf16_act_),
               "lora_expand");
  }

  void lora_group(const float* x, int64_t n, const LoraModuleBatch* mods, int32_t count,
                  float* const* v, float* const* y) override {
    LS_CHECK_MSG(count >= 0 && count <= kMaxLoraGroup, "lora_group: too many modules");
    bool fused = count > 1;
    for (int32_t i = 0; i < count; ++i) fused = fused && !by_segment(n, mods[i]);
    if (!fused) {  // prefill (segment tiles) or a single module: one module at a time
      Backend::lora_group(x, n, mods, count, v, y);
      return;
    }
    begin_op();
    check_cuda(cuda::lora_group(x, n, mods, count, v, y, false, compute_), "lora_group");
  }

  void compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b, float* y) override {
    begin_op();
    check_cuda(cuda::compressed_lora(x, n, b, y, compute_), "compressed_lora");
  }

  void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) override {
    begin_op();
    check_cuda(cuda::log_softmax(logits, rows, vocab, out, compute_), "log_softmax");
  }

  void apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p) override {
    begin_op();
    check_cuda(cuda::apply_penalties(logits, vocab, p, compute_), "apply_penalties");
  }

  void top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k, int32_t* ids,
                    float* logprobs) override {
    LS_CHECK(k >= 1 && k <= kMaxTopLogprobs && k <= vocab);
    begin_op();
    check_cuda(cuda::top_logprobs(logits, rows, vocab, k, ids, logprobs, compute_), "top_logprobs");
  }

  void sample(const float* logits, int64_t rows, int64_t vocab, const SampleParams* params,
              int32_t* tokens, float* logprobs) override {
    if (rows == 0) return;
    begin_op();
    Buffer lse = alloc(static_cast<size_t>(rows) * sizeof(double));
    check_cuda(cuda::argmax_lse(logits, rows, vocab, tokens, lse.as<double>(), compute_),
               "sample: argmax");
    // Params live on the device; the host needs to know whether any row samples at all (the
    // sort is skipped for all-greedy batches).
    std::vector<SampleParams> host(static_cast<size_t>(rows));
    download(host.data(), params, host.size() * sizeof(SampleParams));
    bool any = false;
    for (const SampleParams& p : host) any = any || p.temperature > 0.0f;
    if (any) {
      const size_t bytes = cuda::sample_scratch_bytes(rows, vocab);
      Buffer scratch = alloc(bytes);
      check_cuda(
          cuda::sample_sorted(logits, rows, vocab, params, tokens, scratch.data, bytes, compute_),
          "sample: sorted");
    }
    check_cuda(
        cuda::token_logprobs(logits, rows, vocab, tokens, lse.as<double>(), logprobs, compute_),
        "sample: logprobs");
  }

  // ---- graphs ----
  bool supports_graphs() const override { return graphs_; }

  void begin_capture() override {
    LS_CHECK_MSG(graphs_ && !capturing_, "begin_capture: graphs off or already capturing");
    begin_op();
    capture_lock_ = std::unique_lock<std::mutex>(copy_mu_);  // loader uploads wait (see top)
    allocator_->set_private(true);
    check_cuda(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeRelaxed), "begin capture");
    capturing_ = true;
  }

  Graph end_capture() override {
    LS_CHECK_MSG(capturing_, "end_capture without begin_capture");
    set_device();
    cudaGraph_t graph = nullptr;
    cudaError_t err = cudaStreamEndCapture(compute_, &graph);
    capturing_ = false;
    allocator_->set_private(false);
    capture_lock_.unlock();
    cudaGraphExec_t exec = nullptr;
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      std::fprintf(stderr, "loraserve: CUDA graph capture failed (%s); running without graphs\n",
                   cudaGetErrorString(err));
      return nullptr;
    }
    const int device = device_;
    return Graph(exec, [device](void* e) {
      cudaSetDevice(device);
      cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(e));
    });
  }

  void replay(const Graph& graph) override {
    LS_CHECK(graph && !capturing_);
    begin_op();
    check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), compute_),
               "cudaGraphLaunch");
  }

 private:
  explicit CudaBackend(const CudaBackendOptions& o)
      : device_(o.device),
        graphs_(o.graphs),
        skinny_max_rows_(std::clamp<int64_t>(o.skinny_gemm_max_rows, 0, cuda::kSkinnyMaxRows)),
        decode_gemm_max_rows_(
            std::clamp<int64_t>(o.decode_gemm_max_rows, 0, cuda::kDecodeGemmMaxRows)),
        lora_beside_(o.lora_beside_gemm),
        bf16_act_(o.bf16_activations) {
    set_device();
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    sm_count_ = prop.multiProcessorCount;
    cuda::set_pdl_enabled(o.pdl && prop.major >= 9);
    check_cuda(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking), "stream");
    check_cuda(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking), "stream");
    check_cuda(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming), "event");
    check_cuda(cudaEventCreateWithFlags(&copy_done_, cudaEventDisableTiming), "event");
    // The side stream at the highest priority: its short LoRA kernels take SMs as the GEMM's
    // blocks free them, so the join waits as little as possible.
    int least = 0, greatest = 0;
    check_cuda(cudaDeviceGetStreamPriorityRange(&least, &greatest), "stream priorities");
    check_cuda(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatest), "stream");
    check_cuda(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming), "event");
    check_cuda(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming), "event");
    check_cublas(cublasCreate(&cublas_), "cublasCreate");
    check_cublas(cublasSetStream(cublas_, compute_), "cublasSetStream");
    // fp32 GEMMs stay fp32 (no TF32): f32 weights are the accuracy reference path.
    check_cublas(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    // A fixed workspace (32 MiB, NVIDIA's figure for Hopper), so GEMMs capture into graphs
    // without cuBLAS allocating.
    check_cuda(cudaMalloc(&cublas_workspace_, kCublasWorkspace), "cuBLAS workspace");
    check_cublas(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace),
                 "cublasSetWorkspace");
    // The decode GEMM's split counters: zero now, and every launch leaves them zero.
    check_cuda(cudaMalloc(&decode_counters_, kDecodeCounters * sizeof(unsigned)),
               "decode GEMM counters");
    check_cuda(cudaMemset(decode_counters_, 0, kDecodeCounters * sizeof(unsigned)),
               "decode GEMM counters");
    allocator_ = std::make_shared<cuda::CudaAllocator>();
    compute_ring_ = std::make_unique<cuda::StagingRing>(o.staging_bytes, 4);
    copy_ring_ = std::make_unique<cuda::StagingRing>(o.staging_bytes, 4);
    scatter_ = std::make_unique<cuda::ScatterUploader>(kScatterBlock, kScatterBlocks);
  }

  void set_device() const { check_cuda(cudaSetDevice(device_), "cudaSetDevice"); }

  // Whether x[n, w.cols] W^T goes to the tensor-core decode GEMM (more rows than the skinny
  // kernel takes, at most decode_gemm_max_rows_, and shapes it takes).
  bool decode_gemm_takes(const float* x, int64_t n, const Weight& w) const {
    return n > skinny_max_rows_ && n <= decode_gemm_max_rows_ &&
           cuda::decode_gemm_fits(x, n, w.cols, w.data, w.dtype, w.rows) &&
           cuda::decode_gemm_counters(w.rows) <= kDecodeCounters;
  }

  static cuda::DecodeGemmOut gemm_out(int64_t rows, float* y, const Weight* bias) {
    const bool has_bias = bias && !bias->empty();
    cuda::DecodeGemmOut o;
    o.rows = rows;
    o.y = y;
    o.bias = has_bias ? bias->data : nullptr;
    o.bias_dtype = has_bias ? bias->dtype : DType::kF32;
    return o;
  }

  // fp32 activations against bf16/f16 weights: x = hi + lo, both in the weight type, as 2n rows
  // of one GEMM (the weights are read once; tensor-core products are exact and accumulate in
  // fp32). Returns y2 [2n, w.rows]: the hi rows' results, then the lo rows'. Rounding x itself to
  // bf16 moved the golden fixtures' log-probs by up to 0.3 and broke batch invariance; lo false
  // (bf16_activations) does just that: y [n, w.rows].
  Buffer split_gemm(const float* x, int64_t n, const Weight& w, bool lo = true) {
    const int64_t rows = lo ? 2 * n : n;
    const Buffer xs = round_x(x, n, w, lo);
    Buffer y2 = alloc(static_cast<size_t>(rows * w.rows) * sizeof(float));
    half_gemm(xs.data, rows, w, 0, w.rows, y2.as<float>(), 0.0f);
    return y2;
  }

  // x [n, k] as the weight type: hi rows, then lo rows when `lo` (split_f32).
  Buffer round_x(const float* x, int64_t n, const Weight& w, bool lo) {
    Buffer xs = alloc(static_cast<size_t>((lo ? 2 : 1) * n * w.cols) * 2);
    check_cuda(cuda::split_f32(x, n * w.cols, w.dtype, xs.data, compute_, lo), "gemm: round x");
    return xs;
  }

  // y [rows, m] = xh [rows, k] W[first .. first + m)^T + beta y, xh and W in the weight type,
  // fp32 accumulation and output.
  void half_gemm(const void* xh, int64_t rows, const Weight& w, int64_t first, int64_t m, float* y,
                 float beta) {
    const int64_t k = w.cols;
    LS_CHECK(m <= INT_MAX && k <= INT_MAX && rows <= INT_MAX);
    const void* wp = static_cast<const char*>(w.data) + first * k * dtype_size(w.dtype);
    const float one = 1.0f;
    check_cublas(
        cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(rows),
                     static_cast<int>(k), &one, wp, cuda_type(w.dtype), static_cast<int>(k), xh,
                     cuda_type(w.dtype), static_cast<int>(k), &beta, y, CUDA_R_32F,
                     static_cast<int>(m), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  }

  void decode_gemm(const float* x, int64_t n, const Weight& w, const cuda::DecodeGemmOut* outs,
                   int32_t count, bool accumulate) {
    const cuda::DecodeGemmPlan plan = cuda::decode_gemm_plan(w.rows, w.cols, sm_count_);
    const size_t scratch_floats = cuda::decode_gemm_scratch_floats(n, w.rows, plan);
    Buffer scratch;
    if (scratch_floats > 0) scratch = alloc(scratch_floats * sizeof(float));
    check_cuda(cuda::decode_gemm(x, n, w.cols, w.data, w.dtype, outs, count, accumulate, plan,
                                 scratch.as<float>(), scratch_floats, decode_counters_,
                                 kDecodeCounters, compute_),
               "gemm: decode");
  }

  // Ops mark their thread as the compute thread: its uploads are ordered on the compute
  // stream; uploads from other threads take the copy stream (see the file comment).
  void begin_op() {
    set_device();
    op_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }

  // Long prefill runs go through cuBLAS (attention_runs) when the batch's runs average at least
  // kMinGemmRun tokens; shorter ones (chunks of a few tokens) stay with the tile kernel, whose
  // one launch covers every tile (the GEMM path launches ~3 kernels per run and chunk).
  static constexpr int64_t kMinGemmRun = 64;
  bool runs_as_gemms(const AttentionBatch& b) const {
    if (b.num_runs <= 0 || !b.runs || b.num_tiles <= 0 || capturing_) return false;
    if (b.num_kv_heads <= 0 || b.head_dim <= 0 || b.num_q_heads % b.num_kv_heads != 0) return false;
    int64_t tokens = 0;
    for (int32_t i = 0; i < b.num_runs; ++i) tokens += b.runs[i].count;
    return tokens >= kMinGemmRun * b.num_runs;
  }

  // bf16_activations over a bf16 cache: every run (the tiled tokens) through the bf16 flash
  // kernel, in blocks of up to flash_attention_block_rows() rows (uploaded: prefill forwards
  // are not captured).
  bool flash_runs(const float* q, const AttentionBatch& b, const LayerKv& kv,
                  const float* out) const {
    return bf16_act_ && !capturing_ && b.num_runs > 0 && b.runs && b.num_tiles > 0 &&
           cuda::flash_attention_fits(q, b, kv, out);
  }
  void flash_attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out) {
    const int32_t rows = cuda::flash_attention_block_rows();
    std::vector<int32_t> blocks;
    for (int32_t r = 0; r < b.num_runs; ++r)
      for (int32_t i = 0; i < b.runs[r].count; i += rows) {
        blocks.push_back(b.runs[r].first + i);
        blocks.push_back(std::min(rows, b.runs[r].count - i));
      }
    // Every layer of a forward passes the same runs: the block list is uploaded once.
    if (blocks != flash_blocks_ || !flash_blocks_dev_.data) {
      const size_t bytes = blocks.size() * sizeof(int32_t);
      flash_blocks_dev_ = alloc(bytes);
      upload(flash_blocks_dev_.data, blocks.data(), bytes);
      flash_blocks_ = std::move(blocks);
    }
    check_cuda(cuda::flash_attention(q, b, kv, flash_blocks_dev_.as<int32_t>(),
                                     static_cast<int32_t>(flash_blocks_.size() / 2), out, compute_),
               "attention: flash");
  }

  // Prefill-like batches (runs of 4+ tokens per slot on average) use the segment kernels.
  static bool by_segment(int64_t n, const LoraModuleBatch& l) {
    return l.num_segments > 0 && l.seg_start && l.seg_slot && n >= 4ll * l.num_segments &&
           (n + 15) / 16 <= 65535;
  }

  // bf16_activations: stacked GEMMs of at least this many rows run one GEMM per part into the
  // parts' outputs (no [n, rows] scratch and combine pass); below it, prefill-sized GEMMs are
  // efficient per part too, while decode batches gain from the stacked GEMM.
  static constexpr int64_t kDirectPartRows = 512;
  static constexpr size_t kCublasWorkspace = 32u << 20;
  int device_ = 0;
  bool graphs_ = true;
  int64_t skinny_max_rows_ = 0;
  int64_t decode_gemm_max_rows_ = 0;
  bool capturing_ = false;
  void* cublas_workspace_ = nullptr;
  // Counters of the decode GEMM's split reduction, one per row tile (GEMMs run in stream order,
  // so one set serves them all): m up to 32 x kDecodeCounters rows.
  static constexpr int64_t kDecodeCounters = 1 << 14;
  unsigned* decode_counters_ = nullptr;
  int sm_count_ = 0;
  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  cudaEvent_t compute_mark_ = nullptr, copy_done_ = nullptr;
  // The side stream: decode LoRA beside the base GEMM (gemm_parts), forked from and joined back
  // into the compute stream with fork_ / join_, so it is ordered like any other op (and
  // captured into the same graph).
  bool lora_beside_ = true;
  bool bf16_act_ = false;  // CudaBackendOptions::bf16_activations
  // The flash kernel's last block list and its device copy (reused while the runs repeat).
  std::vector<int32_t> flash_blocks_;
  Buffer flash_blocks_dev_;
  cudaStream_t side_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<cuda::CudaAllocator> allocator_;
  std::unique_ptr<cuda::StagingRing> compute_ring_, copy_ring_;
  // Pinned and device blocks of the scatter uploader: a rank-16 q,k,v,o 7B adapter (32 MiB in
  // bf16) goes over without waiting for a block.
  static constexpr size_t kScatterBlock = 16u << 20;
  static constexpr int kScatterBlocks = 4;
  std::unique_ptr<cuda::ScatterUploader> scatter_;
  std::mutex scatter_mu_;  // one upload_scatter off the op thread at a time
  std::atomic<std::thread::id> op_thread_{};
  std::mutex copy_mu_;
  std::unique_lock<std::mutex> capture_lock_;  // copy_mu_, held from begin to end of a capture
};

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaBackendOptions& options) {
  LS_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CudaBackend::create(options));
  return std::unique_ptr<Backend>(std::move(b));
}

Result<CudaMemoryInfo> cuda_memory_info(Backend& backend) {
  auto* cb = dynamic_cast<CudaBackend*>(&backend);
  if (!cb) return invalid_argument("backend '" + std::string(backend.name()) + "' is not CUDA");
  return cb->memory_info();
}

Result<Weight> cuda_random_weight(Backend& backend, DType dtype, int64_t rows, int64_t cols,
                                  uint64_t seed, float scale, float offset) {
  auto* cb = dynamic_cast<CudaBackend*>(&backend);
  if (!cb) return invalid_argument("backend '" + std::string(backend.name()) + "' is not CUDA");
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16)
    return invalid_argument("random weights must be f32, bf16 or f16");
  if (rows < 1 || cols < 1) return invalid_argument("random weight needs rows, cols >= 1");
  return cb->random_weight(dtype, rows, cols, seed, scale, offset);
}

Result<int64_t> cuda_pool_bytes(Backend& backend, double utilization, size_t workspace_bytes) {
  if (!(utilization > 0.0 && utilization <= 1.0))
    return invalid_argument("--gpu-memory-utilization must be in (0, 1]");
  LS_ASSIGN_OR_RETURN(CudaMemoryInfo m, cuda_memory_info(backend));
  const double used = static_cast<double>(m.total - m.free);
  const double pool =
      utilization * static_cast<double>(m.total) - used - static_cast<double>(workspace_bytes);
  const auto gib = [](double b) { return std::to_string(b / (1ull << 30)).substr(0, 5) + " GiB"; };
  if (pool < static_cast<double>(64ull << 20))
    return resource_exhausted("GPU memory: " + gib(utilization * static_cast<double>(m.total)) +
                              " allowed, " + gib(used) + " in use (weights), " +
                              gib(static_cast<double>(workspace_bytes)) +
                              " workspace: no room for the page pool; raise "
                              "--gpu-memory-utilization");
  return static_cast<int64_t>(pool);
}

}  // namespace ls
