// Loading PEFT adapter directories: the golden adapters give PEFT's ranks and scales with A and
// B^T taken from the file; every bad adapter (another base, rank 0, NaN/Inf, unknown modules,
// DoRA, bias, embeddings, pickles, ranks too high) is refused naming the file and the problem.
#include "model/lora_adapter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/dtype.h"
#include "model/lora_config.h"
#include "model/safetensors.h"
#include "support/test_support.h"

namespace ls {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

using test::FailsWith;

std::string golden(const std::string& model) {
  return test::fixture_dir() + "/golden/" + model;
}

ModelConfig config_of(const std::string& model) {
  auto c = ModelConfig::load(golden(model));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? c.value() : ModelConfig{};
}

// A private copy of a golden adapter directory, to corrupt.
std::string copy_adapter(const std::string& model, const std::string& adapter) {
  const std::string dst = test::temp_dir("adapter") + "/" + adapter;
  fs::copy(golden(model) + "/adapters/" + adapter, dst, fs::copy_options::recursive);
  return dst;
}

// PEFT's saved name of a factor: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
std::string tensor_name(int32_t layer, LoraTarget t, char ab) {
  return "base_model.model." + lora_module_key(layer, t) + ".lora_" + ab + ".weight";
}

std::vector<TensorToWrite> read_tensors(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.ok()) << f.status().message();
  std::vector<TensorToWrite> out;
  if (!f.ok()) return out;
  for (const auto& t : f->tensors())
    out.push_back(
        {t.name, *t.dtype, t.shape, std::vector<unsigned char>(t.data, t.data + t.bytes)});
  return out;
}

TensorToWrite* find_tensor(std::vector<TensorToWrite>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

// Rewrites a copied adapter's weights after `edit` changed them.
template <typename Edit>
void edit_tensors(const std::string& dir, Edit edit) {
  const std::string path = dir + "/adapter_model.safetensors";
  auto ts = read_tensors(path);
  edit(ts);
  ASSERT_TRUE(write_safetensors(path, ts).ok());
}

template <typename Edit>
void edit_config(const std::string& dir, Edit edit) {
  const std::string path = dir + "/adapter_config.json";
  Json j = Json::parse(test::read_file(path));
  edit(j);
  test::write_file(path, j.dump(2));
}

std::vector<float> to_f32(const TensorRef& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(*t.dtype, t.data, out.data(), out.size());
  return out;
}

// Checks every module against the file: present exactly where the file has factors, rank from
// lora_A, A as stored, B^T the transpose of lora_B, scale as adapter_config.json says.
void expect_matches_file(const LoraAdapter& a, const std::string& dir, const ModelConfig& mc) {
  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  ASSERT_TRUE(file.ok());
  auto cfg = LoraConfig::from_json(Json::parse(test::read_file(dir + "/adapter_config.json")));
  ASSERT_TRUE(cfg.ok());
  ASSERT_EQ(a.layers.size(), static_cast<size_t>(mc.num_layers));
  size_t bytes = 0, modules = 0;
  for (int32_t l = 0; l < mc.num_layers; ++l) {
    for (int32_t ti = 0; ti < kNumLoraTargets; ++ti) {
      const auto t = static_cast<LoraTarget>(ti);
      SCOPED_TRACE(lora_module_key(l, t));
      const auto& m = a.layers[static_cast<size_t>(l)][static_cast<size_t>(ti)];
      const TensorRef* fa = file->find(tensor_name(l, t, 'A'));
      const TensorRef* fb = file->find(tensor_name(l, t, 'B'));
      ASSERT_EQ(m.has_value(), fa != nullptr);
      if (!m) continue;
      ++modules;
      const int64_t in = lora_in_dim(mc, t), out = lora_out_dim(mc, t);
      EXPECT_EQ(m->rank, fa->shape[0]);
      EXPECT_EQ(m->rank, cfg->rank_for(lora_module_key(l, t)));
      EXPECT_FLOAT_EQ(m->scale, cfg->scale_for(lora_module_key(l, t)));
      EXPECT_EQ(m->a, to_f32(*fa));
      const std::vector<float> b = to_f32(*fb);  // [out, rank]
      ASSERT_EQ(m->bt.size(), static_cast<size_t>(m->rank * out));
      ASSERT_EQ(m->a.size(), static_cast<size_t>(m->rank * in));
      for (int64_t o = 0; o < out; ++o)
        for (int64_t r = 0; r < m->rank; ++r)
          ASSERT_EQ(m->bt[static_cast<size_t>(r * out + o)],
                    b[static_cast<size_t>(o * m->rank + r)])
              << "o=" << o << " r=" << r;
      bytes += (m->a.size() + m->bt.size()) * sizeof(float);
    }
  }
  EXPECT_GT(modules, 0u);
  EXPECT_EQ(a.host_bytes(), bytes);
}

// ---------------------------------------------------------------- golden adapters

TEST(LoraAdapter, ModuleKeysAndDims) {
  const ModelConfig mc = config_of("gqa_bf16");  // hidden 96, q 192, kv 64, inter 192
  EXPECT_EQ(lora_module_key(3, LoraTarget::kQ), "model.layers.3.self_attn.q_proj");
  EXPECT_EQ(lora_module_key(0, LoraTarget::kDown), "model.layers.0.mlp.down_proj");
  EXPECT_EQ(lora_target_name(LoraTarget::kGate), "gate_proj");
  EXPECT_EQ(lora_in_dim(mc, LoraTarget::kO), 192);
  EXPECT_EQ(lora_out_dim(mc, LoraTarget::kO), 96);
  EXPECT_EQ(lora_out_dim(mc, LoraTarget::kK), 64);
  EXPECT_EQ(lora_in_dim(mc, LoraTarget::kDown), 192);
  EXPECT_EQ(lora_out_dim(mc, LoraTarget::kUp), 192);
}

TEST(LoraAdapter, PatternR4HasPeftRanksAndScales) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = golden("mha_f32") + "/adapters/pattern_r4";
  auto a = load_lora_adapter(dir, "pattern", mc);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->name, "pattern");
  EXPECT_EQ(a->dir, dir);
  EXPECT_EQ(a->max_rank, 12);
  using T = LoraTarget;
  auto mod = [&](int l, T t) -> const std::optional<LoraModule>& {
    return a->layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
  };
  for (int l : {0, 1}) {
    SCOPED_TRACE(l);
    ASSERT_TRUE(mod(l, T::kQ) && mod(l, T::kO) && mod(l, T::kDown));
    EXPECT_FALSE(mod(l, T::kK) || mod(l, T::kV) || mod(l, T::kGate) || mod(l, T::kUp));
    EXPECT_EQ(mod(l, T::kQ)->rank, 4);
    EXPECT_FLOAT_EQ(mod(l, T::kQ)->scale, 3.0f / 4.0f);  // alpha_pattern q_proj: 3
    EXPECT_EQ(mod(l, T::kO)->rank, 12);                  // rank_pattern o_proj: 12
    EXPECT_FLOAT_EQ(mod(l, T::kO)->scale, 8.0f / 12.0f);
  }
  EXPECT_EQ(mod(0, T::kDown)->rank, 4);
  EXPECT_FLOAT_EQ(mod(0, T::kDown)->scale, 2.0f);
  EXPECT_EQ(mod(1, T::kDown)->rank, 6);  // rank_pattern model.layers.1.mlp.down_proj: 6
  EXPECT_FLOAT_EQ(mod(1, T::kDown)->scale, 8.0f / 6.0f);
  expect_matches_file(a.value(), dir, mc);
}

TEST(LoraAdapter, BTransposedIsLoraBTransposed) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = golden("mha_f32") + "/adapters/qv_r8";
  auto a = load_lora_adapter(dir, "qv", mc);
  ASSERT_TRUE(a.ok()) << a.status().message();
  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  ASSERT_TRUE(file.ok());
  const TensorRef* b = file->find(tensor_name(1, LoraTarget::kV, 'B'));
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->shape, (std::vector<int64_t>{64, 8}));
  const auto& m = *a->layers[1][static_cast<size_t>(LoraTarget::kV)];
  float b_3_5;  // lora_B[3][5]
  std::memcpy(&b_3_5, b->data + (3 * 8 + 5) * 4, 4);
  EXPECT_NE(b_3_5, 0.0f);
  EXPECT_EQ(m.bt[5 * 64 + 3], b_3_5);
  EXPECT_FLOAT_EQ(m.scale, 2.0f);
}

TEST(LoraAdapter, EveryGoldenAdapterMatchesItsFile) {
  struct Case {
    const char* model;
    const char* adapter;
    int32_t max_rank;
    float scale_q_or_first;
  };
  for (const Case& c : std::vector<Case>{{"mha_f32", "qv_r8", 8, 2.0f},
                                         {"mha_f32", "all_r32_rslora", 32, 8.0f / std::sqrt(32.0f)},
                                         {"gqa_bf16", "all_r16_bf16", 16, 2.0f},
                                         {"gqa_bf16", "attn_r64_layers", 64, 0.25f},
                                         {"gqa_bf16", "regex_r8", 8, 3.0f},
                                         {"mistral_f32", "kvo_r12", 12, 0.5f},
                                         {"qwen2_f16", "all_r8", 8, 2.0f},
                                         {"qwen2_f16", "mlp_r24_f16", 24, 2.0f}}) {
    SCOPED_TRACE(std::string(c.model) + "/" + c.adapter);
    const ModelConfig mc = config_of(c.model);
    const std::string dir = golden(c.model) + "/adapters/" + c.adapter;
    auto a = load_lora_adapter(dir, c.adapter, mc);
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->max_rank, c.max_rank);
    const LoraModule* first = nullptr;
    for (const auto& m : a->layers[0])
      if (m && !first) first = &*m;
    ASSERT_NE(first, nullptr);
    EXPECT_FLOAT_EQ(first->scale, c.scale_q_or_first);
    expect_matches_file(a.value(), dir, mc);
  }
}

TEST(LoraAdapter, LayersToTransformAndRegexTargets) {
  const ModelConfig mc = config_of("gqa_bf16");
  auto layers = load_lora_adapter(golden("gqa_bf16") + "/adapters/attn_r64_layers", "l", mc);
  ASSERT_TRUE(layers.ok()) << layers.status().message();
  for (int l = 0; l < 3; ++l)
    for (int t = 0; t < kNumLoraTargets; ++t)
      EXPECT_EQ(layers->layers[l][t].has_value(), l != 1 && t <= 3) << l << " " << t;
  auto regex = load_lora_adapter(golden("gqa_bf16") + "/adapters/regex_r8", "r", mc);
  ASSERT_TRUE(regex.ok()) << regex.status().message();
  using T = LoraTarget;
  for (int l = 0; l < 3; ++l)
    for (T t : {T::kQ, T::kK, T::kV, T::kO, T::kGate, T::kUp, T::kDown})
      EXPECT_EQ(regex->layers[l][static_cast<size_t>(t)].has_value(),
                t == T::kQ || t == T::kV || t == T::kUp);
}

// ---------------------------------------------------------------- bad adapters

TEST(LoraAdapterBad, MissingDirectoryOrFiles) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string none = test::temp_dir("adapter") + "/nope";
  EXPECT_TRUE(FailsWith(load_lora_adapter(none, "x", mc).status(),
                        {none + "/adapter_config.json", "no such file"}));
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  fs::remove(dir + "/adapter_model.safetensors");
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                        {dir + "/adapter_model.safetensors", "no such file"}));
  test::write_file(dir + "/adapter_config.json", "{\"r\": 8,");
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                        {dir + "/adapter_config.json", "malformed JSON"}));
}

TEST(LoraAdapterBad, PickledAdapterBinIsNeverLoaded) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  fs::remove(dir + "/adapter_model.safetensors");
  test::write_file(dir + "/adapter_model.bin", std::string("\x80\x02}q\x00.", 6));
  auto a = load_lora_adapter(dir, "x", mc);
  EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(FailsWith(a.status(), {dir + "/adapter_model.bin", "pickled", "safetensors"}));
}

TEST(LoraAdapterBad, AdapterMadeForAnotherBase) {
  // Qwen2 (kv_dim 32, intermediate 128) adapter on the MHA Llama (kv_dim 64, intermediate 160).
  const std::string dir = golden("qwen2_f16") + "/adapters/all_r8";
  auto a = load_lora_adapter(dir, "x", config_of("mha_f32"));
  EXPECT_TRUE(FailsWith(a.status(),
                        {dir + "/adapter_model.safetensors", "shape mismatch",
                         "'model.layers.0.self_attn.k_proj'", "[32, 8]", "another base model"}));
  // An MHA adapter (hidden 64) on the GQA model (hidden 96).
  const std::string qv = golden("mha_f32") + "/adapters/qv_r8";
  EXPECT_TRUE(FailsWith(load_lora_adapter(qv, "x", config_of("gqa_bf16")).status(),
                        {qv + "/adapter_model.safetensors", "shape mismatch", "q_proj"}));
  // More layers than the base model has.
  const std::string gqa = golden("gqa_bf16") + "/adapters/all_r16_bf16";
  ModelConfig two = config_of("gqa_bf16");
  two.num_layers = 2;
  EXPECT_TRUE(FailsWith(load_lora_adapter(gqa, "x", two).status(),
                        {gqa + "/adapter_model.safetensors", "layer 2", "2 layers"}));
}

TEST(LoraAdapterBad, RankZero) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  edit_config(dir, [](Json& j) { j["r"] = 0; });
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                        {dir + "/adapter_config.json", "rank", "positive"}));
  // Rank-0 factors in the file under a valid config.
  const std::string t = copy_adapter("mha_f32", "qv_r8");
  edit_tensors(t, [](std::vector<TensorToWrite>& ts) {
    for (char ab : {'A', 'B'}) {
      TensorToWrite* w = find_tensor(ts, tensor_name(0, LoraTarget::kQ, ab));
      w->shape = ab == 'A' ? std::vector<int64_t>{0, 64} : std::vector<int64_t>{64, 0};
      w->bytes.clear();
    }
  });
  EXPECT_TRUE(
      FailsWith(load_lora_adapter(t, "x", mc).status(),
                {t + "/adapter_model.safetensors", "model.layers.0.self_attn.q_proj", "rank 0"}));
}

TEST(LoraAdapterBad, RankDifferentFromConfig) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  edit_config(dir, [](Json& j) { j["r"] = 4; });
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                        {dir + "/adapter_model.safetensors", "rank 8", "says 4"}));
}

TEST(LoraAdapterBad, RankAboveMaxLoraRank) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = golden("mha_f32") + "/adapters/all_r32_rslora";
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc, {16}).status(),
                        {dir + "/adapter_model.safetensors", "rank 32", "maximum rank 16"}));
  EXPECT_TRUE(load_lora_adapter(dir, "x", mc, {32}).ok());
}

TEST(LoraAdapterBad, NanOrInfInWeights) {
  struct Case {
    const char* model;
    const char* adapter;
    LoraTarget target;
    char ab;
    float value;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const Case& c : std::vector<Case>{{"mha_f32", "qv_r8", LoraTarget::kV, 'A', nan},
                                         {"mha_f32", "qv_r8", LoraTarget::kQ, 'B', -inf},
                                         {"gqa_bf16", "all_r16_bf16", LoraTarget::kDown, 'B', nan},
                                         {"qwen2_f16", "mlp_r24_f16", LoraTarget::kUp, 'A', inf}}) {
    const std::string name = tensor_name(1, c.target, c.ab);
    SCOPED_TRACE(std::string(c.adapter) + " " + name);
    const std::string dir = copy_adapter(c.model, c.adapter);
    edit_tensors(dir, [&](std::vector<TensorToWrite>& ts) {
      TensorToWrite* w = find_tensor(ts, name);
      const size_t at = w->bytes.size() / 2 / dtype_size(w->dtype) * dtype_size(w->dtype);
      if (w->dtype == DType::kF32) {
        std::memcpy(w->bytes.data() + at, &c.value, 4);
      } else {
        uint16_t h = w->dtype == DType::kBF16 ? f32_to_bf16(c.value) : f32_to_f16(c.value);
        std::memcpy(w->bytes.data() + at, &h, 2);
      }
    });
    EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", config_of(c.model)).status(),
                          {dir + "/adapter_model.safetensors", "'" + name + "'", "NaN or Inf"}));
  }
}

TEST(LoraAdapterBad, UnknownTargetModule) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  edit_config(dir, [](Json& j) { j["target_modules"] = {"q_proj", "v_proj", "qkv_proj"}; });
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                        {dir + "/adapter_config.json", "unknown target module 'qkv_proj'"}));
  // In the weights: a module name we do not know, and a known name in the wrong block.
  for (const char* bad : {"self_attn.qkv_proj", "mlp.q_proj"}) {
    const std::string t = copy_adapter("mha_f32", "qv_r8");
    edit_tensors(t, [&](std::vector<TensorToWrite>& ts) {
      for (char ab : {'A', 'B'})
        find_tensor(ts, tensor_name(0, LoraTarget::kQ, ab))->name =
            std::string("base_model.model.model.layers.0.") + bad + ".lora_" + ab + ".weight";
    });
    EXPECT_TRUE(FailsWith(load_lora_adapter(t, "x", mc).status(),
                          {t + "/adapter_model.safetensors", "unknown target module", bad}));
  }
}

TEST(LoraAdapterBad, RefusedConfigs) {
  const ModelConfig mc = config_of("mha_f32");
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"use_dora", true}}, "DoRA"},
      {{{"modules_to_save", {"lm_head"}}}, "modules_to_save"},
      {{{"bias", "all"}}, "bias"},
      {{{"bias", "lora_only"}}, "bias"},
      {{{"target_modules", {"q_proj", "v_proj", "embed_tokens"}}}, "embed_tokens"},
      {{{"target_modules", {"q_proj", "v_proj", "lm_head"}}}, "lm_head"},
  };
  for (const auto& [patch, word] : cases) {
    SCOPED_TRACE(patch.dump());
    const std::string dir = copy_adapter("mha_f32", "qv_r8");
    edit_config(dir, [&](Json& j) { j.update(patch); });
    auto a = load_lora_adapter(dir, "x", mc);
    EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
    EXPECT_TRUE(FailsWith(a.status(), {dir + "/adapter_config.json", word, "not supported"}));
  }
}

TEST(LoraAdapterBad, RefusedTensors) {
  const ModelConfig mc = config_of("mha_f32");
  const std::vector<std::pair<TensorToWrite, std::string>> cases = {
      {{"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
        DType::kF32,
        {64},
        std::vector<unsigned char>(256)},
       "DoRA"},
      {{"base_model.model.lm_head.lora_A.weight",
        DType::kF32,
        {8, 64},
        std::vector<unsigned char>(2048)},
       "lm_head"},
      {{"base_model.model.model.embed_tokens.lora_embedding_A",
        DType::kF32,
        {8, 256},
        std::vector<unsigned char>(8192)},
       "embeddings"},
      {{"base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias",
        DType::kF32,
        {64},
        std::vector<unsigned char>(256)},
       "bias"},
      {{"base_model.model.model.layers.0.self_attn.q_proj.bias",
        DType::kF32,
        {64},
        std::vector<unsigned char>(256)},
       "bias"},
      {{"base_model.model.model.norm.weight", DType::kF32, {64}, std::vector<unsigned char>(256)},
       "unexpected tensor"},
  };
  for (const auto& [extra, word] : cases) {
    SCOPED_TRACE(extra.name);
    const std::string dir = copy_adapter("mha_f32", "qv_r8");
    edit_tensors(dir, [&](std::vector<TensorToWrite>& ts) { ts.push_back(extra); });
    EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(),
                          {dir + "/adapter_model.safetensors", "'" + extra.name + "'", word}));
  }
}

TEST(LoraAdapterBad, TensorsAndConfigDisagree) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string untargeted = copy_adapter("mha_f32", "qv_r8");
  edit_config(untargeted, [](Json& j) { j["target_modules"] = {"q_proj"}; });
  EXPECT_TRUE(FailsWith(load_lora_adapter(untargeted, "x", mc).status(),
                        {untargeted + "/adapter_model.safetensors",
                         "'model.layers.0.self_attn.v_proj'", "does not target"}));
  const std::string missing = copy_adapter("mha_f32", "qv_r8");
  edit_config(missing, [](Json& j) { j["target_modules"] = {"q_proj", "v_proj", "k_proj"}; });
  EXPECT_TRUE(FailsWith(
      load_lora_adapter(missing, "x", mc).status(),
      {missing + "/adapter_model.safetensors", "'model.layers.0.self_attn.k_proj'", "no tensors"}));
  const std::string half = copy_adapter("mha_f32", "qv_r8");
  edit_tensors(half, [](std::vector<TensorToWrite>& ts) {
    std::erase_if(
        ts, [](const TensorToWrite& t) { return t.name == tensor_name(1, LoraTarget::kQ, 'B'); });
  });
  EXPECT_TRUE(FailsWith(load_lora_adapter(half, "x", mc).status(),
                        {half + "/adapter_model.safetensors", "'model.layers.1.self_attn.q_proj'",
                         "only one of lora_A / lora_B"}));
}

TEST(LoraAdapterBad, WrongRankOrDtypeOfFactors) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string three_d = copy_adapter("mha_f32", "qv_r8");
  edit_tensors(three_d, [](std::vector<TensorToWrite>& ts) {
    find_tensor(ts, tensor_name(0, LoraTarget::kV, 'A'))->shape = {8, 8, 8};
  });
  EXPECT_TRUE(FailsWith(load_lora_adapter(three_d, "x", mc).status(),
                        {three_d + "/adapter_model.safetensors", "v_proj", "2-D"}));
  const std::string ints = copy_adapter("mha_f32", "qv_r8");
  edit_tensors(ints, [](std::vector<TensorToWrite>& ts) {
    find_tensor(ts, tensor_name(0, LoraTarget::kV, 'A'))->dtype = DType::kI32;
  });
  EXPECT_TRUE(FailsWith(
      load_lora_adapter(ints, "x", mc).status(),
      {ints + "/adapter_model.safetensors", tensor_name(0, LoraTarget::kV, 'A'), "dtype I32"}));
}

TEST(LoraAdapterBad, CorruptOrEmptyWeightsFile) {
  const ModelConfig mc = config_of("mha_f32");
  const std::string dir = copy_adapter("mha_f32", "qv_r8");
  const std::string path = dir + "/adapter_model.safetensors";
  const std::string raw = test::read_file(path);
  test::write_file(path, raw.substr(0, raw.size() - 100));
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(), {path, "truncated"}));
  ASSERT_TRUE(write_safetensors(path, {}).ok());
  EXPECT_TRUE(FailsWith(load_lora_adapter(dir, "x", mc).status(), {path, "no LoRA tensors"}));
}

}  // namespace
}  // namespace ls
