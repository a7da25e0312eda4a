// The suite presets; see bench_suites.h. Full-scale values are S-LoRA's (exp_suite.py names
// in the comments); S2 is its Llama-7B setting with ranks 64,32,16,8 cycling over the adapters,
// S4 its 13B setting with ranks 64,32,16.
#include "bench_suites.h"

#include <functional>
#include <sstream>

namespace ls {

namespace {

using bench::WorkloadSpec;

const std::vector<int32_t> kS1Ranks = {8};
const std::vector<int32_t> kS2Ranks = {64, 32, 16, 8};
const std::vector<int32_t> kS4Ranks = {64, 32, 16};

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// The fixed part of every run at a scale: S-LoRA's 8..512 lengths at full scale; short
// requests over 2 s on the CPU.
WorkloadSpec base_spec(bool full, double duration_s) {
  WorkloadSpec s;
  s.alpha = 1;
  s.cv = 1;
  s.duration_s = full ? duration_s : 2.0;
  s.input_lo = 8;
  s.input_hi = full ? 512 : 32;
  s.output_lo = full ? 8 : 4;
  s.output_hi = full ? 512 : 16;
  return s;
}

struct Preset {
  SuiteInfo info;
  std::function<std::vector<WorkloadSpec>(bool full)> runs;
};

template <typename T, typename F>
std::vector<WorkloadSpec> sweep(const WorkloadSpec& base, const std::vector<T>& values, F set) {
  std::vector<WorkloadSpec> out;
  for (const T& v : values) {
    WorkloadSpec s = base;
    set(s, v);
    out.push_back(s);
  }
  return out;
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = {
      {{"slora-table3",
        {"--num-adapters", "--ranks"},
        "S-LoRA Table 3 (a100-80-table): N in 5,100,1000,2000; alpha 1; cv 1; 10 req/s; 120 s; "
        "ranks {8} (S1) and {64,32,16,8} (S2)"},
       [](bool full) {
         std::vector<WorkloadSpec> out;
         for (const auto& ranks : {kS1Ranks, kS2Ranks}) {
           WorkloadSpec b = base_spec(full, 120);
           b.rate = full ? 10 : 8;
           b.ranks = ranks;
           auto n = full ? std::vector<int32_t>{5, 100, 1000, 2000} : std::vector<int32_t>{5, 100};
           for (auto& s : sweep(b, n, [](WorkloadSpec&s, int32_t v) { s.num_adapters = v; }))
             out.push_back(s);
         }
         return out;
       }},
      {{"num-adapters",
        {"--num-adapters"},
        "S-LoRA a100-80-S2-num-adapter: N in 1,20,50,100,200; ranks 64,32,16,8; 10 req/s; "
        "300 s"},
       [](bool full) {
         WorkloadSpec b = base_spec(full, 300);
         b.rate = full ? 10 : 8;
         b.ranks = kS2Ranks;
         auto n = full ? std::vector<int32_t>{1, 20, 50, 100, 200} : std::vector<int32_t>{1, 5, 20};
         return sweep(b, n, [](WorkloadSpec& s, int32_t v) { s.num_adapters = v; });
       }},
      {{"alpha",
        {"--alpha"},
        "S-LoRA a10g-alpha: alpha in 0.1,0.3,0.6,1; N 200; ranks 64,32,16,8; 2 req/s; 300 s"},
       [](bool full) {
         WorkloadSpec b = base_spec(full, 300);
         b.num_adapters = full ? 200 : 20;
         b.rate = full ? 2 : 8;
         b.ranks = kS2Ranks;
         auto a = full ? std::vector<double>{0.1, 0.3, 0.6, 1} : std::vector<double>{0.1, 1};
         return sweep(b, a, [](WorkloadSpec& s, double v) { s.alpha = v; });
       }},
      {{"cv",
        {"--cv"},
        "S-LoRA a100-80-S4-cv: cv in 1,2,4,6,8; N 400; ranks 64,32,16; 6 req/s; 300 s"},
       [](bool full) {
         WorkloadSpec b = base_spec(full, 300);
         b.num_adapters = full ? 400 : 20;
         b.rate = full ? 6 : 8;
         b.ranks = kS4Ranks;
         auto c = full ? std::vector<double>{1, 2, 4, 6, 8} : std::vector<double>{1, 4};
         return sweep(b, c, [](WorkloadSpec& s, double v) { s.cv = v; });
       }},
      {{"rate",
        {"--rate"},
        "S-LoRA a100-80-S4-req-rate: rate in 1,2,4,6,8 req/s; N 400; ranks 64,32,16; 300 s"},
       [](bool full) {
         WorkloadSpec b = base_spec(full, 300);
         b.num_adapters = full ? 400 : 20;
         b.ranks = kS4Ranks;
         auto r = full ? std::vector<double>{1, 2, 4, 6, 8} : std::vector<double>{4, 8};
         return sweep(b, r, [](WorkloadSpec& s, double v) { s.rate = v; });
       }},
  };
  return p;
}

}  // namespace

std::vector<SuiteInfo> suite_infos() {
  std::vector<SuiteInfo> out;
  for (const auto& p : presets()) out.push_back(p.info);
  return out;
}

Result<std::vector<BenchRun>> suite_runs(const std::string& suite, const std::string& scale) {
  if (scale != "tiny" && scale != "full")
    return invalid_argument("--scale must be tiny or full, got '" + scale + "'");
  for (const auto& p : presets()) {
    if (p.info.name != suite) continue;
    std::vector<BenchRun> out;
    for (const WorkloadSpec& s : p.runs(scale == "full")) out.push_back({run_label(s), s});
    return out;
  }
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.info.name;
  return invalid_argument("--suite '" + suite + "' is not a suite (suites: " + names + ")");
}

std::string run_label(const WorkloadSpec& s) {
  std::string ranks;
  for (int32_t r : s.ranks) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
  return "n=" + std::to_string(s.num_adapters) + " ranks=" + ranks + " alpha=" + num(s.alpha) +
         " cv=" + num(s.cv) + " rate=" + num(s.rate);
}

}  // namespace ls
