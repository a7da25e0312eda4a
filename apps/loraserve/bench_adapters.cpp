// Writing (or reusing) the benchmark's adapters; see bench_adapters.h. Each adapter directory
// made here holds loraserve_bench.json, the stamp of what it is (source, rank, model shape);
// an equal stamp means reuse, a directory without one is never overwritten.
#include "bench_adapters.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "base/file_util.h"
#include "model/demo_model.h"

namespace ls {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr const char* kStamp = "loraserve_bench.json";
constexpr const char* kFiles[] = {"adapter_config.json", "adapter_model.safetensors"};

// The numbers of "lora-<a>" (one) or "lora-r<a>-<b>" (two); empty for other names.
std::vector<int64_t> name_numbers(const std::string& name) {
  auto number = [](const std::string& d) -> int64_t {
    if (d.empty() || d.size() > 9 || d.find_first_not_of("0123456789") != std::string::npos)
      return -1;
    return std::stoll(d);
  };
  if (name.rfind("lora-", 0) != 0) return {};
  const std::string rest = name.substr(5);
  if (rest.rfind('r', 0) == 0) {
    const size_t dash = rest.find('-');
    if (dash == std::string::npos) return {};
    const int64_t a = number(rest.substr(1, dash - 1)), b = number(rest.substr(dash + 1));
    if (a < 1 || b < 0) return {};
    return {a, b};
  }
  const int64_t a = number(rest);
  return a < 0 ? std::vector<int64_t>{} : std::vector<int64_t>{a};
}

std::string model_shape(const ModelConfig& c) {
  return "hidden " + std::to_string(c.hidden_size) + " layers " + std::to_string(c.num_layers) +
         " q " + std::to_string(c.q_dim()) + " kv " + std::to_string(c.kv_dim()) +
         " intermediate " + std::to_string(c.intermediate_size);
}

// Links (or, across file systems, copies) the adapter files of `from` into `to`.
Status link_adapter(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return failed_precondition(to + ": cannot create: " + ec.message());
  for (const char* f : kFiles) {
    const std::string src = from + "/" + f, dst = to + "/" + f;
    fs::remove(dst, ec);
    fs::create_hard_link(src, dst, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    }
    if (ec) return failed_precondition(dst + ": cannot link or copy " + src + ": " + ec.message());
  }
  return ok_status();
}

class Writer {
 public:
  Writer(const BenchAdapterOptions& o, const ModelConfig& c, std::vector<std::string> real)
      : o_(o), config_(c), real_(std::move(real)) {}

  // Makes a random "lora-r<rank>-<k>" (rank > 0) or a copy of real adapter `k` (rank 0).
  Status make(int64_t rank, int64_t k) {
    const std::string name = rank > 0 ? "lora-r" + std::to_string(rank) + "-" + std::to_string(k)
                                      : "lora-" + std::to_string(k);
    const std::string dir = o_.dir + "/" + name;
    const int64_t base = rank > 0 && o_.variants > 0 ? k % o_.variants : k;
    Json stamp;
    if (rank == 0) {
      stamp = {{"source", real_[static_cast<size_t>(k) % real_.size()]}};
    } else {
      std::vector<std::string> targets;
      for (LoraTarget t : o_.targets) targets.emplace_back(lora_target_name(t));
      stamp = {{"source", "random"},
               {"rank", rank},
               {"targets", targets},
               {"weights_of", "lora-r" + std::to_string(rank) + "-" + std::to_string(base)},
               {"model", model_shape(config_)}};
    }
    const std::string stamp_path = dir + "/" + kStamp;
    if (file_exists(stamp_path)) {
      auto old = read_json_file(stamp_path);
      if (old.ok() && old.value() == stamp) return ok_status();
    } else if (fs::exists(dir)) {
      return failed_precondition(dir +
                                 " exists and was not written by loraserve bench; remove it or "
                                 "use another --adapter-dir");
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (rank == 0) {
      LS_RETURN_IF_ERROR(link_adapter(stamp["source"].get<std::string>(), dir));
    } else if (base != k) {
      LS_RETURN_IF_ERROR(make(rank, base));
      LS_RETURN_IF_ERROR(link_adapter(
          o_.dir + "/lora-r" + std::to_string(rank) + "-" + std::to_string(base), dir));
    } else {
      RandomAdapterSpec spec;
      spec.name = name;
      spec.r = static_cast<int32_t>(rank);
      spec.alpha = 2.0 * spec.r;
      spec.targets = o_.targets;
      spec.dtype = DType::kF16;
      LS_RETURN_IF_ERROR(write_random_adapter(
          dir, config_, spec,
          7919 * static_cast<uint64_t>(k) + 104729 * static_cast<uint64_t>(rank)));
    }
    return write_text_file(stamp_path, stamp.dump(2) + "\n");
  }

 private:
  const BenchAdapterOptions& o_;
  const ModelConfig& config_;
  std::vector<std::string> real_;
};

}  // namespace

Result<std::vector<std::string>> list_adapter_dirs(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory() && file_exists(it->path().string() + "/adapter_config.json"))
      out.push_back(fs::absolute(it->path()).string());
  if (ec) return not_found(dir + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Status ensure_bench_adapters(const BenchAdapterOptions& o, const std::vector<std::string>& names,
                             const ModelConfig& config) {
  std::vector<std::string> real;
  if (!o.real_dir.empty()) {
    LS_ASSIGN_OR_RETURN(real, list_adapter_dirs(o.real_dir));
    if (real.empty())
      return not_found("--adapters-from " + o.real_dir +
                       ": no adapter directories (sub-directories with adapter_config.json)");
  }
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec) return failed_precondition("--adapter-dir " + o.dir + ": cannot create: " + ec.message());
  const bool tty = ::isatty(2);
  Writer writer(o, config, real);
  for (size_t k = 0; k < names.size(); ++k) {
    const std::vector<int64_t> n = name_numbers(names[k]);
    if (n.size() == 2 && n[0] <= 4096) {
      LS_RETURN_IF_ERROR(writer.make(n[0], n[1]).with_context("adapter " + names[k]));
    } else if (n.size() == 1 && !real.empty()) {
      LS_RETURN_IF_ERROR(writer.make(0, n[0]).with_context("adapter " + names[k]));
    } else if (!file_exists(o.dir + "/" + names[k] + "/adapter_config.json")) {
      return not_found("adapter '" + names[k] + "' is not in --adapter-dir " + o.dir +
                       " (made on the fly: lora-r<rank>-<k>, and lora-<i> with --adapters-from)");
    }
    if (tty && (k % 16 == 0 || k + 1 == names.size()))
      std::fprintf(stderr, "\rloraserve bench: adapters %zu/%zu", k + 1, names.size());
  }
  if (tty && !names.empty()) std::fprintf(stderr, "\n");
  return ok_status();
}

}  // namespace ls
