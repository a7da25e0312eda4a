// Shared by the two SSE benchmark servers (sse_httplib.cpp, sse_beast.cpp): the simulated
// engine thread, the per-server counters behind GET /stats, the tiny request-body parser and
// the event format. Only the HTTP transport differs between the two servers.
#pragma once

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace httpbench {

// CLOCK_MONOTONIC (steady_clock) is system-wide on Linux, so the client can compare it.
inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Raises the soft open-file limit to the hard limit; returns the new soft limit.
inline rlim_t raise_nofile() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

inline void ignore_sigpipe() {
  signal(SIGPIPE, SIG_IGN);
}

// Reads an integer field `"key": N` from a flat JSON object; `fallback` when absent.
inline int64_t json_int(const std::string& body, const char* key, int64_t fallback) {
  const std::string k = std::string("\"") + key + "\"";
  const size_t at = body.find(k);
  if (at == std::string::npos) return fallback;
  const size_t colon = body.find(':', at + k.size());
  if (colon == std::string::npos) return fallback;
  return std::strtoll(body.c_str() + colon + 1, nullptr, 10);
}

struct StreamRequest {
  int64_t id = -1;
  int64_t events = 100;
  int64_t interval_ms = 20;
};

inline StreamRequest parse_request(const std::string& body) {
  StreamRequest r;
  r.id = json_int(body, "id", -1);
  r.events = std::clamp<int64_t>(json_int(body, "events", 100), 0, 1000000);
  r.interval_ms = std::clamp<int64_t>(json_int(body, "interval_ms", 20), 1, 60000);
  return r;
}

inline std::string sse_event(int64_t i) {
  char buf[96];
  const int n = std::snprintf(buf, sizeof buf, "data: {\"i\": %lld, \"t_ns\": %lld}\n\n",
                              static_cast<long long>(i), static_cast<long long>(now_ns()));
  return std::string(buf, static_cast<size_t>(n));
}

inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// One request as the engine sees it. The engine thread calls push() for event 0..events-1;
// the transport sets `cancelled` when the client went away so the engine stops (frees pages).
struct EngineStream {
  explicit EngineStream(const StreamRequest& r) : req(r) {}
  virtual ~EngineStream() = default;
  virtual void push(int64_t i) = 0;  // called on the engine thread
  StreamRequest req;
  int64_t every = 1;  // ticks between two events
  int64_t next = 0;   // next event index (engine thread only)
  std::atomic<bool> cancelled{false};
};

struct Stats {
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> disconnected{0};
  std::atomic<int64_t> disconnected_on_write{0};
  std::atomic<int64_t> disconnected_on_read_watch{0};
  std::atomic<int64_t> events_generated{0};
  std::atomic<int64_t> engine_late_ticks{0};
  std::atomic<int64_t> engine_ticks{0};
  std::atomic<int64_t> engine_max_late_us{0};
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> disconnects;  // (request id, detection time ns)

  enum class How { kWrite, kReadWatch };
  void disconnect(int64_t id, How how) {
    disconnected++;
    (how == How::kWrite ? disconnected_on_write : disconnected_on_read_watch)++;
    std::lock_guard<std::mutex> lk(mu);
    disconnects.emplace_back(id, now_ns());
  }

  std::string json() {
    std::string s = "{";
    auto field = [&s](const char* k, int64_t v) {
      s += "\"" + std::string(k) + "\": " + std::to_string(v) + ", ";
    };
    field("started", started);
    field("completed", completed);
    field("disconnected", disconnected);
    field("disconnected_on_write", disconnected_on_write);
    field("disconnected_on_read_watch", disconnected_on_read_watch);
    field("events_generated", events_generated);
    field("engine_ticks", engine_ticks);
    field("engine_late_ticks", engine_late_ticks);
    field("engine_max_late_us", engine_max_late_us);
    s += "\"disconnects\": [";
    std::lock_guard<std::mutex> lk(mu);
    for (size_t k = 0; k < disconnects.size(); ++k) {
      if (k) s += ", ";
      s += "[" + std::to_string(disconnects[k].first) + ", " +
           std::to_string(disconnects[k].second) + "]";
    }
    s += "]}";
    return s;
  }
};

// The simulated engine: one thread that ticks every `tick_ms` and pushes one event to every
// active stream (as a batched decode step produces one token per sequence).
class Engine {
 public:
  Engine(Stats& stats, int64_t tick_ms) : stats_(stats), tick_ms_(tick_ms) {
    thread_ = std::thread([this] { run(); });
  }
  ~Engine() {
    stop_ = true;
    thread_.join();
  }

  void add(std::shared_ptr<EngineStream> s) {
    s->every = std::max<int64_t>(1, s->req.interval_ms / tick_ms_);
    std::lock_guard<std::mutex> lk(mu_);
    incoming_.push_back(std::move(s));
  }

 private:
  void run() {
    using clock = std::chrono::steady_clock;
    auto next = clock::now() + std::chrono::milliseconds(tick_ms_);
    std::vector<std::shared_ptr<EngineStream>> active;
    int64_t tick = 0;
    while (!stop_) {
      std::this_thread::sleep_until(next);
      const auto late = clock::now() - next;
      const int64_t late_us = std::chrono::duration_cast<std::chrono::microseconds>(late).count();
      if (late_us > tick_ms_ * 1000 / 4) stats_.engine_late_ticks++;
      if (late_us > stats_.engine_max_late_us) stats_.engine_max_late_us = late_us;
      next += std::chrono::milliseconds(tick_ms_);
      if (next < clock::now()) next = clock::now() + std::chrono::milliseconds(tick_ms_);
      ++tick;
      stats_.engine_ticks++;
      {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto& s : incoming_) active.push_back(std::move(s));
        incoming_.clear();
      }
      size_t keep = 0;
      for (size_t k = 0; k < active.size(); ++k) {
        auto& s = active[k];
        if (s->cancelled) continue;  // client gone: drop the request
        if (s->next < s->req.events && tick % s->every == 0) {
          s->push(s->next++);
          stats_.events_generated++;
        }
        if (s->next >= s->req.events) continue;  // finished
        active[keep++] = std::move(s);
      }
      active.resize(keep);
    }
  }

  Stats& stats_;
  int64_t tick_ms_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<EngineStream>> incoming_;
  std::thread thread_;
};

}  // namespace httpbench
