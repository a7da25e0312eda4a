// Small file helpers that report failures as Status naming the path.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace ls {

Result<std::string> read_text_file(const std::string& path, size_t max_bytes = 64u << 20);
Status write_text_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);

// Parses a JSON file; the error names the file and the parser's position.
Result<nlohmann::ordered_json> read_json_file(const std::string& path);

}  // namespace ls
