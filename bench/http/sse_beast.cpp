// SSE benchmark server on Boost.Beast/Asio with C++20 coroutines (boost::asio::awaitable) on
// `--threads` I/O threads; every connection runs on its own strand. Same endpoints and engine
// as sse_httplib.cpp.
//
// Disconnects: besides a failed write, each request with a pending response arms a 1-byte
// MSG_PEEK async_receive on its socket. A client that closes completes it with EOF (or
// ECONNRESET) at once, without waiting for the next event or the end of a non-streaming
// generation.
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <deque>

#include "common.h"

namespace httpbench {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Executor = net::strand<net::io_context::executor_type>;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using Timer = net::basic_waitable_timer<std::chrono::steady_clock,
                                        net::wait_traits<std::chrono::steady_clock>, Executor>;
using boost::system::error_code;

constexpr auto kAwait = net::use_awaitable_t<Executor>{};

// A request whose events are handed from the engine thread to the connection's strand.
struct StrandStream : EngineStream {
  StrandStream(const StreamRequest& r, Executor ex) : EngineStream(r), ex(ex), wake(ex) {}
  void push(int64_t i) override {
    net::post(ex, [self = shared(), i] {
      self->ready.push_back(i);
      self->wake.cancel();
    });
  }
  std::shared_ptr<StrandStream> shared() {
    return std::static_pointer_cast<StrandStream>(self_ref.lock());
  }
  // On the strand: waits until events are ready or the client is gone.
  net::awaitable<void, Executor> wait() {
    while (ready.empty() && !client_gone) {
      wake.expires_at(Timer::time_point::max());
      error_code ec;
      co_await wake.async_wait(net::redirect_error(kAwait, ec));
    }
  }
  // Arms the read watch: completes when the client closes (EOF / reset) while we compute. A
  // 1-byte MSG_PEEK receive rather than async_wait(wait_read): asio tries a receive at once and
  // only then waits for the next epoll edge, so an EOF that arrived before the watch was armed
  // is not missed (async_wait would wait for another edge that never comes).
  void watch(Socket& sock) {
    sock.async_receive(net::buffer(&peek_byte, 1), tcp::socket::message_peek,
                       [self = shared()](error_code ec, size_t n) {
                         if (ec == net::error::operation_aborted) return;  // socket closing
                         if (ec || n == 0) {  // eof, connection reset, ...
                           self->client_gone = true;
                           self->wake.cancel();
                         }
                         // n > 0: a pipelined request; leave it for the next read.
                       });
  }

  Executor ex;
  Timer wake;
  std::deque<int64_t> ready;
  bool client_gone = false;
  char peek_byte = 0;
  std::weak_ptr<EngineStream> self_ref;
};

struct Server {
  Stats stats;
  std::unique_ptr<Engine> engine;

  std::shared_ptr<StrandStream> start(const StreamRequest& r, Executor ex) {
    auto s = std::make_shared<StrandStream>(r, ex);
    s->self_ref = s;
    stats.started++;
    engine->add(s);
    return s;
  }

  // Returns false when the connection must close.
  net::awaitable<bool, Executor> stream(Socket& sock, const http::request<http::string_body>& req) {
    auto s = start(parse_request(req.body()), sock.get_executor());
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "sse_beast");
    res.set(http::field::content_type, "text/event-stream");
    res.chunked(true);
    res.keep_alive(req.keep_alive());
    http::response_serializer<http::empty_body> sr{res};
    error_code ec;
    co_await http::async_write_header(sock, sr, net::redirect_error(kAwait, ec));
    s->watch(sock);
    for (int64_t sent = 0; !ec && sent < s->req.events;) {
      co_await s->wait();
      if (s->client_gone) break;
      for (; !s->ready.empty() && !ec; ++sent) {
        const std::string ev = sse_event(s->ready.front());
        s->ready.pop_front();
        co_await net::async_write(sock, http::make_chunk(net::buffer(ev)),
                                  net::redirect_error(kAwait, ec));
      }
    }
    bool finished = false;  // everything written: a client that closes now is not a disconnect
    if (!ec && !s->client_gone) {
      co_await net::async_write(sock,
                                http::make_chunk(net::buffer(kSseDone, std::strlen(kSseDone))),
                                net::redirect_error(kAwait, ec));
      if (!ec) {
        co_await net::async_write(sock, http::make_chunk_last(), net::redirect_error(kAwait, ec));
        finished = !ec;
      }
    }
    s->cancelled = true;
    if (finished) {
      stats.completed++;
      co_return req.keep_alive();
    }
    stats.disconnect(s->req.id, s->client_gone ? Stats::How::kReadWatch : Stats::How::kWrite);
    co_return false;
  }

  net::awaitable<bool, Executor> complete(Socket& sock,
                                          const http::request<http::string_body>& req) {
    auto s = start(parse_request(req.body()), sock.get_executor());
    s->watch(sock);
    std::string body = "{\"t_ns\": [";
    for (int64_t got = 0; got < s->req.events;) {
      co_await s->wait();
      if (s->client_gone) break;
      for (; !s->ready.empty(); s->ready.pop_front()) {
        body += (got++ ? ", " : "") + std::to_string(now_ns());
      }
    }
    s->cancelled = true;
    if (s->client_gone) {
      stats.disconnect(s->req.id, Stats::How::kReadWatch);
      co_return false;
    }
    body += "]}";
    co_return co_await reply(sock, req, std::move(body));
  }

  net::awaitable<bool, Executor> reply(Socket& sock, const http::request<http::string_body>& req,
                                       std::string body, http::status st = http::status::ok) {
    http::response<http::string_body> res{st, req.version()};
    res.set(http::field::server, "sse_beast");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    error_code ec;
    co_await http::async_write(sock, res, net::redirect_error(kAwait, ec));
    if (!ec && st == http::status::ok && req.target() == "/complete") stats.completed++;
    co_return !ec && req.keep_alive();
  }

  net::awaitable<void, Executor> session(Socket sock) {
    boost::beast::flat_buffer buf;
    for (bool more = true; more;) {
      http::request<http::string_body> req;
      error_code ec;
      co_await http::async_read(sock, buf, req, net::redirect_error(kAwait, ec));
      if (ec) break;
      if (req.method() == http::verb::post && req.target() == "/stream") {
        more = co_await stream(sock, req);
      } else if (req.method() == http::verb::post && req.target() == "/complete") {
        more = co_await complete(sock, req);
      } else if (req.method() == http::verb::get && req.target() == "/stats") {
        more = co_await reply(sock, req, stats.json());
      } else {
        more = co_await reply(sock, req, "{}", http::status::not_found);
      }
    }
    error_code ec;
    sock.shutdown(tcp::socket::shutdown_send, ec);
    sock.close(ec);
  }

  net::awaitable<void, Executor> accept(Acceptor& acceptor, net::io_context& ioc) {
    for (;;) {
      error_code ec;
      Socket sock =
          co_await acceptor.async_accept(net::make_strand(ioc), net::redirect_error(kAwait, ec));
      if (ec) continue;
      sock.set_option(tcp::no_delay(true), ec);  // one small write per token: no Nagle delay
      auto ex = sock.get_executor();
      net::co_spawn(ex, session(std::move(sock)), net::detached);
    }
  }
};

int run(int argc, char** argv) {
  int port = 8081;
  int threads = 2;
  int64_t tick_ms = 20;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    if (a == "--port") port = std::atoi(argv[k + 1]);
    if (a == "--threads") threads = std::max(1, std::atoi(argv[k + 1]));
    if (a == "--tick-ms") tick_ms = std::atoll(argv[k + 1]);
  }
  ignore_sigpipe();
  const rlim_t nofile = raise_nofile();

  net::io_context ioc(threads);
  Server server;
  server.engine = std::make_unique<Engine>(server.stats, tick_ms);
  Acceptor acceptor(net::make_strand(ioc));
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  acceptor.open(ep.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  error_code ec;
  acceptor.bind(ep, ec);
  if (ec) {
    std::fprintf(stderr, "sse_beast: cannot bind port %d: %s\n", port, ec.message().c_str());
    return 1;
  }
  acceptor.listen(net::socket_base::max_listen_connections);
  net::co_spawn(acceptor.get_executor(), server.accept(acceptor, ioc), net::detached);
  std::fprintf(stderr,
               "sse_beast (Boost %d.%d): port %d, %d I/O threads, tick %lld ms, nofile %llu\n",
               BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, port, threads,
               static_cast<long long>(tick_ms), static_cast<unsigned long long>(nofile));
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  return 0;
}

}  // namespace
}  // namespace httpbench

int main(int argc, char** argv) {
  return httpbench::run(argc, argv);
}
