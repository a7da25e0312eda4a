// Caching device allocator and pinned staging ring (see cuda_allocator.h).
#include "backend/cuda/cuda_allocator.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace ls::cuda {

CudaAllocator::~CudaAllocator() {
  empty_cache();
  for (auto& [q, s] : private_blocks_)
    if (!live_.count(q)) cudaFree(q);
  // Blocks still live belong to Buffers that outlive the backend; they are leaked on purpose
  // (freeing them under their owners would be worse).
}

size_t CudaAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (1u << 20)) return (bytes + 511) / 512 * 512;  // small: 512-byte classes
  return (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);  // large: 2 MiB classes
}

void* CudaAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  std::multimap<size_t, void*>& pool = private_ ? private_free_ : free_;
  auto it = pool.lower_bound(size);
  // Reuse a cached block of this size, or a larger one wasting at most a quarter.
  if (it != pool.end() && it->first <= size + size / 4) {
    void* p = it->second;
    const size_t got = it->first;
    pool.erase(it);
    if (!private_) cached_ -= got;
    live_[p] = got;
    in_use_ += got;
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the (non-sticky) allocation error
    for (auto& [s, q] : free_) cudaFree(q);
    free_.clear();
    cached_ = 0;
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  live_[p] = size;
  in_use_ += size;
  if (private_) {
    private_blocks_[p] = size;
    private_bytes_ += size;
  }
  return p;
}

void CudaAllocator::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  LS_CHECK_MSG(it != live_.end(), "release of a block this allocator does not own");
  if (private_blocks_.count(p)) {
    private_free_.emplace(it->second, p);
  } else {
    free_.emplace(it->second, p);
    cached_ += it->second;
  }
  in_use_ -= it->second;
  live_.erase(it);
}

void CudaAllocator::set_private(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  private_ = on;
}

size_t CudaAllocator::bytes_private() const {
  std::lock_guard<std::mutex> lock(mu_);
  return private_bytes_;
}

void CudaAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [s, q] : free_) cudaFree(q);
  free_.clear();
  cached_ = 0;
}

size_t CudaAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

size_t CudaAllocator::bytes_cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}

StagingRing::StagingRing(size_t bytes, int blocks) {
  LS_CHECK(blocks >= 2 && bytes >= static_cast<size_t>(blocks) * 4096);
  block_bytes_ = bytes / static_cast<size_t>(blocks);
  blocks_.resize(static_cast<size_t>(blocks));
  for (Block& b : blocks_) {
    void* p = nullptr;
    LS_CHECK_MSG(cudaMallocHost(&p, block_bytes_) == cudaSuccess, "cudaMallocHost failed");
    b.data = static_cast<char*>(p);
    LS_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming) == cudaSuccess);
  }
}

StagingRing::~StagingRing() {
  for (Block& b : blocks_) {
    if (b.done) {
      cudaEventSynchronize(b.done);
      cudaEventDestroy(b.done);
    }
    if (b.data) cudaFreeHost(b.data);
  }
}

cudaError_t StagingRing::upload(void* dst, const void* host_src, size_t bytes,
                                cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  const char* src = static_cast<const char*>(host_src);
  char* out = static_cast<char*>(dst);
  while (bytes > 0) {
    Block* b = &blocks_[current_];
    if (b->used == block_bytes_) {
      // Move to the next block; wait until the DMA out of its previous use is done.
      current_ = (current_ + 1) % blocks_.size();
      b = &blocks_[current_];
      cudaError_t err = cudaEventSynchronize(b->done);
      if (err != cudaSuccess) return err;
      b->used = 0;
    }
    const size_t n = std::min(bytes, block_bytes_ - b->used);
    std::memcpy(b->data + b->used, src, n);
    cudaError_t err = cudaMemcpyAsync(out, b->data + b->used, n, cudaMemcpyHostToDevice, stream);
    if (err != cudaSuccess) return err;
    err = cudaEventRecord(b->done, stream);
    if (err != cudaSuccess) return err;
    b->used = (b->used + n + 255) / 256 * 256;
    if (b->used > block_bytes_) b->used = block_bytes_;
    src += n;
    out += n;
    bytes -= n;
  }
  return cudaSuccess;
}

}  // namespace ls::cuda
