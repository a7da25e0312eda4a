// Backend's non-virtual helpers and default implementations.
#include "backend/backend.h"

#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"

namespace ls {

void pack_upload_piece(const UploadPiece& p, void* out) {
  LS_CHECK_MSG(!p.round_to_bf16 || p.bytes % 2 == 0, "a bf16 upload piece has an odd byte count");
  if (!p.round_to_bf16) {
    std::memcpy(out, p.src, p.bytes);
    return;
  }
  const auto* from = static_cast<const float*>(p.src);
  auto* to = static_cast<uint16_t*>(out);
  for (size_t i = 0, n = p.bytes / 2; i < n; ++i) to[i] = f32_to_bf16(from[i]);
}

void Backend::upload_scatter(const UploadPiece* pieces, size_t count) {
  std::vector<uint16_t> rounded;
  for (size_t i = 0; i < count; ++i) {
    const UploadPiece& p = pieces[i];
    if (!p.round_to_bf16) {
      upload(p.dst, p.src, p.bytes);
      continue;
    }
    rounded.resize((p.bytes + 1) / 2);
    pack_upload_piece(p, rounded.data());
    upload(p.dst, rounded.data(), p.bytes);
  }
}

Weight weight_rows(const Weight& w, int64_t first, int64_t rows) {
  LS_CHECK(first >= 0 && rows >= 1 && first + rows <= w.rows);
  Weight v = w;
  v.data =
      static_cast<const char*>(w.data) + static_cast<size_t>(first * w.cols) * dtype_size(w.dtype);
  v.rows = rows;
  return v;
}

int64_t stack_rows_count(const Weight* parts, int32_t count) {
  LS_CHECK(count >= 1);
  int64_t rows = 0;
  for (int32_t i = 0; i < count; ++i) {
    LS_CHECK_MSG(parts[i].dtype == parts[0].dtype && parts[i].cols == parts[0].cols,
                 "stack_rows: parts of different dtypes or widths");
    rows += parts[i].rows;
  }
  return rows;
}

Weight Backend::stack_rows(const Weight* parts, int32_t count) {
  const int64_t rows = stack_rows_count(parts, count);
  const size_t row_bytes = static_cast<size_t>(parts[0].cols) * dtype_size(parts[0].dtype);
  std::vector<uint8_t> host(static_cast<size_t>(rows) * row_bytes);
  size_t at = 0;
  for (int32_t i = 0; i < count; ++i) {
    const size_t bytes = static_cast<size_t>(parts[i].rows) * row_bytes;
    download(host.data() + at, parts[i].data, bytes);
    at += bytes;
  }
  return make_weight(parts[0].dtype, host.data(), rows, parts[0].cols);
}

int64_t gemm_parts_rows(const Weight& w, const GemmPart* parts, int32_t count) {
  LS_CHECK(count >= 1 && count <= kMaxGemmParts);
  int64_t rows = 0;
  for (int32_t i = 0; i < count; ++i) {
    LS_CHECK(parts[i].rows >= 1 && parts[i].out);
    rows += parts[i].rows;
  }
  LS_CHECK_MSG(rows == w.rows, "gemm_parts: the parts' rows do not add up to the weight's");
  return rows;
}

void Backend::gemm_parts(const float* x, int64_t n, const Weight& w, const GemmPart* parts,
                         int32_t count) {
  gemm_parts_rows(w, parts, count);
  int64_t first = 0;
  for (int32_t i = 0; i < count; ++i) {
    gemm(x, n, weight_rows(w, first, parts[i].rows), parts[i].bias, parts[i].out, false);
    first += parts[i].rows;
  }
  LoraModuleBatch mods[kMaxGemmParts];
  float* v[kMaxGemmParts];
  float* y[kMaxGemmParts];
  const int32_t count_lora = gemm_parts_lora(parts, count, mods, v, y);
  if (count_lora > 0) lora_group(x, n, mods, count_lora, v, y);
}

int32_t gemm_parts_lora(const GemmPart* parts, int32_t count, LoraModuleBatch* mods, float** v,
                        float** y) {
  int32_t found = 0;
  for (int32_t i = 0; i < count; ++i) {
    if (!parts[i].lora) continue;
    LS_CHECK_MSG(parts[i].lora->out_dim == parts[i].rows && parts[i].lora_v,
                 "gemm_parts: a part's LoRA must have its rows as out_dim and a v buffer");
    mods[found] = *parts[i].lora;
    v[found] = parts[i].lora_v;
    y[found++] = parts[i].out;
  }
  return found;
}

}  // namespace ls
