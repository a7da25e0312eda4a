// `loraserve compress`: jointly compresses many LoRA adapters of one base model into a bundle of
// shared bases and small per-adapter matrices (JD-Full / JD-Diag, optional clusters), or with
// --add projects new adapters onto an existing bundle. Prints a one-line JSON summary; --report
// writes the per-adapter, per-module reconstruction errors with time and peak memory.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "base/file_util.h"
#include "commands.h"
#include "compress/compressor.h"

namespace ls {

namespace {

namespace fs = std::filesystem;

struct CompressFlags {
  std::string model;
  std::vector<std::string> adapters;
  std::vector<std::string> add;
  std::string bundle;
  std::string out;
  std::string report;
  std::string mode = "full";
  int32_t rank = 0;
  int32_t clusters = 1;
  int32_t iters = 10;
  int32_t cluster_iters = 8;
  bool no_normalize = false;
  uint64_t seed = 1;
  int32_t max_lora_rank = 256;
};

double peak_rss_mib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

// "NAME=DIR", an adapter directory (named by its folder), or a folder of adapter directories.
Result<std::vector<std::pair<std::string, std::string>>> expand_adapter_args(
    const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& arg : args) {
    const auto eq = arg.find('=');
    if (eq != std::string::npos && eq > 0 && !fs::exists(arg)) {
      out.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
      continue;
    }
    std::error_code ec;
    if (!fs::is_directory(arg, ec)) return not_found(arg + ": no such adapter directory");
    if (file_exists(arg + "/adapter_config.json")) {
      std::string name = fs::path(arg).lexically_normal().filename().string();
      if (name.empty()) name = fs::path(arg).lexically_normal().parent_path().filename().string();
      out.emplace_back(name, arg);
      continue;
    }
    std::vector<std::pair<std::string, std::string>> found;
    for (const auto& e : fs::directory_iterator(arg, ec))
      if (e.is_directory() && file_exists(e.path().string() + "/adapter_config.json"))
        found.emplace_back(e.path().filename().string(), e.path().string());
    if (ec) return invalid_argument(arg + ": cannot list: " + ec.message());
    if (found.empty())
      return not_found(arg + ": neither an adapter directory (adapter_config.json) nor a " +
                       "directory of adapter directories");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

Result<std::vector<std::shared_ptr<const LoraAdapter>>> load_all(
    const std::vector<std::string>& args, const ModelConfig& config, int32_t max_rank) {
  LS_ASSIGN_OR_RETURN(auto named, expand_adapter_args(args));
  std::vector<std::shared_ptr<const LoraAdapter>> out;
  for (const auto& [name, dir] : named) {
    auto a = load_lora_adapter(dir, name, config, {max_rank});
    if (!a.ok()) return a.status();
    out.push_back(std::make_shared<const LoraAdapter>(std::move(a).value()));
  }
  return out;
}

int run_compress(const CompressFlags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool adding = !f.add.empty();
  if (adding && !f.adapters.empty()) return fail("give --adapters (compress) or --add, not both");
  if (!adding && f.adapters.empty()) return fail("--adapters DIR... is required (or --add)");
  if (adding && f.bundle.empty()) return fail("--add needs --bundle EXISTING_BUNDLE");
  if (!adding && !f.bundle.empty()) return fail("--bundle is only used with --add");
  if (!adding && f.rank < 1) return fail("--rank K must be given and at least 1");
  auto config = ModelConfig::load(f.model);
  if (!config.ok()) return fail(config.status().message());
  auto adapters = load_all(adding ? f.add : f.adapters, config.value(), f.max_lora_rank);
  if (!adapters.ok()) return fail(adapters.status().message());

  Result<compress::Bundle> bundle = internal_error("unset");
  compress::CompressStats stats;
  if (adding) {
    auto existing = compress::read_bundle(f.bundle);
    if (!existing.ok()) return fail(existing.status().message());
    Status shape = existing.value().shape.check(config.value());
    if (!shape.ok()) return fail(shape.with_context(f.bundle).message());
    bundle = compress::add_adapters(existing.value(), config.value(), adapters.value());
  } else {
    if (f.clusters > static_cast<int32_t>(adapters.value().size()))
      return fail("--clusters " + std::to_string(f.clusters) + " is more than the " +
                  std::to_string(adapters.value().size()) + " adapters given");
    compress::CompressOptions opts;
    opts.mode = f.mode == "diag" ? compress::Mode::kDiag : compress::Mode::kFull;
    opts.rank = f.rank;
    opts.clusters = f.clusters;
    opts.iters = f.iters;
    opts.cluster_iters = f.cluster_iters;
    opts.normalize = !f.no_normalize;
    opts.seed = f.seed;
    bundle = compress::compress_adapters(config.value(), adapters.value(), opts, &stats);
  }
  if (!bundle.ok()) return fail(bundle.status().message());
  const double fit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Status wrote = compress::write_bundle(f.out, bundle.value());
  if (!wrote.ok()) return fail(wrote.message());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::ordered_json report = compress::error_report(bundle.value());
  nlohmann::ordered_json summary = {{"bundle", f.out},
                                    {"adapters", bundle.value().adapters.size()},
                                    {"added", adding ? adapters.value().size() : 0},
                                    {"mode", report["mode"]},
                                    {"rank", report["rank"]},
                                    {"clusters", report["clusters"]},
                                    {"mean_rel_error", report["mean_rel_error"]},
                                    {"max_rel_error", report["max_rel_error"]},
                                    {"cluster_rounds", stats.cluster_rounds},
                                    {"seconds_fit", fit_seconds},
                                    {"seconds_total", seconds},
                                    {"peak_rss_mib", peak_rss_mib()}};
  if (!f.report.empty()) {
    nlohmann::ordered_json full = summary;
    full["command"] = command_line();
    full["report"] = report;
    Status st = write_text_file(f.report, full.dump(1) + "\n");
    if (!st.ok()) return fail(st.message());
  }
  std::cout << summary.dump() << "\n";
  std::cout.flush();
  return std::cout.good() ? 0 : fail("cannot write output");
}

}  // namespace

Command add_compress_command(CLI::App& app) {
  auto f = std::make_shared<CompressFlags>();
  auto* sub = app.add_subcommand(
      "compress", "Jointly compress LoRA adapters into shared bases + per-adapter matrices");
  sub->add_option("--model", f->model, "Base model directory (its config.json gives the shapes)")
      ->required()
      ->envname("LORASERVE_MODEL");
  sub->add_option("--adapters", f->adapters,
                  "Adapter directories, NAME=DIR, or directories of adapter directories")
      ->expected(1, -1);
  sub->add_option("--add", f->add, "New adapters to project onto --bundle without refitting")
      ->expected(1, -1);
  sub->add_option("--bundle", f->bundle, "Existing bundle directory (with --add)");
  sub->add_option("--out", f->out, "Output bundle directory")->required();
  sub->add_option("--report", f->report, "Write the per-adapter, per-module error report (JSON)");
  sub->add_option("--rank", f->rank, "K: rank of the shared bases")->check(CLI::Range(1, 1 << 16));
  sub->add_option("--mode", f->mode, "full (JD-Full, K x K S_i) or diag (JD-Diag, diagonal S_i)")
      ->check(CLI::IsMember({"full", "diag"}));
  sub->add_option("--clusters", f->clusters, "C: groups of adapters with their own bases")
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--iters", f->iters, "Alternating steps per fit")->check(CLI::Range(0, 10000));
  sub->add_option("--cluster-iters", f->cluster_iters, "k-means rounds when C > 1")
      ->check(CLI::Range(1, 1000));
  sub->add_flag("--no-normalize", f->no_normalize,
                "Fit the raw updates (default: each at unit Frobenius norm, restored after)");
  sub->add_option("--seed", f->seed, "Seed of the random starts");
  sub->add_option("--max-lora-rank", f->max_lora_rank, "Refuse adapters of higher rank")
      ->check(CLI::Range(1, 4096));
  sub->footer(
      "Examples:\n"
      "  loraserve compress --model M --adapters ADAPTERS_DIR --rank 32 --mode full --out B\n"
      "  loraserve compress --model M --adapters a=DIR1 b=DIR2 --rank 16 --mode diag "
      "--clusters 2 --report r.json --out B\n"
      "  loraserve compress --model M --add c=DIR3 --bundle B --out B2");
  return {sub, [f]() { return run_compress(*f); }};
}

}  // namespace ls
