// Logging through spdlog to stderr; stdout is reserved for command output (JSON).
#pragma once

#include <spdlog/spdlog.h>

namespace ls {

// Level from a name (trace, debug, info, warn, error, off); unknown names mean "info".
void init_logging(const std::string& level);

}  // namespace ls
