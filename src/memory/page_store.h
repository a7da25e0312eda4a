// PageStore: the bytes behind the PagePool's page ids. Page p owns, in every layer l, a K block
// and a V block of `page_size` vectors of the model's KV width. Sequences keep K/V of tokens
// there; resident adapters keep the LoRA rows of layer l in layer l's blocks (S-LoRA's unified
// paging), so KV and adapters draw from one free list. Both are stored in the store's dtype
// (fp32 or bf16, see kv_dtype_supported).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace ls {

class PageStore {
 public:
  PageStore(Backend& backend, int32_t num_layers, int32_t num_pages, int32_t page_size,
            int32_t kv_width, DType dtype = DType::kF32);

  // Bytes one page occupies over all layers, for a store of these dimensions.
  static int64_t page_bytes(int32_t num_layers, int32_t page_size, int32_t kv_width, DType dtype);

  LayerKv layer(int32_t l) const;
  // A block of chunk_elems() elements: the K (which = 0) or V (which = 1) block of page p in l.
  void* chunk(int32_t l, int32_t page, int32_t which) const;
  int64_t chunk_elems() const { return static_cast<int64_t>(page_size_) * kv_width_; }
  int32_t page_size() const { return page_size_; }
  DType dtype() const { return dtype_; }
  int32_t num_pages() const { return num_pages_; }
  int32_t num_layers() const { return static_cast<int32_t>(k_.size()); }
  // Bytes one page occupies over all layers.
  int64_t page_bytes() const {
    return 2 * num_layers() * chunk_elems() * static_cast<int64_t>(dtype_size(dtype_));
  }
  size_t bytes() const;

 private:
  int32_t num_pages_;
  int32_t page_size_;
  int32_t kv_width_;
  DType dtype_;
  std::vector<Buffer> k_;  // [num_layers] each [num_pages, page_size, kv_width] of dtype_
  std::vector<Buffer> v_;  // [num_layers] each [num_pages, page_size, kv_width] of dtype_
};

}  // namespace ls
