// EventChannel: hands TokenEvents from the engine thread to the coroutine that serves the
// request, on that coroutine's executor (the connection's strand). push() may be called from any
// thread; next() is awaited by one coroutine. close() (client gone, shutdown) wakes it too.
#pragma once

#include "server/boost_compat.h"  // first: see there

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/request.h"

namespace ls::server {

// A TokenEvent tagged with the choice (index into the request's engine requests) it belongs to.
struct ChoiceEvent {
  int32_t choice = 0;
  TokenEvent event;
};

class EventChannel : public std::enable_shared_from_this<EventChannel> {
 public:
  using Executor = boost::asio::any_io_executor;
  explicit EventChannel(Executor ex) : ex_(ex), timer_(ex) {}

  // Any thread.
  void push(int32_t choice, const TokenEvent& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back({choice, e});
      if (!waiting_) return;
      waiting_ = false;
    }
    wake();
  }
  // Any thread: next() returns at once from now on, with `closed()` true.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      waiting_ = false;
    }
    wake();
  }
  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

  // The events that arrived since the last call; waits while there are none (returns empty only
  // once the channel is closed).
  boost::asio::awaitable<std::vector<ChoiceEvent>> next() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!items_.empty() || closed_) {
          std::vector<ChoiceEvent> out;
          out.swap(items_);
          co_return out;
        }
        waiting_ = true;
      }
      // A wake() posted before this wait starts runs after it (same strand), so none is lost.
      timer_.expires_at(boost::asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
  }

 private:
  void wake() {
    boost::asio::post(ex_, [self = shared_from_this()] { self->timer_.cancel(); });
  }

  Executor ex_;
  boost::asio::steady_timer timer_;  // touched only on ex_
  mutable std::mutex mu_;
  std::vector<ChoiceEvent> items_;
  bool waiting_ = false;
  bool closed_ = false;
};

}  // namespace ls::server
