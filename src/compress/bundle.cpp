// Bundle reading and writing. Every field of bundle.json and every tensor of
// bundle.safetensors is checked (names, dtypes, shapes, finiteness, nothing missing or extra)
// before a bundle is returned, so a corrupt bundle is one clear error and never a crash.
#include "compress/bundle.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "base/file_util.h"
#include "model/safetensors.h"

namespace ls::compress {

namespace {

using json = nlohmann::ordered_json;

std::string tensor_prefix(const char* kind, size_t index, int32_t layer, LoraTarget t) {
  return std::string(kind) + "." + std::to_string(index) + ".layers." + std::to_string(layer) +
         "." + std::string(lora_target_name(t));
}

TensorToWrite f32_tensor(const std::string& name, const std::vector<double>& v,
                         std::vector<int64_t> shape) {
  TensorToWrite t{name, DType::kF32, std::move(shape), {}};
  t.bytes.resize(v.size() * sizeof(float));
  for (size_t i = 0; i < v.size(); ++i) {
    const auto f = static_cast<float>(v[i]);
    std::memcpy(t.bytes.data() + i * sizeof(float), &f, sizeof(float));
  }
  return t;
}

std::optional<LoraTarget> target_from_name(const std::string& s) {
  for (int32_t t = 0; t < kNumLoraTargets; ++t)
    if (lora_target_name(static_cast<LoraTarget>(t)) == s) return static_cast<LoraTarget>(t);
  return std::nullopt;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Reads an fp32 tensor of exactly `shape` into doubles, refusing NaN/Inf.
Result<std::vector<double>> read_f32(const SafetensorsFile& f, const std::string& name,
                                     const std::vector<int64_t>& shape,
                                     std::set<std::string>* used) {
  const TensorRef* t = f.find(name);
  if (!t) return data_loss("missing tensor '" + name + "'");
  used->insert(name);
  if (!t->dtype || *t->dtype != DType::kF32)
    return data_loss("tensor '" + name + "' has dtype " + t->dtype_name + " (expected F32)");
  if (t->shape != shape)
    return data_loss("tensor '" + name + "' has shape " + shape_str(t->shape) + ", expected " +
                     shape_str(shape));
  std::vector<double> out(static_cast<size_t>(t->numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    float v;
    std::memcpy(&v, t->data + i * sizeof(float), sizeof(float));
    if (!std::isfinite(v)) return data_loss("tensor '" + name + "' contains NaN or Inf");
    out[i] = v;
  }
  return out;
}

// Small typed accessors that turn a missing or mistyped field into one message.
Result<int64_t> get_int(const json& j, const char* key, int64_t lo, int64_t hi) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer())
    return data_loss(std::string("field '") + key + "' missing or not an integer");
  const auto v = j[key].get<int64_t>();
  if (v < lo || v > hi)
    return data_loss(std::string("field '") + key + "' = " + std::to_string(v) +
                     " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}
Result<std::string> get_string(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string())
    return data_loss(std::string("field '") + key + "' missing or not a string");
  return j[key].get<std::string>();
}
Result<double> get_number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number())
    return data_loss(std::string("field '") + key + "' missing or not a number");
  const double v = j[key].get<double>();
  if (!std::isfinite(v)) return data_loss(std::string("field '") + key + "' is not finite");
  return v;
}
Result<const json*> get_array(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_array())
    return data_loss(std::string("field '") + key + "' missing or not an array");
  return &j[key];
}

struct ModuleRef {
  int32_t layer;
  LoraTarget target;
};
Result<ModuleRef> read_module_ref(const json& m, int32_t num_layers) {
  LS_ASSIGN_OR_RETURN(int64_t layer, get_int(m, "layer", 0, num_layers - 1));
  LS_ASSIGN_OR_RETURN(std::string tname, get_string(m, "target"));
  auto t = target_from_name(tname);
  if (!t) return data_loss("unknown target module '" + tname + "'");
  return ModuleRef{static_cast<int32_t>(layer), *t};
}

}  // namespace

BundleShape BundleShape::of(const ModelConfig& c) {
  return {c.architecture, c.hidden_size, c.intermediate_size, c.num_layers, c.q_dim(), c.kv_dim()};
}

Status BundleShape::check(const ModelConfig& c) const {
  const BundleShape o = of(c);
  auto differ = [](const char* what, int64_t mine, int64_t theirs) {
    return invalid_argument(std::string("the bundle was made for a base model with ") + what + " " +
                            std::to_string(mine) + " but this model has " + std::to_string(theirs));
  };
  if (o.num_layers != num_layers) return differ("num_layers", num_layers, o.num_layers);
  if (o.hidden_size != hidden_size) return differ("hidden_size", hidden_size, o.hidden_size);
  if (o.intermediate_size != intermediate_size)
    return differ("intermediate_size", intermediate_size, o.intermediate_size);
  if (o.q_dim != q_dim) return differ("q width (heads x head_dim)", q_dim, o.q_dim);
  if (o.kv_dim != kv_dim) return differ("kv width (kv heads x head_dim)", kv_dim, o.kv_dim);
  return ok_status();
}

int64_t BundleShape::in_dim(LoraTarget t) const {
  if (t == LoraTarget::kO) return q_dim;
  if (t == LoraTarget::kDown) return intermediate_size;
  return hidden_size;
}

int64_t BundleShape::out_dim(LoraTarget t) const {
  switch (t) {
    case LoraTarget::kQ:
      return q_dim;
    case LoraTarget::kK:
    case LoraTarget::kV:
      return kv_dim;
    case LoraTarget::kGate:
    case LoraTarget::kUp:
      return intermediate_size;
    default:
      return hidden_size;
  }
}

const BundleAdapter* Bundle::find(const std::string& name) const {
  for (const auto& a : adapters)
    if (a.name == name) return &a;
  return nullptr;
}

Status write_bundle(const std::string& dir, const Bundle& b) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument(dir + ": cannot create directory: " + ec.message());
  json j;
  j["format"] = kBundleFormat;
  j["format_version"] = kBundleFormatVersion;
  j["mode"] = mode_name(b.mode);
  j["rank"] = b.rank;
  j["normalized"] = b.normalized;
  j["base_model"] = {{"architecture", b.shape.architecture},
                     {"hidden_size", b.shape.hidden_size},
                     {"intermediate_size", b.shape.intermediate_size},
                     {"num_layers", b.shape.num_layers},
                     {"q_dim", b.shape.q_dim},
                     {"kv_dim", b.shape.kv_dim}};
  std::vector<TensorToWrite> tensors;
  json clusters = json::array();
  for (size_t c = 0; c < b.clusters.size(); ++c) {
    json mods = json::array();
    for (int32_t l = 0; l < static_cast<int32_t>(b.clusters[c].size()); ++l)
      for (int32_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& bases = b.clusters[c][static_cast<size_t>(l)][static_cast<size_t>(t)];
        if (!bases) continue;
        const auto target = static_cast<LoraTarget>(t);
        mods.push_back({{"layer", l},
                        {"target", std::string(lora_target_name(target))},
                        {"ku", bases->ku()},
                        {"kv", bases->kv()}});
        const std::string p = tensor_prefix("cluster", c, l, target);
        tensors.push_back(f32_tensor(p + ".U", bases->u.data, {bases->u.rows, bases->u.cols}));
        tensors.push_back(f32_tensor(p + ".V", bases->v.data, {bases->v.rows, bases->v.cols}));
      }
    clusters.push_back({{"modules", mods}});
  }
  j["clusters"] = clusters;
  json adapters = json::array();
  for (size_t i = 0; i < b.adapters.size(); ++i) {
    const BundleAdapter& a = b.adapters[i];
    json mods = json::array();
    for (int32_t l = 0; l < static_cast<int32_t>(a.modules.size()); ++l)
      for (int32_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& m = a.modules[static_cast<size_t>(l)][static_cast<size_t>(t)];
        if (!m) continue;
        const auto target = static_cast<LoraTarget>(t);
        mods.push_back({{"layer", l},
                        {"target", std::string(lora_target_name(target))},
                        {"source_rank", m->source_rank},
                        {"scale", m->source_scale},
                        {"norm", std::sqrt(m->coeffs.norm2)},
                        {"rel_error", m->coeffs.rel_error}});
        const auto& bases = b.clusters[static_cast<size_t>(a.cluster)][static_cast<size_t>(l)]
                                      [static_cast<size_t>(t)];
        std::vector<int64_t> shape = {bases->ku(), bases->kv()};
        if (b.mode == Mode::kDiag) shape = {bases->ku()};
        tensors.push_back(
            f32_tensor(tensor_prefix("adapter", i, l, target) + ".S", m->coeffs.s, shape));
      }
    adapters.push_back(
        {{"name", a.name}, {"source", a.source}, {"cluster", a.cluster}, {"modules", mods}});
  }
  j["adapters"] = adapters;
  LS_RETURN_IF_ERROR(write_text_file(dir + "/bundle.json", j.dump(1) + "\n"));
  return write_safetensors(dir + "/bundle.safetensors", tensors,
                           {{"format", kBundleFormat}, {"format_version", "1"}});
}

namespace {

Result<Bundle> parse_bundle(const json& j, const SafetensorsFile& st) {
  Bundle b;
  LS_ASSIGN_OR_RETURN(std::string format, get_string(j, "format"));
  if (format != kBundleFormat)
    return data_loss("field 'format' is '" + format + "', expected '" + kBundleFormat + "'");
  LS_ASSIGN_OR_RETURN(int64_t version, get_int(j, "format_version", 0, 1 << 30));
  if (version != kBundleFormatVersion)
    return data_loss("format_version " + std::to_string(version) + " is not supported (this " +
                     "build reads version " + std::to_string(kBundleFormatVersion) + ")");
  LS_ASSIGN_OR_RETURN(std::string mode, get_string(j, "mode"));
  if (mode != "full" && mode != "diag")
    return data_loss("field 'mode' is '" + mode + "' (expected full or diag)");
  b.mode = mode == "full" ? Mode::kFull : Mode::kDiag;
  LS_ASSIGN_OR_RETURN(int64_t rank, get_int(j, "rank", 1, 1 << 20));
  b.rank = static_cast<int32_t>(rank);
  if (!j.contains("normalized") || !j["normalized"].is_boolean())
    return data_loss("field 'normalized' missing or not a boolean");
  b.normalized = j["normalized"].get<bool>();
  if (!j.contains("base_model")) return data_loss("field 'base_model' missing");
  const json& bm = j["base_model"];
  LS_ASSIGN_OR_RETURN(b.shape.architecture, get_string(bm, "architecture"));
  constexpr int64_t kMaxDim = 1 << 24;
  LS_ASSIGN_OR_RETURN(int64_t hidden, get_int(bm, "hidden_size", 1, kMaxDim));
  LS_ASSIGN_OR_RETURN(int64_t inter, get_int(bm, "intermediate_size", 1, kMaxDim));
  LS_ASSIGN_OR_RETURN(int64_t layers, get_int(bm, "num_layers", 1, 1 << 16));
  LS_ASSIGN_OR_RETURN(int64_t qd, get_int(bm, "q_dim", 1, kMaxDim));
  LS_ASSIGN_OR_RETURN(int64_t kvd, get_int(bm, "kv_dim", 1, kMaxDim));
  b.shape.hidden_size = static_cast<int32_t>(hidden);
  b.shape.intermediate_size = static_cast<int32_t>(inter);
  b.shape.num_layers = static_cast<int32_t>(layers);
  b.shape.q_dim = static_cast<int32_t>(qd);
  b.shape.kv_dim = static_cast<int32_t>(kvd);
  const auto nl = static_cast<size_t>(layers);

  std::set<std::string> used;
  LS_ASSIGN_OR_RETURN(const json* clusters, get_array(j, "clusters"));
  if (clusters->empty()) return data_loss("no clusters");
  for (size_t c = 0; c < clusters->size(); ++c) {
    const std::string where = "cluster " + std::to_string(c);
    PerModule<Bases> mods(nl);
    auto arr = get_array((*clusters)[c], "modules");
    if (!arr.ok()) return arr.status().with_context(where);
    for (const json& m : *arr.value()) {
      auto ref = read_module_ref(m, b.shape.num_layers);
      if (!ref.ok()) return ref.status().with_context(where);
      const auto [layer, target] = ref.value();
      auto& slot = mods[static_cast<size_t>(layer)][static_cast<size_t>(target)];
      const std::string p = tensor_prefix("cluster", c, layer, target);
      if (slot) return data_loss(where + ": module " + p + " listed twice");
      const int64_t in = b.shape.in_dim(target), out = b.shape.out_dim(target);
      const auto [ku_max, kv_max] = basis_ranks(b.mode, b.rank, in, out);
      auto ku = get_int(m, "ku", 1, ku_max);
      if (!ku.ok()) return ku.status().with_context(p);
      auto kv = get_int(m, "kv", 1, kv_max);
      if (!kv.ok()) return kv.status().with_context(p);
      if (b.mode == Mode::kDiag && ku.value() != kv.value())
        return data_loss(p + ": diag mode needs ku == kv");
      Bases bases;
      bases.mode = b.mode;
      bases.u = Mat(out, ku.value());
      bases.v = Mat(in, kv.value());
      LS_ASSIGN_OR_RETURN(bases.u.data, read_f32(st, p + ".U", {out, ku.value()}, &used));
      LS_ASSIGN_OR_RETURN(bases.v.data, read_f32(st, p + ".V", {in, kv.value()}, &used));
      slot = std::move(bases);
    }
    b.clusters.push_back(std::move(mods));
  }

  LS_ASSIGN_OR_RETURN(const json* adapters, get_array(j, "adapters"));
  std::set<std::string> names;
  for (size_t i = 0; i < adapters->size(); ++i) {
    const json& aj = (*adapters)[i];
    BundleAdapter a;
    auto name = get_string(aj, "name");
    if (!name.ok()) return name.status().with_context("adapter " + std::to_string(i));
    a.name = name.value();
    const std::string where = "adapter '" + a.name + "'";
    if (a.name.empty()) return data_loss("adapter " + std::to_string(i) + " has an empty name");
    if (!names.insert(a.name).second) return data_loss(where + " appears twice");
    if (aj.contains("source") && aj["source"].is_string()) a.source = aj["source"];
    auto cl = get_int(aj, "cluster", 0, b.num_clusters() - 1);
    if (!cl.ok()) return cl.status().with_context(where);
    a.cluster = static_cast<int32_t>(cl.value());
    a.modules.resize(nl);
    auto arr = get_array(aj, "modules");
    if (!arr.ok()) return arr.status().with_context(where);
    if (arr.value()->empty()) return data_loss(where + " has no modules");
    for (const json& m : *arr.value()) {
      auto ref = read_module_ref(m, b.shape.num_layers);
      if (!ref.ok()) return ref.status().with_context(where);
      const auto [layer, target] = ref.value();
      const std::string p = tensor_prefix("adapter", i, layer, target);
      auto& slot = a.modules[static_cast<size_t>(layer)][static_cast<size_t>(target)];
      if (slot) return data_loss(where + ": module " + p + " listed twice");
      const auto& bases = b.clusters[static_cast<size_t>(a.cluster)][static_cast<size_t>(layer)]
                                    [static_cast<size_t>(target)];
      if (!bases)
        return data_loss(where + ": module " + lora_module_key(layer, target) + " but cluster " +
                         std::to_string(a.cluster) + " has no bases for it");
      AdapterModule am;
      auto sr = get_int(m, "source_rank", 1, 1 << 20);
      if (!sr.ok()) return sr.status().with_context(p);
      am.source_rank = static_cast<int32_t>(sr.value());
      auto sc = get_number(m, "scale");
      if (!sc.ok()) return sc.status().with_context(p);
      am.source_scale = sc.value();
      auto nrm = get_number(m, "norm");
      if (!nrm.ok()) return nrm.status().with_context(p);
      am.coeffs.norm2 = nrm.value() * nrm.value();
      auto re = get_number(m, "rel_error");
      if (!re.ok()) return re.status().with_context(p);
      am.coeffs.rel_error = re.value();
      std::vector<int64_t> shape = {bases->ku(), bases->kv()};
      if (b.mode == Mode::kDiag) shape = {bases->ku()};
      LS_ASSIGN_OR_RETURN(am.coeffs.s, read_f32(st, p + ".S", shape, &used));
      slot = std::move(am);
    }
    b.adapters.push_back(std::move(a));
  }
  if (b.adapters.empty()) return data_loss("no adapters");
  for (const TensorRef& t : st.tensors())
    if (!used.count(t.name)) return data_loss("unexpected tensor '" + t.name + "'");
  return b;
}

}  // namespace

Result<Bundle> read_bundle(const std::string& dir) {
  const std::string jpath = dir + "/bundle.json", spath = dir + "/bundle.safetensors";
  if (!file_exists(jpath)) return not_found(jpath + ": no such file (not a compressed bundle?)");
  if (!file_exists(spath)) return not_found(spath + ": no such file");
  LS_ASSIGN_OR_RETURN(json j, read_json_file(jpath));
  LS_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::open(spath));
  auto b = parse_bundle(j, st);
  if (!b.ok()) return b.status().with_context(dir);
  return b;
}

nlohmann::ordered_json error_report(const Bundle& b) {
  json adapters = json::array();
  double sum = 0, worst = 0;
  int64_t count = 0;
  for (const auto& a : b.adapters) {
    json mods = json::object();
    double asum = 0, aworst = 0;
    int64_t n = 0;
    for (int32_t l = 0; l < static_cast<int32_t>(a.modules.size()); ++l)
      for (int32_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& m = a.modules[static_cast<size_t>(l)][static_cast<size_t>(t)];
        if (!m) continue;
        const double e = m->coeffs.rel_error;
        mods[lora_module_key(l, static_cast<LoraTarget>(t))] = e;
        asum += e;
        aworst = std::max(aworst, e);
        ++n;
      }
    adapters.push_back({{"name", a.name},
                        {"cluster", a.cluster},
                        {"mean_rel_error", n ? asum / static_cast<double>(n) : 0.0},
                        {"max_rel_error", aworst},
                        {"modules", mods}});
    sum += asum;
    worst = std::max(worst, aworst);
    count += n;
  }
  return {{"mode", mode_name(b.mode)},
          {"rank", b.rank},
          {"clusters", b.num_clusters()},
          {"normalized", b.normalized},
          {"error_definition", "||dW - U S V^T||_F^2 / ||dW||_F^2 per adapter and module"},
          {"mean_rel_error", count ? sum / static_cast<double>(count) : 0.0},
          {"max_rel_error", worst},
          {"adapters", adapters}};
}

}  // namespace ls::compress
