// HttpServer: accept loop and per-connection sessions (read, limits, dispatch, keep-alive).
#include "server/http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "base/logging.h"

namespace ls::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

HttpServer::HttpServer(HttpServerOptions options, Handler handler, ErrorBody error_body)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      error_body_(std::move(error_body)),
      io_(options_.threads) {}

HttpServer::~HttpServer() {
  stop();
}

Status HttpServer::start() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return invalid_argument("--host '" + options_.host + "' is not an IP address");
  auto acceptor = std::make_unique<tcp::acceptor>(io_);
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(options_.port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return failed_precondition("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + ": " + ec.message());
  port_ = acceptor->local_endpoint().port();
  acceptor_ = std::move(acceptor);
  asio::co_spawn(io_, accept_loop(), asio::detached);
  for (int i = 0; i < std::max(1, options_.threads); ++i)
    threads_.emplace_back([this] { io_.run(); });
  return ok_status();
}

void HttpServer::stop_accepting() {
  asio::post(io_, [this] {
    if (!acceptor_) return;
    boost::system::error_code ec;
    acceptor_->close(ec);
  });
}

void HttpServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  io_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

asio::awaitable<void> HttpServer::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(asio::make_strand(io_));
    co_await acceptor_->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor_->is_open()) co_return;  // stop_accepting()
      spdlog::warn("accept failed: {}", ec.message());
      if (ec == asio::error::no_descriptors) {  // out of fds: back off instead of spinning
        asio::steady_timer t(io_, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto ex = socket.get_executor();
    asio::co_spawn(ex, session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::session(tcp::socket socket) {
  ++connections_;
  struct Count {
    std::atomic<int64_t>& c;
    ~Count() { --c; }
  } count{connections_};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser.body_limit(options_.max_body_bytes);
    stream.expires_after(std::chrono::seconds(options_.idle_timeout_s));
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    stream.expires_never();
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted)
      break;
    if (ec) {
      int status = 400;
      std::string message = "malformed HTTP request: " + ec.message();
      if (ec == http::error::body_limit) {
        status = 413;
        message = "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes";
      } else if (ec == http::error::header_limit) {
        status = 431;
        message = "request headers exceed " + std::to_string(options_.max_header_bytes) + " bytes";
      }
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.set(http::field::server, "loraserve");
      res.set(http::field::content_type, "application/json");
      res.keep_alive(false);
      res.body() = error_body_(status, message);
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      break;
    }
    HttpRequest req = parser.release();
    HttpExchange ex(stream, req);
    bool failed = false;
    try {
      co_await handler_(ex);
    } catch (const std::exception& e) {
      spdlog::error("handler failed on {}: {}", ex.path(), e.what());
      failed = true;
    }
    ex.stop_watching();
    if (failed && ex.responded()) break;  // mid-stream: the only safe thing left is to close
    if (failed) {
      co_await ex.respond(500, "application/json", error_body_(500, "internal error"));
      break;
    }
    if (!ex.responded())
      co_await ex.respond(500, "application/json", error_body_(500, "no response"));
    if (!ex.keep_alive()) break;
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

}  // namespace ls::server
