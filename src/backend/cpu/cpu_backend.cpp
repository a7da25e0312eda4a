// CPU memory (64-byte aligned host allocations) and the backend factory.
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "base/check.h"

namespace ls {

// One thread pool: OpenMP. OpenBLAS's own threads would spin against it on few cores.
CpuBackend::CpuBackend() {
  openblas_set_num_threads(1);
}

Buffer CpuBackend::alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw std::bad_alloc();
  Buffer b;
  b.data = p;
  b.bytes = bytes;
  b.owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return b;
}

void CpuBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::fill_zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

Weight CpuBackend::make_weight(DType dtype, const void* host_data, int64_t rows, int64_t cols) {
  LS_CHECK(rows >= 1 && cols >= 1);
  size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  Buffer b = alloc(count * sizeof(float));
  convert_to_f32(dtype, host_data, b.as<float>(), count);
  Weight w;
  w.data = b.data;
  w.dtype = DType::kF32;
  w.rows = rows;
  w.cols = cols;
  w.owner = b.owner;
  return w;
}

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace ls
