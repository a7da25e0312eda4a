// Sections "decode", "prefill" and "lora" (issue 7 targets 1-3): LlamaModel::forward timed
// directly on hand-built ForwardBatches whose page tables point at allocated pages of one
// PageStore (KV values are zeros: timing does not depend on them). A forward is timed from the
// call to the end of a 4-byte download of its logits (which waits for the backend's stream);
// warm-ups first, then the median of N. Floors divide bytes by the copy bandwidth and FLOPs
// by the cuBLAS GEMM rate measured by section "copy" in the same run.
#include <algorithm>
#include <cstdio>

#include "gpu_perf/perf_common.h"
#include "gpu_perf/sections.h"

namespace ls::perf {

namespace {

int decode_context(const Ctx& ctx, const ModelConfig& c) {
  return std::min(ctx.f.context, c.max_position_embeddings - 1);
}

std::string ms(double s) {
  return strf("%.2f", s * 1e3);
}

// Useful FLOPs of one prefill forward: 2 x params x tokens for the linears, the LM head on the
// logit rows, and causal attention (QK^T and PV: 2 x q_dim x s(s+1) per sequence and layer).
double prefill_flops(const ModelConfig& c, int seqs, int len, double* attention) {
  const double tokens = static_cast<double>(seqs) * len;
  const double linear = 2.0 * c.num_layers * static_cast<double>(layer_linear_params(c)) * tokens;
  const double head = 2.0 * static_cast<double>(lm_head_params(c)) * seqs;
  *attention = static_cast<double>(seqs) * c.num_layers * 2.0 * c.q_dim() * len * (len + 1.0);
  return linear + head + *attention;
}

}  // namespace

SectionOut section_decode(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, true);
  ensure_ceilings(ctx, rig, false);
  const ModelConfig& c = rig.c;
  const int context = decode_context(ctx, c);
  std::vector<int> batches = ctx.f.decode_batches;
  if (ctx.f.quick) batches = {1, 64};
  const int64_t pb = page_bytes(c, ctx.f.kv_dtype);
  const int64_t per_seq = context + 1;
  // One PageStore for the largest batch that fits; larger batches are skipped with the reason.
  int max_fit = 0;
  std::vector<int> run;
  for (int b : batches) {
    const std::string why =
        check_fits(rig, ctx, b * per_seq * pb,
                   strf("batch %d: KV of %d x %lld tokens at %.2f MiB/token (%s as stored)", b, b,
                        static_cast<long long>(per_seq), static_cast<double>(pb) / (1 << 20),
                        std::string(dtype_name(ctx.f.kv_dtype)).c_str()));
    if (!why.empty()) {
      note_skip(out, why);
      continue;
    }
    max_fit = std::max(max_fit, b);
    run.push_back(b);
  }
  if (run.empty()) throw std::runtime_error("no batch size fits in device memory");
  PageStore store(*rig.be, c.num_layers, static_cast<int32_t>(max_fit * per_seq), 1, c.kv_dim(),
                  ctx.f.kv_dtype);
  zero_store(*rig.be, store);
  const double bw = ctx.ceil.copy_gbps * 1e9;
  const int64_t weights = decode_weight_bytes(c);
  const std::string stored = std::string(dtype_name(ctx.f.kv_dtype)) + " KV as stored";
  Table t({"batch", "step ms", "host ms", "tokens/s", "floor ms (bf16 KV)", "x floor",
           "floor ms (" + stored + ")", "x floor", "target x1.3"});
  Json rows = Json::array();
  double worst16 = 0, worst_stored = 0;
  int worst_batch = 0;
  for (int b : run) {
    const ForwardBatch fb = decode_batch(c, b, context, {}, {}, {}, ctx.f.seed + b);
    Timing tm;
    if (!skip_on_oom(out, strf("batch %d", b),
                     [&] { tm = time_forward(rig, fb, store, ctx.f.warmup, ctx.f.iters); }))
      continue;
    const double kv16 = static_cast<double>(b * per_seq * kv_token_bytes(c, 2));
    const double kv_stored = static_cast<double>(b * per_seq * pb);
    const double floor16 = (static_cast<double>(weights) + kv16) / bw;
    const double floor_stored = (static_cast<double>(weights) + kv_stored) / bw;
    const double x16 = tm.median_s / floor16, x_stored = tm.median_s / floor_stored;
    if (x16 > worst16) worst16 = x16, worst_batch = b;
    worst_stored = std::max(worst_stored, x_stored);
    t.row({std::to_string(b), ms(tm.median_s), ms(tm.host_median_s), strf("%.0f", b / tm.median_s),
           ms(floor16), strf("%.2f", x16), ms(floor_stored), strf("%.2f", x_stored),
           x16 <= 1.3 ? "met" : "not met"});
    rows.push_back({{"batch", b},
                    {"context", context},
                    {"step", tm.json()},
                    {"tokens_per_s", b / tm.median_s},
                    {"weight_bytes", weights},
                    {"kv_bytes_bf16", kv16},
                    {"kv_bytes_as_stored", kv_stored},
                    {"floor_ms_bf16_kv", floor16 * 1e3},
                    {"floor_ms_kv_as_stored", floor_stored * 1e3},
                    {"x_floor_bf16_kv", x16},
                    {"x_floor_kv_as_stored", x_stored}});
  }
  t.print(strf(
      "[2 decode] %s, context %d, one forward (no sampling); floor = (%s weights + KV "
      "read) / %.0f GB/s copy bandwidth",
      ctx.f.shape.c_str(), context, gib(static_cast<double>(weights)).c_str(), ctx.ceil.copy_gbps));
  if (rows.empty()) throw std::runtime_error("no batch size could run");
  out.data["rows"] = rows;
  out.data["ceilings"] = {{"copy_gbps", ctx.ceil.copy_gbps}, {"source", ctx.ceil.source}};
  out.data["kv_dtype"] = std::string(dtype_name(ctx.f.kv_dtype));
  out.data["note"] =
      "the verdict uses the bf16-KV floor (the model's dtype); the as-stored floor counts the "
      "bytes of the KV dtype this run used (--kv-dtype)";
  out.verdict = worst16 <= 1.3 ? "pass" : "FAIL";
  out.headline = strf(
      "worst x%.2f of the bf16-KV floor (batch %d), x%.2f of the floor of the KV as stored "
      "(%s); target <= x1.3%s",
      worst16, worst_batch, worst_stored, std::string(dtype_name(ctx.f.kv_dtype)).c_str(),
      out.data.contains("skipped") ? "; some batches skipped (memory)" : "");
  return out;
}

SectionOut section_prefill(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, true);
  ensure_ceilings(ctx, rig, true);
  const ModelConfig& c = rig.c;
  const std::vector<std::pair<int, int>> shapes = {{1, 2048}, {16, 512}};
  int64_t max_pages = 0;
  for (auto [s, l] : shapes) max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(s) * l);
  const std::string why =
      check_fits(rig, ctx, max_pages * page_bytes(c, ctx.f.kv_dtype) + (2ll << 30),
                 strf("KV of %lld tokens + 2 GiB activations", static_cast<long long>(max_pages)));
  if (!why.empty()) throw std::runtime_error(why);
  PageStore store(*rig.be, c.num_layers, static_cast<int32_t>(max_pages), 1, c.kv_dim(),
                  ctx.f.kv_dtype);
  zero_store(*rig.be, store);
  Table t({"shape", "ms", "tokens/s", "TFLOP/s", "% of GEMM", "attention share", "target 70%"});
  Json rows = Json::array();
  double worst = 1e30;
  const int iters = std::max(2, ctx.f.iters / 2);
  for (auto [seqs, len] : shapes) {
    const ForwardBatch fb = prefill_batch(c, seqs, len, {}, {}, {}, ctx.f.seed + seqs);
    Timing tm;
    if (!skip_on_oom(out, strf("%d x %d", seqs, len),
                     [&] { tm = time_forward(rig, fb, store, 1, iters); }))
      continue;
    double attention = 0;
    const double flops = prefill_flops(c, seqs, len, &attention);
    const double tflops = flops / tm.median_s / 1e12;
    const double pct = 100.0 * tflops / ctx.ceil.gemm_tflops;
    worst = std::min(worst, pct);
    t.row({strf("%d x %d", seqs, len), ms(tm.median_s),
           strf("%.0f", static_cast<double>(seqs) * len / tm.median_s), strf("%.1f", tflops),
           strf("%.1f%%", pct), strf("%.1f%%", 100.0 * attention / flops),
           pct >= 70 ? "met" : "not met"});
    rows.push_back({{"seqs", seqs},
                    {"len", len},
                    {"forward", tm.json()},
                    {"useful_flops", flops},
                    {"attention_flops", attention},
                    {"tflops", tflops},
                    {"pct_of_gemm_ceiling", pct}});
  }
  t.print(
      strf("[3 prefill] %s, useful FLOPs (2 x params x tokens + causal attention) vs the "
           "%.1f TFLOP/s bf16 GEMM ceiling",
           ctx.f.shape.c_str(), ctx.ceil.gemm_tflops));
  if (rows.empty()) throw std::runtime_error("no prefill shape could run");
  out.data["rows"] = rows;
  out.data["ceilings"] = {{"gemm_tflops", ctx.ceil.gemm_tflops}, {"source", ctx.ceil.source}};
  out.data["note"] =
      ctx.f.bf16_activations
          ? "useful FLOPs only; --bf16-activations 1: one bf16 GEMM per linear and the bf16 "
            "flash attention kernel"
          : "useful FLOPs only; the CUDA backend (docs/ARCHITECTURE.md) feeds bf16 GEMMs 2n rows "
            "(fp32 activations split hi + lo), so the tensor cores execute twice the linear "
            "FLOPs";
  out.verdict = worst >= 70 ? "pass" : "FAIL";
  out.headline = strf("worst %.1f%% of the GEMM ceiling; target >= 70%%", worst);
  return out;
}

namespace {

struct LoraSet {
  std::string name, what;
  std::vector<const LoraAdapter*> members;
  bool shared = false;  // every sequence uses members[0]
};

}  // namespace

SectionOut section_lora(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, true);
  const ModelConfig& c = rig.c;
  const int batch = 64, context = decode_context(ctx, c), pf_seqs = 16, pf_len = 512;
  // Host adapters: one rank-64 prototype on every module; lower ranks are its leading rows.
  int64_t t0 = now_ns();
  LoraAdapter proto = random_adapter(c, "all_r64", 64, all_targets(), ctx.f.seed + 7);
  std::vector<LoraAdapter> by_rank;
  for (int r : {8, 16, 32}) by_rank.push_back(truncated(proto, strf("all_r%d", r), r));
  by_rank.push_back(std::move(proto));
  LoraAdapter qkvo16 = truncated(by_rank[3], "qkvo_r16", 16);
  keep_targets(qkvo16, qkvo());
  std::printf("  random host adapters in %.1f s\n", seconds_since(t0));
  std::vector<LoraSet> sets(4);
  sets[0] = {"none", "no adapters", {}, false};
  sets[1] = {"shared_r16_qkvo", "1 rank-16 adapter (q,k,v,o) shared by all", {&qkvo16}, true};
  sets[2] = {"distinct64_r16_qkvo", "64 distinct rank-16 adapters (q,k,v,o)", {}, false};
  sets[3] = {"distinct64_mixed_all", "64 distinct, ranks 8/16/32/64, all modules", {}, false};
  for (int i = 0; i < 64; ++i) {
    sets[2].members.push_back(&qkvo16);
    sets[3].members.push_back(&by_rank[static_cast<size_t>(i % 4)]);
  }
  // Pages: the decode batch's KV (the prefill reuses its first pages) plus the largest set.
  const int64_t kv_pages =
      std::max<int64_t>(static_cast<int64_t>(batch) * (context + 1), pf_seqs * pf_len);
  std::vector<int64_t> set_pages;
  std::vector<bool> fits;
  int64_t max_set = 0;
  for (const LoraSet& s : sets) {
    int64_t p = 0;
    for (const LoraAdapter* a : s.members) p += adapter_pages_needed(*a, c, c.kv_dim());
    if (s.shared) p = adapter_pages_needed(*s.members[0], c, c.kv_dim());
    const std::string why =
        check_fits(rig, ctx, (kv_pages + p) * page_bytes(c, ctx.f.kv_dtype),
                   strf("%s: %lld KV + %lld adapter pages", s.name.c_str(),
                        static_cast<long long>(kv_pages), static_cast<long long>(p)));
    if (!why.empty()) note_skip(out, why);
    set_pages.push_back(p);
    fits.push_back(why.empty());
    if (why.empty()) max_set = std::max(max_set, p);
  }
  if (!fits[0]) throw std::runtime_error("even the KV of the batch does not fit");
  PagePool pool(static_cast<int32_t>(kv_pages + max_set));
  PageStore store(*rig.be, c.num_layers, pool.num_pages(), 1, c.kv_dim(), ctx.f.kv_dtype);
  zero_store(*rig.be, store);
  PageList kv(&pool, PageKind::kKv);
  must(kv.grow(static_cast<size_t>(kv_pages)), "KV pages");
  Table t(
      {"adapters", "slots (decode/prefill)", "decode ms", "overhead", "prefill ms", "overhead"});
  Json rows = Json::array();
  double base_decode = 0, base_prefill = 0, target_overhead = 0;
  bool have_target = false;
  const int pf_iters = std::max(2, ctx.f.iters / 2);
  for (size_t i = 0; i < sets.size(); ++i) {
    const LoraSet& s = sets[i];
    if (!fits[i]) continue;
    t0 = now_ns();
    std::vector<std::unique_ptr<ResidentAdapter>> placed;
    const size_t distinct = s.shared ? 1 : s.members.size();
    for (size_t k = 0; k < distinct; ++k)
      placed.push_back(place(*s.members[k], c, pool, store, *rig.be, true));
    rig.sync();
    const double place_s = seconds_since(t0);
    std::vector<const ResidentAdapter*> slots;
    for (const auto& p : placed) slots.push_back(p.get());
    std::vector<int> dslot, pslot;
    for (int q = 0; q < batch && !slots.empty(); ++q) dslot.push_back(s.shared ? 0 : q);
    for (int q = 0; q < pf_seqs && !slots.empty(); ++q) pslot.push_back(s.shared ? 0 : q);
    std::vector<const ResidentAdapter*> pslots(
        slots.begin(), slots.begin() + std::min<int64_t>(s.shared ? 1 : pf_seqs,
                                                         static_cast<int64_t>(slots.size())));
    const ForwardBatch fd = decode_batch(c, batch, context, kv.pages(), slots, dslot, 5);
    const ForwardBatch fp = prefill_batch(c, pf_seqs, pf_len, kv.pages(), pslots, pslot, 6);
    Timing td, tp;
    if (!skip_on_oom(out, s.name, [&] {
          td = time_forward(rig, fd, store, ctx.f.warmup, ctx.f.iters);
          tp = time_forward(rig, fp, store, 1, pf_iters);
        })) {
      if (i == 0) throw std::runtime_error("the no-adapter baseline ran out of memory");
      continue;
    }
    if (i == 0) base_decode = td.median_s, base_prefill = tp.median_s;
    const double od = 100.0 * (td.median_s / base_decode - 1.0);
    const double op = 100.0 * (tp.median_s / base_prefill - 1.0);
    if (s.name == "distinct64_r16_qkvo") target_overhead = od, have_target = true;
    t.row({s.name, strf("%zu / %zu", slots.size(), pslots.size()), ms(td.median_s),
           i == 0 ? "-" : strf("%+.1f%%", od), ms(tp.median_s),
           i == 0 ? "-" : strf("%+.1f%%", op)});
    rows.push_back({{"config", s.name},
                    {"what", s.what},
                    {"adapter_pages", set_pages[i]},
                    {"place_and_copy_s", place_s},
                    {"decode_slots", slots.size()},
                    {"prefill_slots", pslots.size()},
                    {"decode", td.json()},
                    {"prefill", tp.json()},
                    {"decode_overhead_pct", i == 0 ? 0.0 : od},
                    {"prefill_overhead_pct", i == 0 ? 0.0 : op}});
    std::printf(
        "  %s: placed and copied in %.1f s, decode %.2f ms (host %.2f ms), prefill %.2f ms\n",
        s.name.c_str(), place_s, td.median_s * 1e3, td.host_median_s * 1e3, tp.median_s * 1e3);
    std::fflush(stdout);
  }
  t.print(strf("[4 lora] decode batch %d at context %d, prefill %d x %d; overhead vs no adapters",
               batch, context, pf_seqs, pf_len));
  out.data["rows"] = rows;
  if (!have_target) {
    out.headline = "64 distinct rank-16 q,k,v,o adapters not measured (see skipped)";
  } else {
    out.verdict = target_overhead <= 10.0 ? "pass" : "FAIL";
    out.headline = strf("64 distinct rank-16 q,k,v,o adapters: decode %+.1f%%; target <= +10%%",
                        target_overhead);
  }
  return out;
}

}  // namespace ls::perf
