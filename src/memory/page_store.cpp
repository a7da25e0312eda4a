// Allocates per-layer K/V buffers once; pages are handed out by the PagePool.
#include "memory/page_store.h"

#include "base/check.h"

namespace ls {

int64_t PageStore::page_bytes(int32_t num_layers, int32_t page_size, int32_t kv_width,
                              DType dtype) {
  return 2ll * num_layers * page_size * kv_width * static_cast<int64_t>(dtype_size(dtype));
}

PageStore::PageStore(Backend& backend, int32_t num_layers, int32_t num_pages, int32_t page_size,
                     int32_t kv_width, DType dtype)
    : num_pages_(num_pages), page_size_(page_size), kv_width_(kv_width), dtype_(dtype) {
  LS_CHECK(num_layers > 0 && num_pages > 0 && page_size > 0 && kv_width > 0);
  LS_CHECK_MSG(kv_dtype_supported(dtype), "a KV cache is fp32 or bf16");
  size_t bytes = dtype_size(dtype) * static_cast<size_t>(num_pages) *
                 static_cast<size_t>(page_size) * static_cast<size_t>(kv_width);
  for (int32_t l = 0; l < num_layers; ++l) {
    k_.push_back(backend.alloc(bytes));
    v_.push_back(backend.alloc(bytes));
  }
}

LayerKv PageStore::layer(int32_t l) const {
  LayerKv kv;
  kv.k = k_[static_cast<size_t>(l)].data;
  kv.v = v_[static_cast<size_t>(l)].data;
  kv.dtype = dtype_;
  kv.page_size = page_size_;
  kv.kv_width = kv_width_;
  return kv;
}

void* PageStore::chunk(int32_t l, int32_t page, int32_t which) const {
  LS_CHECK(page >= 0 && page < num_pages_ && (which == 0 || which == 1));
  const auto& buf = which == 0 ? k_[static_cast<size_t>(l)] : v_[static_cast<size_t>(l)];
  return buf.as<char>() +
         static_cast<int64_t>(page) * chunk_elems() * static_cast<int64_t>(dtype_size(dtype_));
}

size_t PageStore::bytes() const {
  size_t total = 0;
  for (const auto& b : k_) total += b.bytes;
  for (const auto& b : v_) total += b.bytes;
  return total;
}

}  // namespace ls
