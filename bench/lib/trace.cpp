// JSONL trace reading and writing; see trace.h. Every rejected line says which line and why.
#include "trace.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "base/rng.h"

namespace ls::bench {

namespace {

using Json = nlohmann::json;

constexpr const char* kFields = "timestamp, adapter, prompt, input_len, output_len";

// A positive int32 from an integer JSON value, or an error message.
std::string positive_int(const Json& v, const char* field, int32_t* out) {
  if (!v.is_number_integer())
    return std::string("'") + field + "' must be an integer, got " + v.dump();
  const auto x = v.get<int64_t>();
  if (x < 1 || x > std::numeric_limits<int32_t>::max())
    return std::string("'") + field + "' must be between 1 and 2^31-1, got " + v.dump();
  *out = static_cast<int32_t>(x);
  return "";
}

std::string parse_prompt(const Json& p, TraceRequest* r) {
  if (p.is_string()) {
    if (p.get_ref<const std::string&>().empty()) return "'prompt' must not be empty";
    r->prompt_text = p.get<std::string>();
    return "";
  }
  if (!p.is_array()) return "'prompt' must be a string or a list of token ids";
  if (p.empty()) return "'prompt' must not be empty";
  r->prompt_ids.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const Json& t = p[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      return "'prompt' token " + std::to_string(i) +
             " is not a token id (an integer >= 0): " + t.dump();
    r->prompt_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  r->input_len = static_cast<int32_t>(r->prompt_ids.size());
  return "";
}

// One line's request, or the message saying what is wrong with it.
std::string parse_line(const std::string& line, double previous_ts, TraceRequest* r) {
  Json j;
  try {
    j = Json::parse(line);
  } catch (const Json::parse_error& e) {
    return std::string("not valid JSON (") + e.what() + ")";
  }
  if (!j.is_object()) return "expected a JSON object, got " + std::string(j.type_name());
  static const std::set<std::string> known = {"timestamp", "adapter", "prompt", "input_len",
                                              "output_len"};
  for (const auto& item : j.items())
    if (!known.count(item.key()))
      return "unknown field '" + item.key() + "' (fields: " + kFields + ")";
  auto ts = j.find("timestamp");
  if (ts == j.end()) return "missing 'timestamp'";
  if (!ts->is_number() || !std::isfinite(ts->get<double>()) || ts->get<double>() < 0)
    return "'timestamp' must be a number of seconds >= 0, got " + ts->dump();
  r->timestamp_s = ts->get<double>();
  if (r->timestamp_s < previous_ts)
    return "'timestamp' " + ts->dump() + " is earlier than the line before (" +
           std::to_string(previous_ts) + "); sort the trace by timestamp";
  auto ad = j.find("adapter");
  if (ad != j.end() && !ad->is_null()) {
    if (!ad->is_string() || ad->get_ref<const std::string&>().empty())
      return "'adapter' must be a non-empty string or null, got " + ad->dump();
    r->adapter = ad->get<std::string>();
  }
  auto p = j.find("prompt");
  auto il = j.find("input_len");
  if (p != j.end() && il != j.end()) return "give either 'prompt' or 'input_len', not both";
  if (p == j.end() && il == j.end()) return "missing 'prompt' (text or token ids) or 'input_len'";
  if (p != j.end()) {
    if (auto e = parse_prompt(*p, r); !e.empty()) return e;
  } else if (auto e = positive_int(*il, "input_len", &r->input_len); !e.empty()) {
    return e;
  }
  auto ol = j.find("output_len");
  if (ol == j.end()) return "missing 'output_len'";
  return positive_int(*ol, "output_len", &r->output_len);
}

}  // namespace

std::vector<TraceRequest> to_trace(const WorkloadSpec& spec,
                                   const std::vector<WorkloadRequest>& workload) {
  std::vector<TraceRequest> out(workload.size());
  for (size_t i = 0; i < workload.size(); ++i) {
    out[i].timestamp_s = workload[i].arrival_s;
    out[i].adapter = adapter_name(spec, workload[i].adapter);
    out[i].input_len = workload[i].input_len;
    out[i].output_len = workload[i].output_len;
  }
  return out;
}

Status fill_prompts(std::vector<TraceRequest>* requests, PromptFormat format, int32_t vocab_size,
                    uint64_t seed) {
  if (format == PromptFormat::kTokenIds && vocab_size <= kFirstPromptId)
    return invalid_argument("random prompt ids need a vocabulary larger than " +
                            std::to_string(kFirstPromptId) + " tokens, got " +
                            std::to_string(vocab_size));
  Rng rng(seed);
  const auto span = static_cast<uint64_t>(vocab_size - kFirstPromptId);
  for (TraceRequest& r : *requests) {
    if (r.has_prompt()) continue;
    if (format == PromptFormat::kText) {
      r.prompt_text.reserve(6 * static_cast<size_t>(r.input_len));
      for (int32_t t = 0; t < r.input_len; ++t) r.prompt_text += "Hello ";
      r.input_len = 0;  // the server's tokenizer decides
      continue;
    }
    r.prompt_ids.resize(static_cast<size_t>(r.input_len));
    for (int32_t& id : r.prompt_ids)
      id = kFirstPromptId + static_cast<int32_t>(rng.next_u64() % span);
  }
  return ok_status();
}

Result<std::vector<TraceRequest>> parse_trace(std::istream& in, const std::string& name) {
  std::vector<TraceRequest> out;
  std::string line;
  int64_t number = 0;
  double previous = 0.0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank
    TraceRequest r;
    if (auto e = parse_line(line, previous, &r); !e.empty())
      return invalid_argument(name + ": line " + std::to_string(number) + ": " + e);
    previous = r.timestamp_s;
    out.push_back(std::move(r));
  }
  if (in.bad()) return data_loss(name + ": read error");
  if (out.empty()) return invalid_argument(name + ": no requests (an empty trace)");
  return out;
}

Result<std::vector<TraceRequest>> read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open the trace file");
  return parse_trace(in, path);
}

Status write_trace(const std::string& path, const std::vector<TraceRequest>& requests) {
  std::ofstream out(path);
  if (!out) return failed_precondition(path + ": cannot write the trace file");
  for (const TraceRequest& r : requests) {
    nlohmann::ordered_json j;
    j["timestamp"] = r.timestamp_s;
    j["adapter"] =
        r.adapter.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.adapter);
    if (!r.prompt_ids.empty())
      j["prompt"] = r.prompt_ids;
    else if (!r.prompt_text.empty())
      j["prompt"] = r.prompt_text;
    else
      j["input_len"] = r.input_len;
    j["output_len"] = r.output_len;
    out << j.dump() << "\n";
  }
  out.close();
  if (!out) return failed_precondition(path + ": cannot write the trace file");
  return ok_status();
}

std::vector<std::string> trace_adapters(const std::vector<TraceRequest>& requests) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const TraceRequest& r : requests)
    if (!r.adapter.empty() && seen.insert(r.adapter).second) names.push_back(r.adapter);
  return names;
}

}  // namespace ls::bench
