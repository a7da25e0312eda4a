// Engine: the in-process API (thread-safe) over one model, one page pool and the adapter cache.
// A dedicated thread runs schedule -> forward -> update; callers submit requests and receive a
// stream of TokenEvents through a callback (called on the engine thread: keep it short), and
// may cancel at any moment. The server and `loraserve generate` both drive it.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/adapter_cache.h"
#include "engine/engine_stats.h"
#include "engine/scheduler.h"

namespace ls {

struct EngineOptions {
  int32_t max_num_seqs = 64;
  int32_t max_tokens_per_step = 2048;
  int32_t page_size = 1;
  int32_t num_pages = 0;             // 0: pool_bytes / page bytes
  int64_t pool_bytes = 512ll << 20;  // the one pool for KV and adapter pages
  DType kv_dtype = DType::kF32;      // of KV and adapter pages: kF32 or kBF16
  int32_t reserve_pages = -1;        // -1: min(num_pages / 10, max_num_seqs)
  int32_t max_queue = 0;             // 0: unbounded waiting queue
  AdapterCacheOptions adapters;
  PolicyOptions policy;
  double ttft_slo_ms = 0.0;  // > 0: S-LoRA early abort
};

class Engine {
 public:
  Engine(const LlamaModel& model, EngineOptions options);
  ~Engine();  // cancels what is left and stops the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  AdapterCache& adapters() { return *adapters_; }
  const LlamaModel& model() const { return model_; }

  // Checks a request against the model and the registry without queueing it.
  Status validate(const EngineRequest& req) const;
  // Queues a valid request; events arrive on `on_event`.
  Result<RequestId> submit(EngineRequest req, TokenCallback on_event);
  void cancel(RequestId id);
  // Blocks until no request is queued or running.
  void wait_idle();
  EngineStats stats() const;

 private:
  void loop();
  StepOutput run_model(const StepPlan& plan);
  void apply_penalties(const PenaltyPlan& pp, float* logits, int64_t rows);
  void refresh_stats(int64_t step_tokens);

  const LlamaModel& model_;
  EngineOptions options_;
  std::unique_ptr<PagePool> pool_;
  std::unique_ptr<PageStore> store_;
  std::unique_ptr<AdapterCache> adapters_;
  std::unique_ptr<Scheduler> scheduler_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Sequence>> incoming_;
  std::vector<RequestId> cancels_;
  bool wake_ = false;
  bool stop_ = false;
  bool busy_ = false;  // the scheduler holds requests
  RequestId next_id_ = 1;
  int64_t queued_ = 0;  // incoming + waiting (for max_queue)
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace ls
