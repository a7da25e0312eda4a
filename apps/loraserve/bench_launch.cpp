// The launched server's process handling; see bench_launch.h. posix_spawn (not fork) because
// the bench process may already run threads.
#include "bench_launch.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <regex>

extern char** environ;

namespace ls {

namespace {
constexpr size_t kTailLines = 40;
}

Result<std::unique_ptr<LaunchedServer>> LaunchedServer::start(const std::vector<std::string>& args,
                                                              double timeout_s) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return internal_error("--launch: cannot find this binary (/proc/self/exe)");
  self[n] = '\0';
  int fds[2];
  if (::pipe(fds) != 0) return internal_error(std::string("--launch: pipe: ") + strerror(errno));
  std::vector<std::string> argv_s = {self, "serve"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  std::unique_ptr<LaunchedServer> s(new LaunchedServer());
  const int rc = ::posix_spawn(&s->pid_, self, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    s->pid_ = -1;
    return internal_error(std::string("--launch: cannot start loraserve serve: ") + strerror(rc));
  }
  s->reader_ = std::thread([p = s.get(), fd = fds[0]] { p->read_log(fd); });
  std::unique_lock<std::mutex> lock(s->mu_);
  const bool ready = s->cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                                     [&] { return s->port_ > 0 || s->exited_; });
  lock.unlock();
  if (s->port_ > 0) return s;
  std::string why = ready ? "exited" : "did not listen within " + std::to_string(timeout_s) + " s";
  return failed_precondition("--launch: loraserve serve " + why + ": " + s->log_tail());
}

void LaunchedServer::read_log(int fd) {
  static const std::regex listening(R"(listening on http://[^ ]*:(\d+))");
  std::string pending;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 1);
      std::smatch m;
      std::lock_guard<std::mutex> lock(mu_);
      if (port_ == 0 && std::regex_search(line, m, listening)) {
        port_ = std::stoi(m[1].str());
        cv_.notify_all();
      }
      tail_.push_back(std::move(line));
      if (tail_.size() > kTailLines) tail_.pop_front();
    }
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending.empty()) tail_.push_back(pending);
  exited_ = true;
  cv_.notify_all();
}

std::string LaunchedServer::log_tail() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& l : tail_) out += (out.empty() ? "" : " | ") + l;
  return out.empty() ? "(no output)" : out;
}

Status LaunchedServer::stop(double grace_s) {
  if (pid_ <= 0) return ok_status();
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  pid_t r = 0;
  while ((r = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool killed = false;
  if (r == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    killed = true;
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  if (killed)
    return failed_precondition("--launch: loraserve serve did not stop within " +
                               std::to_string(grace_s) + " s of SIGTERM (killed)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return failed_precondition("--launch: loraserve serve ended abnormally (status " +
                               std::to_string(status) + "): " + log_tail());
  return ok_status();
}

LaunchedServer::~LaunchedServer() {
  if (pid_ > 0) (void)stop(5.0);
  if (reader_.joinable()) reader_.join();
}

}  // namespace ls
