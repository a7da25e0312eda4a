// LS_CHECK: broken invariants abort with file, line and function; never for expected failures.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace ls::detail {
[[noreturn]] inline void check_failed(const char* expr, const char* file, int line,
                                      const char* func, const char* msg) {
  std::fprintf(stderr, "loraserve: invariant broken: %s (%s) at %s:%d in %s\n", expr,
               msg ? msg : "", file, line, func);
  std::fflush(stderr);
  std::abort();
}
}  // namespace ls::detail

#define LS_CHECK(cond)                                                                     \
  do {                                                                                     \
    if (!(cond)) ::ls::detail::check_failed(#cond, __FILE__, __LINE__, __func__, nullptr); \
  } while (0)

#define LS_CHECK_MSG(cond, msg)                                                        \
  do {                                                                                 \
    if (!(cond)) ::ls::detail::check_failed(#cond, __FILE__, __LINE__, __func__, msg); \
  } while (0)
