// Safetensors reading: memory-mapped, every header field validated before any byte is used.
// Checked: header length <= 100 MB with overflow-checked math, well-formed JSON, known dtype,
// each byte span = shape x dtype size, spans inside the file, no overlaps and no holes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/mapped_file.h"
#include "base/status.h"

namespace ls {

struct TensorRef {
  std::string name;
  std::string dtype_name;      // as written in the file ("BF16", "I64", ...)
  std::optional<DType> dtype;  // set for the types we compute with
  std::vector<int64_t> shape;
  const unsigned char* data = nullptr;  // inside the mapping; may be unaligned
  size_t bytes = 0;
  std::string file;  // path of the file it lives in, for error messages
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  static Result<SafetensorsFile> open(const std::string& path);

  const std::vector<TensorRef>& tensors() const { return tensors_; }
  const TensorRef* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorRef> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All weight files of a model directory: model.safetensors, or the shards that
// model.safetensors.index.json names. Refuses pickled *.bin checkpoints.
class WeightFiles {
 public:
  static Result<WeightFiles> open_dir(const std::string& dir);

  const TensorRef* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorRef*> by_name_;
};

// One tensor to write: bytes must be shape x dtype size.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
};

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace ls
