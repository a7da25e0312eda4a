// Safetensors parser and writer (format: u64 LE header length, JSON header, raw data section).
#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "base/file_util.h"

namespace ls {

namespace {

// Element sizes of every dtype the format defines; anything else is an unknown dtype.
std::optional<size_t> safetensors_dtype_size(const std::string& name) {
  static const std::map<std::string, size_t> kSizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = kSizes.find(name);
  if (it == kSizes.end()) return std::nullopt;
  return it->second;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

Status parse_entry(const std::string& name, const nlohmann::json& e, TensorRef* t, uint64_t* begin,
                   uint64_t* end) {
  if (!e.is_object()) return data_loss("tensor '" + name + "': entry is not an object");
  if (!e.contains("dtype") || !e["dtype"].is_string())
    return data_loss("tensor '" + name + "': missing dtype");
  t->dtype_name = e["dtype"].get<std::string>();
  auto elem = safetensors_dtype_size(t->dtype_name);
  if (!elem) return data_loss("tensor '" + name + "': unknown dtype '" + t->dtype_name + "'");
  t->dtype = dtype_from_safetensors(t->dtype_name);
  if (!e.contains("shape") || !e["shape"].is_array())
    return data_loss("tensor '" + name + "': missing shape");
  uint64_t bytes = *elem;
  for (const auto& d : e["shape"]) {
    if (!d.is_number_unsigned()) return data_loss("tensor '" + name + "': bad shape entry");
    uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        mul_overflows(bytes, dim, &bytes))
      return data_loss("tensor '" + name + "': shape overflows");
    t->shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = e.contains("data_offsets") ? e["data_offsets"] : nlohmann::json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    return data_loss("tensor '" + name + "': data_offsets must be [begin, end]");
  *begin = off[0].get<uint64_t>();
  *end = off[1].get<uint64_t>();
  if (*end < *begin) return data_loss("tensor '" + name + "': data_offsets end before begin");
  if (*end - *begin != bytes)
    return data_loss("tensor '" + name + "': byte span " + std::to_string(*end - *begin) +
                     " != shape x dtype size " + std::to_string(bytes));
  return ok_status();
}

}  // namespace

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  LS_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::open(path));
  SafetensorsFile f;
  f.file_ = std::make_shared<MappedFile>(std::move(mapped));
  const size_t size = f.file_->size();
  auto fail = [&](const std::string& what) { return data_loss(path + ": " + what); };
  if (size < 8) return fail("truncated (shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | f.file_->data()[i];
  if (header_len > kMaxHeaderBytes)
    return fail("header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > size - 8)
    return fail("truncated (header length " + std::to_string(header_len) + " but file has " +
                std::to_string(size) + " bytes)");
  const char* hdr = reinterpret_cast<const char*>(f.file_->data() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hdr, hdr + header_len);
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("malformed JSON header: ") + e.what());
  }
  if (!header.is_object()) return fail("header is not a JSON object");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return fail("__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) return fail("__metadata__ values must be strings");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TensorRef t;
    t.name = it.key();
    t.file = path;
    uint64_t begin = 0, end = 0;
    Status st = parse_entry(t.name, it.value(), &t, &begin, &end);
    if (!st.ok()) return st.with_context(path);
    if (end > data_size)
      return fail("tensor '" + t.name + "': data_offsets end " + std::to_string(end) +
                  " beyond the data section (" + std::to_string(data_size) +
                  " bytes; file truncated?)");
    t.data = f.file_->data() + data_start + begin;
    t.bytes = static_cast<size_t>(end - begin);
    spans.push_back({begin, end, f.tensors_.size()});
    f.tensors_.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const Span& s : spans) {
    const std::string& name = f.tensors_[s.index].name;
    if (s.begin < cursor) return fail("tensor '" + name + "' overlaps the previous tensor");
    if (s.begin > cursor)
      return fail("hole of " + std::to_string(s.begin - cursor) + " bytes before tensor '" + name +
                  "'");
    cursor = s.end;
  }
  if (cursor != data_size)
    return fail(std::to_string(data_size - cursor) +
                " trailing bytes after the last tensor (not covered by the header)");
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const TensorRef* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<WeightFiles> WeightFiles::open_dir(const std::string& dir) {
  WeightFiles w;
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  auto add = [&](const std::string& path) -> Status {
    LS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
    w.files_.push_back(std::make_shared<SafetensorsFile>(std::move(f)));
    return ok_status();
  };
  if (file_exists(single)) {
    LS_RETURN_IF_ERROR(add(single));
    for (const auto& t : w.files_.back()->tensors()) w.by_name_[t.name] = &t;
    return w;
  }
  if (!file_exists(index)) {
    if (file_exists(dir + "/pytorch_model.bin") ||
        file_exists(dir + "/pytorch_model.bin.index.json"))
      return unimplemented(dir +
                           ": only pickled pytorch_model.bin weights found; loraserve never "
                           "unpickles files: convert them to safetensors");
    return not_found(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  LS_ASSIGN_OR_RETURN(auto json, read_json_file(index));
  if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object())
    return data_loss(index + ": missing weight_map object");
  std::map<std::string, size_t> file_slot;
  for (auto it = json["weight_map"].begin(); it != json["weight_map"].end(); ++it) {
    if (!it.value().is_string()) return data_loss(index + ": weight_map values must be strings");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      return data_loss(index + ": shard name '" + shard + "' must be a plain file name");
    if (!file_slot.count(shard)) {
      LS_RETURN_IF_ERROR(add(dir + "/" + shard));
      file_slot[shard] = w.files_.size() - 1;
    }
    const auto& file = w.files_[file_slot[shard]];
    const TensorRef* t = file->find(it.key());
    if (!t) return data_loss(index + ": tensor '" + it.key() + "' is not in " + shard);
    w.by_name_[it.key()] = t;
  }
  return w;
}

const TensorRef* WeightFiles::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> WeightFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : by_name_) out.push_back(k);
  return out;
}

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t expect = dtype_size(t.dtype);
    for (int64_t d : t.shape) expect *= static_cast<uint64_t>(d);
    if (expect != t.bytes.size())
      return invalid_argument(path + ": tensor '" + t.name + "' byte count does not match shape");
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align the data section, as HF does
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& t : tensors)
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return write_text_file(path, out);
}

}  // namespace ls
