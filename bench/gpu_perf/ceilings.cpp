// Section "copy" (issue 7, the ceilings every floor divides by): a device-to-device
// cudaMemcpy of a large buffer (best of N, counted as read + write bytes, as CUDA's
// bandwidthTest does) and a large cuBLAS bf16 GEMM (n^3, fp32 accumulation), both timed with
// CUDA events on a stream of our own. Also the device's properties and theoretical DRAM
// bandwidth. On --device cpu: memcpy and the backend's GEMM, so the harness runs anywhere.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstring>

#include "base/rng.h"
#include "gpu_perf/perf_common.h"
#include "gpu_perf/sections.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls::perf {

namespace {

void ck(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw std::runtime_error(what + ": " + cudaGetErrorString(e));
}
void ck(cublasStatus_t s, const std::string& what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(what + ": " + cublasGetStatusString(s));
}

// A stream and two timing events of our own (the backend's stream is private).
struct EventTimer {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  EventTimer() {
    ck(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    ck(cudaEventCreate(&start), "cudaEventCreate");
    ck(cudaEventCreate(&stop), "cudaEventCreate");
  }
  ~EventTimer() {
    if (stream) cudaStreamSynchronize(stream);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  // Seconds `work` (enqueued on `stream`) took on the device.
  template <typename F>
  double time(F&& work, const std::string& what) {
    ck(cudaEventRecord(start, stream), what + ": cudaEventRecord");
    work();
    ck(cudaEventRecord(stop, stream), what + ": cudaEventRecord");
    ck(cudaEventSynchronize(stop), what + ": cudaEventSynchronize");
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, start, stop), what + ": cudaEventElapsedTime");
    return ms * 1e-3;
  }
};

Json device_properties(double* theoretical_gbps) {
  int dev = 0;
  ck(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  ck(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  int mem_khz = 0, bus_bits = 0, sm_khz = 0, driver = 0, runtime = 0;
  ck(cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev), "memory clock");
  ck(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev), "bus width");
  ck(cudaDeviceGetAttribute(&sm_khz, cudaDevAttrClockRate, dev), "SM clock");
  ck(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  ck(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
  // Double data rate: two transfers per memory clock over the whole bus.
  *theoretical_gbps = 2.0 * mem_khz * 1e3 * (bus_bits / 8.0) / 1e9;
  return {{"name", p.name},
          {"total_memory_bytes", p.totalGlobalMem},
          {"sm_count", p.multiProcessorCount},
          {"compute_capability", strf("%d.%d", p.major, p.minor)},
          {"sm_clock_mhz", sm_khz / 1000},
          {"memory_clock_mhz", mem_khz / 1000},
          {"memory_bus_bits", bus_bits},
          {"theoretical_dram_gbps", *theoretical_gbps},
          {"l2_bytes", p.l2CacheSize},
          {"cuda_driver_version", driver},
          {"cuda_runtime_version", runtime}};
}

Json copy_cuda(Rig& rig, int64_t bytes, int reps) {
  Buffer src = rig.be->alloc(static_cast<size_t>(bytes));
  Buffer dst = rig.be->alloc(static_cast<size_t>(bytes));
  rig.be->fill_zero(src.data, static_cast<size_t>(bytes));
  rig.sync();
  EventTimer timer;
  std::vector<double> t;
  for (int i = 0; i < reps + 1; ++i) {
    const double s = timer.time(
        [&] {
          ck(cudaMemcpyAsync(dst.data, src.data, static_cast<size_t>(bytes),
                             cudaMemcpyDeviceToDevice, timer.stream),
             "cudaMemcpyAsync device to device");
        },
        "copy");
    if (i > 0) t.push_back(s);  // the first is a warm-up
  }
  const Timing tm = summarize_times(t);
  return {{"bytes", bytes},
          {"reps", reps},
          {"best_ms", tm.min_s * 1e3},
          {"median_ms", tm.median_s * 1e3},
          {"gbps_best", 2.0 * static_cast<double>(bytes) / tm.min_s / 1e9},
          {"gbps_median", 2.0 * static_cast<double>(bytes) / tm.median_s / 1e9}};
}

// C = A B on bf16 tensor cores with fp32 accumulation; `fp32_out` with A transposed (the
// layout and output type the backend's GEMMs use) instead of plain NN with bf16 output.
Json gemm_cuda(Rig& rig, int n, int reps, bool fp32_out) {
#ifdef LORASERVE_HAS_CUDA
  Weight a = must(cuda_random_weight(*rig.be, DType::kBF16, n, n, 11, 1.0f, 0.0f), "GEMM A");
  Weight b = must(cuda_random_weight(*rig.be, DType::kBF16, n, n, 12, 1.0f, 0.0f), "GEMM B");
  Buffer c = rig.be->alloc(static_cast<size_t>(n) * n * (fp32_out ? 4 : 2));
  rig.sync();
  EventTimer timer;
  cublasHandle_t h = nullptr;
  ck(cublasCreate(&h), "cublasCreate");
  std::unique_ptr<cublasContext, void (*)(cublasHandle_t)> guard(
      h, [](cublasHandle_t x) { cublasDestroy(x); });
  ck(cublasSetStream(h, timer.stream), "cublasSetStream");
  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&] {
    ck(cublasGemmEx(h, fp32_out ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.data,
                    CUDA_R_16BF, n, b.data, CUDA_R_16BF, n, &beta, c.data,
                    fp32_out ? CUDA_R_32F : CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT),
       "cublasGemmEx bf16");
  };
  std::vector<double> t;
  for (int i = 0; i < reps + 2; ++i) {
    const double s = timer.time(run, "GEMM");
    if (i >= 2) t.push_back(s);
  }
  int version = 0;
  ck(cublasGetVersion(h, &version), "cublasGetVersion");
  const Timing tm = summarize_times(t);
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  return {{"what", fp32_out ? "cublasGemmEx bf16 x bf16 -> fp32, A transposed (backend layout)"
                            : "cublasGemmEx bf16 x bf16 -> bf16, NN"},
          {"n", n},
          {"reps", reps},
          {"best_ms", tm.min_s * 1e3},
          {"median_ms", tm.median_s * 1e3},
          {"tflops_best", flops / tm.min_s / 1e12},
          {"tflops_median", flops / tm.median_s / 1e12},
          {"cublas_version", version}};
#else
  (void)rig, (void)n, (void)reps, (void)fp32_out;
  throw std::runtime_error("no CUDA in this build");
#endif
}

Json copy_host(int64_t bytes, int reps) {
  std::vector<char> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes), 0);
  std::vector<double> t;
  for (int i = 0; i < reps + 1; ++i) {
    const int64_t t0 = now_ns();
    std::memcpy(dst.data(), src.data(), src.size());
    if (i > 0) t.push_back(seconds_since(t0));
  }
  const Timing tm = summarize_times(t);
  return {{"bytes", bytes},
          {"reps", reps},
          {"best_ms", tm.min_s * 1e3},
          {"median_ms", tm.median_s * 1e3},
          {"gbps_best", 2.0 * static_cast<double>(bytes) / tm.min_s / 1e9},
          {"gbps_median", 2.0 * static_cast<double>(bytes) / tm.median_s / 1e9}};
}

// The backend's own GEMM (fp32 activations x bf16 weights): the CPU stand-in for cuBLAS.
Json gemm_backend(Rig& rig, int n, int reps) {
  std::vector<uint16_t> w(static_cast<size_t>(n) * n);
  std::vector<float> x(static_cast<size_t>(n) * n);
  Rng rng(3);
  for (auto& v : w) v = f32_to_bf16(static_cast<float>(rng.uniform() - 0.5));
  for (auto& v : x) v = static_cast<float>(rng.uniform() - 0.5);
  Weight wt = rig.be->make_weight(DType::kBF16, w.data(), n, n);
  Buffer xb = upload_vec(*rig.be, x);
  Buffer out = rig.be->alloc(static_cast<size_t>(n) * n * 4);
  const Timing tm = time_op(
      rig, [&] { rig.be->gemm(xb.as<float>(), n, wt, nullptr, out.as<float>(), false); }, 1, 1,
      reps);
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  return {{"what", "Backend::gemm fp32 x bf16 (CPU backend)"},
          {"n", n},
          {"reps", reps},
          {"best_ms", tm.min_s * 1e3},
          {"median_ms", tm.median_s * 1e3},
          {"tflops_best", flops / tm.min_s / 1e12},
          {"tflops_median", flops / tm.median_s / 1e12}};
}

int64_t copy_bytes(const Ctx& ctx, const Rig& rig) {
  if (!rig.cuda) return 64ll << 20;
  return (ctx.f.quick ? std::min<int64_t>(ctx.f.copy_mib, 1024) : ctx.f.copy_mib) << 20;
}

int gemm_n(const Ctx& ctx, const Rig& rig) {
  return rig.cuda ? ctx.f.gemm_n : 256;
}

}  // namespace

SectionOut section_copy(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, false);
  const int reps = ctx.f.quick ? 3 : 10;
  double theoretical = 0;
  if (rig.cuda) out.data["device"] = device_properties(&theoretical);
  const int64_t bytes = copy_bytes(ctx, rig);
  std::string why = check_fits(rig, ctx, 2 * bytes, "the copy's two buffers");
  if (!why.empty()) throw std::runtime_error(why);
  Json copy = rig.cuda ? copy_cuda(rig, bytes, reps) : copy_host(bytes, reps);
  Json gemms = Json::array();
  const int n = gemm_n(ctx, rig);
  if (rig.cuda) {
    why = check_fits(rig, ctx, 8ll * n * n, "the GEMM's three matrices");
    if (!why.empty()) throw std::runtime_error(why);
    gemms.push_back(gemm_cuda(rig, n, reps, false));
    gemms.push_back(gemm_cuda(rig, n, reps, true));
  } else {
    gemms.push_back(gemm_backend(rig, n, reps));
  }
  ctx.ceil.copy_gbps = copy["gbps_best"].get<double>();
  ctx.ceil.gemm_tflops = 0;
  for (const auto& g : gemms)
    ctx.ceil.gemm_tflops = std::max(ctx.ceil.gemm_tflops, g["tflops_best"].get<double>());
  ctx.ceil.source = "section copy";
  Table t({"measurement", "size", "best", "median", "rate (best)"});
  t.row({rig.cuda ? "cudaMemcpy device to device" : "memcpy host to host", gib(bytes),
         strf("%.3f ms", copy["best_ms"].get<double>()),
         strf("%.3f ms", copy["median_ms"].get<double>()),
         strf("%.0f GB/s", ctx.ceil.copy_gbps) +
             (theoretical > 0
                  ? strf(" (%.0f%% of %.0f)", 100 * ctx.ceil.copy_gbps / theoretical, theoretical)
                  : "")});
  for (const auto& g : gemms)
    t.row({g["what"].get<std::string>(), strf("%d^3", g["n"].get<int>()),
           strf("%.3f ms", g["best_ms"].get<double>()),
           strf("%.3f ms", g["median_ms"].get<double>()),
           strf("%.1f TFLOP/s", g["tflops_best"].get<double>())});
  t.print("[1 copy] ceilings: copy bandwidth counts read + write (2 x bytes / time)");
  out.data["copy"] = copy;
  out.data["gemm"] = gemms;
  out.data["copy_gbps"] = ctx.ceil.copy_gbps;
  out.data["gemm_tflops"] = ctx.ceil.gemm_tflops;
  out.headline =
      strf("copy %.0f GB/s, bf16 GEMM %.1f TFLOP/s", ctx.ceil.copy_gbps, ctx.ceil.gemm_tflops);
  return out;
}

void ensure_ceilings(Ctx& ctx, Rig& rig, bool need_gemm) {
  if (ctx.ceil.copy_gbps <= 0) {
    const int64_t bytes = std::min<int64_t>(copy_bytes(ctx, rig), 1ll << 30);
    Json c = rig.cuda ? copy_cuda(rig, bytes, 3) : copy_host(bytes, 3);
    ctx.ceil.copy_gbps = c["gbps_best"].get<double>();
    ctx.ceil.source = "measured inside this section (section copy did not run)";
    std::printf("  copy bandwidth (measured here): %.0f GB/s\n", ctx.ceil.copy_gbps);
  }
  if (need_gemm && ctx.ceil.gemm_tflops <= 0) {
    Json g = rig.cuda ? gemm_cuda(rig, gemm_n(ctx, rig), 3, false)
                      : gemm_backend(rig, gemm_n(ctx, rig), 3);
    ctx.ceil.gemm_tflops = g["tflops_best"].get<double>();
    ctx.ceil.source = "measured inside this section (section copy did not run)";
    std::printf("  GEMM ceiling (measured here): %.1f TFLOP/s\n", ctx.ceil.gemm_tflops);
  }
}

}  // namespace ls::perf
