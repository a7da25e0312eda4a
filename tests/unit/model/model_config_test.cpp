// config.json parsing: the golden Hugging Face configs, both rope formats (hub rope_scaling and
// transformers 5 rope_parameters), GQA and head_dim defaults, biases, EOS lists; each missing or
// unsupported field refused with its name; rope_inv_freq against the HF formulas.
#include "model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <initializer_list>

#include "support/test_support.h"

namespace ls {
namespace {

using Json = nlohmann::ordered_json;

using test::FailsWith;

// The smallest config we accept: a Llama with every required field.
Json llama_json() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 100},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4}};
}

ModelConfig parse_ok(const Json& j) {
  auto c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? c.value() : ModelConfig{};
}

std::string write_config_dir(const Json& j) {
  const std::string dir = test::temp_dir("cfg");
  test::write_file(dir + "/config.json", j.dump(2));
  return dir;
}

// ---------------------------------------------------------------- golden configs

TEST(ModelConfig, GoldenMhaF32UsesTransformers5RopeParameters) {
  auto c = ModelConfig::load(test::fixture_dir() + "/golden/mha_f32");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->vocab_size, 256);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 160);
  EXPECT_EQ(c->num_layers, 2);
  EXPECT_EQ(c->num_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->max_position_embeddings, 256);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 2.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{2}));
  EXPECT_EQ(c->bos_token_id, 1);
}

TEST(ModelConfig, GoldenGqaBf16UsesHubLlama3RopeScaling) {
  auto c = ModelConfig::load(test::fixture_dir() + "/golden/gqa_bf16");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_heads, 6);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 32);  // explicit: hidden 96 / 6 heads would be 16
  EXPECT_EQ(c->q_dim(), 192);
  EXPECT_EQ(c->kv_dim(), 64);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 64);
}

TEST(ModelConfig, GoldenMistralAndQwen2) {
  auto m = ModelConfig::load(test::fixture_dir() + "/golden/mistral_f32");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->architecture, "MistralForCausalLM");
  EXPECT_EQ(m->num_kv_heads, 1);
  EXPECT_EQ(m->head_dim, 12);
  EXPECT_DOUBLE_EQ(m->rope_theta, 1e6);
  EXPECT_EQ(m->rope_scaling.type, "default");
  EXPECT_EQ(m->sliding_window, 0);  // null: full attention

  auto q = ModelConfig::load(test::fixture_dir() + "/golden/qwen2_f16");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(q->qkv_bias);
  EXPECT_FALSE(q->o_bias);
  EXPECT_FALSE(q->mlp_bias);
  EXPECT_DOUBLE_EQ(q->rope_theta, 1e6);  // from rope_parameters
  EXPECT_EQ(q->rope_scaling.type, "default");
  EXPECT_EQ(q->num_kv_heads, 2);
  EXPECT_EQ(q->head_dim, 16);
}

// ---------------------------------------------------------------- field by field

TEST(ModelConfig, DefaultsOfOptionalFields) {
  ModelConfig c = parse_ok(llama_json());
  EXPECT_EQ(c.num_kv_heads, 4);  // GQA absent: one KV head per query head
  EXPECT_EQ(c.head_dim, 16);     // hidden / heads
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, "default");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelConfig, GqaHeads) {
  Json j = llama_json();
  j["num_key_value_heads"] = nullptr;
  EXPECT_EQ(parse_ok(j).num_kv_heads, 4);
  j["num_key_value_heads"] = 2;
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(c.q_dim(), 64);
  j["num_key_value_heads"] = 3;
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"num_key_value_heads"}));
}

TEST(ModelConfig, HeadDimExplicitOverridesHiddenOverHeads) {
  Json j = llama_json();
  j["head_dim"] = 32;
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  // hidden not a multiple of heads is fine with an explicit head_dim, an error without.
  j["hidden_size"] = 60;
  j["num_attention_heads"] = 8;
  j["head_dim"] = 8;
  EXPECT_EQ(parse_ok(j).head_dim, 8);
  j.erase("head_dim");
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"hidden_size", "head_dim"}));
}

TEST(ModelConfig, BiasFlags) {
  Json q = llama_json();
  q["architectures"] = {"Qwen2ForCausalLM"};
  ModelConfig qc = parse_ok(q);
  EXPECT_TRUE(qc.qkv_bias);
  EXPECT_FALSE(qc.o_bias);
  Json l = llama_json();
  l["attention_bias"] = true;
  l["mlp_bias"] = true;
  ModelConfig lc = parse_ok(l);
  EXPECT_TRUE(lc.qkv_bias);
  EXPECT_TRUE(lc.o_bias);
  EXPECT_TRUE(lc.mlp_bias);
}

TEST(ModelConfig, EosTokenIds) {
  Json j = llama_json();
  j["eos_token_id"] = {128001, 128008, 128009};
  j["bos_token_id"] = 128000;
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
  j["eos_token_id"] = 7;
  EXPECT_EQ(parse_ok(j).eos_token_ids, (std::vector<int32_t>{7}));
  j["eos_token_id"] = {1, "two"};
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"eos_token_id"}));
  j["eos_token_id"] = "2";
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"eos_token_id"}));
}

TEST(ModelConfig, MistralSlidingWindow) {
  Json j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  EXPECT_EQ(parse_ok(j).sliding_window, 4096);
}

TEST(ModelConfig, HubRopeScalingWithTypeKey) {
  Json j = llama_json();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
}

TEST(ModelConfig, HubRopeScalingWithRopeTypeKey) {
  Json j = llama_json();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 2.0},
                       {"high_freq_factor", 6.0},
                       {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 2.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 6.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse_ok(j).rope_scaling.type, "default");
}

TEST(ModelConfig, Transformers5RopeParameters) {
  Json j = llama_json();
  j["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                          {"factor", 8.0},           {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1234.0}};
  ModelConfig d = parse_ok(j);
  EXPECT_DOUBLE_EQ(d.rope_theta, 1234.0);
  EXPECT_EQ(d.rope_scaling.type, "default");
}

// ---------------------------------------------------------------- refusals

class MissingField : public ::testing::TestWithParam<std::string> {};

TEST_P(MissingField, NamedInTheError) {
  Json j = llama_json();
  j.erase(GetParam());
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"missing", "'" + GetParam() + "'"}));
  const std::string dir = write_config_dir(j);
  EXPECT_TRUE(FailsWith(ModelConfig::load(dir).status(),
                        {dir + "/config.json", "missing", "'" + GetParam() + "'"}));
}

INSTANTIATE_TEST_SUITE_P(ModelConfig, MissingField,
                         ::testing::Values("architectures", "vocab_size", "hidden_size",
                                           "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads"));

TEST(ModelConfigBad, MissingOrMalformedFile) {
  const std::string dir = test::temp_dir("cfg");
  EXPECT_TRUE(FailsWith(ModelConfig::load(dir).status(), {dir + "/config.json"}));
  test::write_file(dir + "/config.json", "{\"architectures\": [\"LlamaForCausalLM\"],");
  EXPECT_TRUE(FailsWith(ModelConfig::load(dir).status(), {dir + "/config.json", "malformed JSON"}));
  test::write_file(dir + "/config.json", "[1, 2]");
  EXPECT_TRUE(
      FailsWith(ModelConfig::load(dir).status(), {dir + "/config.json", "not a JSON object"}));
}

TEST(ModelConfigBad, UnsupportedArchitecture) {
  for (const char* arch :
       {"GPT2LMHeadModel", "LlamaForSequenceClassification", "MixtralForCausalLM"}) {
    SCOPED_TRACE(arch);
    Json j = llama_json();
    j["architectures"] = {arch};
    auto c = ModelConfig::from_json(j);
    EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
    EXPECT_TRUE(FailsWith(c.status(), {"unsupported architecture", arch}));
    const std::string dir = write_config_dir(j);
    EXPECT_TRUE(FailsWith(ModelConfig::load(dir).status(), {dir + "/config.json", arch}));
  }
  Json j = llama_json();
  j["architectures"] = Json::array();
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"architectures"}));
}

TEST(ModelConfigBad, BadFieldValues) {
  struct Case {
    const char* key;
    Json value;
    const char* word;
  };
  const std::vector<Case> cases = {
      {"hidden_size", 0, "hidden_size"},
      {"vocab_size", -5, "vocab_size"},
      {"num_hidden_layers", "2", "num_hidden_layers"},
      {"intermediate_size", 128.5, "intermediate_size"},
      {"num_attention_heads", 1ll << 40, "num_attention_heads"},
      {"num_key_value_heads", 0, "num_key_value_heads"},
      {"head_dim", 15, "head_dim"},
      {"head_dim", 2048, "head_dim"},
      {"max_position_embeddings", 0, "max_position_embeddings"},
      {"rms_norm_eps", 0.0, "rms_norm_eps"},
      {"rope_theta", -1.0, "rope_theta"},
      {"rope_theta", "big", "rope_theta"},
      {"tie_word_embeddings", "yes", "tie_word_embeddings"},
      {"attention_bias", 1, "attention_bias"},
      {"hidden_act", "gelu", "hidden_act"},
      {"rope_scaling", "linear", "rope_scaling"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.key) + "=" + c.value.dump());
    Json j = llama_json();
    j[c.key] = c.value;
    EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {c.word}));
  }
}

TEST(ModelConfigBad, UnsupportedOrIncompleteRopeScaling) {
  for (const char* type : {"yarn", "dynamic", "longrope"}) {
    Json j = llama_json();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 2.0}};
    auto c = ModelConfig::from_json(j);
    EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented) << type;
    EXPECT_TRUE(FailsWith(c.status(), {"'" + std::string(type) + "'", "not supported"}));
  }
  Json j = llama_json();
  j["rope_scaling"] = {{"type", "linear"}};
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"linear", "factor"}));
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"original_max_position_embeddings"}));
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 4.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"high_freq_factor"}));
}

TEST(ModelConfigBad, Qwen2SlidingWindowRefused) {
  Json j = llama_json();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["use_sliding_window"] = true;
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"use_sliding_window"}));
}

// Regression: num_attention_heads and head_dim were each range-checked but not their product, so
// q_dim() = num_heads * head_dim could overflow int32. A config must be refused before that.
TEST(ModelConfigBad, HeadsTimesHeadDimMustFitInt32) {
  Json j = llama_json();
  j["num_attention_heads"] = 1 << 22;
  j["num_key_value_heads"] = 1 << 22;
  j["head_dim"] = 1024;
  EXPECT_TRUE(FailsWith(ModelConfig::from_json(j).status(), {"head"}));
}

// ---------------------------------------------------------------- rotary frequencies

// HF _compute_default_rope_parameters: 1 / theta ** (arange(0, dim, 2) / dim).
std::vector<double> hf_default(double theta, int dim) {
  std::vector<double> inv;
  for (int i = 0; i < dim; i += 2)
    inv.push_back(1.0 / std::pow(theta, static_cast<double>(i) / dim));
  return inv;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 2e-6 * want[i]) << "index " << i;
}

TEST(RopeInvFreq, DefaultMatchesHf) {
  Json j = llama_json();
  j["head_dim"] = 128;
  j["rope_theta"] = 500000.0;
  const auto inv = rope_inv_freq(parse_ok(j));
  expect_close(inv, hf_default(500000.0, 128));
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], std::pow(500000.0, -2.0 / 128), 1e-7);
}

TEST(RopeInvFreq, LinearDividesByFactor) {
  auto c = ModelConfig::load(test::fixture_dir() + "/golden/mha_f32");  // linear, factor 2
  ASSERT_TRUE(c.ok());
  std::vector<double> want = hf_default(10000.0, 16);
  for (double& w : want) w /= 2.0;
  expect_close(rope_inv_freq(c.value()), want);
  EXPECT_FLOAT_EQ(rope_inv_freq(c.value())[0], 0.5f);
}

// HF _compute_llama3_parameters, written out per frequency.
std::vector<double> hf_llama3(double theta, int dim, double factor, double low, double high,
                              double old_len, int bands[3]) {
  const double low_wavelen = old_len / low, high_wavelen = old_len / high;
  std::vector<double> out;
  for (double inv : hf_default(theta, dim)) {
    const double wavelen = 2 * M_PI / inv;
    if (wavelen > low_wavelen) {
      out.push_back(inv / factor);
      ++bands[0];
    } else if (wavelen < high_wavelen) {
      out.push_back(inv);
      ++bands[2];
    } else {
      const double smooth = (old_len / wavelen - low) / (high - low);
      out.push_back((1 - smooth) * inv / factor + smooth * inv);
      ++bands[1];
    }
  }
  return out;
}

TEST(RopeInvFreq, Llama3MatchesHfInEveryBand) {
  // The golden gqa config: head_dim 32, theta 1e4, factor 8, low 1, high 4, original 64.
  auto g = ModelConfig::load(test::fixture_dir() + "/golden/gqa_bf16");
  ASSERT_TRUE(g.ok());
  int bands[3] = {0, 0, 0};
  expect_close(rope_inv_freq(g.value()), hf_llama3(1e4, 32, 8, 1, 4, 64, bands));
  EXPECT_GT(bands[0], 0);  // low frequencies: divided by factor
  EXPECT_GT(bands[1], 0);  // medium: smoothed
  EXPECT_GT(bands[2], 0);  // high: unchanged

  // Llama 3.1's own parameters.
  Json j = llama_json();
  j["hidden_size"] = 512;
  j["head_dim"] = 128;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  int b2[3] = {0, 0, 0};
  expect_close(rope_inv_freq(parse_ok(j)), hf_llama3(500000.0, 128, 8, 1, 4, 8192, b2));
  EXPECT_GT(b2[0] * b2[1] * b2[2], 0);
}

}  // namespace
}  // namespace ls
