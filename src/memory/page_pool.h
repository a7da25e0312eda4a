// PagePool: one free list of equal pages; PageList: RAII ownership of some of them.
// A page holds `page_size` token vectors of the model's KV width in every layer (the KV cache
// is laid out by page id); a PageList returns its pages to the pool when dropped.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "base/status.h"

namespace ls {

class PagePool;

// Who owns a page: the pool counts both kinds, since they compete for one free list.
enum class PageKind : int32_t { kKv = 0, kAdapter = 1 };

class PageList {
 public:
  PageList() = default;
  explicit PageList(PagePool* pool, PageKind kind = PageKind::kKv) : pool_(pool), kind_(kind) {}
  PageList(PageList&& other) noexcept;
  PageList& operator=(PageList&& other) noexcept;
  PageList(const PageList&) = delete;
  PageList& operator=(const PageList&) = delete;
  ~PageList();

  const std::vector<int32_t>& pages() const { return pages_; }
  size_t size() const { return pages_.size(); }
  // Takes `count` more pages from the pool; fails (and takes none) when the pool is short.
  Status grow(size_t count);
  void release();

 private:
  PagePool* pool_ = nullptr;
  PageKind kind_ = PageKind::kKv;
  std::vector<int32_t> pages_;
};

class PagePool {
 public:
  explicit PagePool(int32_t num_pages);
  ~PagePool();
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  int32_t num_pages() const { return num_pages_; }
  int32_t num_free() const;
  int32_t num_used() const { return num_pages_ - num_free(); }
  int32_t num_used(PageKind kind) const;

 private:
  friend class PageList;
  bool take(size_t count, PageKind kind, std::vector<int32_t>* out);
  void give_back(const std::vector<int32_t>& pages, PageKind kind);

  const int32_t num_pages_;
  mutable std::mutex mu_;
  std::vector<int32_t> free_;  // LIFO: recently freed pages are reused first (warm in cache)
  int32_t used_[2] = {0, 0};   // by PageKind
};

}  // namespace ls
