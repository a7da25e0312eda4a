// Load client for the SSE benchmark servers: opens --conns concurrent connections at once (one
// asio thread, C++20 coroutines), each POSTs /stream (or /complete), de-chunks the response,
// parses the SSE events and records connect / first-byte / first-event latency, every
// inter-event gap, the delivery lag (receive time - the event's server t_ns; both
// CLOCK_MONOTONIC), errors and whether [DONE] arrived. With --close-after K the odd request ids
// close their socket after K events (or, for /complete, after --close-after-ms) and report when.
// Prints one JSON object.
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  int conns = 100;
  int events = 100;
  int interval_ms = 20;
  bool complete = false;   // POST /complete instead of /stream
  int close_after = 0;     // odd ids close after this many events (0: never)
  int close_after_ms = 0;  // /complete: odd ids close after this many ms
  int timeout_s = 120;
};

struct Conn {
  int64_t t_start = 0, t_connected = 0, t_first_byte = 0, t_first_event = 0, t_last_event = 0;
  int64_t t_closed_by_client = 0;
  int events = 0;
  bool done = false;  // [DONE] (stream) or a full 200 body (complete)
  std::string error;  // empty: no error
  std::vector<int64_t> gaps_ns, lags_ns;
};

// Incremental HTTP/1.1 response parser: status line + headers, then chunked or
// Content-Length body; body bytes go to `on_body`.
struct ResponseParser {
  std::string buf;
  bool headers_done = false, chunked = false, finished = false;
  int status = 0;
  int64_t content_length = -1, chunk_left = -1;  // chunk_left -1: expecting a size line
  bool chunk_crlf = false;

  // Returns false on a malformed response.
  template <class F>
  bool feed(const char* data, size_t n, F&& on_body) {
    buf.append(data, n);
    if (!headers_done) {
      const size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) return buf.size() < 65536;
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      headers_done = true;
      if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return false;
      status = std::atoi(head.c_str() + 9);
      std::transform(head.begin(), head.end(), head.begin(), ::tolower);
      chunked = head.find("transfer-encoding: chunked") != std::string::npos;
      const size_t cl = head.find("content-length:");
      if (cl != std::string::npos) content_length = std::atoll(head.c_str() + cl + 15);
    }
    if (!chunked) {
      on_body(buf.data(), buf.size());
      if (content_length >= 0) {
        content_length -= static_cast<int64_t>(buf.size());
        if (content_length <= 0) finished = true;
      }
      buf.clear();
      return true;
    }
    size_t pos = 0;
    for (;;) {
      if (chunk_crlf) {
        if (buf.size() - pos < 2) break;
        if (buf.compare(pos, 2, "\r\n") != 0) return false;
        pos += 2;
        chunk_crlf = false;
        if (finished) break;
      }
      if (chunk_left < 0) {
        const size_t eol = buf.find("\r\n", pos);
        if (eol == std::string::npos) break;
        chunk_left = std::strtoll(buf.c_str() + pos, nullptr, 16);
        pos = eol + 2;
        if (chunk_left == 0) {  // last chunk (no trailers expected)
          finished = true;
          chunk_crlf = true;
          chunk_left = -1;
          continue;
        }
      }
      const size_t take = std::min<size_t>(static_cast<size_t>(chunk_left), buf.size() - pos);
      if (take == 0) break;
      on_body(buf.data() + pos, take);
      pos += take;
      chunk_left -= static_cast<int64_t>(take);
      if (chunk_left == 0) {
        chunk_left = -1;
        chunk_crlf = true;
      }
    }
    buf.erase(0, pos);
    return true;
  }
};

net::awaitable<void> run_conn(const Options& o, tcp::endpoint ep, int id, Conn& c) {
  auto ex = co_await net::this_coro::executor;
  tcp::socket sock(ex);
  error_code ec;
  c.t_start = now_ns();
  co_await sock.async_connect(ep, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    c.error = "connect: " + ec.message();
    co_return;
  }
  c.t_connected = now_ns();
  sock.set_option(tcp::no_delay(true), ec);
  char body[128];
  std::snprintf(body, sizeof body, "{\"events\": %d, \"interval_ms\": %d, \"id\": %d}", o.events,
                o.interval_ms, id);
  std::string req = std::string("POST ") + (o.complete ? "/complete" : "/stream") +
                    " HTTP/1.1\r\nHost: " + o.host + "\r\nAccept: text/event-stream\r\n" +
                    "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(std::strlen(body)) + "\r\n\r\n" + body;
  co_await net::async_write(sock, net::buffer(req), net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    c.error = "write: " + ec.message();
    co_return;
  }
  const bool closer = (id % 2 == 1);
  net::steady_timer close_timer(ex);
  if (o.complete && closer && o.close_after_ms > 0) {
    close_timer.expires_after(std::chrono::milliseconds(o.close_after_ms));
    close_timer.async_wait([&sock, &c](error_code e) {
      if (e) return;
      c.t_closed_by_client = now_ns();
      error_code ignored;
      sock.close(ignored);
    });
  }
  ResponseParser p;
  std::string sse;
  bool stop = false;
  auto on_body = [&](const char* d, size_t n) {
    if (o.complete) return;
    sse.append(d, n);
    size_t start = 0;
    for (size_t end; !stop && (end = sse.find("\n\n", start)) != std::string::npos;
         start = end + 2) {
      const int64_t t = now_ns();
      const char* ev = sse.c_str() + start;
      if (std::strncmp(ev, "data: [DONE]", 12) == 0) {
        c.done = true;
        continue;
      }
      const char* tp = std::strstr(ev, "\"t_ns\":");
      if (tp && tp < sse.c_str() + end) c.lags_ns.push_back(t - std::atoll(tp + 7));
      if (c.events == 0) {
        c.t_first_event = t;
      } else {
        c.gaps_ns.push_back(t - c.t_last_event);
      }
      c.t_last_event = t;
      ++c.events;
      if (closer && o.close_after > 0 && c.events == o.close_after) stop = true;
    }
    sse.erase(0, start);
  };
  char rbuf[16384];
  while (!stop && !p.finished) {
    const size_t n = co_await sock.async_read_some(net::buffer(rbuf),
                                                   net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    if (c.t_first_byte == 0) c.t_first_byte = now_ns();
    if (!p.feed(rbuf, n, on_body)) {
      c.error = "malformed response";
      co_return;
    }
    if (p.headers_done && p.status != 200) {
      c.error = "status " + std::to_string(p.status);
      co_return;
    }
  }
  close_timer.cancel();
  if (stop) {
    c.t_closed_by_client = now_ns();
    sock.close(ec);
    co_return;
  }
  if (c.t_closed_by_client) co_return;  // the /complete close timer fired
  if (o.complete && p.finished && p.status == 200) c.done = true;
  if (!c.done) c.error = ec ? "read: " + ec.message() : "no [DONE]";
}

struct Pct {
  double p50 = 0, p99 = 0, max = 0;
  size_t n = 0;
};

Pct pct_ms(std::vector<int64_t> v) {
  Pct r;
  r.n = v.size();
  if (v.empty()) return r;
  std::sort(v.begin(), v.end());
  auto at = [&v](double q) {
    return static_cast<double>(v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]) / 1e6;
  };
  r.p50 = at(0.5);
  r.p99 = at(0.99);
  r.max = static_cast<double>(v.back()) / 1e6;
  return r;
}

std::string pct_json(const Pct& p) {
  char b[160];
  std::snprintf(b, sizeof b, "{\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f, \"n\": %zu}", p.p50,
                p.p99, p.max, p.n);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    const char* v = argv[k + 1];
    if (a == "--host") o.host = v;
    if (a == "--port") o.port = std::atoi(v);
    if (a == "--conns") o.conns = std::atoi(v);
    if (a == "--events") o.events = std::atoi(v);
    if (a == "--interval-ms") o.interval_ms = std::atoi(v);
    if (a == "--mode") o.complete = std::string(v) == "complete";
    if (a == "--close-after") o.close_after = std::atoi(v);
    if (a == "--close-after-ms") o.close_after_ms = std::atoi(v);
    if (a == "--timeout-s") o.timeout_s = std::atoi(v);
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(o.conns) + 64) {
    std::fprintf(stderr, "sse_load: RLIMIT_NOFILE %llu too low for %d connections\n",
                 static_cast<unsigned long long>(rl.rlim_cur), o.conns);
    return 2;
  }

  net::io_context ioc(1);
  const tcp::endpoint ep(net::ip::make_address(o.host), static_cast<uint16_t>(o.port));
  std::vector<Conn> conns(static_cast<size_t>(o.conns));
  int running = o.conns;
  const int64_t t0 = now_ns();
  for (int id = 0; id < o.conns; ++id) {
    net::co_spawn(ioc, run_conn(o, ep, id, conns[static_cast<size_t>(id)]),
                  [&running, &ioc](std::exception_ptr) {
                    if (--running == 0) ioc.stop();
                  });
  }
  net::steady_timer deadline(ioc, std::chrono::seconds(o.timeout_s));
  bool timed_out = false;
  deadline.async_wait([&](error_code ec) {
    if (!ec) {
      timed_out = true;
      ioc.stop();
    }
  });
  ioc.run();
  const double wall_s = static_cast<double>(now_ns() - t0) / 1e9;

  std::vector<int64_t> gaps, lags, connect, first_byte, first_event;
  std::map<std::string, int> error_kinds;
  int completed = 0, errors = 0, closed = 0, events = 0;
  std::string closes;
  for (size_t id = 0; id < conns.size(); ++id) {
    Conn& c = conns[id];
    events += c.events;
    gaps.insert(gaps.end(), c.gaps_ns.begin(), c.gaps_ns.end());
    lags.insert(lags.end(), c.lags_ns.begin(), c.lags_ns.end());
    if (c.t_connected) connect.push_back(c.t_connected - c.t_start);
    if (c.t_first_byte) first_byte.push_back(c.t_first_byte - c.t_start);
    if (c.t_first_event) first_event.push_back(c.t_first_event - c.t_start);
    if (c.t_closed_by_client) {
      ++closed;
      closes += (closes.empty() ? "[" : ", [") + std::to_string(id) + ", " +
                std::to_string(c.t_closed_by_client) + "]";
      continue;
    }
    if (timed_out && !c.done && c.error.empty()) c.error = "timeout";
    if (!c.error.empty()) {
      ++errors;
      ++error_kinds[c.error];
    } else if (c.done) {
      ++completed;
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::string kinds;
  for (const auto& [k, v] : error_kinds) {
    kinds += (kinds.empty() ? "\"" : ", \"") + k + "\": " + std::to_string(v);
  }
  std::printf(
      "{\"conns\": %d, \"mode\": \"%s\", \"events_per_stream\": %d, \"interval_ms\": %d, "
      "\"completed\": %d, \"errors\": %d, \"error_kinds\": {%s}, \"closed_by_client\": %d, "
      "\"events_received\": %d, \"timed_out\": %s, \"wall_s\": %.3f, \"client_cpu_s\": %.3f, "
      "\"gap_ms\": %s, \"lag_ms\": %s, \"connect_ms\": %s, \"first_byte_ms\": %s, "
      "\"first_event_ms\": %s, \"client_closes\": [%s]}\n",
      o.conns, o.complete ? "complete" : "stream", o.events, o.interval_ms, completed, errors,
      kinds.c_str(), closed, events, timed_out ? "true" : "false", wall_s, cpu_s,
      pct_json(pct_ms(gaps)).c_str(), pct_json(pct_ms(lags)).c_str(),
      pct_json(pct_ms(connect)).c_str(), pct_json(pct_ms(first_byte)).c_str(),
      pct_json(pct_ms(first_event)).c_str(), closes.c_str());
  return 0;
}
