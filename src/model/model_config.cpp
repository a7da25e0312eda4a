// config.json parsing with a clear error for each missing or unsupported field.
#include "model/model_config.h"

#include <cmath>
#include <set>

#include "base/file_util.h"

namespace ls {

namespace {

using Json = nlohmann::ordered_json;

Status get_int(const Json& j, const char* key, int32_t* out, bool required, int32_t lo = 1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return invalid_argument(std::string("missing field '") + key + "'");
    return ok_status();
  }
  if (!j[key].is_number_integer())
    return invalid_argument(std::string("field '") + key + "' must be an integer");
  int64_t v = j[key].get<int64_t>();
  if (v < lo || v > (1 << 30))
    return invalid_argument(std::string("field '") + key + "' out of range: " + std::to_string(v));
  *out = static_cast<int32_t>(v);
  return ok_status();
}

Status get_double(const Json& j, const char* key, double* out) {
  if (!j.contains(key) || j[key].is_null()) return ok_status();
  if (!j[key].is_number())
    return invalid_argument(std::string("field '") + key + "' must be a number");
  *out = j[key].get<double>();
  if (!std::isfinite(*out) || *out <= 0)
    return invalid_argument(std::string("field '") + key + "' must be positive");
  return ok_status();
}

Status get_bool(const Json& j, const char* key, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return ok_status();
  if (!j[key].is_boolean())
    return invalid_argument(std::string("field '") + key + "' must be a boolean");
  *out = j[key].get<bool>();
  return ok_status();
}

// Reads rope scaling from either the hub format (rope_theta + rope_scaling) or the
// transformers 5 format (rope_parameters holding rope_type, rope_theta and the factors).
Status parse_rope(const Json& j, ModelConfig* c) {
  LS_RETURN_IF_ERROR(get_double(j, "rope_theta", &c->rope_theta));
  const Json* s = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    s = &j["rope_parameters"];
    LS_RETURN_IF_ERROR(get_double(*s, "rope_theta", &c->rope_theta));
  } else if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    if (!j["rope_scaling"].is_object()) return invalid_argument("rope_scaling must be an object");
    s = &j["rope_scaling"];
  }
  if (!s) return ok_status();
  std::string type;
  if (s->contains("rope_type") && (*s)["rope_type"].is_string())
    type = (*s)["rope_type"];
  else if (s->contains("type") && (*s)["type"].is_string())
    type = (*s)["type"];
  else
    type = "default";
  RopeScaling& r = c->rope_scaling;
  r.type = type;
  if (type == "default") return ok_status();
  if (type != "linear" && type != "llama3")
    return unimplemented("rope scaling type '" + type +
                         "' is not supported (default, linear, llama3)");
  if (!s->contains("factor")) return invalid_argument("rope scaling '" + type + "' needs 'factor'");
  LS_RETURN_IF_ERROR(get_double(*s, "factor", &r.factor));
  if (type == "llama3") {
    LS_RETURN_IF_ERROR(get_double(*s, "low_freq_factor", &r.low_freq_factor));
    LS_RETURN_IF_ERROR(get_double(*s, "high_freq_factor", &r.high_freq_factor));
    int32_t orig = 0;
    LS_RETURN_IF_ERROR(get_int(*s, "original_max_position_embeddings", &orig, true));
    r.original_max_position_embeddings = orig;
    if (r.high_freq_factor <= r.low_freq_factor)
      return invalid_argument("llama3 rope scaling needs high_freq_factor > low_freq_factor");
  }
  return ok_status();
}

Status parse_token_ids(const Json& j, ModelConfig* c) {
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c->bos_token_id = j["bos_token_id"].get<int32_t>();
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return ok_status();
  const Json& e = j["eos_token_id"];
  if (e.is_number_integer()) {
    c->eos_token_ids.push_back(e.get<int32_t>());
  } else if (e.is_array()) {
    for (const auto& v : e) {
      if (!v.is_number_integer()) return invalid_argument("eos_token_id entries must be integers");
      c->eos_token_ids.push_back(v.get<int32_t>());
    }
  } else {
    return invalid_argument("eos_token_id must be an integer or a list");
  }
  return ok_status();
}

}  // namespace

Result<ModelConfig> ModelConfig::from_json(const Json& j) {
  if (!j.is_object()) return invalid_argument("config is not a JSON object");
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string())
    return invalid_argument("missing field 'architectures'");
  c.architecture = j["architectures"][0].get<std::string>();
  static const std::set<std::string> kSupported = {"LlamaForCausalLM", "MistralForCausalLM",
                                                   "Qwen2ForCausalLM"};
  if (!kSupported.count(c.architecture))
    return unimplemented("unsupported architecture '" + c.architecture +
                         "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  LS_RETURN_IF_ERROR(get_int(j, "vocab_size", &c.vocab_size, true));
  LS_RETURN_IF_ERROR(get_int(j, "hidden_size", &c.hidden_size, true));
  LS_RETURN_IF_ERROR(get_int(j, "intermediate_size", &c.intermediate_size, true));
  LS_RETURN_IF_ERROR(get_int(j, "num_hidden_layers", &c.num_layers, true));
  LS_RETURN_IF_ERROR(get_int(j, "num_attention_heads", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  LS_RETURN_IF_ERROR(get_int(j, "num_key_value_heads", &c.num_kv_heads, false));
  if (c.num_heads % c.num_kv_heads != 0)
    return invalid_argument("num_attention_heads must be a multiple of num_key_value_heads");
  if (c.hidden_size % c.num_heads != 0 && !(j.contains("head_dim") && !j["head_dim"].is_null()))
    return invalid_argument("hidden_size is not a multiple of num_attention_heads and no head_dim");
  c.head_dim = c.hidden_size / c.num_heads;
  LS_RETURN_IF_ERROR(get_int(j, "head_dim", &c.head_dim, false));
  if (c.head_dim % 2 != 0 || c.head_dim > 1024)
    return invalid_argument("head_dim must be even and <= 1024");
  // Bound the products the model forms (q_dim, kv_dim, vocab x hidden) so int32 math is safe.
  if (static_cast<int64_t>(c.num_heads) * c.head_dim > (1 << 20) || c.hidden_size > (1 << 20) ||
      c.intermediate_size > (1 << 22) || c.num_layers > 4096 || c.vocab_size > (1 << 24))
    return invalid_argument(
        "model dimensions too large (num_attention_heads x head_dim <= 2^20, hidden_size <= 2^20, "
        "intermediate_size <= 2^22, num_hidden_layers <= 4096, vocab_size <= 2^24)");
  c.max_position_embeddings = 2048;
  LS_RETURN_IF_ERROR(get_int(j, "max_position_embeddings", &c.max_position_embeddings, false));
  LS_RETURN_IF_ERROR(get_double(j, "rms_norm_eps", &c.rms_norm_eps));
  LS_RETURN_IF_ERROR(parse_rope(j, &c));
  LS_RETURN_IF_ERROR(get_bool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  if (j.contains("hidden_act") && !j["hidden_act"].is_null() && j["hidden_act"] != "silu") {
    const auto& act = j["hidden_act"];
    return unimplemented("hidden_act '" + (act.is_string() ? act.get<std::string>() : act.dump()) +
                         "' is not supported (silu only)");
  }
  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
    bool use_sw = false;
    LS_RETURN_IF_ERROR(get_bool(j, "use_sliding_window", &use_sw));
    if (use_sw) return unimplemented("Qwen2 use_sliding_window=true is not supported");
  } else {
    bool attention_bias = false;
    LS_RETURN_IF_ERROR(get_bool(j, "attention_bias", &attention_bias));
    c.qkv_bias = c.o_bias = attention_bias;
    LS_RETURN_IF_ERROR(get_bool(j, "mlp_bias", &c.mlp_bias));
    if (c.architecture == "MistralForCausalLM")
      LS_RETURN_IF_ERROR(get_int(j, "sliding_window", &c.sliding_window, false));
  }
  LS_RETURN_IF_ERROR(parse_token_ids(j, &c));
  return c;
}

Result<ModelConfig> ModelConfig::load(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  LS_ASSIGN_OR_RETURN(auto json, read_json_file(path));
  auto c = from_json(json);
  if (!c.ok()) return c.status().with_context(path);
  return c;
}

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int32_t half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int32_t i = 0; i < half; ++i) {
    // torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in fp32
    float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    inv[static_cast<size_t>(i)] =
        1.0f / static_cast<float>(std::pow(static_cast<double>(static_cast<float>(c.rope_theta)),
                                           static_cast<double>(exponent)));
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    for (float& f : inv) f = static_cast<float>(f / s.factor);
  } else if (s.type == "llama3") {
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      double out = f;
      if (wavelen > low_wavelen) {
        out = f / s.factor;
      } else if (wavelen >= high_wavelen) {  // medium band: smooth blend
        double smooth =
            (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        out = (1.0 - smooth) * f / s.factor + smooth * f;
      }
      f = static_cast<float>(out);
    }
  }
  return inv;
}

}  // namespace ls
