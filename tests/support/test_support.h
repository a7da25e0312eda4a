// Helpers shared by the tests: paths, temp dirs, running the CLI, loading fixtures.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/generation.h"
#include "model/llama_model.h"
#include "model/lora_adapter.h"

namespace ls::test {

// max_i |a[i] - b[i]| over two equally long vectors (log-prob vectors of two runs).
template <typename A, typename B>
double max_abs_diff(const A& a, const B& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return worst;
}

std::string source_dir();
std::string fixture_dir();  // tests/fixtures
// ../shared beside the project root, or "" when absent.
std::string shared_dir();
// A fresh empty directory under the system temp dir, removed at process exit.
std::string temp_dir(const std::string& tag);

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs the loraserve binary with `args` (shell-quoted by the caller).
CommandResult run_loraserve(const std::string& args);

// A model with a set of adapters uploaded to one backend.
struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters;
};
LoadedModel load_model(const std::string& model_dir,
                       const std::map<std::string, std::string>& adapter_dirs);
// A golden fixture's golden.json (tools/make_golden.py): the tolerance and, per case, the
// adapter ("" = base), prompt, reference greedy tokens with their log-probs and top-2 margins,
// and the full log-prob vector at the last prompt position.
struct GoldenCase {
  std::string adapter;
  std::vector<int32_t> prompt;
  std::vector<int32_t> tokens;
  std::vector<double> logprobs, margins, first_logprobs;
};
struct Golden {
  double tolerance = 0;
  std::vector<GoldenCase> cases;
};
Golden read_golden(const std::string& dir);
// The case as a request: its prompt and adapter, as many tokens as the reference, full
// log-probs at the last prompt position.
GenerationRequest golden_request(const GoldenCase& c);

// A golden fixture directory (model + adapters/<name>/) on `backend`.
LoadedModel load_fixture(std::unique_ptr<Backend> backend, const std::string& dir);

// Runs `requests` as one mixed batch (in order and reversed, with one forward per step and with
// chunked prefill) and each alone; expects equal tokens and log-probs within `tol` (gtest
// failures). Returns the largest log-prob difference seen.
double expect_mixed_equals_alone(const LoadedModel& m,
                                 const std::vector<GenerationRequest>& requests, double tol);

// Decode through graphs equals decode without: runs a dozen requests over the base model and
// every adapter of `graphs` (staggered lengths, so the batch shrinks across graph buckets and
// its adapter mix changes from step to step, with and without sampling) on `graphs` (whose
// backend supports graphs) and on `plain` (same weights, no graphs); expects equal tokens,
// log-probs within `tol`, and that graphs were captured and replayed. Returns the largest
// log-prob difference.
double expect_graphs_match_plain(const LoadedModel& graphs, const LoadedModel& plain, double tol);

void write_file(const std::string& path, const std::string& bytes);

// A failed Status whose one-line message contains every word (file names, fields, problems).
::testing::AssertionResult FailsWith(const Status& st, std::initializer_list<std::string> words);
std::string read_file(const std::string& path);

}  // namespace ls::test
