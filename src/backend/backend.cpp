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

}  // namespace ls
