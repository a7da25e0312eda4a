// PageStore: the bytes behind the PagePool's page ids. Page p owns, in every layer l, a K block
// and a V block of `page_size` vectors of the model's KV width. Sequences keep K/V of tokens
// there; resident adapters keep the LoRA rows of layer l in layer l's blocks (S-LoRA's unified
// paging), so KV and adapters draw from one free list.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace ls {

class PageStore {
 public:
  PageStore(Backend& backend, int32_t num_layers, int32_t num_pages, int32_t page_size,
            int32_t kv_width);

  LayerKv layer(int32_t l) const;
  // A block of chunk_floats() floats: the K (which = 0) or V (which = 1) block of page p in l.
  float* chunk(int32_t l, int32_t page, int32_t which) const;
  int64_t chunk_floats() const { return static_cast<int64_t>(page_size_) * kv_width_; }
  int32_t page_size() const { return page_size_; }
  int32_t num_pages() const { return num_pages_; }
  int32_t num_layers() const { return static_cast<int32_t>(k_.size()); }
  // Bytes one page occupies over all layers.
  int64_t page_bytes() const { return 2 * num_layers() * chunk_floats() * 4; }
  size_t bytes() const;

 private:
  int32_t num_pages_;
  int32_t page_size_;
  int32_t kv_width_;
  std::vector<Buffer> k_;  // [num_layers] each [num_pages, page_size, kv_width] fp32
  std::vector<Buffer> v_;  // [num_layers] each [num_pages, page_size, kv_width] fp32
};

}  // namespace ls
