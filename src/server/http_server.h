// HttpServer: HTTP/1.1 over Boost.Beast with C++20 coroutines: one acceptor, one strand per
// connection, keep-alive, request body and header limits (413 / 431 answered here), and a
// graceful stop. Chosen over cpp-httplib by measurement (bench/http/README.md): a few I/O
// threads carry thousands of concurrent streams, and the socket can be watched for a client
// that leaves while its request waits.
#pragma once

#include "server/boost_compat.h"  // first: see there

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "server/http_exchange.h"

namespace ls::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port (see port())
  int threads = 2;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 64u << 10;
  int idle_timeout_s = 120;  // keep-alive connections idle this long are closed
};

using Handler = std::function<boost::asio::awaitable<void>(HttpExchange&)>;
// Body of the 413/400 answers the transport gives itself (the handler's error format).
using ErrorBody = std::function<std::string(int status, const std::string& message)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Handler handler, ErrorBody error_body);
  ~HttpServer();
  // Binds and listens; the server runs on its own threads after start().
  Status start();
  int port() const { return port_; }
  // Stops accepting new connections (in-flight requests go on).
  void stop_accepting();
  // Closes everything and joins the threads.
  void stop();
  boost::asio::io_context& io() { return io_; }
  int64_t open_connections() const { return connections_.load(); }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket);

  HttpServerOptions options_;
  Handler handler_;
  ErrorBody error_body_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> connections_{0};
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace ls::server
