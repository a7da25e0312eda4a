// Tier transitions, all decided on the engine thread under mu_; loader threads only read files
// and copy bytes into pages that nothing else touches until the copy is reported done.
#include "engine/adapter_cache.h"

#include <algorithm>

#include "base/check.h"
#include "base/file_util.h"
#include "base/logging.h"

namespace ls {

struct AdapterCache::Entry {
  std::string name;
  std::string dir;  // empty for adapters registered already loaded
  std::shared_ptr<const LoraAdapter> host;
  bool disk_loading = false;
  std::unique_ptr<ResidentAdapter> device;
  std::shared_ptr<const ResidentAdapter> fixed;  // always resident (a compressed adapter)
  bool copying = false;                          // pages placed, bytes still on their way
  bool wanted = false;                           // someone asked for it on the device
  int32_t pins = 0;
  uint64_t device_used = 0;  // LRU ticks
  uint64_t host_used = 0;
  Clock::time_point requested_at;
};

struct AdapterCache::Done {
  std::string name;
  bool is_copy = false;
  double copy_s = 0.0;  // is_copy: how long copy_adapter took
  Result<LoraAdapter> loaded{internal_error("unset")};
};

AdapterCache::AdapterCache(const ModelConfig& config, Backend& backend, PagePool& pool,
                           const PageStore& store, AdapterCacheOptions options)
    : config_(config), backend_(backend), pool_(pool), store_(store), options_(options) {
  for (int32_t i = 0; i < std::max(1, options_.loader_threads); ++i)
    workers_.emplace_back([this] { worker(); });
}

AdapterCache::~AdapterCache() {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    stop_ = true;
  }
  jobs_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void AdapterCache::submit_job(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
}

void AdapterCache::worker() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_ && jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
    if (notify_) notify_();
  }
}

Status AdapterCache::register_source(const std::string& name, const std::string& dir) {
  if (name.empty()) return invalid_argument("adapter name must not be empty");
  std::lock_guard<std::mutex> lock(mu_);
  LS_ASSIGN_OR_RETURN(Entry * e, new_entry(name));
  e->dir = dir;
  return ok_status();
}

Result<AdapterCache::Entry*> AdapterCache::new_entry(const std::string& name) {
  if (entries_.count(name)) return invalid_argument("adapter '" + name + "' is already registered");
  auto& e = entries_[name];
  e = std::make_unique<Entry>();
  e->name = name;
  return e.get();
}

Status AdapterCache::register_loaded(std::shared_ptr<const LoraAdapter> adapter) {
  LS_CHECK(adapter != nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  LS_ASSIGN_OR_RETURN(Entry * e, new_entry(adapter->name));
  host_bytes_ += static_cast<int64_t>(adapter->host_bytes());
  e->host = std::move(adapter);
  return ok_status();
}

Status AdapterCache::register_resident(std::shared_ptr<const ResidentAdapter> adapter) {
  LS_CHECK(adapter != nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  LS_ASSIGN_OR_RETURN(Entry * e, new_entry(adapter->name));
  e->fixed = std::move(adapter);
  return ok_status();
}

Status AdapterCache::unregister(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("unknown adapter '" + name + "'");
  const Entry& e = *it->second;
  if (e.pins > 0 || e.disk_loading || e.copying)
    return failed_precondition("adapter '" + name + "' is in use");
  if (e.host) host_bytes_ -= static_cast<int64_t>(e.host->host_bytes());
  entries_.erase(it);
  return ok_status();
}

size_t AdapterCache::num_registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

bool AdapterCache::known(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.count(name) > 0;
}

bool AdapterCache::resident(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  return it != entries_.end() &&
         (it->second->fixed || (it->second->device && !it->second->copying));
}

void AdapterCache::request(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  if (e.fixed) return;
  if (e.wanted || e.device) {
    e.device_used = ++tick_;
    return;
  }
  e.wanted = true;
  e.requested_at = Clock::now();
  if (e.host) {
    e.host_used = ++tick_;
    return;  // poll() places it
  }
  if (e.disk_loading) return;
  ++stats_.disk_loads;
  e.disk_loading = true;
  const std::string dir = e.dir, adapter_name = e.name;
  const ModelConfig& config = config_;
  const LoraLoadOptions lo{options_.max_lora_rank};
  submit_job([this, dir, adapter_name, &config, lo] {
    Done d;
    d.name = adapter_name;
    d.loaded = load_lora_adapter(dir, adapter_name, config, lo);
    std::lock_guard<std::mutex> lock(jobs_mu_);
    done_.push_back(std::move(d));
  });
}

void AdapterCache::note_request(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  if (it->second->device || it->second->fixed) {
    ++stats_.device_hits;
  } else if (it->second->host) {
    ++stats_.host_hits;
  } else {
    ++stats_.cold_requests;
  }
}

const ResidentAdapter* AdapterCache::pin(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = *entries_.at(name);
  if (e.fixed) {
    ++e.pins;
    return e.fixed.get();
  }
  LS_CHECK(e.device && !e.copying);
  ++e.pins;
  e.device_used = ++tick_;
  return e.device.get();
}

void AdapterCache::unpin(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  LS_CHECK(it != entries_.end() && it->second->pins > 0);
  --it->second->pins;
}

bool AdapterCache::evict_one() {
  std::lock_guard<std::mutex> lock(mu_);
  Entry* victim = nullptr;
  for (auto& [name, e] : entries_)
    if (e->device && !e->copying && e->pins == 0 &&
        (!victim || e->device_used < victim->device_used))
      victim = e.get();
  if (!victim) return false;
  victim->device.reset();  // PageList returns the pages
  victim->wanted = false;
  ++stats_.device_evictions;
  return true;
}

std::vector<std::pair<std::string, std::string>> AdapterCache::take_failures() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(failures_, {});
}

// Places a wanted, host-ready adapter into pages (evicting idle adapters when short) and
// starts the copy. False when the pool cannot hold it now; poll() tries again later.
bool AdapterCache::try_place(Entry& e) {
  const int32_t need = adapter_pages_needed(*e.host, config_, store_);
  PageList pages(&pool_, PageKind::kAdapter);
  while (pool_.num_free() < need + options_.reserve_pages ||
         !pages.grow(static_cast<size_t>(need)).ok()) {
    Entry* victim = nullptr;
    for (auto& [name, other] : entries_)
      if (other.get() != &e && other->device && !other->copying && other->pins == 0 &&
          (!victim || other->device_used < victim->device_used))
        victim = other.get();
    if (!victim) return false;
    victim->device.reset();
    victim->wanted = false;
    ++stats_.device_evictions;
  }
  e.device =
      std::make_unique<ResidentAdapter>(place_adapter(*e.host, config_, std::move(pages), store_));
  e.copying = true;
  e.device_used = ++tick_;
  std::shared_ptr<const LoraAdapter> host = e.host;
  const ResidentAdapter* dst = e.device.get();
  const std::string name = e.name;
  submit_job([this, host, dst, name] {
    const auto t0 = Clock::now();
    copy_adapter(*host, config_, *dst, backend_);
    Done d;
    d.name = name;
    d.is_copy = true;
    d.copy_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(jobs_mu_);
    done_.push_back(std::move(d));
  });
  return true;
}

void AdapterCache::poll() {
  std::vector<Done> done;
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    done.swap(done_);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (Done& d : done) {
    auto it = entries_.find(d.name);
    LS_CHECK(it != entries_.end());  // unregister refuses entries with work in flight
    Entry& e = *it->second;
    if (d.is_copy) {
      e.copying = false;
      const double secs = std::chrono::duration<double>(Clock::now() - e.requested_at).count();
      size_t b = 0;
      while (b < kLoadLatencyBuckets.size() && secs > kLoadLatencyBuckets[b]) ++b;
      ++stats_.load_latency_counts[b];
      stats_.load_latency_sum_s += secs;
      ++stats_.copies;
      stats_.copy_seconds_sum += d.copy_s;
      continue;
    }
    e.disk_loading = false;
    if (!d.loaded.ok()) {
      ++stats_.load_failures;
      spdlog::warn("adapter '{}' failed to load: {}", e.name, d.loaded.status().message());
      failures_.emplace_back(e.name, d.loaded.status().message());
      e.wanted = false;  // back to cold: the next request tries again
      continue;
    }
    auto host = std::make_shared<const LoraAdapter>(std::move(d.loaded).value());
    host_bytes_ += static_cast<int64_t>(host->host_bytes());
    e.host = std::move(host);
    e.host_used = ++tick_;
  }
  for (auto& [name, e] : entries_)
    if (e->wanted && !e->device && e->host) try_place(*e);
  enforce_host_budget();
}

// Drops least recently used host copies that can be re-read from disk and are not being
// copied to the device, until the host tier fits its budget.
void AdapterCache::enforce_host_budget() {
  while (host_bytes_ > options_.host_budget_bytes) {
    Entry* victim = nullptr;
    for (auto& [name, e] : entries_)
      if (e->host && !e->dir.empty() && !e->copying && !(e->wanted && !e->device) &&
          (!victim || e->host_used < victim->host_used))
        victim = e.get();
    if (!victim) return;
    host_bytes_ -= static_cast<int64_t>(victim->host->host_bytes());
    victim->host.reset();
    ++stats_.host_evictions;
  }
}

AdapterCacheStats AdapterCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  AdapterCacheStats s = stats_;
  s.registered = static_cast<int64_t>(entries_.size());
  s.host_bytes = host_bytes_;
  for (const auto& [name, e] : entries_) {
    if (e->host) ++s.in_host;
    if (e->fixed) ++s.resident;
    if (e->device && !e->copying) {
      ++s.resident;
      s.used_elems += e->device->used_elems;
      s.allocated_elems += e->device->allocated_elems;
    }
  }
  return s;
}

}  // namespace ls
