// AdapterCache: the tiers of every registered adapter. Device pages (hot) <- host memory with
// its own byte budget and LRU (warm) <- the adapter's source directory (cold). Registering costs
// only metadata. Disk reads, validation and copies into pages run on loader threads; the engine
// thread calls poll() each step to move finished work along (the CPU twin of a copy stream and
// its events). An adapter that fails to load is reported once and goes back to cold.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "base/status.h"
#include "engine/adapter_residency.h"
#include "engine/engine_stats.h"
#include "engine/request.h"
#include "memory/page_pool.h"
#include "memory/page_store.h"
#include "model/adapter_layout.h"
#include "model/lora_adapter.h"

namespace ls {

struct AdapterCacheOptions {
  int64_t host_budget_bytes = 4ll << 30;
  int32_t max_lora_rank = 256;
  int32_t loader_threads = 2;
  int32_t reserve_pages = 0;  // pages an adapter copy must leave free for running sequences
};

class AdapterCache final : public AdapterResidency {
 public:
  AdapterCache(const ModelConfig& config, Backend& backend, PagePool& pool, const PageStore& store,
               AdapterCacheOptions options);
  ~AdapterCache() override;

  // Cold registration: only the name and directory are kept until first use.
  Status register_source(const std::string& name, const std::string& dir);
  // Warm registration of an already loaded adapter (kept in host memory for good).
  Status register_loaded(std::shared_ptr<const LoraAdapter> adapter);
  // An adapter that needs no pages and is always on the device (a compressed adapter of a
  // bundle loaded with compress/bundle_serving.h); never evicted.
  Status register_resident(std::shared_ptr<const ResidentAdapter> adapter);
  // Refused while requests use it or a load is in flight.
  Status unregister(const std::string& name);
  size_t num_registered() const;

  bool known(const std::string& name) const override;
  bool resident(const std::string& name) const override;
  void request(const std::string& name) override;
  void note_request(const std::string& name) override;
  const ResidentAdapter* pin(const std::string& name) override;
  void unpin(const std::string& name) override;
  bool evict_one() override;
  std::vector<std::pair<std::string, std::string>> take_failures() override;

  // Engine thread: collects finished loads and copies, places wanted adapters into pages.
  void poll();
  // Called (from any thread) when background work finished, so an idle engine wakes up.
  void set_notify(std::function<void()> notify) { notify_ = std::move(notify); }
  AdapterCacheStats stats() const;

 private:
  struct Entry;
  struct Done;
  // A new entry under `name` (mu_ held); refused when the name is taken.
  Result<Entry*> new_entry(const std::string& name);
  void submit_job(std::function<void()> job);
  void worker();
  void enforce_host_budget();
  bool try_place(Entry& e);

  const ModelConfig& config_;
  Backend& backend_;
  PagePool& pool_;
  const PageStore& store_;
  AdapterCacheOptions options_;
  std::function<void()> notify_;

  mutable std::mutex mu_;  // guards entries_, failures_, stats_
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::vector<std::pair<std::string, std::string>> failures_;
  int64_t host_bytes_ = 0;
  uint64_t tick_ = 0;
  AdapterCacheStats stats_;

  std::mutex jobs_mu_;  // guards jobs_, done_, stop_
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<Done> done_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ls
