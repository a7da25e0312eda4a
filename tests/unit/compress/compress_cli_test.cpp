// `loraserve compress` end to end: a bundle from a directory of adapters, its report, --add,
// `generate --lora-bundle` equal to the uncompressed adapter when lossless (and shared-basis
// serving equal to materialised factors when lossy), and every bad input
// as exit code 1 (2 for usage errors) with one stderr line and nothing on stdout.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace ls {
namespace {

using Json = nlohmann::json;

::testing::AssertionResult FailsCleanly(const test::CommandResult& r,
                                        std::initializer_list<std::string> words, int code = 1) {
  auto fail = [&]() {
    return ::testing::AssertionFailure()
           << "exit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err << "\n";
  };
  if (r.exit_code != code) return fail() << "expected exit code " << code;
  if (!r.out.empty()) return fail() << "expected nothing on stdout";
  if (r.err.rfind("loraserve: error: ", 0) != 0) return fail() << "stderr lacks the error prefix";
  if (r.err.find('\n') != r.err.size() - 1) return fail() << "stderr is not exactly one line";
  for (const auto& w : words)
    if (r.err.find(w) == std::string::npos) return fail() << "stderr lacks '" << w << "'";
  return ::testing::AssertionSuccess();
}

const std::string kModel = "mha_f32";
std::string model_dir() {
  return test::fixture_dir() + "/golden/" + kModel;
}
std::string adapter(const std::string& name) {
  return model_dir() + "/adapters/" + name;
}

TEST(CompressCli, CompressReportAddAndGenerate) {
  const std::string tmp = test::temp_dir("compress_cli");
  // Two adapters by NAME=DIR (ranks 32 + 8), lossless at K = 40.
  auto r = test::run_loraserve("compress --model " + model_dir() + " --adapters all=" +
                               adapter("all_r32_rslora") + " qv=" + adapter("qv_r8") +
                               " --rank 40 --report " + tmp + "/report.json --out " + tmp + "/b");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  Json s = Json::parse(r.out);
  EXPECT_EQ(s["adapters"], 2);
  EXPECT_LT(s["max_rel_error"].get<double>(), 1e-10);
  EXPECT_GT(s["peak_rss_mib"].get<double>(), 0);
  Json rep = Json::parse(test::read_file(tmp + "/report.json"));
  EXPECT_EQ(rep["report"]["adapters"].size(), 2u);
  EXPECT_TRUE(rep["report"]["adapters"][0]["modules"].contains("model.layers.1.mlp.down_proj"));

  // --add projects the third adapter; its q/o/down modules are covered by "all".
  r = test::run_loraserve("compress --model " + model_dir() + " --add pat=" +
                          adapter("pattern_r4") + " --bundle " + tmp + "/b --out " + tmp + "/b2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["adapters"], 3);

  // generate through the bundle equals the uncompressed adapter (greedy tokens).
  const std::string req = " --prompt-ids 1,5,9,3 --max-tokens 6 --output json";
  auto orig = test::run_loraserve("generate --model " + model_dir() +
                                  " --lora qv=" + adapter("qv_r8") + " --adapter qv" + req);
  auto comp = test::run_loraserve("generate --model " + model_dir() + " --lora-bundle " + tmp +
                                  "/b2 --adapter qv" + req);
  ASSERT_EQ(orig.exit_code, 0) << orig.err;
  ASSERT_EQ(comp.exit_code, 0) << comp.err;
  EXPECT_EQ(Json::parse(orig.out)["tokens"], Json::parse(comp.out)["tokens"]);
  // Compressed and ordinary adapters side by side; a clash of names is refused.
  auto clash =
      test::run_loraserve("generate --model " + model_dir() + " --lora qv=" + adapter("qv_r8") +
                          " --lora-bundle " + tmp + "/b2" + req);
  EXPECT_TRUE(FailsCleanly(clash, {"qv", "twice"}));

  // A directory of adapters, JD-Diag with clusters.
  r = test::run_loraserve("compress --model " + model_dir() + " --adapters " + model_dir() +
                          "/adapters --rank 4 --mode diag --clusters 2 --out " + tmp + "/b3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["adapters"], 3);
  EXPECT_EQ(Json::parse(r.out)["clusters"], 2);
  // Lossy diagonal bundle: the shared-basis op and the materialised factors agree.
  const std::string gen = "generate --model " + model_dir() + " --lora-bundle " + tmp +
                          "/b3 --adapter qv_r8" + req + " --bundle-serving ";
  auto shared = test::run_loraserve(gen + "shared");
  auto mat = test::run_loraserve(gen + "materialize");
  ASSERT_EQ(shared.exit_code, 0) << shared.err;
  ASSERT_EQ(mat.exit_code, 0) << mat.err;
  const Json js = Json::parse(shared.out), jm = Json::parse(mat.out);
  EXPECT_EQ(js["tokens"], jm["tokens"]);
  for (size_t i = 0; i < js["logprobs"].size(); ++i)
    EXPECT_NEAR(js["logprobs"][i].get<double>(), jm["logprobs"][i].get<double>(), 1e-4);
  auto bogus = test::run_loraserve(gen + "bogus");
  EXPECT_EQ(bogus.exit_code, 2) << bogus.err;
  EXPECT_NE(bogus.err.find("--bundle-serving"), std::string::npos) << bogus.err;
}

TEST(CompressCli, BadInputsFailCleanly) {
  const std::string tmp = test::temp_dir("compress_bad");
  const std::string base = "compress --model " + model_dir() + " --out " + tmp + "/out ";
  const std::string two = " --adapters " + adapter("qv_r8") + " " + adapter("pattern_r4");
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + "--adapters " + tmp + "/nope --rank 4"),
                           {"nope", "no such"}));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + "--adapters " + tmp + " --rank 4"),
                           {tmp, "neither an adapter directory"}));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + two + " --rank 0"), {"--rank"}, 2));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + two), {"--rank"}));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve(base + two + " --rank 4 --mode svd"), {"--mode"}, 2));
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + two + " --rank 4 --clusters 3"),
                           {"--clusters 3", "2 adapters"}));
  // Adapters of a different base model.
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + "--adapters " + test::fixture_dir() +
                                               "/golden/gqa_bf16/adapters/regex_r8 --rank 4"),
                           {"regex_r8", "base model"}));
  // --add without --bundle, and onto a corrupt bundle.
  EXPECT_TRUE(FailsCleanly(test::run_loraserve(base + "--add " + adapter("qv_r8")), {"--bundle"}));
  std::filesystem::create_directories(tmp + "/bad");
  test::write_file(tmp + "/bad/bundle.json", "{\"format\": 3}");
  test::write_file(tmp + "/bad/bundle.safetensors", "");
  EXPECT_TRUE(FailsCleanly(
      test::run_loraserve(base + "--add " + adapter("qv_r8") + " --bundle " + tmp + "/bad"),
      {"bad", "bundle"}));
  EXPECT_TRUE(
      FailsCleanly(test::run_loraserve("generate --model " + model_dir() + " --lora-bundle " + tmp +
                                       "/bad --prompt-ids 1 --max-tokens 1 --output json"),
                   {"bad", "bundle"}));
}

}  // namespace
}  // namespace ls
