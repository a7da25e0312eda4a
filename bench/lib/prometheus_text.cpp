// Prometheus text exposition parsing (the subset servers emit: name, optional {labels}, value,
// optional timestamp) and the before/after report; see prometheus_text.h.
#include "prometheus_text.h"

#include <cstdlib>
#include <sstream>

namespace ls::bench {

namespace {

bool wanted(const std::string& name) {
  if (name.rfind("loraserve:", 0) != 0 && name.rfind("vllm:", 0) != 0) return false;
  return name.size() < 7 || name.compare(name.size() - 7, 7, "_bucket") != 0;
}

// Parses "value [timestamp]"; false when it is not a number.
bool parse_value(const std::string& rest, double* v) {
  std::istringstream in(rest);
  std::string token;
  if (!(in >> token)) return false;
  if (token == "NaN" || token == "+Inf" || token == "-Inf") {
    *v = 0.0;  // not summable; such series never matter to a report
    return true;
  }
  char* end = nullptr;
  *v = std::strtod(token.c_str(), &end);
  return end && *end == '\0';
}

}  // namespace

Result<MetricSums> parse_prometheus_text(const std::string& text) {
  MetricSums out;
  std::istringstream in(text);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    const std::string name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {  // skip the labels, quotes and escapes included
      bool quoted = false;
      for (++i; i < line.size(); ++i) {
        if (quoted && line[i] == '\\') {
          ++i;
        } else if (line[i] == '"') {
          quoted = !quoted;
        } else if (!quoted && line[i] == '}') {
          break;
        }
      }
      if (i >= line.size())
        return invalid_argument("/metrics line " + std::to_string(number) + ": unclosed labels");
      ++i;
    }
    double v = 0;
    if (name.empty() || !parse_value(line.substr(i), &v))
      return invalid_argument("/metrics line " + std::to_string(number) +
                              ": not 'name{labels} value': " + line.substr(0, 200));
    if (wanted(name)) out[name] += v;
  }
  return out;
}

nlohmann::ordered_json metrics_report(const MetricSums& before, const MetricSums& after) {
  nlohmann::ordered_json b = nlohmann::ordered_json::object(), a = b, d = b;
  for (const auto& [k, v] : before) b[k] = v;
  for (const auto& [k, v] : after) {
    a[k] = v;
    auto it = before.find(k);
    d[k] = v - (it == before.end() ? 0.0 : it->second);
  }
  auto delta = [&](const char* name) -> double {
    auto it = after.find(name);
    if (it == after.end()) return 0.0;
    auto jt = before.find(name);
    return it->second - (jt == before.end() ? 0.0 : jt->second);
  };
  auto value = [&](const char* name) -> nlohmann::ordered_json {
    auto it = after.find(name);
    return it == after.end() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(it->second);
  };
  const double loads = delta("loraserve:adapter_load_latency_seconds_count");
  nlohmann::ordered_json cache = {
      {"disk_loads", delta("loraserve:adapter_disk_loads_total")},
      {"device_hits", delta("loraserve:adapter_device_hits_total")},
      {"host_hits", delta("loraserve:adapter_host_hits_total")},
      {"cold_requests", delta("loraserve:adapter_misses_total")},
      {"device_evictions", delta("loraserve:adapter_device_evictions_total")},
      {"host_evictions", delta("loraserve:adapter_host_evictions_total")},
      {"load_failures", delta("loraserve:adapter_load_failures_total")},
      {"mean_load_latency_s",
       loads > 0 ? delta("loraserve:adapter_load_latency_seconds_sum") / loads : 0.0},
      {"preemptions", delta("vllm:num_preemptions_total")},
      {"adapters_registered", value("loraserve:adapters_registered")},
      {"adapters_resident", value("loraserve:adapters_resident")},
      {"pages_adapter", value("loraserve:pages_adapter")},
      {"pages_total", value("loraserve:pages_total")}};
  return {{"adapter_cache", cache}, {"before", b}, {"after", a}, {"delta", d}};
}

}  // namespace ls::bench
