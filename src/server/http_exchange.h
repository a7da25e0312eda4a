// HttpExchange: one HTTP request on a connection and the ways to answer it: a whole response,
// or a chunked stream (SSE). Every write reports whether the client is still there; a watcher
// on the socket notices a client that closes while the handler waits (e.g. for the engine).
#pragma once

#include "server/boost_compat.h"  // first: see there

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ls::server {

using Headers = std::vector<std::pair<std::string, std::string>>;
using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

class HttpExchange {
 public:
  HttpExchange(boost::beast::tcp_stream& stream, HttpRequest& request)
      : stream_(stream), request_(request) {}
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return request_; }
  std::string method() const;
  std::string path() const;  // the target without the query string
  std::string header(std::string_view name) const;
  const std::string& body() const { return request_.body(); }
  boost::asio::any_io_executor executor() { return stream_.get_executor(); }

  // A whole response. Returns false when the client is gone.
  boost::asio::awaitable<bool> respond(int status, std::string content_type, std::string body,
                                       const Headers& headers = {});
  // Starts a chunked response; then write() each piece and end() once.
  boost::asio::awaitable<bool> begin_stream(int status, std::string content_type,
                                            const Headers& headers = {});
  boost::asio::awaitable<bool> write(std::string data);
  boost::asio::awaitable<bool> end();
  bool responded() const { return responded_; }
  bool streaming() const { return streaming_; }

  // Calls `on_gone` (on this exchange's executor) if the client closes the connection before
  // stop_watching(); pipelined bytes from the client do not count as gone.
  void watch_disconnect(std::function<void()> on_gone);
  void stop_watching();
  bool gone() const { return gone_; }
  bool keep_alive() const { return keep_alive_ && !gone_; }

 private:
  boost::beast::tcp_stream& stream_;
  HttpRequest& request_;
  bool responded_ = false;
  bool streaming_ = false;
  bool gone_ = false;
  bool keep_alive_ = true;
  std::shared_ptr<bool> watching_;  // shared with the pending wait's handler
};

}  // namespace ls::server
