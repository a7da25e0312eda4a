// Caching device allocator and pinned staging ring (see cuda_allocator.h).
#include "backend/cuda/cuda_allocator.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "backend/cuda/cuda_ops.h"
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

namespace {

constexpr size_t kAlign = 16;           // each piece's data starts 16-byte aligned
constexpr size_t kMaxPiece = 1u << 20;  // larger pieces go in parts

size_t align_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

// Bytes the table of `count` descriptors takes at the head of a block.
size_t table_bytes(size_t count) {
  return align_up(count * sizeof(ScatterDesc), 256);
}

}  // namespace

ScatterUploader::ScatterUploader(size_t block_bytes, int blocks) : block_bytes_(block_bytes) {
  LS_CHECK(block_bytes >= 4 * kMaxPiece && blocks >= 2);
  blocks_.resize(static_cast<size_t>(blocks));
  pool_ = std::make_unique<ThreadPool>(
      std::clamp(static_cast<int>(std::thread::hardware_concurrency() / 2), 1, 8));
  LS_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) == cudaSuccess);
  for (Block& b : blocks_) {
    void* p = nullptr;
    LS_CHECK_MSG(cudaMallocHost(&p, block_bytes_) == cudaSuccess, "cudaMallocHost failed");
    b.host = static_cast<char*>(p);
    LS_CHECK_MSG(cudaMalloc(&p, block_bytes_) == cudaSuccess, "cudaMalloc (scatter block) failed");
    b.device = static_cast<char*>(p);
    LS_CHECK(cudaEventCreateWithFlags(&b.copied, cudaEventDisableTiming) == cudaSuccess);
  }
}

ScatterUploader::~ScatterUploader() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (Block& b : blocks_) {
    if (b.copied) cudaEventDestroy(b.copied);
    if (b.host) cudaFreeHost(b.host);
    if (b.device) cudaFree(b.device);
  }
  if (stream_) cudaStreamDestroy(stream_);
}

namespace {

// Bytes a piece takes in a staging block: its fp32 source when the device rounds it.
size_t staged_bytes(const UploadPiece& p) {
  return p.round_to_bf16 ? 2 * p.bytes : p.bytes;
}

}  // namespace

cudaError_t ScatterUploader::synchronize() {
  return cudaStreamSynchronize(stream_);
}

cudaError_t ScatterUploader::upload(const UploadPiece* pieces, size_t count) {
  cudaError_t err = cudaSuccess;
  std::vector<UploadPiece> batch;
  size_t data = 0;  // staged bytes of the batch (aligned)
  for (size_t i = 0; i < count; ++i) {
    LS_CHECK_MSG(!pieces[i].round_to_bf16 || pieces[i].bytes % 2 == 0,
                 "a bf16 upload piece has an odd byte count");
    for (size_t at = 0; at < pieces[i].bytes; at += kMaxPiece) {
      // A rounded piece's source holds two bytes of fp32 per stored byte.
      const size_t src_at = pieces[i].round_to_bf16 ? 2 * at : at;
      UploadPiece part{static_cast<char*>(pieces[i].dst) + at,
                       static_cast<const char*>(pieces[i].src) + src_at,
                       std::min(kMaxPiece, pieces[i].bytes - at), pieces[i].round_to_bf16};
      const size_t grown = data + align_up(staged_bytes(part), kAlign);
      if (!batch.empty() && table_bytes(batch.size() + 1) + grown > block_bytes_) {
        err = flush(blocks_[next_], batch, data);
        if (err != cudaSuccess) return err;
        next_ = (next_ + 1) % blocks_.size();
        batch.clear();
        data = 0;
      }
      batch.push_back(part);
      data += align_up(staged_bytes(part), kAlign);
    }
  }
  if (!batch.empty()) {
    err = flush(blocks_[next_], batch, data);
    next_ = (next_ + 1) % blocks_.size();
  }
  return err;
}

cudaError_t ScatterUploader::flush(Block& b, const std::vector<UploadPiece>& batch,
                                   size_t data_bytes) {
  // The host block is packed again once its last DMA is done; the device block is written
  // again after its last scatter has read it (stream order).
  cudaError_t err = cudaEventSynchronize(b.copied);
  if (err != cudaSuccess) return err;
  const size_t head = table_bytes(batch.size());
  LS_CHECK(head + data_bytes <= block_bytes_);
  auto* table = reinterpret_cast<ScatterDesc*>(b.host);
  std::vector<size_t> at(batch.size());
  size_t off = head;
  for (size_t i = 0; i < batch.size(); ++i) {
    at[i] = off;
    table[i] = {batch[i].dst, off, batch[i].bytes, batch[i].round_to_bf16 ? 1u : 0u};
    off += align_up(staged_bytes(batch[i]), kAlign);
  }
  pool_->parallel_for(
      static_cast<int64_t>(batch.size()),
      [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          const auto u = static_cast<size_t>(i);
          std::memcpy(b.host + at[u], batch[u].src, staged_bytes(batch[u]));
        }
      },
      16);
  if ((err = cudaMemcpyAsync(b.device, b.host, off, cudaMemcpyHostToDevice, stream_)) !=
      cudaSuccess)
    return err;
  if ((err = cudaEventRecord(b.copied, stream_)) != cudaSuccess) return err;
  return scatter_copy(reinterpret_cast<const ScatterDesc*>(b.device),
                      static_cast<int64_t>(batch.size()), b.device, stream_);
}

}  // namespace ls::cuda
