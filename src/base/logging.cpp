// One stderr logger shared by every layer.
#include "base/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ls {

void init_logging(const std::string& level) {
  auto logger = spdlog::get("loraserve");
  if (!logger) logger = spdlog::stderr_color_mt("loraserve");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace ls
