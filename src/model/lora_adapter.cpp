// Loading a PEFT adapter directory: config, tensor names, shapes against the base model,
// dtype, finite values and rank limits, each failure a message naming the file and tensor.
#include "model/lora_adapter.h"

#include <cmath>
#include <map>
#include <regex>

#include "base/file_util.h"
#include "model/lora_config.h"
#include "model/safetensors.h"

namespace ls {

namespace {

constexpr std::string_view kTargetNames[kNumLoraTargets] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

struct ParsedName {
  int32_t layer = -1;
  LoraTarget target = LoraTarget::kQ;
  bool is_a = false;
};

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" -> layer 3, q, A.
Status parse_tensor_name(const std::string& name, int32_t num_layers, ParsedName* out) {
  static const std::regex kRe(
      R"(base_model\.model\.model\.layers\.(0|[1-9]\d{0,8})\.(self_attn|mlp)\.(\w+)\.lora_(A|B)\.weight)");
  std::smatch m;
  if (!std::regex_match(name, m, kRe)) {
    if (name.find("lora_magnitude_vector") != std::string::npos)
      return unimplemented("tensor '" + name + "' is a DoRA magnitude: DoRA is not supported");
    if (name.find("lora_embedding") != std::string::npos ||
        name.find("embed_tokens") != std::string::npos || name.find("lm_head") != std::string::npos)
      return unimplemented("tensor '" + name + "': LoRA on embeddings/lm_head is not supported");
    if (name.find(".bias") != std::string::npos)
      return unimplemented("tensor '" + name + "': LoRA bias is not supported");
    return invalid_argument("unexpected tensor '" + name +
                            "' (not a LoRA A/B weight of a known module)");
  }
  int64_t layer = std::stoll(m[1].str());  // at most 9 digits, no leading zeros
  if (layer >= num_layers)
    return invalid_argument("tensor '" + name + "' is for layer " + std::to_string(layer) +
                            " but the base model has " + std::to_string(num_layers) + " layers");
  const std::string module = m[3].str();
  int32_t found = -1;
  for (int32_t t = 0; t < kNumLoraTargets; ++t)
    if (module == kTargetNames[t]) found = t;
  bool attn = found >= 0 && found <= 3;
  if (found < 0 || attn != (m[2] == "self_attn"))
    return invalid_argument("tensor '" + name + "': unknown target module '" + m[2].str() + "." +
                            module + "'");
  out->layer = static_cast<int32_t>(layer);
  out->target = static_cast<LoraTarget>(found);
  out->is_a = m[4] == "A";
  return ok_status();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Result<std::vector<float>> to_f32_checked(const TensorRef& t) {
  if (!t.dtype || (*t.dtype != DType::kF32 && *t.dtype != DType::kF16 && *t.dtype != DType::kBF16))
    return invalid_argument("tensor '" + t.name + "' has dtype " + t.dtype_name +
                            " (expected F32, F16 or BF16)");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(*t.dtype, t.data, out.data(), out.size());
  for (float v : out)
    if (!std::isfinite(v)) return invalid_argument("tensor '" + t.name + "' contains NaN or Inf");
  return out;
}

struct Pair {
  const TensorRef* a = nullptr;
  const TensorRef* b = nullptr;
};

Status build_module(const ModelConfig& model, const LoraConfig& cfg, const LoraLoadOptions& opts,
                    int32_t layer, LoraTarget target, const Pair& p, LoraModule* out) {
  const std::string key = lora_module_key(layer, target);
  if (!p.a || !p.b) return invalid_argument("module '" + key + "' has only one of lora_A / lora_B");
  const int64_t in = lora_in_dim(model, target), outd = lora_out_dim(model, target);
  if (p.a->shape.size() != 2 || p.b->shape.size() != 2)
    return invalid_argument("module '" + key + "': lora_A and lora_B must be 2-D");
  const int64_t rank = p.a->shape[0];
  if (p.a->shape[1] != in || p.b->shape[0] != outd || p.b->shape[1] != rank)
    return invalid_argument("shape mismatch for '" + key + "': lora_A " + shape_str(p.a->shape) +
                            ", lora_B " + shape_str(p.b->shape) + "; this base model needs [r, " +
                            std::to_string(in) + "] and [" + std::to_string(outd) +
                            ", r] (adapter made for another base model?)");
  if (rank <= 0) return invalid_argument("module '" + key + "' has rank 0");
  if (rank != cfg.rank_for(key))
    return invalid_argument("module '" + key + "' has rank " + std::to_string(rank) +
                            " but adapter_config.json says " + std::to_string(cfg.rank_for(key)));
  if (rank > opts.max_rank)
    return invalid_argument("module '" + key + "' has rank " + std::to_string(rank) +
                            ", above the maximum rank " + std::to_string(opts.max_rank));
  LS_ASSIGN_OR_RETURN(std::vector<float> a, to_f32_checked(*p.a));
  LS_ASSIGN_OR_RETURN(std::vector<float> b, to_f32_checked(*p.b));
  out->rank = static_cast<int32_t>(rank);
  out->scale = cfg.scale_for(key);
  out->a = std::move(a);
  out->bt.resize(static_cast<size_t>(rank * outd));
  for (int64_t o = 0; o < outd; ++o)
    for (int64_t r = 0; r < rank; ++r)
      out->bt[static_cast<size_t>(r * outd + o)] = b[static_cast<size_t>(o * rank + r)];
  return ok_status();
}

}  // namespace

std::string_view lora_target_name(LoraTarget t) {
  return kTargetNames[static_cast<int32_t>(t)];
}

std::string lora_module_key(int32_t layer, LoraTarget t) {
  const bool attn = static_cast<int32_t>(t) <= 3;
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") +
         std::string(lora_target_name(t));
}

int64_t lora_in_dim(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::kO:
      return c.q_dim();
    case LoraTarget::kDown:
      return c.intermediate_size;
    default:
      return c.hidden_size;
  }
}

int64_t lora_out_dim(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::kQ:
      return c.q_dim();
    case LoraTarget::kK:
    case LoraTarget::kV:
      return c.kv_dim();
    case LoraTarget::kGate:
    case LoraTarget::kUp:
      return c.intermediate_size;
    default:
      return c.hidden_size;
  }
}

size_t LoraAdapter::host_bytes() const {
  size_t total = 0;
  for (const auto& layer : layers)
    for (const auto& m : layer)
      if (m) total += (m->a.size() + m->bt.size()) * sizeof(float);
  return total;
}

Result<LoraAdapter> load_lora_adapter(const std::string& dir, const std::string& name,
                                      const ModelConfig& model, const LoraLoadOptions& opts) {
  const std::string cfg_path = dir + "/adapter_config.json";
  const std::string st_path = dir + "/adapter_model.safetensors";
  if (!file_exists(cfg_path))
    return not_found(cfg_path + ": no such file (not a PEFT adapter directory?)");
  LS_ASSIGN_OR_RETURN(auto cfg_json, read_json_file(cfg_path));
  auto cfg_or = LoraConfig::from_json(cfg_json);
  if (!cfg_or.ok()) return cfg_or.status().with_context(cfg_path);
  const LoraConfig& cfg = cfg_or.value();
  if (!file_exists(st_path)) {
    if (file_exists(dir + "/adapter_model.bin"))
      return unimplemented(dir +
                           "/adapter_model.bin: pickled weights are never loaded; save the "
                           "adapter with safetensors (save_pretrained's default)");
    return not_found(st_path + ": no such file");
  }
  LS_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(st_path));
  std::map<std::pair<int32_t, int32_t>, Pair> pairs;
  for (const TensorRef& t : file.tensors()) {
    ParsedName pn;
    Status st = parse_tensor_name(t.name, model.num_layers, &pn);
    if (!st.ok()) return st.with_context(st_path);
    Pair& p = pairs[{pn.layer, static_cast<int32_t>(pn.target)}];
    (pn.is_a ? p.a : p.b) = &t;
  }
  if (pairs.empty()) return invalid_argument(st_path + ": no LoRA tensors");
  LoraAdapter adapter;
  adapter.name = name;
  adapter.dir = dir;
  adapter.layers.resize(static_cast<size_t>(model.num_layers));
  for (int32_t l = 0; l < model.num_layers; ++l) {
    for (int32_t t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      const std::string key = lora_module_key(l, target);
      auto it = pairs.find({l, t});
      const bool targeted = cfg.targets(key, l);
      if (it == pairs.end()) {
        if (targeted)
          return invalid_argument(st_path + ": adapter_config.json targets '" + key +
                                  "' but the file has no tensors for it");
        continue;
      }
      if (!targeted)
        return invalid_argument(st_path + ": tensors for '" + key +
                                "' but adapter_config.json does not target it");
      LoraModule m;
      Status st = build_module(model, cfg, opts, l, target, it->second, &m);
      if (!st.ok()) return st.with_context(st_path);
      adapter.max_rank = std::max(adapter.max_rank, m.rank);
      adapter.layers[static_cast<size_t>(l)][static_cast<size_t>(t)] = std::move(m);
    }
  }
  return adapter;
}

}  // namespace ls
