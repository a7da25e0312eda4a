// Named benchmark suites (`loraserve bench --suite NAME --scale tiny|full`): S-LoRA's Table 3
// and its number-of-adapters, alpha, cv and request-rate sweeps (values from S-LoRA's
// benchmarks/exp_suite.py, docs/BENCHMARKS.md), each as a list of workloads. `full` is the
// published setting (for a GPU); `tiny` keeps the shape of the sweep at a size the CPU runs
// in seconds with the demo model.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "workload.h"

namespace ls {

struct BenchRun {
  std::string label;  // "n=100 ranks=8 alpha=1 cv=1 rate=10"
  bench::WorkloadSpec spec;
};

// The parameter a suite varies besides the number of adapters ("" for none).
struct SuiteInfo {
  std::string name;
  std::vector<std::string> swept;  // flag names the suite sets per run, e.g. {"--alpha"}
  std::string source;              // where the values come from
};
std::vector<SuiteInfo> suite_infos();

Result<std::vector<BenchRun>> suite_runs(const std::string& suite, const std::string& scale);

std::string run_label(const bench::WorkloadSpec& spec);

}  // namespace ls
