// Where an adapter's LoRA rows live in the page pool, and copying them there.
// Layer l's rows go into layer l's K and V blocks of the adapter's pages (two chunks of
// chunk_elems per page per layer, in the store's dtype: fp32, or bf16 rounded to nearest even
// as vLLM casts LoRA weights to the model dtype); a row of width d takes ceil(d / chunk_elems)
// chunks, so any rank fits and the only waste is the tail of the last chunk of a row and of the
// last page.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "memory/page_pool.h"
#include "memory/page_store.h"
#include "model/compressed_adapter.h"
#include "model/lora_adapter.h"

namespace ls {

struct ResidentLoraModule {
  int32_t rank = 0;
  float scale = 0.0f;
  std::vector<const void*> a_chunks;   // [rank * ceil(in_dim / chunk)] row-major by row
  std::vector<const void*> bt_chunks;  // [rank * ceil(out_dim / chunk)]
};

// An adapter resident in pages; dropping it returns its pages to the pool. A compressed
// adapter (`compressed` set) has no pages and no LoRA modules: its math is the shared-basis op.
struct ResidentAdapter {
  std::string name;
  int32_t max_rank = 0;
  // Unique over the process for every placement (place_adapter), never reused: tables built
  // from an adapter's chunk pointers may be cached under it (decode graphs). 0: not placed
  // (compressed or hand-made adapters), never cached.
  uint64_t serial = 0;
  PageList pages;
  int64_t used_elems = 0;       // LoRA weights stored (elements)
  int64_t allocated_elems = 0;  // capacity of its pages
  int64_t chunk_elems = 0;      // elements per chunk of the store it lives in
  DType dtype = DType::kF32;    // of that store's elements
  std::vector<std::array<std::optional<ResidentLoraModule>, kNumLoraTargets>> layers;
  std::shared_ptr<const CompressedAdapter> compressed;
};

// Pages an adapter needs in `store` (the busiest layer decides).
int32_t adapter_pages_needed(const LoraAdapter& adapter, const ModelConfig& c,
                             const PageStore& store);
int32_t adapter_pages_needed(const LoraAdapter& adapter, const ModelConfig& c, int64_t chunk_elems);

// Lays `adapter` out over `pages` (which must hold adapter_pages_needed pages) without copying.
ResidentAdapter place_adapter(const LoraAdapter& adapter, const ModelConfig& c, PageList pages,
                              const PageStore& store);

// Copies the host weights into the resident adapter's chunks (runs off the engine thread).
void copy_adapter(const LoraAdapter& adapter, const ModelConfig& c, const ResidentAdapter& dst,
                  Backend& backend);

}  // namespace ls
