// Device memory for the CUDA backend without a cudaMalloc per call: the engine allocates a few
// small buffers every step (batch tables, activations, logits), and cudaMalloc/cudaFree
// synchronise the device. Freed blocks are cached by rounded size and handed out again.
// Reuse is safe because every kernel and copy that touches a cached block runs on the
// backend's one compute stream (or is ordered against it by events), so a reused block's new
// work always runs after the old work on it. When cudaMalloc fails, the cache is released and
// the call retried once.
//
// Graph capture: while private mode is on (a CUDA graph being captured), blocks come from and
// go back to a pool private to graphs. A captured graph reads and writes its blocks again on
// every replay, so they must never be handed to eager work; replays run one at a time on the
// compute stream, so graphs may share private blocks among themselves (as PyTorch's graph
// pools do). Private blocks are never returned to the driver.
//
// StagingRing: pinned host memory that uploads pass through, so an upload returns as soon as
// the caller's (pageable) bytes are copied and the DMA runs asynchronously on a stream.
//
// ScatterUploader: many small uploads (an adapter's 4,096 page chunks) as a few large DMAs.
// The pieces are packed, with a table of where each goes, into a pinned block; the block goes
// over in one cudaMemcpyAsync to a device block of the same size, and a kernel scatters it.
// Block pairs are used round robin, the DMAs and kernels in order on the uploader's own stream
// (a device block is rewritten only after the kernel that read it); nothing waits for the
// compute stream, so a load costs its packing time on the host (~2-4 ms for a 7B rank-16
// q,k,v,o adapter) and the DMA, never a wait for a step.
// One call per piece cost ~10 us of API time each: 4,096 of them were most of a 50 ms load.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "base/thread_pool.h"

namespace ls::cuda {

class CudaAllocator {
 public:
  CudaAllocator() = default;
  CudaAllocator(const CudaAllocator&) = delete;
  CudaAllocator& operator=(const CudaAllocator&) = delete;
  ~CudaAllocator();

  // Returns device memory of at least `bytes` (256-byte aligned), or nullptr when the device
  // has none left even after releasing the cache.
  void* allocate(size_t bytes);
  void release(void* p);
  // Frees every cached (unused) block back to the driver.
  void empty_cache();
  size_t bytes_in_use() const;
  size_t bytes_cached() const;
  // Turns the graph-private pool on or off for allocations from now on.
  void set_private(bool on);
  size_t bytes_private() const;

 private:
  static size_t round_size(size_t bytes);
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  std::map<void*, size_t> live_;       // block -> rounded size
  std::multimap<size_t, void*> private_free_;
  std::map<void*, size_t> private_blocks_;  // every block ever made in private mode
  bool private_ = false;
  size_t in_use_ = 0, cached_ = 0, private_bytes_ = 0;
};

class StagingRing {
 public:
  // `bytes` of pinned memory split into `blocks` equal blocks used round robin.
  StagingRing(size_t bytes, int blocks);
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;
  ~StagingRing();

  // Copies host_src into pinned memory and enqueues the DMA to dst on `stream`; returns once
  // host_src may be reused. Large copies go through in block-sized pieces.
  cudaError_t upload(void* dst, const void* host_src, size_t bytes, cudaStream_t stream);

 private:
  struct Block {
    char* data = nullptr;
    size_t used = 0;
    cudaEvent_t done = nullptr;  // recorded after the latest copy out of this block
  };
  std::mutex mu_;
  std::vector<Block> blocks_;
  size_t block_bytes_ = 0;
  size_t current_ = 0;
};

class ScatterUploader {
 public:
  // `blocks` pinned host blocks and as many device blocks of `block_bytes` each, and a stream
  // of its own for the scatter kernels.
  ScatterUploader(size_t block_bytes, int blocks);
  ScatterUploader(const ScatterUploader&) = delete;
  ScatterUploader& operator=(const ScatterUploader&) = delete;
  ~ScatterUploader();

  // Packs the pieces (the fp32 source of pieces that round to bf16: the scatter kernel rounds;
  // on the calling thread and the uploader's own few threads) and enqueues their DMAs and the
  // scatter kernels on the uploader's stream. Returns without waiting for the device; the
  // pieces' host memory may be reused at once. One caller at a time (the backend's mutex).
  cudaError_t upload(const UploadPiece* pieces, size_t count);
  // Waits until everything enqueued so far has landed.
  cudaError_t synchronize();

 private:
  struct Block {
    char* host = nullptr;
    char* device = nullptr;
    cudaEvent_t copied = nullptr;  // recorded after the DMA out of `host`
  };
  cudaError_t flush(Block& b, const std::vector<UploadPiece>& batch, size_t data_bytes);
  std::vector<Block> blocks_;
  // Packing threads of its own, half the cores (at most 8). Rounding fp32 to bf16 is left to
  // the scatter kernel: on the host it took 2-4 ms of CPU per 7B adapter even spread
  // over threads.
  std::unique_ptr<ThreadPool> pool_;
  cudaStream_t stream_ = nullptr;
  size_t block_bytes_ = 0;
  size_t next_ = 0;
};

}  // namespace ls::cuda
