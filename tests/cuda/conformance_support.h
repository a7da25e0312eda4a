// Helpers of the CUDA conformance tests (backend_conformance_test.cpp, bf16_activations_test.cpp):
// random inputs, relative error, host weights of any dtype, device round trips, and a paged
// attention case run through any backend (the CPU backend is the reference).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/attention_tiles.h"
#include "backend/backend.h"
#include "base/dtype.h"
#include "base/rng.h"

namespace ls::conformance {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline std::vector<float> random_vec(Rng& rng, size_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

// ||a - b|| / ||b|| over all elements; NaN anywhere is a failure (infinity).
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    if (std::isnan(a[i])) continue;  // both NaN: a sentinel left alone by both
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline std::vector<uint16_t> encode(const std::vector<float>& v, DType t) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = t == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
  return out;
}

// Host data for make_weight in any dtype (bytes) and its exact fp32 values.
struct HostWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};
inline HostWeight host_weight(Rng& rng, DType t, size_t count, double scale) {
  HostWeight w;
  w.values = random_vec(rng, count, scale);
  if (t == DType::kF32) {
    w.bytes.resize(count * 4);
    std::memcpy(w.bytes.data(), w.values.data(), count * 4);
  } else {
    auto e = encode(w.values, t);
    w.bytes.resize(count * 2);
    std::memcpy(w.bytes.data(), e.data(), count * 2);
    convert_to_f32(t, e.data(), w.values.data(), count);
  }
  return w;
}

// Device-side helpers over any backend.
struct Dev {
  Backend& be;
  template <typename T>
  Buffer put(const std::vector<T>& v) {
    Buffer b = be.alloc(std::max<size_t>(1, v.size()) * sizeof(T));
    be.upload(b.data, v.data(), v.size() * sizeof(T));
    return b;
  }
  template <typename T>
  std::vector<T> get(const Buffer& b, size_t n) {
    std::vector<T> v(n);
    be.download(v.data(), b.data, n * sizeof(T));
    return v;
  }
};

// Backend::gemm of x [n, k] against w [m, k] of dtype t twice: with `bias` into a poisoned
// output, and without it accumulating into y0; both outputs, concatenated.
inline std::vector<float> gemm_bias_and_accumulate(Backend& be, DType t, const HostWeight& w,
                                                   const HostWeight& bias,
                                                   const std::vector<float>& x,
                                                   const std::vector<float>& y0, int64_t n,
                                                   int64_t m, int64_t k) {
  Dev d{be};
  Weight W = be.make_weight(t, w.bytes.data(), m, k);
  Weight B = be.make_weight(t, bias.bytes.data(), 1, m);
  Buffer dx = d.put(x);
  Buffer o1 = d.put(std::vector<float>(static_cast<size_t>(n * m), kNaN));
  Buffer o2 = d.put(y0);
  be.gemm(dx.as<float>(), n, W, &B, o1.as<float>(), false);
  be.gemm(dx.as<float>(), n, W, nullptr, o2.as<float>(), true);
  auto r = d.get<float>(o1, static_cast<size_t>(n * m));
  auto r2 = d.get<float>(o2, static_cast<size_t>(n * m));
  r.insert(r.end(), r2.begin(), r2.end());
  return r;
}

// A KV cache of `n` elements of `t` (fp32 or bf16), NaN everywhere, on the backend.
inline Buffer nan_cache(Dev& d, DType t, size_t n) {
  if (t == DType::kF32) return d.put(std::vector<float>(n, kNaN));
  return d.put(std::vector<uint16_t>(n, f32_to_bf16(kNaN)));
}

// Its `n` elements widened to fp32.
inline std::vector<float> get_cache(Dev& d, DType t, const Buffer& b, size_t n) {
  if (t == DType::kF32) return d.get<float>(b, n);
  const auto h = d.get<uint16_t>(b, n);
  std::vector<float> out(n);
  convert_to_f32(DType::kBF16, h.data(), out.data(), n);
  return out;
}

// A paged KV layout: sequences of given lengths over shuffled pages, and a query batch.
struct AttnCase {
  int32_t q_heads, kv_heads, head_dim, page_size, window;
  std::vector<int32_t> seq_len;  // keys per sequence
  int32_t queries_per_seq;       // the last `queries_per_seq` positions of each sequence query
};

// Hints the batch carries: none; prefill tiles (the CUDA tensor-core kernel); tiles and their
// runs (CUDA computes runs averaging 64+ tokens as GEMMs). The CPU ignores both, so every
// path is checked against the CPU reference.
enum class Hints { kNone, kTiles, kRuns };

inline std::vector<float> run_attention(Backend& be, const AttnCase& c, uint64_t seed,
                                        Hints hints_in, DType kv_dtype) {
  const bool tiles = hints_in != Hints::kNone;
  Rng rng(seed);
  Dev d{be};
  const int32_t kvw = c.kv_heads * c.head_dim;
  const int32_t ns = static_cast<int32_t>(c.seq_len.size());
  std::vector<int32_t> indptr{0};
  int32_t pages = 0;
  for (int32_t len : c.seq_len) {
    pages += (len + c.page_size - 1) / c.page_size;
    indptr.push_back(pages);
  }
  const int32_t pool_pages = pages + 5;
  std::vector<int32_t> perm(static_cast<size_t>(pool_pages));
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = perm.size() - 1; i > 0; --i)
    std::swap(perm[i], perm[static_cast<size_t>(rng.uniform() * static_cast<double>(i + 1))]);
  std::vector<int32_t> indices(perm.begin(), perm.begin() + pages);
  // All keys of every sequence written through kv_write in one call.
  std::vector<int64_t> slots;
  std::vector<int32_t> token_seq, token_pos;
  for (int32_t s = 0; s < ns; ++s)
    for (int32_t j = 0; j < c.seq_len[static_cast<size_t>(s)]; ++j) {
      const int32_t page =
          indices[static_cast<size_t>(indptr[static_cast<size_t>(s)] + j / c.page_size)];
      slots.push_back(static_cast<int64_t>(page) * c.page_size + j % c.page_size);
      if (j >= c.seq_len[static_cast<size_t>(s)] - c.queries_per_seq) {
        token_seq.push_back(s);
        token_pos.push_back(j);
      }
    }
  const int64_t nk = static_cast<int64_t>(slots.size());
  auto k = random_vec(rng, static_cast<size_t>(nk * kvw)),
       v = random_vec(rng, static_cast<size_t>(nk * kvw));
  const int64_t nq = static_cast<int64_t>(token_seq.size());
  auto q = random_vec(rng, static_cast<size_t>(nq * c.q_heads * c.head_dim), 0.5);
  const size_t cache = static_cast<size_t>(pool_pages) * c.page_size * kvw;
  Buffer kc = nan_cache(d, kv_dtype, cache), vc = nan_cache(d, kv_dtype, cache);
  LayerKv kv{kc.data, vc.data, kv_dtype, c.page_size, kvw};
  Buffer dk = d.put(k), dv = d.put(v), dslots = d.put(slots);
  be.kv_write(dk.as<float>(), dv.as<float>(), dslots.as<int64_t>(), nk, kv);
  Buffer dseq = d.put(token_seq), dpos = d.put(token_pos), dptr = d.put(indptr),
         dind = d.put(indices), dq = d.put(q);
  Buffer out = d.put(std::vector<float>(q.size(), kNaN));
  AttentionBatch b;
  b.num_tokens = nq;
  b.num_seqs = ns;
  b.token_seq = dseq.as<int32_t>();
  b.token_pos = dpos.as<int32_t>();
  b.kv_indptr = dptr.as<int32_t>();
  b.kv_indices = dind.as<int32_t>();
  b.num_q_heads = c.q_heads;
  b.num_kv_heads = c.kv_heads;
  b.head_dim = c.head_dim;
  b.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  b.sliding_window = c.window;
  AttentionTiles hints = build_attention_tiles(token_seq, token_pos);
  Buffer dtiles, drest;
  if (tiles && hints.num_tiles() > 0) {
    dtiles = d.put(hints.tiles);
    drest = d.put(hints.rest.empty() ? std::vector<int32_t>{0} : hints.rest);
    b.num_tiles = hints.num_tiles();
    b.tiles = dtiles.as<int32_t>();
    b.num_rest = static_cast<int64_t>(hints.rest.size());
    b.rest_tokens = drest.as<int32_t>();
    if (hints_in == Hints::kRuns) {
      b.num_runs = static_cast<int32_t>(hints.runs.size());
      b.runs = hints.runs.data();
    }
  }
  be.attention(dq.as<float>(), b, kv, out.as<float>());
  auto r = d.get<float>(out, q.size());
  auto kcache = get_cache(d, kv_dtype, kc, cache);  // kv_write must match too (NaN unwritten)
  r.insert(r.end(), kcache.begin(), kcache.end());
  return r;
}

}  // namespace ls::conformance
