// SSE benchmark server on cpp-httplib (Debian's libcpp-httplib 0.11). cpp-httplib is
// thread-per-connection: each accepted socket occupies one thread of the task queue for as long
// as the connection lives, so a pool of `--threads` serves at most that many streams at once.
//
//   POST /stream    {"events": E, "interval_ms": T, "id": k}  -> SSE, chunked, then [DONE]
//   POST /complete  same body                                 -> one JSON body at the end
//   GET  /stats                                                -> counters (see common.h)
//
// Disconnects: a streaming client that left is seen when a chunk write fails (sink.write
// returns false; the resource releaser is then called with success == false). A non-streaming
// handler has no access to the socket, so it cannot see the client leave while it waits.
#include <httplib.h>

#include <condition_variable>
#include <deque>

#include "common.h"

namespace httpbench {
namespace {

struct ThreadStream : EngineStream {
  using EngineStream::EngineStream;
  void push(int64_t i) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      ready.push_back(i);
    }
    cv.notify_one();
  }
  // Blocks until the engine produced at least one event; returns them all.
  std::deque<int64_t> wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [this] { return !ready.empty(); });
    return std::exchange(ready, {});
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int64_t> ready;
  int64_t sent = 0;  // connection thread only
};

int run(int argc, char** argv) {
  int port = 8080;
  size_t threads = 64;
  int64_t tick_ms = 20;
  int backlog = 0;  // 0: the library's CPPHTTPLIB_LISTEN_BACKLOG (5, compiled into the .so)
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    if (a == "--port") port = std::atoi(argv[k + 1]);
    if (a == "--threads") threads = static_cast<size_t>(std::atoll(argv[k + 1]));
    if (a == "--tick-ms") tick_ms = std::atoll(argv[k + 1]);
    if (a == "--backlog") backlog = std::atoi(argv[k + 1]);
  }
  ignore_sigpipe();
  const rlim_t nofile = raise_nofile();

  Stats stats;
  Engine engine(stats, tick_ms);
  httplib::Server svr;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // TCP_NODELAY on the listening socket; Linux copies it to the accepted sockets (0.11 has no
  // per-connection hook, and CPPHTTPLIB_TCP_NODELAY is compiled into Debian's .so as false).
  svr.set_socket_options([](socket_t sock) {
    httplib::default_socket_options(sock);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  });

  svr.Post("/stream", [&](const httplib::Request& req, httplib::Response& res) {
    auto s = std::make_shared<ThreadStream>(parse_request(req.body));
    stats.started++;
    engine.add(s);
    res.set_chunked_content_provider(
        "text/event-stream",
        [s](size_t /*offset*/, httplib::DataSink& sink) {
          if (s->sent < s->req.events) {
            for (int64_t i : s->wait()) {
              const std::string ev = sse_event(i);
              if (!sink.write(ev.data(), ev.size())) return false;
              ++s->sent;
            }
          }
          if (s->sent < s->req.events) return true;
          if (!sink.write(kSseDone, std::strlen(kSseDone))) return false;
          sink.done();
          return true;
        },
        [s, &stats](bool success) {
          s->cancelled = true;
          if (success) {
            stats.completed++;
          } else {
            stats.disconnect(s->req.id, Stats::How::kWrite);
          }
        });
  });

  svr.Post("/complete", [&](const httplib::Request& req, httplib::Response& res) {
    auto s = std::make_shared<ThreadStream>(parse_request(req.body));
    stats.started++;
    engine.add(s);
    std::string body = "{\"t_ns\": [";
    for (int64_t got = 0; got < s->req.events;) {
      for (int64_t i : s->wait()) {
        (void)i;
        body += (got++ ? ", " : "") + std::to_string(now_ns());
      }
    }
    body += "]}";
    res.set_content(body, "application/json");
    stats.completed++;  // counted even when the client is long gone: it cannot be seen here
  });

  svr.Get("/stats", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(stats.json(), "application/json");
  });

  if (!svr.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "sse_httplib: cannot bind port %d\n", port);
    return 1;
  }
  if (backlog > 0) {
    // cpp-httplib 0.11 listens with a backlog of 5 and keeps the socket private; listen()
    // again on the bound socket raises it (Linux allows this on a listening socket).
    for (int fd = 3; fd < 64; ++fd) {
      int listening = 0;
      socklen_t len = sizeof listening;
      if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
        listen(fd, backlog);
      }
    }
  }
  std::fprintf(stderr, "sse_httplib %s: port %d, pool %zu threads, tick %lld ms, nofile %llu\n",
               CPPHTTPLIB_VERSION, port, threads, static_cast<long long>(tick_ms),
               static_cast<unsigned long long>(nofile));
  svr.listen_after_bind();
  return 0;
}

}  // namespace
}  // namespace httpbench

int main(int argc, char** argv) {
  return httpbench::run(argc, argv);
}
