// adapter_config.json: PEFT's module matching (target list suffix match, regex full match,
// all-linear, exclude_modules, layers_to_transform), rank/alpha patterns, rsLoRA scale, and
// every configuration we refuse with its reason.
#include "model/lora_config.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>

namespace ls {
namespace {

using Json = nlohmann::ordered_json;

using test::FailsWith;

Json base_json() {
  return {{"peft_type", "LORA"},
          {"r", 8},
          {"lora_alpha", 16},
          {"bias", "none"},
          {"use_dora", false},
          {"modules_to_save", nullptr},
          {"target_modules", {"q_proj", "v_proj"}}};
}

LoraConfig parse_ok(const Json& j) {
  auto c = LoraConfig::from_json(j);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? c.value() : LoraConfig{};
}

const char* kQ0 = "model.layers.0.self_attn.q_proj";
const char* kK0 = "model.layers.0.self_attn.k_proj";
const char* kV0 = "model.layers.0.self_attn.v_proj";
const char* kO1 = "model.layers.1.self_attn.o_proj";
const char* kDown0 = "model.layers.0.mlp.down_proj";
const char* kDown1 = "model.layers.1.mlp.down_proj";
const char* kUp1 = "model.layers.1.mlp.up_proj";

// ---------------------------------------------------------------- target matching

TEST(LoraConfig, TargetListMatchesWholeKeyOrDottedSuffix) {
  Json j = base_json();
  j["target_modules"] = {"q_proj", "mlp.down_proj", "model.layers.1.self_attn.o_proj"};
  LoraConfig c = parse_ok(j);
  EXPECT_TRUE(c.targets(kQ0, 0));
  EXPECT_TRUE(c.targets("model.layers.5.self_attn.q_proj", 5));
  EXPECT_TRUE(c.targets(kDown0, 0));
  EXPECT_TRUE(c.targets(kO1, 1));  // the full key itself
  EXPECT_FALSE(c.targets("model.layers.0.self_attn.o_proj", 0));
  EXPECT_FALSE(c.targets(kK0, 0));
  EXPECT_FALSE(c.targets(kUp1, 1));
  // A suffix must start at a '.': "attn.q_proj" is not a suffix of "self_attn.q_proj".
  j["target_modules"] = {"attn.q_proj"};
  EXPECT_FALSE(parse_ok(j).targets(kQ0, 0));
  j["target_modules"] = {"self_attn.q_proj"};
  EXPECT_TRUE(parse_ok(j).targets(kQ0, 0));
}

TEST(LoraConfig, TargetStringIsAFullMatchRegex) {
  Json j = base_json();
  j["target_modules"] = R"(.*\.(self_attn\.(q|v)_proj|mlp\.up_proj))";
  LoraConfig c = parse_ok(j);
  EXPECT_TRUE(c.targets(kQ0, 0));
  EXPECT_TRUE(c.targets(kV0, 0));
  EXPECT_TRUE(c.targets(kUp1, 1));
  EXPECT_FALSE(c.targets(kK0, 0));
  EXPECT_FALSE(c.targets(kDown1, 1));
  // Full match, not search: the bare name matches no module key.
  j["target_modules"] = "q_proj";
  EXPECT_FALSE(parse_ok(j).targets(kQ0, 0));
  j["target_modules"] = R"(.*layers\.1\..*_proj)";
  LoraConfig l1 = parse_ok(j);
  EXPECT_TRUE(l1.targets(kO1, 1));
  EXPECT_FALSE(l1.targets(kQ0, 0));
}

TEST(LoraConfig, AllLinearTargetsEveryProjection) {
  Json j = base_json();
  j["target_modules"] = "all-linear";
  LoraConfig c = parse_ok(j);
  EXPECT_TRUE(c.target_all_linear);
  for (const char* key : {kQ0, kK0, kV0, kO1, kDown0, kDown1, kUp1, "model.layers.3.mlp.gate_proj"})
    EXPECT_TRUE(c.targets(key, 0)) << key;
}

TEST(LoraConfig, ExcludeModulesListAndRegex) {
  Json j = base_json();
  j["target_modules"] = "all-linear";
  j["exclude_modules"] = {"down_proj", "model.layers.0.self_attn.k_proj"};
  LoraConfig c = parse_ok(j);
  EXPECT_FALSE(c.targets(kDown0, 0));
  EXPECT_FALSE(c.targets(kDown1, 1));
  EXPECT_FALSE(c.targets(kK0, 0));
  EXPECT_TRUE(c.targets("model.layers.1.self_attn.k_proj", 1));
  EXPECT_TRUE(c.targets(kUp1, 1));
  j["exclude_modules"] = R"(.*\.layers\.0\..*)";
  LoraConfig r = parse_ok(j);
  EXPECT_FALSE(r.targets(kQ0, 0));
  EXPECT_FALSE(r.targets(kDown0, 0));
  EXPECT_TRUE(r.targets(kDown1, 1));
}

TEST(LoraConfig, LayersToTransform) {
  Json j = base_json();
  j["layers_to_transform"] = {0, 2};
  LoraConfig c = parse_ok(j);
  EXPECT_TRUE(c.targets(kQ0, 0));
  EXPECT_FALSE(c.targets("model.layers.1.self_attn.q_proj", 1));
  EXPECT_TRUE(c.targets("model.layers.2.self_attn.q_proj", 2));
  j["layers_to_transform"] = 1;
  LoraConfig one = parse_ok(j);
  EXPECT_FALSE(one.targets(kQ0, 0));
  EXPECT_TRUE(one.targets("model.layers.1.self_attn.v_proj", 1));
  j["layers_to_transform"] = nullptr;
  EXPECT_TRUE(parse_ok(j).targets("model.layers.7.self_attn.q_proj", 7));
}

// ---------------------------------------------------------------- ranks and scales

TEST(LoraConfig, GoldenPatternR4RanksAlphasAndScales) {
  // tests/fixtures/golden/mha_f32/adapters/pattern_r4, as PEFT saved it.
  Json j = base_json();
  j["r"] = 4;
  j["lora_alpha"] = 8;
  j["target_modules"] = {"down_proj", "o_proj", "q_proj"};
  j["rank_pattern"] = {{"model.layers.1.mlp.down_proj", 6}, {"o_proj", 12}};
  j["alpha_pattern"] = {{"q_proj", 3}};
  LoraConfig c = parse_ok(j);
  EXPECT_EQ(c.rank_for(kDown1), 6);
  EXPECT_EQ(c.rank_for(kDown0), 4);
  EXPECT_EQ(c.rank_for(kO1), 12);
  EXPECT_EQ(c.rank_for("model.layers.0.self_attn.o_proj"), 12);
  EXPECT_EQ(c.rank_for(kQ0), 4);
  EXPECT_DOUBLE_EQ(c.alpha_for(kQ0), 3.0);
  EXPECT_DOUBLE_EQ(c.alpha_for(kO1), 8.0);
  EXPECT_FLOAT_EQ(c.scale_for(kQ0), 3.0f / 4.0f);
  EXPECT_FLOAT_EQ(c.scale_for(kO1), 8.0f / 12.0f);
  EXPECT_FLOAT_EQ(c.scale_for(kDown1), 8.0f / 6.0f);
  EXPECT_FLOAT_EQ(c.scale_for(kDown0), 2.0f);
}

TEST(LoraConfig, PatternKeysMatchWholeDottedComponents) {
  Json j = base_json();
  // "(.*\.)?(proj)$" needs "proj" after a '.', so it matches no "*_proj" key.
  j["rank_pattern"] = {{"proj", 2}, {R"(layers\.[01]\.self_attn\.v_proj)", 5}};
  j["alpha_pattern"] = {{"self_attn\\..*", 1}, {"q_proj", 99}};
  LoraConfig c = parse_ok(j);
  EXPECT_EQ(c.rank_for(kQ0), 8);
  EXPECT_EQ(c.rank_for(kV0), 5);
  EXPECT_EQ(c.rank_for("model.layers.2.self_attn.v_proj"), 8);
  // The first key in file order that matches wins.
  EXPECT_DOUBLE_EQ(c.alpha_for(kQ0), 1.0);
  EXPECT_DOUBLE_EQ(c.alpha_for(kDown0), 16.0);
  // "o_proj" is matched as the last component: "xo_proj" does not end in ".o_proj".
  j["rank_pattern"] = {{"o_proj", 3}};
  LoraConfig o = parse_ok(j);
  EXPECT_EQ(o.rank_for(kO1), 3);
  EXPECT_EQ(o.rank_for("model.layers.1.self_attn.xo_proj"), 8);
}

TEST(LoraConfig, RsLoraScaleIsAlphaOverSqrtRank) {
  Json j = base_json();
  j["r"] = 16;
  j["lora_alpha"] = 8;
  j["use_rslora"] = true;
  j["rank_pattern"] = {{"v_proj", 4}};
  LoraConfig c = parse_ok(j);
  EXPECT_FLOAT_EQ(c.scale_for(kQ0), 8.0f / 4.0f);  // sqrt(16)
  EXPECT_FLOAT_EQ(c.scale_for(kV0), 8.0f / 2.0f);  // sqrt(4)
  j["use_rslora"] = false;
  EXPECT_FLOAT_EQ(parse_ok(j).scale_for(kQ0), 0.5f);
  // lora_alpha defaults to 8 as in PEFT.
  j.erase("lora_alpha");
  EXPECT_FLOAT_EQ(parse_ok(j).scale_for(kQ0), 0.5f);
}

TEST(LoraConfig, HarmlessFieldsAreAccepted) {
  Json j = base_json();
  j["use_dora"] = false;
  j["modules_to_save"] = Json::array();
  j["lora_bias"] = false;
  j["bias"] = "none";
  j["layer_replication"] = nullptr;
  j["trainable_token_indices"] = nullptr;
  EXPECT_TRUE(LoraConfig::from_json(j).ok());
}

// ---------------------------------------------------------------- refusals

TEST(LoraConfigBad, RankZeroOrNegativeOrMissing) {
  for (int r : {0, -4}) {
    Json j = base_json();
    j["r"] = r;
    EXPECT_TRUE(FailsWith(LoraConfig::from_json(j).status(), {"rank", std::to_string(r)}));
  }
  Json j = base_json();
  j.erase("r");
  EXPECT_TRUE(FailsWith(LoraConfig::from_json(j).status(), {"'r'"}));
  j["r"] = "8";
  EXPECT_TRUE(FailsWith(LoraConfig::from_json(j).status(), {"'r'"}));
  j["r"] = 1 << 20;
  EXPECT_TRUE(FailsWith(LoraConfig::from_json(j).status(), {"rank", "too large"}));
}

TEST(LoraConfigBad, RefusedFeatures) {
  struct Case {
    const char* key;
    Json value;
    const char* word;
  };
  const std::vector<Case> cases = {
      {"use_dora", true, "DoRA"},
      {"modules_to_save", {"lm_head"}, "modules_to_save"},
      {"bias", "all", "bias 'all'"},
      {"bias", "lora_only", "bias 'lora_only'"},
      {"lora_bias", true, "lora_bias"},
      {"peft_type", "IA3", "IA3"},
      {"trainable_token_indices", {1, 2}, "trainable_token_indices"},
      {"layer_replication", {{0, 2}}, "layer_replication"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.key) + "=" + c.value.dump());
    Json j = base_json();
    j[c.key] = c.value;
    auto r = LoraConfig::from_json(j);
    EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
    EXPECT_TRUE(FailsWith(r.status(), {c.word, "not"}));
  }
}

TEST(LoraConfigBad, EmbeddingOrLmHeadTargets) {
  for (Json t : {Json{"q_proj", "embed_tokens"}, Json{"lm_head"}, Json{"model.embed_tokens"},
                 Json(R"(.*\.(q_proj|lm_head))"), Json("model.embed_tokens")}) {
    SCOPED_TRACE(t.dump());
    Json j = base_json();
    j["target_modules"] = t;
    auto r = LoraConfig::from_json(j);
    EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
    EXPECT_TRUE(FailsWith(r.status(), {"not supported"}));
    EXPECT_TRUE(r.status().message().find("embed_tokens") != std::string::npos ||
                r.status().message().find("lm_head") != std::string::npos);
  }
}

TEST(LoraConfigBad, UnknownTargetModule) {
  for (const char* t : {"qkv_proj", "c_attn", "model.layers.0.self_attn.rotary_emb"}) {
    Json j = base_json();
    j["target_modules"] = {"q_proj", t};
    auto r = LoraConfig::from_json(j);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << t;
    EXPECT_TRUE(FailsWith(r.status(), {"unknown target module", std::string("'") + t + "'"}));
  }
}

TEST(LoraConfigBad, MalformedFields) {
  struct Case {
    const char* key;
    Json value;
    const char* word;
  };
  const std::vector<Case> cases = {
      {"target_modules", nullptr, "target_modules"},
      {"target_modules", 5, "target_modules"},
      {"target_modules", {"q_proj", 3}, "target_modules"},
      {"target_modules", "(q_proj", "target_modules"},
      {"exclude_modules", "[", "exclude_modules"},
      {"lora_alpha", "16", "lora_alpha"},
      {"layers_to_transform", "0", "layers_to_transform"},
      {"layers_to_transform", {0, "1"}, "layers_to_transform"},
      {"rank_pattern", {1, 2}, "rank_pattern"},
      {"rank_pattern", {{"q_proj", "4"}}, "rank_pattern"},
      {"rank_pattern", {{"q_proj", 0}}, "rank_pattern"},
      {"rank_pattern", {{"(q_proj", 4}}, "'(q_proj'"},
      {"alpha_pattern", {{"q_proj", "x"}}, "alpha_pattern"},
      {"alpha_pattern", {{"[", 2}}, "alpha_pattern"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.key) + "=" + c.value.dump());
    Json j = base_json();
    j[c.key] = c.value;
    EXPECT_TRUE(FailsWith(LoraConfig::from_json(j).status(), {c.word}));
  }
  EXPECT_TRUE(FailsWith(LoraConfig::from_json(Json::array()).status(), {"not a JSON object"}));
}

}  // namespace
}  // namespace ls
