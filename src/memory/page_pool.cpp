// Free-list bookkeeping; every page is either in free_ or in exactly one PageList.
#include "memory/page_pool.h"

#include <utility>

#include "base/check.h"

namespace ls {

PagePool::PagePool(int32_t num_pages) : num_pages_(num_pages) {
  LS_CHECK(num_pages >= 0);
  free_.reserve(static_cast<size_t>(num_pages));
  for (int32_t p = num_pages - 1; p >= 0; --p) free_.push_back(p);
}

PagePool::~PagePool() {
  LS_CHECK_MSG(num_free() == num_pages_, "pages still owned when the pool is destroyed");
}

int32_t PagePool::num_free() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int32_t>(free_.size());
}

int32_t PagePool::num_used(PageKind kind) const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_[static_cast<int32_t>(kind)];
}

bool PagePool::take(size_t count, PageKind kind, std::vector<int32_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.size() < count) return false;
  used_[static_cast<int32_t>(kind)] += static_cast<int32_t>(count);
  for (size_t i = 0; i < count; ++i) {
    out->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PagePool::give_back(const std::vector<int32_t>& pages, PageKind kind) {
  std::lock_guard<std::mutex> lock(mu_);
  used_[static_cast<int32_t>(kind)] -= static_cast<int32_t>(pages.size());
  for (auto it = pages.rbegin(); it != pages.rend(); ++it) free_.push_back(*it);
  LS_CHECK(free_.size() <= static_cast<size_t>(num_pages_));
}

PageList::PageList(PageList&& other) noexcept {
  *this = std::move(other);
}

PageList& PageList::operator=(PageList&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    kind_ = other.kind_;
    pages_ = std::move(other.pages_);
    other.pages_.clear();
  }
  return *this;
}

PageList::~PageList() {
  release();
}

Status PageList::grow(size_t count) {
  LS_CHECK(pool_ != nullptr);
  if (!pool_->take(count, kind_, &pages_)) {
    return resource_exhausted("page pool exhausted: need " + std::to_string(count) + " pages, " +
                              std::to_string(pool_->num_free()) + " free");
  }
  return ok_status();
}

void PageList::release() {
  if (pool_ && !pages_.empty()) pool_->give_back(pages_, kind_);
  pages_.clear();
}

}  // namespace ls
