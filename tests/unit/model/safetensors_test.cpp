// Safetensors reader and writer: a round trip, then every corruption the reader must refuse
// (truncation, header length bombs, overlaps, holes, trailing bytes, bad offsets, unknown
// dtypes, malformed headers), and model directories: single file, shards, bad index files.
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace ls {
namespace {

namespace fs = std::filesystem;

// Passes when `st` failed with a one-line message containing every word of `words`.
using test::FailsWith;

std::string le64(uint64_t n) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return s;
}

// A file with the given header text and data section, whatever they hold.
std::string write_raw(const std::string& header, const std::string& data) {
  const std::string path = test::temp_dir("st") + "/t.safetensors";
  test::write_file(path, le64(header.size()) + header + data);
  return path;
}

template <typename T>
std::vector<unsigned char> bytes_of(const std::vector<T>& v) {
  std::vector<unsigned char> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string f32_data(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) + 0.5f;
  return std::string(reinterpret_cast<const char*>(v.data()), n * 4);
}

// A two-tensor header: "a" F32 [2] and "b" F32 [2] at the given offsets.
std::string two_tensor_header(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
  nlohmann::json h;
  h["a"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {a0, a1}}};
  h["b"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {b0, b1}}};
  return h.dump();
}

std::string copy_fixture(const std::string& name) {
  const std::string dst = test::temp_dir("stdir") + "/" + name;
  fs::copy(test::fixture_dir() + "/golden/" + name, dst, fs::copy_options::recursive);
  return dst;
}

nlohmann::ordered_json read_json(const std::string& path) {
  return nlohmann::ordered_json::parse(test::read_file(path));
}
void write_json(const std::string& path, const nlohmann::ordered_json& j) {
  test::write_file(path, j.dump(2));
}

// ---------------------------------------------------------------- writing and reading back

TEST(Safetensors, WriteThenOpenRoundTrips) {
  const std::string path = test::temp_dir("st") + "/rt.safetensors";
  const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.125f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff};
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4049};
  const std::vector<int64_t> i64 = {-1, 1ll << 40};
  std::vector<TensorToWrite> in = {{"w.f32", DType::kF32, {2, 3}, bytes_of(f32)},
                                   {"w.f16", DType::kF16, {3}, bytes_of(f16)},
                                   {"w.bf16", DType::kBF16, {1, 2}, bytes_of(bf16)},
                                   {"w.i64", DType::kI64, {2}, bytes_of(i64)}};
  ASSERT_TRUE(write_safetensors(path, in, {{"format", "pt"}, {"note", "x"}}).ok());

  // The header is padded so the data section starts 8-aligned, as Hugging Face writes it.
  const std::string raw = test::read_file(path);
  uint64_t hlen = 0;
  std::memcpy(&hlen, raw.data(), 8);
  EXPECT_EQ((8 + hlen) % 8, 0u);

  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->path(), path);
  ASSERT_EQ(f->tensors().size(), in.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "x");
  for (const auto& t : in) {
    SCOPED_TRACE(t.name);
    const TensorRef* r = f->find(t.name);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->name, t.name);
    EXPECT_EQ(r->dtype_name, std::string(dtype_name(t.dtype)));
    ASSERT_TRUE(r->dtype.has_value());
    EXPECT_EQ(*r->dtype, t.dtype);
    EXPECT_EQ(r->shape, t.shape);
    EXPECT_EQ(r->file, path);
    ASSERT_EQ(r->bytes, t.bytes.size());
    EXPECT_EQ(std::memcmp(r->data, t.bytes.data(), r->bytes), 0);
  }
  EXPECT_EQ(f->find("w.f32")->numel(), 6);
  EXPECT_EQ(f->find("absent"), nullptr);
}

TEST(Safetensors, WriteRefusesByteCountThatDoesNotMatchShape) {
  const std::string path = test::temp_dir("st") + "/bad.safetensors";
  std::vector<TensorToWrite> in = {{"short", DType::kF32, {2, 2}, std::vector<unsigned char>(12)}};
  EXPECT_TRUE(FailsWith(write_safetensors(path, in), {path, "'short'", "does not match"}));
}

TEST(Safetensors, ScalarAndEmptyTensorsAndOtherDtypesOpen) {
  nlohmann::json h;
  h["scalar"] = {{"dtype", "F32"}, {"shape", nlohmann::json::array()}, {"data_offsets", {0, 4}}};
  h["empty"] = {{"dtype", "F16"}, {"shape", {0, 5}}, {"data_offsets", {4, 4}}};
  h["flag"] = {{"dtype", "BOOL"}, {"shape", {2}}, {"data_offsets", {4, 6}}};
  h["dbl"] = {{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {6, 14}}};
  auto f = SafetensorsFile::open(write_raw(h.dump(), std::string(14, '\0')));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->find("scalar")->numel(), 1);
  EXPECT_EQ(f->find("empty")->bytes, 0u);
  // Types we do not compute with keep their name but have no DType.
  EXPECT_EQ(f->find("flag")->dtype_name, "BOOL");
  EXPECT_FALSE(f->find("flag")->dtype.has_value());
  EXPECT_FALSE(f->find("dbl")->dtype.has_value());
}

TEST(Safetensors, UnalignedDataSectionReadsTheRightBytes) {
  nlohmann::json h;
  h["x"] = {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 12}}};
  std::string header = h.dump();
  if ((8 + header.size()) % 2 == 0) header += " ";  // force an odd data start
  const std::string data = f32_data(3);
  auto f = SafetensorsFile::open(write_raw(header, data));
  ASSERT_TRUE(f.ok()) << f.status().message();
  float got[3];
  std::memcpy(got, f->find("x")->data, 12);
  EXPECT_EQ(got[0], 0.5f);
  EXPECT_EQ(got[2], 2.5f);
}

// ---------------------------------------------------------------- bad files

TEST(SafetensorsBad, MissingFile) {
  const std::string path = test::temp_dir("st") + "/nope.safetensors";
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(FailsWith(f.status(), {path, "cannot open"}));
}

TEST(SafetensorsBad, ShorterThanTheLengthPrefix) {
  const std::string path = test::temp_dir("st") + "/tiny.safetensors";
  for (const std::string& bytes : {std::string(), std::string("\x05\0\0", 3)}) {
    test::write_file(path, bytes);
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "truncated"}));
  }
}

TEST(SafetensorsBad, TruncatedInTheHeader) {
  const std::string header = two_tensor_header(0, 8, 8, 16);
  const std::string path = write_raw(header, f32_data(4));
  std::string raw = test::read_file(path);
  test::write_file(path, raw.substr(0, 8 + header.size() / 2));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "truncated"}));
}

TEST(SafetensorsBad, TruncatedInTheData) {
  const std::string path = test::temp_dir("st") + "/cut.safetensors";
  const std::vector<float> v(64, 1.0f);
  ASSERT_TRUE(write_safetensors(path, {{"w", DType::kF32, {64}, bytes_of(v)}}).ok());
  const std::string raw = test::read_file(path);
  test::write_file(path, raw.substr(0, raw.size() - 10));
  EXPECT_TRUE(
      FailsWith(SafetensorsFile::open(path).status(), {path, "'w'", "beyond", "truncated"}));
}

TEST(SafetensorsBad, HeaderLengthBomb) {
  for (uint64_t len :
       std::initializer_list<uint64_t>{std::numeric_limits<uint64_t>::max(),
                                       SafetensorsFile::kMaxHeaderBytes + 1, 1ull << 62}) {
    SCOPED_TRACE(len);
    const std::string path = test::temp_dir("st") + "/bomb.safetensors";
    test::write_file(path, le64(len) + "{}");
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "exceeds", "100 MB"}));
  }
  // Within the limit but longer than the file: truncated, not an allocation of 100 MB.
  const std::string path = test::temp_dir("st") + "/big.safetensors";
  test::write_file(path, le64(SafetensorsFile::kMaxHeaderBytes) + "{}");
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "truncated"}));
}

TEST(SafetensorsBad, OverlappingOffsets) {
  const std::string path = write_raw(two_tensor_header(0, 8, 4, 12), f32_data(3));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "'b'", "overlaps"}));
  // The same span twice is an overlap too.
  const std::string same = write_raw(two_tensor_header(0, 8, 0, 8), f32_data(2));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(same).status(), {same, "overlaps"}));
}

TEST(SafetensorsBad, HoleBetweenTensors) {
  const std::string path = write_raw(two_tensor_header(0, 8, 12, 20), f32_data(5));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "hole", "'b'"}));
  // A hole at the very start of the data section.
  const std::string first = write_raw(two_tensor_header(4, 12, 12, 20), f32_data(5));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(first).status(), {first, "hole", "'a'"}));
}

TEST(SafetensorsBad, TrailingBytes) {
  const std::string path = write_raw(two_tensor_header(0, 8, 8, 16), f32_data(4) + "xyz");
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "3 trailing bytes"}));
}

TEST(SafetensorsBad, OffsetsBeyondTheFile) {
  const std::string path = write_raw(two_tensor_header(0, 8, 1000, 1008), f32_data(4));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "'b'", "beyond"}));
  // An end so large that begin + span would wrap around.
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  const std::string wrap = write_raw(two_tensor_header(0, 8, huge - 8, huge), f32_data(4));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(wrap).status(), {wrap, "'b'", "beyond"}));
}

TEST(SafetensorsBad, EndBeforeBegin) {
  const std::string path = write_raw(two_tensor_header(8, 0, 8, 16), f32_data(4));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "'a'", "end before begin"}));
}

TEST(SafetensorsBad, SpanDifferentFromShapeTimesDtypeSize) {
  nlohmann::json h;
  h["w"] = {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 8}}};
  const std::string path = write_raw(h.dump(), f32_data(2));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "'w'", "byte span 8", "12"}));
  // A shape whose byte count overflows 64 bits.
  h["w"] = {{"dtype", "F32"}, {"shape", {1ull << 40, 1ull << 40}}, {"data_offsets", {0, 8}}};
  const std::string big = write_raw(h.dump(), f32_data(2));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(big).status(), {big, "'w'", "overflows"}));
}

TEST(SafetensorsBad, UnknownDtype) {
  for (const char* dt : {"Q4_0", "F128", "f32", ""}) {
    SCOPED_TRACE(dt);
    nlohmann::json h;
    h["w"] = {{"dtype", dt}, {"shape", {2}}, {"data_offsets", {0, 8}}};
    const std::string path = write_raw(h.dump(), f32_data(2));
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(),
                          {path, "'w'", "unknown dtype '" + std::string(dt) + "'"}));
  }
}

TEST(SafetensorsBad, HeaderThatIsNotAnObject) {
  for (const char* header : {"[]", "\"weights\"", "42", "null"}) {
    SCOPED_TRACE(header);
    const std::string path = write_raw(header, "");
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "not a JSON object"}));
  }
}

TEST(SafetensorsBad, MalformedJsonHeader) {
  for (const char* header : {"{", "{\"a\": }", "", "{\"a\":1}garbage", "\xff\xfe"}) {
    SCOPED_TRACE(header);
    const std::string path = write_raw(header, "");
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "malformed JSON"}));
  }
}

TEST(SafetensorsBad, DeeplyNestedHeaderFailsWithoutCrashing) {
  const std::string header = std::string(200000, '[') + std::string(200000, ']');
  const std::string path = write_raw(header, "");
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, "not a JSON object"}));
}

TEST(SafetensorsBad, MalformedEntries) {
  struct Case {
    nlohmann::json entry;
    std::string word;
  };
  const std::vector<Case> cases = {
      {42, "not an object"},
      {{{"shape", {2}}, {"data_offsets", {0, 8}}}, "missing dtype"},
      {{{"dtype", "F32"}, {"data_offsets", {0, 8}}}, "missing shape"},
      {{{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}, "bad shape entry"},
      {{{"dtype", "F32"}, {"shape", {2.5}}, {"data_offsets", {0, 8}}}, "bad shape entry"},
      {{{"dtype", "F32"}, {"shape", {2}}}, "data_offsets"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 4, 8}}}, "data_offsets"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {-8, 0}}}, "data_offsets"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.entry.dump());
    nlohmann::json h;
    h["w"] = c.entry;
    const std::string path = write_raw(h.dump(), f32_data(2));
    EXPECT_TRUE(FailsWith(SafetensorsFile::open(path).status(), {path, c.word}));
  }
}

TEST(SafetensorsBad, MetadataMustBeAnObjectOfStrings) {
  nlohmann::json h = nlohmann::json::parse(two_tensor_header(0, 8, 8, 16));
  h["__metadata__"] = {{"format", 1}};
  const std::string p1 = write_raw(h.dump(), f32_data(4));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(p1).status(), {p1, "__metadata__", "strings"}));
  h["__metadata__"] = "pt";
  const std::string p2 = write_raw(h.dump(), f32_data(4));
  EXPECT_TRUE(FailsWith(SafetensorsFile::open(p2).status(), {p2, "__metadata__", "not an object"}));
}

// ---------------------------------------------------------------- model directories

TEST(WeightFiles, SingleFileModelLoads) {
  const std::string dir = test::fixture_dir() + "/golden/mha_f32";
  auto w = WeightFiles::open_dir(dir);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const TensorRef* t = w->find("model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(t->dtype_name, "F32");
  EXPECT_EQ(t->file, dir + "/model.safetensors");
  EXPECT_EQ(w->find("no.such.tensor"), nullptr);
}

TEST(WeightFiles, ShardedModelLoadsEveryTensorFromItsShard) {
  const std::string dir = test::fixture_dir() + "/golden/gqa_bf16";
  auto w = WeightFiles::open_dir(dir);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto index = read_json(dir + "/model.safetensors.index.json");
  const auto& map = index["weight_map"];
  EXPECT_EQ(w->names().size(), map.size());
  std::set<std::string> shards;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const TensorRef* t = w->find(it.key());
    ASSERT_NE(t, nullptr) << it.key();
    EXPECT_EQ(t->file, dir + "/" + it.value().get<std::string>()) << it.key();
    EXPECT_EQ(t->dtype_name, "BF16");
    shards.insert(it.value().get<std::string>());
  }
  EXPECT_EQ(shards.size(), 16u);
  EXPECT_EQ(w->find("model.embed_tokens.weight")->shape, (std::vector<int64_t>{320, 96}));
}

TEST(WeightFilesBad, EmptyDirectory) {
  const std::string dir = test::temp_dir("wf");
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {dir, "no model.safetensors"}));
}

TEST(WeightFilesBad, PickledCheckpointIsRefusedNeverUnpickled) {
  for (const char* name : {"pytorch_model.bin", "pytorch_model.bin.index.json"}) {
    SCOPED_TRACE(name);
    const std::string dir = test::temp_dir("wf");
    test::write_file(dir + "/" + name, std::string("\x80\x02}q\x00.", 6));
    auto w = WeightFiles::open_dir(dir);
    EXPECT_EQ(w.status().code(), StatusCode::kUnimplemented);
    EXPECT_TRUE(FailsWith(w.status(), {dir, "pytorch_model.bin", "unpickle", "safetensors"}));
  }
}

TEST(WeightFilesBad, TruncatedSingleFile) {
  const std::string dir = copy_fixture("mha_f32");
  const std::string path = dir + "/model.safetensors";
  const std::string raw = test::read_file(path);
  test::write_file(path, raw.substr(0, raw.size() / 2));
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {path, "truncated"}));
}

TEST(WeightFilesBad, ShardNameWithSlashOrDotDot) {
  for (const char* shard :
       {"../model-00001-of-00016.safetensors", "..", "sub/x.safetensors", "/etc/passwd", ""}) {
    SCOPED_TRACE(shard);
    const std::string dir = copy_fixture("gqa_bf16");
    const std::string index = dir + "/model.safetensors.index.json";
    auto j = read_json(index);
    j["weight_map"]["model.norm.weight"] = shard;
    write_json(index, j);
    EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(),
                          {index, "'" + std::string(shard) + "'", "plain file name"}));
  }
}

TEST(WeightFilesBad, IndexNamesATensorMissingFromItsShard) {
  const std::string dir = copy_fixture("gqa_bf16");
  const std::string index = dir + "/model.safetensors.index.json";
  auto j = read_json(index);
  const std::string wrong = j["weight_map"]["model.embed_tokens.weight"];
  ASSERT_NE(j["weight_map"]["model.norm.weight"], wrong);
  j["weight_map"]["model.norm.weight"] = wrong;
  write_json(index, j);
  EXPECT_TRUE(
      FailsWith(WeightFiles::open_dir(dir).status(), {index, "'model.norm.weight'", wrong}));
}

TEST(WeightFilesBad, IndexNamesAMissingShard) {
  const std::string dir = copy_fixture("gqa_bf16");
  const std::string index = dir + "/model.safetensors.index.json";
  auto j = read_json(index);
  j["weight_map"]["model.norm.weight"] = "model-00099-of-00016.safetensors";
  write_json(index, j);
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(),
                        {dir + "/model-00099-of-00016.safetensors", "cannot open"}));
}

TEST(WeightFilesBad, CorruptShardIsNamed) {
  const std::string dir = copy_fixture("gqa_bf16");
  const std::string shard = dir + "/model-00006-of-00016.safetensors";
  std::string raw = test::read_file(shard);
  raw.append("junk");
  test::write_file(shard, raw);
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {shard, "trailing bytes"}));
}

TEST(WeightFilesBad, IndexWithoutWeightMapOrMalformed) {
  const std::string dir = copy_fixture("gqa_bf16");
  const std::string index = dir + "/model.safetensors.index.json";
  write_json(index, {{"metadata", {{"total_size", 1}}}});
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {index, "weight_map"}));
  write_json(index, {{"weight_map", {{"model.norm.weight", 3}}}});
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {index, "strings"}));
  test::write_file(index, "{\"weight_map\": {");
  EXPECT_TRUE(FailsWith(WeightFiles::open_dir(dir).status(), {index, "malformed JSON"}));
}

}  // namespace
}  // namespace ls
