// `loraserve bench --launch`: runs `loraserve serve` (this same binary) as a child process on a
// free loopback port, waits until it listens, keeps the tail of its log for error messages,
// and stops it with SIGTERM (SIGKILL after a grace period).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace ls {

class LaunchedServer {
 public:
  // Starts `loraserve serve <args>` (add "--port 0"); fails with the log's tail when the
  // server exits or does not listen within timeout_s.
  static Result<std::unique_ptr<LaunchedServer>> start(const std::vector<std::string>& args,
                                                       double timeout_s);
  ~LaunchedServer();
  LaunchedServer(const LaunchedServer&) = delete;
  LaunchedServer& operator=(const LaunchedServer&) = delete;

  int port() const { return port_; }
  // SIGTERM, then waits up to grace_s before SIGKILL; an exit other than 0 is an error.
  Status stop(double grace_s);
  // The last lines the server wrote to stderr, joined by " | ".
  std::string log_tail() const;

 private:
  LaunchedServer() = default;
  void read_log(int fd);

  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;  // the log closed: the process is gone
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> tail_;
};

}  // namespace ls
