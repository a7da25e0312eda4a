// Test helpers; failures here are test failures (gtest assertions), never silent.
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/batch_generator.h"
#include "model/lora_adapter.h"

namespace ls::test {

std::string source_dir() {
  return LS_SOURCE_DIR;
}
std::string fixture_dir() {
  return source_dir() + "/tests/fixtures";
}

std::string shared_dir() {
  std::string d = source_dir() + "/../shared";
  struct stat st {};
  return ::stat((d + "/models").c_str(), &st) == 0 ? d : "";
}

namespace {
std::vector<std::string>& made_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}
void remove_made_dirs() {
  for (const auto& d : made_dirs()) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
}
}  // namespace

std::string temp_dir(const std::string& tag) {
  if (made_dirs().empty()) std::atexit(remove_made_dirs);
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/ls_" + tag + "_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* made = ::mkdtemp(buf.data());
  EXPECT_NE(made, nullptr);
  std::string dir = made ? made : "";
  made_dirs().push_back(dir);
  return dir;
}

CommandResult run_loraserve(const std::string& args) {
  std::string err_path = temp_dir("stderr") + "/err.txt";
  std::string cmd = std::string(LS_BINARY) + " " + args + " 2>" + err_path;
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_file(err_path);
  return r;
}

LoadedModel load_model(const std::string& model_dir,
                       const std::map<std::string, std::string>& adapter_dirs) {
  LoadedModel m;
  m.backend = make_cpu_backend();
  auto model = LlamaModel::load(model_dir, *m.backend);
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return m;
  m.model = std::move(model).value();
  for (const auto& [name, dir] : adapter_dirs) {
    auto a = load_lora_adapter(dir, name, m.model->config());
    EXPECT_TRUE(a.ok()) << a.status().message();
    if (a.ok()) m.adapters.emplace(name, std::make_shared<const LoraAdapter>(std::move(a).value()));
  }
  return m;
}

Golden read_golden(const std::string& dir) {
  auto j = nlohmann::json::parse(read_file(dir + "/golden.json"));
  Golden g;
  g.tolerance = j["tolerance"].get<double>();
  for (const auto& c : j["cases"]) {
    GoldenCase gc;
    gc.adapter = c["adapter"].is_null() ? "" : c["adapter"].get<std::string>();
    gc.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    gc.tokens = c["tokens"].get<std::vector<int32_t>>();
    gc.logprobs = c["logprobs"].get<std::vector<double>>();
    gc.margins = c["margins"].get<std::vector<double>>();
    gc.first_logprobs = c["first_logprobs"].get<std::vector<double>>();
    g.cases.push_back(gc);
  }
  return g;
}

GenerationRequest golden_request(const GoldenCase& c) {
  GenerationRequest r;
  r.prompt_ids = c.prompt;
  r.adapter = c.adapter;
  r.max_tokens = static_cast<int32_t>(c.tokens.size());
  r.full_logprobs = true;
  return r;
}

LoadedModel load_fixture(std::unique_ptr<Backend> backend, const std::string& dir) {
  LoadedModel m;
  m.backend = std::move(backend);
  auto model = LlamaModel::load(dir, *m.backend);
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return m;
  m.model = std::move(model).value();
  for (const auto& e : std::filesystem::directory_iterator(dir + "/adapters")) {
    const std::string name = e.path().filename().string();
    auto a = load_lora_adapter(e.path().string(), name, m.model->config());
    EXPECT_TRUE(a.ok()) << a.status().message();
    if (a.ok()) m.adapters.emplace(name, std::make_shared<const LoraAdapter>(std::move(a).value()));
  }
  return m;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

::testing::AssertionResult FailsWith(const Status& st, std::initializer_list<std::string> words) {
  if (st.ok()) return ::testing::AssertionFailure() << "expected a failure, got ok";
  const std::string& m = st.message();
  if (m.find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "message is not one line: " << m;
  for (const auto& w : words)
    if (m.find(w) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << w << "': " << m;
  return ::testing::AssertionSuccess();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double expect_mixed_equals_alone(const LoadedModel& m,
                                 const std::vector<GenerationRequest>& requests, double tol) {
  double worst = 0;
  auto near = [&](float got, float want, bool fatal_on_miss) {
    worst = std::max<double>(worst, std::fabs(got - want));
    if (fatal_on_miss) return std::fabs(got - want) <= tol;
    EXPECT_NEAR(got, want, tol);
    return true;
  };
  // Reverse order too, so each adapter lands in a different slot and position of the batch.
  const std::vector<GenerationRequest> reversed(requests.rbegin(), requests.rend());
  for (int32_t budget : {4096, 7}) {  // one forward per step, and chunked prefill
    BatchGeneratorOptions opts;
    opts.max_tokens_per_step = budget;
    BatchGenerator gen(*m.model, m.adapters, opts);
    auto mixed = gen.run(requests);
    auto mixed_rev = gen.run(reversed);
    EXPECT_TRUE(mixed.ok() && mixed_rev.ok());
    if (!mixed.ok() || !mixed_rev.ok()) return worst;
    for (size_t i = 0; i < requests.size(); ++i) {
      auto alone = gen.run({requests[i]});
      EXPECT_TRUE(alone.ok());
      if (!alone.ok()) return worst;
      const auto& a = alone.value()[0];
      for (const auto* r : {&mixed.value()[i], &mixed_rev.value()[requests.size() - 1 - i]}) {
        EXPECT_EQ(r->tokens, a.tokens) << "request " << i << " budget " << budget;
        for (size_t s = 0; s < a.logprobs.size() && s < r->logprobs.size(); ++s)
          near(r->logprobs[s], a.logprobs[s], false);
        for (size_t v = 0; v < a.prompt_last_logprobs.size(); ++v)
          if (!near(r->prompt_last_logprobs[v], a.prompt_last_logprobs[v], true)) {
            ADD_FAILURE() << "request " << i << " budget " << budget << " prompt log-prob " << v
                          << ": " << r->prompt_last_logprobs[v] << " vs "
                          << a.prompt_last_logprobs[v];
            return worst;
          }
      }
    }
  }
  return worst;
}

double expect_graphs_match_plain(const LoadedModel& graphs, const LoadedModel& plain, double tol) {
  std::vector<std::string> names = {""};
  for (const auto& [name, a] : graphs.adapters) names.push_back(name);
  const int32_t vocab = graphs.model->config().vocab_size;
  std::vector<GenerationRequest> requests;
  for (int32_t i = 0; i < 13; ++i) {
    GenerationRequest r;
    for (int32_t j = 0; j < 3 + i % 5; ++j) r.prompt_ids.push_back((7 + 31 * i + 13 * j) % vocab);
    r.adapter = names[static_cast<size_t>(i) % names.size()];
    r.max_tokens = 2 + (5 * i) % 13;
    if (i % 4 == 3) {  // some rows sample (seeded), so graphs meet mixed sampling params
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    }
    requests.push_back(r);
  }
  const GraphStats before = graphs.model->graph_stats();
  double worst = 0;
  // Twice on the same model: the second run replays the graphs the first one captured, with
  // other adapters in the slots.
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<GenerationRequest> rs = requests;
    if (pass == 1) std::rotate(rs.begin(), rs.begin() + 5, rs.end());
    BatchGenerator g(*graphs.model, graphs.adapters), p(*plain.model, plain.adapters);
    auto got = g.run(rs);
    auto want = p.run(rs);
    EXPECT_TRUE(got.ok() && want.ok());
    if (!got.ok() || !want.ok()) return worst;
    for (size_t i = 0; i < rs.size(); ++i) {
      const auto& a = got.value()[i];
      const auto& b = want.value()[i];
      EXPECT_EQ(a.tokens, b.tokens)
          << "pass " << pass << " request " << i << " adapter '" << rs[i].adapter << "'";
      for (size_t s = 0; s < a.logprobs.size() && s < b.logprobs.size(); ++s) {
        worst = std::max<double>(worst, std::fabs(a.logprobs[s] - b.logprobs[s]));
        EXPECT_NEAR(a.logprobs[s], b.logprobs[s], tol) << "request " << i << " step " << s;
      }
    }
  }
  const GraphStats after = graphs.model->graph_stats();
  EXPECT_GT(after.captures, before.captures) << "no graph was captured";
  EXPECT_GT(after.replays - before.replays, 2 * (after.captures - before.captures))
      << "graphs were captured but hardly replayed";
  EXPECT_EQ(after.eager, before.eager) << "decode steps fell back to eager";
  return worst;
}

}  // namespace ls::test
