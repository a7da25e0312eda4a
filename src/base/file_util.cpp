// File reading with bounded size and JSON parsing that never throws past this boundary.
#include "base/file_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ls {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<std::string> read_text_file(const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return not_found(path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return not_found(path + ": not a regular file");
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return invalid_argument(path + ": file too large (" + std::to_string(st.st_size) +
                            " bytes, limit " + std::to_string(max_bytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return not_found(path + ": cannot create: " + std::strerror(errno));
  out << text;
  out.close();
  if (!out) return internal_error(path + ": write failed");
  return ok_status();
}

Result<nlohmann::ordered_json> read_json_file(const std::string& path) {
  LS_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return data_loss(path + ": malformed JSON: " + e.what());
  }
}

}  // namespace ls
