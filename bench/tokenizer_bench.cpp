// Tokenizer encode speed, single-threaded: MB/s of UTF-8 input on English text and on mixed
// Unicode for a byte-level BPE (llama3) and a SentencePiece-style BPE (llama2's tokenizer.json).
// Inputs are the files tools/tokenizer_bench_hf.py --write-inputs makes, so the HF half of the
// comparison (tools/tokenizer_bench_hf.py --measure, given with --hf-json) times the same lines.
// Each figure is the best of --repeats passes after one warm-up pass (which fills the word
// cache, as HF's is filled by its warm-up).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "text/tokenizer.h"

namespace ls {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

struct Row {
  std::string tokenizer, text;
  size_t bytes = 0, tokens = 0;
  double mb_s = 0;
};

Row measure(const Tokenizer& tok, const std::string& name, const std::string& text_name,
            const std::vector<std::string>& lines, int repeats) {
  Row r{name, text_name};
  for (const auto& l : lines) r.bytes += l.size();
  auto pass = [&] {
    size_t n = 0;
    for (const auto& l : lines) {
      auto ids = tok.encode(l, /*add_special_tokens=*/false);
      n += ids.ok() ? ids.value().size() : 0;
    }
    return n;
  };
  r.tokens = pass();  // warm-up
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    pass();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  r.mb_s = static_cast<double>(r.bytes) / best / 1e6;
  return r;
}

// HF's figure for the same tokenizer and text from tools/tokenizer_bench_hf.py's JSON (the
// faster of its per-line encode and one-thread encode_batch), or 0.
double hf_mb_s(const nlohmann::json& hf, const Row& r) {
  if (!hf.contains("results")) return 0;
  for (const auto& h : hf["results"])
    if (h.value("tokenizer", "") == r.tokenizer && h.value("text", "") == r.text)
      return std::max(h.value("encode_mb_s", 0.0), h.value("encode_batch_mb_s", 0.0));
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"Tokenizer encode speed (single thread) vs HF tokenizers"};
  app.footer(
      "Example:\n  python3 tools/tokenizer_bench_hf.py --write-inputs /tmp/tb\n"
      "  tokenizer_bench --tokenizers ../shared/tokenizers --inputs /tmp/tb --json out.json");
  std::string tokenizers = "../shared/tokenizers", inputs, json_path, hf_path;
  int repeats = 3;
  app.add_option("--tokenizers", tokenizers, "Directory holding llama3/ and llama2/");
  app.add_option("--inputs", inputs, "Directory with english.txt and mixed.txt")->required();
  app.add_option("--json", json_path, "Write results here");
  app.add_option("--hf-json", hf_path, "HF results from tools/tokenizer_bench_hf.py, for ratios");
  app.add_option("--repeats", repeats, "Timed passes (best is kept)")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  nlohmann::json hf;
  if (!hf_path.empty()) {
    std::ifstream in(hf_path);
    try {
      in >> hf;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tokenizer_bench: %s: %s\n", hf_path.c_str(), e.what());
      return 1;
    }
  }
  nlohmann::ordered_json out;
  out["command"] = "tokenizer_bench --inputs " + inputs + " --repeats " + std::to_string(repeats);
  out["threads"] = 1;
  out["hardware_threads"] = std::thread::hardware_concurrency();
  out["results"] = nlohmann::ordered_json::array();
  for (const char* name : {"llama3", "llama2"}) {
    auto t0 = std::chrono::steady_clock::now();
    auto tok = Tokenizer::load_dir(tokenizers + "/" + name);
    if (!tok.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", tok.status().message().c_str());
      return 1;
    }
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const char* text : {"english", "mixed"}) {
      auto lines = read_lines(inputs + "/" + text + ".txt");
      if (lines.empty()) {
        std::fprintf(stderr, "tokenizer_bench: no lines in %s/%s.txt\n", inputs.c_str(), text);
        return 1;
      }
      Row r = measure(*tok.value(), name, text, lines, repeats);
      double hf_rate = hf_mb_s(hf, r);
      std::printf("ours %-7s %-8s %8.2f MB/s  %zu tokens", name, text, r.mb_s, r.tokens);
      if (hf_rate > 0) std::printf("  HF %6.2f MB/s  ratio %.2fx", hf_rate, r.mb_s / hf_rate);
      std::printf("  (load %.2fs)\n", load_s);
      nlohmann::ordered_json row = {{"tokenizer", r.tokenizer}, {"text", r.text},
                                    {"bytes", r.bytes},         {"tokens", r.tokens},
                                    {"encode_mb_s", r.mb_s},    {"load_s", load_s}};
      if (hf_rate > 0) {
        row["hf_mb_s"] = hf_rate;
        row["ratio_vs_hf"] = r.mb_s / hf_rate;
      }
      out["results"].push_back(row);
    }
  }
  if (!hf.is_null()) out["hf"] = hf;
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << out.dump(1) << '\n';
    if (!f) {
      std::fprintf(stderr, "tokenizer_bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace ls

int main(int argc, char** argv) {
  return ls::run(argc, argv);
}
