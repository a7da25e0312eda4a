// End to end through the loraserve binary: make-demo then generate (one request, and a JSONL
// batch equal to each request alone), and every bad input: exit code 1 (2 for usage errors),
// nothing on stdout, and exactly one stderr line "loraserve: error: ..." that names the file or
// argument and the problem. The binary is built with ASan/UBSan in the sanitizer build, so a
// crash or a sanitizer report shows up here as extra stderr lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.h"

namespace ls {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string head(const std::string& s) {
  return s.size() > 1500 ? s.substr(0, 1500) + "..." : s;
}

// Passes when the command failed the way every bad input must: `code`, empty stdout, and one
// stderr line starting "loraserve: error: " that contains every word of `words`.
::testing::AssertionResult FailsCleanly(const test::CommandResult& r,
                                        std::initializer_list<std::string> words, int code = 1) {
  auto fail = [&]() {
    return ::testing::AssertionFailure() << "exit " << r.exit_code << "\nstdout: " << head(r.out)
                                         << "\nstderr: " << head(r.err) << "\n";
  };
  if (r.exit_code != code) return fail() << "expected exit code " << code;
  if (!r.out.empty()) return fail() << "expected nothing on stdout";
  if (r.err.rfind("loraserve: error: ", 0) != 0) return fail() << "stderr lacks the error prefix";
  if (r.err.find('\n') != r.err.size() - 1) return fail() << "stderr is not exactly one line";
  for (const auto& w : words)
    if (r.err.find(w) == std::string::npos) return fail() << "stderr lacks '" << w << "'";
  return ::testing::AssertionSuccess();
}

std::string golden(const std::string& model) {
  return test::fixture_dir() + "/golden/" + model;
}

std::string copy_golden(const std::string& rel) {
  const std::string dst = test::temp_dir("cli") + "/" + fs::path(rel).filename().string();
  fs::copy(golden(rel), dst, fs::copy_options::recursive);
  return dst;
}

template <typename Edit>
void edit_json(const std::string& path, Edit edit) {
  Json j = Json::parse(test::read_file(path));
  edit(j);
  test::write_file(path, j.dump(2));
}

// Overwrites the first element of F32 tensor `tensor` in a safetensors file.
void poison_first_element(const std::string& path, const std::string& tensor, float value) {
  std::string raw = test::read_file(path);
  uint64_t hlen = 0;
  std::memcpy(&hlen, raw.data(), 8);
  const auto h = nlohmann::json::parse(raw.substr(8, hlen));
  ASSERT_EQ(h[tensor]["dtype"], "F32");
  const uint64_t begin = h[tensor]["data_offsets"][0].get<uint64_t>();
  std::memcpy(&raw[8 + hlen + begin], &value, 4);
  test::write_file(path, raw);
}

std::string gen(const std::string& model, const std::string& rest) {
  return "generate --model " + model + " " + rest;
}

const std::string kMha = golden("mha_f32");  // vocab 256, context 256, 2 layers
const std::string kPrompt = "--prompt-ids 1,2,3 --max-tokens 4 --output json";

// ---------------------------------------------------------------- bad model directories

TEST(CliBad, MissingModelDir) {
  const std::string dir = test::temp_dir("cli") + "/absent";
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)), {dir + "/config.json"}));
}

TEST(CliBad, TruncatedModelSafetensors) {
  const std::string dir = copy_golden("mha_f32");
  const std::string path = dir + "/model.safetensors";
  const std::string raw = test::read_file(path);
  test::write_file(path, raw.substr(0, raw.size() - 4096));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)), {path, "truncated"}));
}

TEST(CliBad, HeaderLengthBombInModel) {
  const std::string dir = copy_golden("mha_f32");
  const std::string path = dir + "/model.safetensors";
  std::string raw = test::read_file(path);
  std::memset(raw.data(), 0xff, 8);
  test::write_file(path, raw);
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)), {path, "100 MB"}));
}

TEST(CliBad, ConfigMissingHiddenSize) {
  const std::string dir = copy_golden("mha_f32");
  edit_json(dir + "/config.json", [](Json& j) { j.erase("hidden_size"); });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)),
                           {dir + "/config.json", "missing", "'hidden_size'"}));
}

TEST(CliBad, UnsupportedArchitecture) {
  const std::string dir = copy_golden("mha_f32");
  edit_json(dir + "/config.json", [](Json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)),
                           {dir + "/config.json", "unsupported architecture", "GPT2LMHeadModel"}));
}

TEST(CliBad, PickledModelIsRefused) {
  const std::string dir = copy_golden("mha_f32");
  fs::remove(dir + "/model.safetensors");
  test::write_file(dir + "/pytorch_model.bin", std::string("\x80\x02}q\x00.", 6));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(dir, kPrompt)), {dir, "pytorch_model.bin", "unpickle"}));
}

// Regression: heads x head_dim was not bounded, so LlamaModel::load computed q_dim() =
// 4194304 * 1024 in int32 (UBSan: signed overflow) instead of a one-line error naming config.json.
TEST(CliBad, HugeHeadCountIsAnErrorNotOverflow) {
  const std::string dir = copy_golden("mha_f32");
  edit_json(dir + "/config.json", [](Json& j) {
    j["num_attention_heads"] = 1 << 22;
    j["num_key_value_heads"] = 1 << 22;
    j["head_dim"] = 1024;
  });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(dir, kPrompt)), {dir}));
}

// ---------------------------------------------------------------- bad adapters

TEST(CliBad, AdapterForAnotherBase) {
  const std::string a = golden("qwen2_f16") + "/adapters/all_r8";
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora q=" + a + " " + kPrompt)),
                           {a + "/adapter_model.safetensors", "shape mismatch"}));
}

TEST(CliBad, RankZeroAdapter) {
  const std::string a = copy_golden("mha_f32/adapters/qv_r8");
  edit_json(a + "/adapter_config.json", [](Json& j) { j["r"] = 0; });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora z=" + a + " " + kPrompt)),
                           {a + "/adapter_config.json", "rank"}));
}

TEST(CliBad, NanInAdapterWeights) {
  const std::string a = copy_golden("mha_f32/adapters/qv_r8");
  const std::string t = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
  poison_first_element(a + "/adapter_model.safetensors", t, std::nanf(""));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora n=" + a + " " + kPrompt)),
                           {a + "/adapter_model.safetensors", t, "NaN or Inf"}));
}

TEST(CliBad, UnknownTargetModule) {
  const std::string a = copy_golden("mha_f32/adapters/qv_r8");
  edit_json(a + "/adapter_config.json", [](Json& j) {
    j["target_modules"] = {"q_proj", "v_proj", "qkv_proj"};
  });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora u=" + a + " " + kPrompt)),
                           {a + "/adapter_config.json", "unknown target module 'qkv_proj'"}));
}

TEST(CliBad, RefusedAdapterFeatures) {
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"use_dora", true}}, "DoRA"},
      {{{"modules_to_save", {"lm_head"}}}, "modules_to_save"},
      {{{"bias", "lora_only"}}, "bias"},
      {{{"target_modules", {"q_proj", "v_proj", "lm_head"}}}, "lm_head"},
  };
  for (const auto& [patch, word] : cases) {
    SCOPED_TRACE(patch.dump());
    const std::string a = copy_golden("mha_f32/adapters/qv_r8");
    edit_json(a + "/adapter_config.json", [&](Json& j) { j.update(patch); });
    EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora r=" + a + " " + kPrompt)),
                             {a + "/adapter_config.json", word, "not supported"}));
  }
  const std::string bin = copy_golden("mha_f32/adapters/qv_r8");
  fs::rename(bin + "/adapter_model.safetensors", bin + "/adapter_model.bin");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora b=" + bin + " " + kPrompt)),
                           {bin + "/adapter_model.bin", "pickled"}));
}

TEST(CliBad, RankAboveMaxLoraRank) {
  const std::string a = golden("mha_f32") + "/adapters/qv_r8";
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(gen(kMha, "--max-lora-rank 4 --lora q=" + a + " " + kPrompt)),
      {a + "/adapter_model.safetensors", "rank 8", "maximum rank 4"}));
}

// Regression: a target_modules regex went straight to std::regex, whose compiler recurses once
// per nesting level: 20000 nested groups overflowed the stack instead of a one-line error.
TEST(CliBad, DeeplyNestedTargetRegexDoesNotCrash) {
  const std::string a = copy_golden("mha_f32/adapters/qv_r8");
  edit_json(a + "/adapter_config.json", [](Json& j) {
    j["target_modules"] = std::string(20000, '(') + "q_proj" + std::string(20000, ')');
  });
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora d=" + a + " " + kPrompt)), {a}));
}

// ---------------------------------------------------------------- bad requests and flags

TEST(CliBad, PromptIdOutOfVocabulary) {
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(gen(kMha, "--prompt-ids 1,256 --max-tokens 2 --output json")),
      {"prompt id 256", "vocabulary [0, 256)"}));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt-ids 1,-3 --max-tokens 2 --output json")),
                   {"--prompt-ids", "'-3'"}));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt-ids 1,,2 --max-tokens 2 --output json")),
                   {"--prompt-ids", "''"}));
}

TEST(CliBad, MaxTokensBeyondTheContext) {
  // 3 prompt tokens + 254 = 257 > max_position_embeddings 256.
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(gen(kMha, "--prompt-ids 1,2,3 --max-tokens 254 --output json")),
      {"max_tokens (254)", "context length 256"}));
}

TEST(Cli, MaxTokensUpToTheContextIsAccepted) {
  auto r = test::run_loraserve(gen(kMha, "--prompt-ids 1,2,3 --max-tokens 253 --output json"));
  ASSERT_EQ(r.exit_code, 0) << head(r.err);
  EXPECT_EQ(Json::parse(r.out)["tokens"].size(), 253u);
}

TEST(CliBad, MalformedLoraSpec) {
  const std::string a = golden("mha_f32") + "/adapters/qv_r8";
  for (const std::string& spec : {std::string("qv"), "=" + a, std::string("qv=")}) {
    SCOPED_TRACE(spec);
    EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--lora " + spec + " " + kPrompt)),
                             {"--lora '" + spec + "'", "NAME=DIR"}));
  }
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(gen(kMha, "--lora a=" + a + " --lora a=" + a + " " + kPrompt)),
      {"--lora", "'a'", "twice"}));
}

TEST(CliBad, PromptTextNeedsATokenizer) {
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt hello --max-tokens 2 --output json")),
                   {"--prompt", "tokenizer", "--prompt-ids"}));
}

TEST(CliBad, RequestsFileWithAMalformedLine) {
  const std::string path = test::temp_dir("cli") + "/reqs.jsonl";
  test::write_file(path,
                   "{\"prompt_ids\": [1, 2], \"max_tokens\": 2}\n"
                   "\n"
                   "{\"prompt_ids\": [1, 2], \"max_tokens\": 2\n");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + path + " --output jsonl")),
                           {path + ":3", "malformed JSON"}));
  test::write_file(path,
                   "{\"prompt_ids\": [1, 2], \"max_tokens\": 2}\n"
                   "{\"prompt_ids\": \"1,2\", \"max_tokens\": 2}\n");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + path + " --output jsonl")),
                           {path + ":2", "prompt_ids"}));
  test::write_file(path, "{\"prompt_ids\": [1], \"max_tokens\": 2, \"temperature\": -1}\n");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + path + " --output jsonl")),
                           {path + ":1", "temperature"}));
  const std::string none = test::temp_dir("cli") + "/none.jsonl";
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + none + " --output jsonl")),
                           {none, "cannot open"}));
}

TEST(CliBad, UnknownAdapterName) {
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--adapter nope " + kPrompt)),
                           {"unknown adapter 'nope'"}));
  const std::string path = test::temp_dir("cli") + "/reqs.jsonl";
  test::write_file(path,
                   "{\"prompt_ids\": [1], \"max_tokens\": 2}\n"
                   "{\"adapter\": \"ghost\", \"prompt_ids\": [1], \"max_tokens\": 2}\n");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + path + " --output jsonl")),
                           {"request 2", "unknown adapter 'ghost'"}));
}

TEST(CliBad, OutputModeMustFitTheRequestMode) {
  const std::string path = test::temp_dir("cli") + "/reqs.jsonl";
  test::write_file(path, "{\"prompt_ids\": [1], \"max_tokens\": 2}\n");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, "--requests " + path + " --output json")),
                           {"--requests", "--output jsonl"}));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt-ids 1 --max-tokens 2 --output jsonl")),
                   {"--output json"}));
}

TEST(CliBad, UsageErrorsExitTwo) {
  EXPECT_TRUE(FailsCleanly(test::run_loraserve("generate " + kPrompt), {"--model"}, 2));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt-ids 1 --max-tokens 0 --output json")),
                   {"--max-tokens"}, 2));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, "--prompt-ids 1 --max-tokens 2 --output xml")),
                   {"--output"}, 2));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(gen(kMha, kPrompt + " --frobnicate")), {"--frobnicate"}, 2));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(""), {}, 2));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, kPrompt + " --kv-cache-dtype fp16")),
                           {"--kv-cache-dtype", "fp16"}, 2));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(gen(kMha, kPrompt + " --activation-dtype fp16")),
                           {"--activation-dtype", "fp16"}, 2));
}

// bf16 activations are the CUDA backend's mode: asked of the CPU, a clear error, not a silent
// fp32 run.
TEST(CliBad, Bf16ActivationsOnTheCpuIsRefused) {
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(gen(kMha, kPrompt + " --device cpu --activation-dtype bf16")),
      {"--activation-dtype bf16", "--device cuda"}));
}

// --kv-cache-dtype bf16 on the CPU: the same greedy tokens as fp32 on the golden fixture (its
// top-2 margins on this prompt are wide), log-probs close but not bit-equal (the cache is
// rounded), and auto is fp32 on the CPU (bit-equal to an explicit fp32).
TEST(Cli, KvCacheDtypeBf16RunsOnTheCpu) {
  const std::string args = "--prompt-ids 1,2,3 --max-tokens 6 --output json --kv-cache-dtype ";
  auto fp32 = test::run_loraserve(gen(kMha, args + "fp32"));
  auto bf16 = test::run_loraserve(gen(kMha, args + "bf16"));
  auto automatic = test::run_loraserve(gen(kMha, args + "auto"));
  ASSERT_EQ(fp32.exit_code, 0) << head(fp32.err);
  ASSERT_EQ(bf16.exit_code, 0) << head(bf16.err);
  ASSERT_EQ(automatic.exit_code, 0) << head(automatic.err);
  const Json a = Json::parse(fp32.out), b = Json::parse(bf16.out);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_EQ(automatic.out, fp32.out);
  bool any_differs = false;
  for (size_t i = 0; i < a["logprobs"].size(); ++i) {
    const double x = a["logprobs"][i].get<double>(), y = b["logprobs"][i].get<double>();
    EXPECT_NEAR(x, y, 0.06) << "step " << i;
    any_differs = any_differs || x != y;
  }
  EXPECT_TRUE(any_differs) << "--kv-cache-dtype bf16 changed nothing: is the flag ignored?";
}

// ---------------------------------------------------------------- the demo, end to end

class CliDemo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("demo"));
    auto r = test::run_loraserve("make-demo " + *dir_);
    made_ = r.exit_code == 0 && r.out.find("wrote " + *dir_ + "/model") != std::string::npos;
    if (!made_) ADD_FAILURE() << "make-demo failed: " << head(r.err) << head(r.out);
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(made_); }

  static std::string loras() {
    std::string s;
    for (const char* n : {"pirate", "poet", "coder"})
      s += std::string(" --lora ") + n + "=" + *dir_ + "/adapters/" + n;
    return s;
  }
  static Json run_one(const std::string& adapter, const std::string& ids, int max_tokens) {
    auto r = test::run_loraserve(gen(
        *dir_ + "/model", loras() + " --prompt-ids " + ids + " --max-tokens " +
                              std::to_string(max_tokens) +
                              (adapter.empty() ? "" : " --adapter " + adapter) + " --output json"));
    EXPECT_EQ(r.exit_code, 0) << head(r.err);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    return r.exit_code == 0 ? Json::parse(r.out) : Json();
  }

  static std::string* dir_;
  static bool made_;
};
std::string* CliDemo::dir_ = nullptr;
bool CliDemo::made_ = false;

TEST_F(CliDemo, GenerateForTheBaseAndAnAdapter) {
  const Json base = run_one("", "1,5,9", 8);
  const Json pirate = run_one("pirate", "1,5,9", 8);
  for (const Json* j : {&base, &pirate}) {
    ASSERT_TRUE(j->is_object());
    for (const char* key : {"adapter", "prompt_ids", "tokens", "logprobs"})
      EXPECT_TRUE(j->contains(key)) << key;
    EXPECT_EQ((*j)["prompt_ids"], Json({1, 5, 9}));
    ASSERT_EQ((*j)["tokens"].size(), 8u);
    ASSERT_EQ((*j)["logprobs"].size(), 8u);
    for (const auto& t : (*j)["tokens"]) EXPECT_TRUE(t.get<int>() >= 0 && t.get<int>() < 512);
    for (const auto& lp : (*j)["logprobs"]) EXPECT_LE(lp.get<double>(), 1e-6);
    EXPECT_EQ((*j)["finish_reason"], "length");
  }
  EXPECT_TRUE(base["adapter"].is_null());
  EXPECT_EQ(pirate["adapter"], "pirate");
  EXPECT_NE(base["logprobs"], pirate["logprobs"]) << "the adapter changed nothing";
}

TEST_F(CliDemo, BatchOfRequestsEqualsEachRequestAlone) {
  struct Req {
    std::string adapter;
    std::vector<int> ids;
    int max_tokens;
  };
  const std::vector<Req> reqs = {{"poet", {1, 5, 9}, 6},
                                 {"", {2, 3}, 4},
                                 {"coder", {7, 7, 7, 7, 7}, 5},
                                 {"pirate", {1}, 7},
                                 {"poet", {100, 200, 300, 400}, 3}};
  std::ostringstream lines;
  for (const auto& q : reqs) {
    Json j = {{"adapter", q.adapter.empty() ? Json(nullptr) : Json(q.adapter)},
              {"prompt_ids", q.ids},
              {"max_tokens", q.max_tokens}};
    lines << j.dump() << "\n";
  }
  const std::string path = test::temp_dir("demo") + "/reqs.jsonl";
  test::write_file(path, lines.str());
  auto r = test::run_loraserve(
      gen(*dir_ + "/model", loras() + " --requests " + path + " --output jsonl"));
  ASSERT_EQ(r.exit_code, 0) << head(r.err);
  EXPECT_EQ(r.err, "");
  std::vector<Json> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
  ASSERT_EQ(out.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i + 1));
    std::string ids;
    for (int id : reqs[i].ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const Json alone = run_one(reqs[i].adapter, ids, reqs[i].max_tokens);
    EXPECT_EQ(out[i]["adapter"], alone["adapter"]);
    EXPECT_EQ(out[i]["prompt_ids"], Json(reqs[i].ids));
    EXPECT_EQ(out[i]["tokens"], alone["tokens"]);
    EXPECT_EQ(out[i]["tokens"].size(), static_cast<size_t>(reqs[i].max_tokens));
    EXPECT_EQ(out[i]["finish_reason"], alone["finish_reason"]);
    ASSERT_EQ(out[i]["logprobs"].size(), alone["logprobs"].size());
    for (size_t s = 0; s < alone["logprobs"].size(); ++s)
      EXPECT_NEAR(out[i]["logprobs"][s].get<double>(), alone["logprobs"][s].get<double>(), 1e-4);
  }
}

}  // namespace
}  // namespace ls
