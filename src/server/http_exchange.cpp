// HttpExchange: whole and chunked responses over a Beast tcp_stream, and the disconnect watcher.
#include "server/http_exchange.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

namespace ls::server {

namespace asio = boost::asio;
namespace http = boost::beast::http;

std::string HttpExchange::method() const {
  return std::string(request_.method_string());
}

std::string HttpExchange::path() const {
  const auto t = request_.target();
  const std::string target(t.data(), t.size());
  return target.substr(0, target.find('?'));
}

std::string HttpExchange::header(std::string_view name) const {
  auto it = request_.find(boost::beast::string_view(name.data(), name.size()));
  return it == request_.end() ? std::string() : std::string(it->value());
}

namespace {
template <class Message>
void set_common(Message& m, const std::string& content_type, const Headers& headers) {
  m.set(http::field::server, "loraserve");
  m.set(http::field::content_type, content_type);
  for (const auto& [k, v] : headers) m.set(k, v);
}
}  // namespace

asio::awaitable<bool> HttpExchange::respond(int status, std::string content_type, std::string body,
                                            const Headers& headers) {
  responded_ = true;
  keep_alive_ = request_.keep_alive();
  http::response<http::string_body> res{static_cast<http::status>(status), request_.version()};
  set_common(res, content_type, headers);
  res.keep_alive(keep_alive_);
  res.body() = std::move(body);
  res.prepare_payload();
  boost::system::error_code ec;
  co_await http::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) gone_ = true;
  co_return !ec;
}

asio::awaitable<bool> HttpExchange::begin_stream(int status, std::string content_type,
                                                 const Headers& headers) {
  responded_ = true;
  streaming_ = true;
  keep_alive_ = request_.keep_alive();
  http::response<http::empty_body> res{static_cast<http::status>(status), request_.version()};
  set_common(res, content_type, headers);
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(keep_alive_);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  boost::system::error_code ec;
  co_await http::async_write_header(stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) gone_ = true;
  co_return !ec;
}

asio::awaitable<bool> HttpExchange::write(std::string data) {
  if (gone_) co_return false;
  if (data.empty()) co_return true;
  boost::system::error_code ec;
  co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) gone_ = true;
  co_return !ec;
}

asio::awaitable<bool> HttpExchange::end() {
  if (gone_) co_return false;
  boost::system::error_code ec;
  co_await asio::async_write(stream_, http::make_chunk_last(),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) gone_ = true;
  co_return !ec;
}

// A 1-byte MSG_PEEK receive rather than async_wait(wait_read): asio's epoll is edge-triggered,
// so a wait can complete on a stale edge (the request's own bytes, already read) and find
// nothing there, or miss an EOF whose edge came before it was armed. The receive is tried at
// once, and a would-block attempt just waits again. EOF or an error means the client left;
// pipelined bytes end the watch without counting as gone and stay for the next read.
void HttpExchange::watch_disconnect(std::function<void()> on_gone) {
  auto watching = std::make_shared<bool>(true);
  watching_ = watching;
  auto peek = std::make_shared<char>(0);
  stream_.socket().async_receive(asio::buffer(peek.get(), 1), asio::ip::tcp::socket::message_peek,
                                 [this, watching, peek, on_gone = std::move(on_gone)](
                                     const boost::system::error_code& ec, size_t n) {
                                   if (!*watching)
                                     return;  // the exchange is over (and may be gone)
                                   if (ec || n == 0) {
                                     gone_ = true;
                                     on_gone();
                                   }
                                 });
}

void HttpExchange::stop_watching() {
  if (!watching_) return;
  *watching_ = false;
  watching_.reset();
  // Completes the pending wait (as cancelled) before the next read on the socket.
  boost::system::error_code ec;
  stream_.socket().cancel(ec);
}

}  // namespace ls::server
