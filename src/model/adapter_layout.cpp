// Chunk assignment: per layer, modules in target order, A rows then B^T rows, chunks in order;
// chunk i of layer l is block (i % 2 ? V : K) of the adapter's page i / 2.
#include "model/adapter_layout.h"

#include <algorithm>
#include <atomic>

#include "base/check.h"

namespace ls {

namespace {

int64_t chunks_per_row(int64_t dim, int64_t chunk) {
  return (dim + chunk - 1) / chunk;
}

int64_t layer_chunks(const LoraAdapter& a, const ModelConfig& c, int32_t l, int64_t chunk) {
  int64_t total = 0;
  for (int32_t t = 0; t < kNumLoraTargets; ++t) {
    const auto& m = a.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
    if (!m) continue;
    const auto target = static_cast<LoraTarget>(t);
    total += m->rank * (chunks_per_row(lora_in_dim(c, target), chunk) +
                        chunks_per_row(lora_out_dim(c, target), chunk));
  }
  return total;
}

}  // namespace

int32_t adapter_pages_needed(const LoraAdapter& a, const ModelConfig& c, int64_t chunk_elems) {
  int64_t most = 0;
  for (int32_t l = 0; l < c.num_layers; ++l)
    most = std::max(most, layer_chunks(a, c, l, chunk_elems));
  return static_cast<int32_t>((most + 1) / 2);
}

int32_t adapter_pages_needed(const LoraAdapter& a, const ModelConfig& c, const PageStore& store) {
  return adapter_pages_needed(a, c, store.chunk_elems());
}

ResidentAdapter place_adapter(const LoraAdapter& a, const ModelConfig& c, PageList pages,
                              const PageStore& store) {
  const int64_t cf = store.chunk_elems();
  LS_CHECK(static_cast<int64_t>(pages.size()) >= adapter_pages_needed(a, c, store));
  static std::atomic<uint64_t> next_serial{1};
  ResidentAdapter r;
  r.serial = next_serial.fetch_add(1, std::memory_order_relaxed);
  r.name = a.name;
  r.max_rank = a.max_rank;
  r.allocated_elems = static_cast<int64_t>(pages.size()) * 2 * c.num_layers * cf;
  r.chunk_elems = cf;
  r.dtype = store.dtype();
  r.layers.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    int64_t next = 0;  // next free chunk of this layer
    auto take = [&]() -> const void* {
      const int32_t page = pages.pages()[static_cast<size_t>(next / 2)];
      return store.chunk(l, page, static_cast<int32_t>(next++ % 2));
    };
    for (int32_t t = 0; t < kNumLoraTargets; ++t) {
      const auto& m = a.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (!m) continue;
      const auto target = static_cast<LoraTarget>(t);
      const int64_t in = lora_in_dim(c, target), out = lora_out_dim(c, target);
      ResidentLoraModule rm;
      rm.rank = m->rank;
      rm.scale = m->scale;
      for (int64_t i = 0; i < m->rank * chunks_per_row(in, cf); ++i) rm.a_chunks.push_back(take());
      for (int64_t i = 0; i < m->rank * chunks_per_row(out, cf); ++i)
        rm.bt_chunks.push_back(take());
      r.used_elems += m->rank * (in + out);
      r.layers[static_cast<size_t>(l)][static_cast<size_t>(t)] = std::move(rm);
    }
  }
  r.pages = std::move(pages);
  return r;
}

void copy_adapter(const LoraAdapter& a, const ModelConfig& c, const ResidentAdapter& dst,
                  Backend& backend) {
  const int64_t cf = dst.chunk_elems;
  LS_CHECK_MSG(kv_dtype_supported(dst.dtype), "adapter pages are fp32 or bf16");
  // A bf16 store gets pieces the backend rounds as it packs them (no rounded copy of the
  // whole adapter here: allocating and filling one cost more than the copy itself).
  const bool bf16 = dst.dtype == DType::kBF16;
  const size_t elem = dtype_size(dst.dtype);
  // Every chunk of the adapter in one batch (one ordering wait on the device, not thousands).
  std::vector<UploadPiece> pieces;
  auto add = [&](const std::vector<float>& src, int32_t rank, int64_t dim,
                 const std::vector<const void*>& chunks) {
    const int64_t per_row = chunks_per_row(dim, cf);
    for (int32_t j = 0; j < rank; ++j)
      for (int64_t k = 0; k < per_row; ++k) {
        const int64_t len = std::min(cf, dim - k * cf);
        pieces.push_back({const_cast<void*>(chunks[static_cast<size_t>(j * per_row + k)]),
                          src.data() + j * dim + k * cf, elem * static_cast<size_t>(len), bf16});
      }
  };
  for (int32_t l = 0; l < c.num_layers; ++l)
    for (int32_t t = 0; t < kNumLoraTargets; ++t) {
      const auto& m = a.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      const auto& rm = dst.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (!m || !rm) continue;
      const auto target = static_cast<LoraTarget>(t);
      add(m->a, m->rank, lora_in_dim(c, target), rm->a_chunks);
      add(m->bt, m->rank, lora_out_dim(c, target), rm->bt_chunks);
    }
  backend.upload_scatter(pieces.data(), pieces.size());
}

}  // namespace ls
