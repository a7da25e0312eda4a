// Section "kernels" (issue 7 target 4): Backend::lora_shrink / lora_expand and the paged decode
// attention timed alone through the Backend interface, as achieved bytes/s against the copy
// bandwidth. LoRA: the q_proj module, one distinct adapter per token (decode) or per segment of
// 512 tokens (prefill), rows read through chunk tables built here as llama_forward.cpp builds
// them; adapters are placed into zeroed pages without copying (values do not change the
// time). Calls cycle over the 32 layers' tables so the weights are not served from L2.
// Attention: one layer's K/V over distinct pages per sequence. Linears: Backend::gemm at
// decode row counts on the 7B shapes through each GEMM path (the tensor-core decode GEMM, the
// skinny kernel, cuBLAS's hi + lo split), each in a backend of its own, with every path's
// output checked against cuBLAS's; weights cycle over copies that together exceed the L2.
// Each sample is a run of back-to-back calls followed by one wait, so per-call times include
// launch overhead.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "gpu_perf/perf_common.h"
#include "gpu_perf/sections.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls::perf {

namespace {

// One module's LoRA tables for every layer, uploaded once: what LlamaModel::forward builds in
// its private LoraTables (not public API, so rebuilt here for one module).
struct ModuleTables {
  Buffer chunks, firsts, ranks, scales, token_slot, seg_start, seg_slot;
  std::vector<LoraModuleBatch> per_layer;
};

ModuleTables build_tables(Backend& be, const ModelConfig& c, LoraTarget target,
                          const std::vector<const ResidentAdapter*>& slots,
                          const std::vector<int32_t>& token_slot) {
  const size_t ns = slots.size(), layers = static_cast<size_t>(c.num_layers);
  const auto ti = static_cast<size_t>(target);
  std::vector<const void*> chunks;
  std::vector<int64_t> firsts(2 * layers * ns);
  std::vector<int32_t> ranks(layers * ns);
  std::vector<float> scales(layers * ns);
  int32_t max_rank = 1;
  for (size_t l = 0; l < layers; ++l)
    for (size_t s = 0; s < ns; ++s) {
      const auto& m = slots[s]->layers[l][ti];
      if (!m) throw std::runtime_error("adapter without the measured module");
      firsts[(2 * l) * ns + s] = static_cast<int64_t>(chunks.size());
      chunks.insert(chunks.end(), m->a_chunks.begin(), m->a_chunks.end());
      firsts[(2 * l + 1) * ns + s] = static_cast<int64_t>(chunks.size());
      chunks.insert(chunks.end(), m->bt_chunks.begin(), m->bt_chunks.end());
      ranks[l * ns + s] = m->rank;
      scales[l * ns + s] = m->scale;
      max_rank = std::max(max_rank, m->rank);
    }
  std::vector<int32_t> seg_start, seg_slot;
  for (size_t t = 0; t < token_slot.size(); ++t)
    if (t == 0 || token_slot[t] != token_slot[t - 1]) {
      seg_start.push_back(static_cast<int32_t>(t));
      seg_slot.push_back(token_slot[t]);
    }
  seg_start.push_back(static_cast<int32_t>(token_slot.size()));
  ModuleTables mt;
  mt.chunks = upload_vec(be, chunks);
  mt.firsts = upload_vec(be, firsts);
  mt.ranks = upload_vec(be, ranks);
  mt.scales = upload_vec(be, scales);
  mt.token_slot = upload_vec(be, token_slot);
  mt.seg_start = upload_vec(be, seg_start);
  mt.seg_slot = upload_vec(be, seg_slot);
  for (size_t l = 0; l < layers; ++l) {
    LoraModuleBatch b;
    b.num_slots = static_cast<int32_t>(ns);
    b.max_rank = max_rank;
    b.in_dim = lora_in_dim(c, target);
    b.out_dim = lora_out_dim(c, target);
    b.chunk_elems = c.kv_dim();
    b.dtype = slots.empty() ? DType::kF32 : slots.front()->dtype;
    b.chunks = mt.chunks.as<const void*>();
    b.a_first = mt.firsts.as<int64_t>() + (2 * l) * ns;
    b.bt_first = mt.firsts.as<int64_t>() + (2 * l + 1) * ns;
    b.rank = mt.ranks.as<int32_t>() + l * ns;
    b.scale = mt.scales.as<float>() + l * ns;
    b.token_slot = mt.token_slot.as<int32_t>();
    b.num_segments = static_cast<int32_t>(seg_slot.size());
    b.seg_start = mt.seg_start.as<int32_t>();
    b.seg_slot = mt.seg_slot.as<int32_t>();
    mt.per_layer.push_back(b);
  }
  return mt;
}

// Calls per timed sample so one sample lasts ~5 ms (bounded), from one trial call.
int calls_for(Rig& rig, const std::function<void()>& op) {
  rig.sync();
  const int64_t t0 = now_ns();
  op();
  rig.sync();
  const double s = seconds_since(t0);
  return std::clamp(static_cast<int>(0.005 / std::max(s, 1e-7)), 1, 200);
}

struct KernelRow {
  std::string kernel, shape;
  double bytes = 0, flops = 0;
  Timing tm;
  double target_pct = 0;
  std::string note;  // linears: largest difference from cuBLAS's output
};

void lora_rows(Ctx& ctx, Rig& rig, std::vector<KernelRow>* rows) {
  const ModelConfig& c = rig.c;
  const std::vector<int> batches =
      ctx.f.quick ? std::vector<int>{32, 64} : std::vector<int>{32, 64, 128};
  const std::vector<int> ranks = {16, 64};
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int pf_seqs = 16, pf_len = 512;
  const int max_adapters = std::max(max_batch, pf_seqs);
  const LoraAdapter proto = shape_adapter(c, "q_r64", 64, {LoraTarget::kQ});
  const int64_t pages =
      static_cast<int64_t>(max_adapters) * adapter_pages_needed(proto, c, c.kv_dim());
  const std::string why = check_fits(rig, ctx, pages * page_bytes(c, ctx.f.kv_dtype),
                                     strf("%d rank-64 q_proj adapters", max_adapters));
  if (!why.empty()) throw std::runtime_error(why);
  PagePool pool(static_cast<int32_t>(pages));
  PageStore store(*rig.be, c.num_layers, pool.num_pages(), 1, c.kv_dim(), ctx.f.kv_dtype);
  zero_store(*rig.be, store);
  const int64_t in = lora_in_dim(c, LoraTarget::kQ), out_dim = lora_out_dim(c, LoraTarget::kQ);
  const int64_t max_tokens = std::max<int64_t>(max_batch, pf_seqs * pf_len);
  Buffer x = rig.be->alloc(static_cast<size_t>(max_tokens * in) * 4);
  Buffer v = rig.be->alloc(static_cast<size_t>(max_tokens * 64) * 4);
  Buffer y = rig.be->alloc(static_cast<size_t>(max_tokens * out_dim) * 4);
  rig.be->fill_zero(x.data, x.bytes);
  rig.be->fill_zero(y.data, y.bytes);
  for (int r : ranks) {
    const LoraAdapter a = shape_adapter(c, strf("q_r%d", r), r, {LoraTarget::kQ});
    std::vector<std::unique_ptr<ResidentAdapter>> placed;
    for (int i = 0; i < max_adapters; ++i)
      placed.push_back(place(a, c, pool, store, *rig.be, false));
    auto measure = [&](int n, int nslots, bool prefill) {
      std::vector<const ResidentAdapter*> slots;
      for (int i = 0; i < nslots; ++i) slots.push_back(placed[static_cast<size_t>(i)].get());
      std::vector<int32_t> token_slot;
      for (int t = 0; t < n; ++t) token_slot.push_back(prefill ? t / pf_len : t);
      ModuleTables mt = build_tables(*rig.be, c, LoraTarget::kQ, slots, token_slot);
      size_t layer = 0;
      auto next = [&]() -> const LoraModuleBatch& {
        return mt.per_layer[layer++ % mt.per_layer.size()];
      };
      auto shrink = [&] { rig.be->lora_shrink(x.as<float>(), n, next(), v.as<float>()); };
      auto expand = [&] { rig.be->lora_expand(v.as<float>(), n, next(), y.as<float>()); };
      // Adapter bytes: every distinct adapter's rows once (a segment reads its adapter once).
      const double eb = static_cast<double>(dtype_size(ctx.f.kv_dtype));
      const double a_bytes = eb * nslots * r * in, bt_bytes = eb * nslots * r * out_dim;
      const std::string shape =
          prefill ? strf("%d x %d tokens, %d adapters, rank %d", pf_seqs, pf_len, nslots, r)
                  : strf("batch %d, %d adapters, rank %d", n, nslots, r);
      for (int which = 0; which < 2; ++which) {
        const auto& op = which == 0 ? std::function<void()>(shrink) : std::function<void()>(expand);
        KernelRow row;
        row.kernel = which == 0 ? "lora_shrink" : "lora_expand";
        row.shape = shape;
        row.bytes = which == 0 ? a_bytes + 4.0 * n * in + 4.0 * n * r
                               : bt_bytes + 4.0 * n * r + 8.0 * n * out_dim;
        row.flops = 2.0 * n * r * (which == 0 ? in : out_dim);
        row.tm = time_op(rig, op, calls_for(rig, op), 2, ctx.f.quick ? 3 : 7);
        row.target_pct = prefill ? 0 : 70;
        rows->push_back(row);
      }
    };
    for (int b : batches) measure(b, b, false);
    measure(pf_seqs * pf_len, pf_seqs, true);
  }
}

void attention_rows(Ctx& ctx, Rig& rig, SectionOut& out, std::vector<KernelRow>* rows) {
  const ModelConfig& c = rig.c;
  const std::vector<int> batches =
      ctx.f.quick ? std::vector<int>{32, 64} : std::vector<int>{32, 64, 128};
  std::vector<int> contexts =
      ctx.f.quick ? std::vector<int>{512, 2048} : std::vector<int>{512, 2048, 4000};
  for (int& k : contexts) k = std::min(k, c.max_position_embeddings - 1);
  contexts.erase(std::unique(contexts.begin(), contexts.end()), contexts.end());
  // K + V of one token, one layer
  const int64_t layer_token_bytes =
      2ll * c.kv_dim() * static_cast<int64_t>(dtype_size(ctx.f.kv_dtype));
  int64_t max_pages = 0;
  for (int b : batches)
    for (int k : contexts) {
      const int64_t p = static_cast<int64_t>(b) * (k + 1);
      const std::string why = check_fits(rig, ctx, p * layer_token_bytes,
                                         strf("attention batch %d x context %d", b, k));
      if (why.empty()) max_pages = std::max(max_pages, p);
    }
  if (max_pages == 0) throw std::runtime_error("no attention configuration fits");
  PageStore store(*rig.be, 1, static_cast<int32_t>(max_pages), 1, c.kv_dim(), ctx.f.kv_dtype);
  zero_store(*rig.be, store);
  const LayerKv kv = store.layer(0);
  const int max_b = *std::max_element(batches.begin(), batches.end());
  Buffer q = rig.be->alloc(static_cast<size_t>(max_b) * c.q_dim() * 4);
  Buffer o = rig.be->alloc(static_cast<size_t>(max_b) * c.q_dim() * 4);
  rig.be->fill_zero(q.data, q.bytes);
  for (int b : batches)
    for (int k : contexts) {
      const int64_t p = static_cast<int64_t>(b) * (k + 1);
      if (p > max_pages) {
        note_skip(out, check_fits(rig, ctx, p * layer_token_bytes,
                                  strf("attention batch %d x context %d", b, k)));
        continue;
      }
      std::vector<int32_t> seq, pos, indptr = {0}, indices;
      for (int s = 0; s < b; ++s) {
        seq.push_back(s);
        pos.push_back(k);
        for (int j = 0; j <= k; ++j) indices.push_back(static_cast<int32_t>(s * (k + 1) + j));
        indptr.push_back(static_cast<int32_t>(indices.size()));
      }
      Buffer d_seq = upload_vec(*rig.be, seq), d_pos = upload_vec(*rig.be, pos),
             d_indptr = upload_vec(*rig.be, indptr), d_indices = upload_vec(*rig.be, indices);
      AttentionBatch ab;
      ab.num_tokens = b;
      ab.num_seqs = b;
      ab.token_seq = d_seq.as<int32_t>();
      ab.token_pos = d_pos.as<int32_t>();
      ab.kv_indptr = d_indptr.as<int32_t>();
      ab.kv_indices = d_indices.as<int32_t>();
      ab.num_q_heads = c.num_heads;
      ab.num_kv_heads = c.num_kv_heads;
      ab.head_dim = c.head_dim;
      ab.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      auto op = [&] { rig.be->attention(q.as<float>(), ab, kv, o.as<float>()); };
      KernelRow row;
      row.kernel = "attention (decode)";
      row.shape = strf("batch %d, context %d", b, k);
      row.bytes = static_cast<double>(p) * layer_token_bytes + 8.0 * b * c.q_dim();
      row.flops = 4.0 * b * (k + 1.0) * c.q_dim();
      row.tm = time_op(rig, op, calls_for(rig, op), 2, ctx.f.quick ? 3 : 7);
      row.target_pct = 75;
      rows->push_back(row);
    }
}

// Backend::gemm at decode row counts through each path; target_pct 0 (the decode-step table
// carries the target), `note` the largest difference from cuBLAS's output.
void linear_rows(Ctx& ctx, Rig& rig, std::vector<KernelRow>* rows) {
#ifdef LORASERVE_HAS_CUDA
  if (!rig.cuda) return;
  const ModelConfig& c = rig.c;
  struct Path {
    const char* name;
    int skinny, decode;
  };
  // cuBLAS first: the others are compared with its output.
  const std::vector<Path> paths = {
      {"gemm cuBLAS hi+lo", 0, 0}, {"gemm tensor-core decode", 0, 64}, {"gemm skinny", 16, 0}};
  struct Shape {
    const char* name;
    int64_t m, k;
  };
  const std::vector<Shape> shapes = {{"q", c.q_dim(), c.hidden_size},
                                     {"up", c.intermediate_size, c.hidden_size},
                                     {"down", c.hidden_size, c.intermediate_size}};
  const std::vector<int> ns =
      ctx.f.quick ? std::vector<int>{1, 8, 32} : std::vector<int>{1, 2, 8, 16, 32, 64};
  std::vector<std::vector<float>> ref(shapes.size() * ns.size());
  for (const Path& p : paths) {
    Ctx pc = ctx;
    pc.f.skinny_gemm_max_rows = p.skinny;
    pc.f.decode_gemm_max_rows = p.decode;
    Rig pr = make_rig(pc, false);
    for (size_t si = 0; si < shapes.size(); ++si) {
      const Shape& sh = shapes[si];
      const double wbytes = 2.0 * sh.m * sh.k;
      const int copies = std::max(2, static_cast<int>(std::ceil(160e6 / wbytes)));
      std::vector<Weight> ws;
      for (int i = 0; i < copies; ++i)
        ws.push_back(must(cuda_random_weight(*pr.be, DType::kBF16, sh.m, sh.k, 100 + i, 0.05f, 0),
                          "GEMM weight"));
      const int max_n = *std::max_element(ns.begin(), ns.end());
      Weight x = must(cuda_random_weight(*pr.be, DType::kF32, max_n, sh.k, 7, 1.0f, 0), "x");
      Buffer y = pr.be->alloc(static_cast<size_t>(max_n * sh.m) * 4);
      for (size_t ni = 0; ni < ns.size(); ++ni) {
        const int n = ns[ni];
        if (p.skinny > 0 && n > p.skinny) continue;
        size_t i = 0;
        auto op = [&] {
          pr.be->gemm(static_cast<const float*>(x.data), n, ws[i++ % ws.size()], nullptr,
                      y.as<float>(), false);
        };
        KernelRow row;
        row.kernel = p.name;
        row.shape = strf("%s %lld x %lld, %d rows", sh.name, static_cast<long long>(sh.m),
                         static_cast<long long>(sh.k), n);
        row.bytes = wbytes + 4.0 * n * sh.k + 4.0 * n * sh.m;
        row.flops = 2.0 * n * sh.m * sh.k;
        row.tm = time_op(pr, op, calls_for(pr, op), 2, ctx.f.quick ? 3 : 7);
        // Output of weight copy 0 against cuBLAS's (relative to its largest magnitude).
        pr.be->gemm(static_cast<const float*>(x.data), n, ws[0], nullptr, y.as<float>(), false);
        std::vector<float> got(static_cast<size_t>(n * sh.m));
        pr.be->download(got.data(), y.data, got.size() * 4);
        std::vector<float>& r = ref[si * ns.size() + ni];
        if (r.empty()) {
          r = got;
        } else {
          double diff = 0, mag = 0;
          for (size_t e = 0; e < got.size(); ++e) {
            diff = std::max(diff, static_cast<double>(std::fabs(got[e] - r[e])));
            mag = std::max(mag, static_cast<double>(std::fabs(r[e])));
          }
          row.note = strf("%.1e", diff / std::max(mag, 1e-30));
        }
        rows->push_back(row);
      }
    }
  }
#else
  (void)ctx;
  (void)rig;
  (void)rows;
#endif
}

}  // namespace

SectionOut section_kernels(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, false);
  ensure_ceilings(ctx, rig, false);
  std::vector<KernelRow> rows;
  std::string failed;
  // Each half on its own, so a failure of one still reports the other.
  try {
    lora_rows(ctx, rig, &rows);
  } catch (const std::exception& e) {
    failed += std::string("LoRA kernels: ") + e.what() + "; ";
    std::printf("  LoRA kernels failed: %s\n", e.what());
  }
  try {
    linear_rows(ctx, rig, &rows);
  } catch (const std::exception& e) {
    failed += std::string("linears: ") + e.what() + "; ";
    std::printf("  linears failed: %s\n", e.what());
  }
  try {
    attention_rows(ctx, rig, out, &rows);
  } catch (const std::exception& e) {
    failed += std::string("attention: ") + e.what() + "; ";
    std::printf("  attention failed: %s\n", e.what());
  }
  Table t({"kernel", "shape", "us/call", "GB/s", "% of copy", "GFLOP/s", "target", "vs cuBLAS"});
  t.left({1, 6});
  Json js = Json::array();
  double worst_lora = 1e30, worst_attn = 1e30;
  for (const KernelRow& r : rows) {
    const double gbps = r.bytes / r.tm.median_s / 1e9;
    const double pct = 100.0 * gbps / ctx.ceil.copy_gbps;
    if (r.target_pct == 70) worst_lora = std::min(worst_lora, pct);
    if (r.target_pct == 75) worst_attn = std::min(worst_attn, pct);
    t.row({r.kernel, r.shape, strf("%.1f", r.tm.median_s * 1e6), strf("%.0f", gbps),
           strf("%.1f%%", pct), strf("%.0f", r.flops / r.tm.median_s / 1e9),
           r.target_pct > 0
               ? strf("%s %.0f%%", pct >= r.target_pct ? "met" : "not met", r.target_pct)
               : "-",
           r.note.empty() ? "-" : r.note});
    js.push_back({{"kernel", r.kernel},
                  {"shape", r.shape},
                  {"bytes", r.bytes},
                  {"flops", r.flops},
                  {"per_call", r.tm.json()},
                  {"gbps", gbps},
                  {"pct_of_copy", pct},
                  {"target_pct", r.target_pct},
                  {"max_rel_diff_vs_cublas", r.note}});
  }
  t.print(
      strf("[5 kernels] alone through the Backend; bytes = adapter rows / KV read + "
           "activations, vs %.0f GB/s copy bandwidth",
           ctx.ceil.copy_gbps));
  out.data["rows"] = js;
  if (!failed.empty()) out.data["failed"] = failed;
  if (rows.empty()) throw std::runtime_error(failed);
  const bool ok = worst_lora >= 70 && worst_attn >= 75 && failed.empty();
  out.verdict = ok ? "pass" : "FAIL";
  out.headline = strf(
      "worst decode LoRA %.1f%% (target 70%%), attention %.1f%% (target 75%%) "
      "of copy bandwidth",
      worst_lora > 1e29 ? 0.0 : worst_lora, worst_attn > 1e29 ? 0.0 : worst_attn);
  return out;
}

}  // namespace ls::perf
