// Engine-section helpers of gpu_perf_bench (see engine_util.h).
#include "gpu_perf/engine_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "base/rng.h"
#include "device_flag.h"
#include "model/demo_model.h"

namespace ls::perf {

TokenCallback EventLog::callback(int key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reqs_[key];
  }
  return [this, key](const TokenEvent& e) {
    const int64_t now = now_ns();
    std::lock_guard<std::mutex> lock(mu_);
    Req& r = reqs_[key];
    if (e.token >= 0) r.t.push_back(now);
    if (e.finished) {
      r.finished = true;
      r.finish = now;
      if (!e.error.empty()) r.error = e.finish_reason + ": " + e.error;
    }
  };
}

int64_t EventLog::tokens(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it == reqs_.end() ? 0 : static_cast<int64_t>(it->second.t.size());
}

bool EventLog::finished(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it != reqs_.end() && it->second.finished;
}

std::string EventLog::error(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it == reqs_.end() ? "" : it->second.error;
}

std::vector<int64_t> EventLog::times(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it == reqs_.end() ? std::vector<int64_t>{} : it->second.t;
}

int64_t EventLog::first_ns(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it == reqs_.end() || it->second.t.empty() ? -1 : it->second.t.front();
}

int64_t EventLog::finish_ns(int key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reqs_.find(key);
  return it == reqs_.end() ? -1 : it->second.finish;
}

std::unique_ptr<Engine> make_engine(const Ctx& ctx, Rig& rig, int max_num_seqs,
                                    int64_t* pool_bytes) {
  EngineOptions o;
  o.max_num_seqs = max_num_seqs;
  o.max_tokens_per_step = 2048;
  o.kv_dtype = ctx.f.kv_dtype;
  o.pool_bytes = must(kv_pool_bytes(*rig.be, rig.c, ctx.f.gpu_memory_utilization,
                                    o.max_tokens_per_step, max_num_seqs, 512ll << 20, o.kv_dtype),
                      "page pool size (--gpu-memory-utilization)");
  o.adapters.host_budget_bytes = static_cast<int64_t>(ctx.f.host_budget_gib * 1073741824.0);
  o.adapters.loader_threads = ctx.f.loader_threads;
  *pool_bytes = o.pool_bytes;
  auto e = std::make_unique<Engine>(*rig.model, o);
  const EngineStats st = e->stats();
  std::printf("  engine: page pool %s (%lld pages), max %d sequences\n",
              gib(static_cast<double>(o.pool_bytes)).c_str(),
              static_cast<long long>(st.pages_total), max_num_seqs);
  std::fflush(stdout);
  return e;
}

bool wait_until(const std::function<bool()>& done, double timeout_s) {
  const int64_t t0 = now_ns();
  while (!done()) {
    if (seconds_since(t0) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

std::vector<std::string> write_adapter_dirs(const ModelConfig& c, const std::string& base,
                                            int count, int rank, uint64_t seed) {
  std::vector<std::string> dirs;
  for (int i = 0; i < count; ++i) dirs.push_back(base + strf("/adapter_%04d", i));
  std::vector<std::string> errors(static_cast<size_t>(count));
  std::atomic<int> next{0};
  const int threads =
      std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, std::max(1, count));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        RandomAdapterSpec spec;
        spec.name = strf("adapter_%04d", i);
        spec.r = rank;
        spec.alpha = 2.0 * rank;
        spec.targets = qkvo();
        spec.dtype = DType::kBF16;
        const Status s = write_random_adapter(dirs[static_cast<size_t>(i)], c, spec, seed + i);
        if (!s.ok()) errors[static_cast<size_t>(i)] = s.message();
      }
    });
  for (auto& t : pool) t.join();
  for (int i = 0; i < count; ++i)
    if (!errors[static_cast<size_t>(i)].empty())
      throw std::runtime_error("writing " + dirs[static_cast<size_t>(i)] + ": " +
                               errors[static_cast<size_t>(i)]);
  return dirs;
}

bool evict_from_page_cache(const std::string& dir) {
  bool ok = true;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const int fd = open(e.path().c_str(), O_RDONLY);
    if (fd < 0) {
      ok = false;
      continue;
    }
    ok = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 && ok;
    close(fd);
  }
  return ok && !ec;
}

std::vector<int32_t> random_prompt(const ModelConfig& c, int len, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i)
    p.push_back(3 + static_cast<int32_t>(rng.uniform() * (c.vocab_size - 3)));
  return p;
}

}  // namespace ls::perf
