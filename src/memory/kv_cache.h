// KvCache: the K and V storage of every layer, addressed by page id of a PagePool.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace ls {

class KvCache {
 public:
  KvCache(Backend& backend, int32_t num_layers, int32_t num_pages, int32_t page_size,
          int32_t kv_width);

  LayerKv layer(int32_t l) const;
  int32_t page_size() const { return page_size_; }
  int32_t num_pages() const { return num_pages_; }
  size_t bytes() const;

 private:
  int32_t num_pages_;
  int32_t page_size_;
  int32_t kv_width_;
  std::vector<Buffer> k_;  // [num_layers] each [num_pages, page_size, kv_width] fp32
  std::vector<Buffer> v_;  // [num_layers] each [num_pages, page_size, kv_width] fp32
};

}  // namespace ls
