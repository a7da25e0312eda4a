// Shared helpers of gpu_perf_bench (see perf_common.h).
#include "gpu_perf/perf_common.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "base/rng.h"
#include "model/random_model.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls::perf {

void must(const Status& s, const std::string& what) {
  if (!s.ok()) throw std::runtime_error(what + ": " + s.message());
}

std::string strf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string gib(double bytes) {
  return strf("%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double seconds_since(int64_t start_ns) {
  return static_cast<double>(now_ns() - start_ns) * 1e-9;
}

void Table::print(const std::string& title) const {
  std::vector<size_t> w(header_.size(), 0);
  for (size_t i = 0; i < header_.size(); ++i) w[i] = header_[i].size();
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  std::printf("\n%s%s", title.c_str(), title.empty() ? "" : "\n");
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = " ";
    for (size_t i = 0; i < w.size(); ++i) {
      const std::string c = i < cells.size() ? cells[i] : "";
      const std::string pad(w[i] - c.size(), ' ');
      s += (left_[i] ? c + pad : pad + c) + "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::printf("%s\n", s.c_str());
  };
  line(header_);
  for (const auto& r : rows_) line(r);
  std::fflush(stdout);
}

void note_skip(SectionOut& out, const std::string& reason) {
  std::printf("  skip: %s\n", reason.c_str());
  std::fflush(stdout);
  if (!out.data.contains("skipped")) out.data["skipped"] = Json::array();
  out.data["skipped"].push_back(reason);
}

bool skip_on_oom(SectionOut& out, const std::string& what, const std::function<void()>& body) {
  try {
    body();
    return true;
  } catch (const std::bad_alloc&) {
    note_skip(out, what +
                       ": out of memory at run time (the computed need fitted; raise "
                       "--margin-gib if this repeats)");
    return false;
  }
}

void Rig::sync() {
  float x = 0;
  be->download(&x, probe.data, sizeof x);
}

Rig make_rig(const Ctx& ctx, bool with_model) {
  Rig rig;
  if (ctx.f.device == "cpu") {
    rig.be = make_cpu_backend();
  } else {
#ifdef LORASERVE_HAS_CUDA
    CudaBackendOptions options;
    options.skinny_gemm_max_rows = ctx.f.skinny_gemm_max_rows;
    options.decode_gemm_max_rows = ctx.f.decode_gemm_max_rows;
    options.lora_beside_gemm = ctx.f.lora_beside_gemm;
    options.pdl = ctx.f.pdl;
    options.bf16_activations = ctx.f.bf16_activations;
    rig.be = must(make_cuda_backend(options), "--device cuda");
#else
    throw std::runtime_error("--device cuda: this build has no CUDA backend");
#endif
  }
  rig.cuda = rig.be->name() == "cuda";
  rig.probe = rig.be->alloc(sizeof(float));
  rig.be->fill_zero(rig.probe.data, sizeof(float));
  rig.c = must(model_shape_config(ctx.f.shape), "--shape");
  if (!with_model) return rig;
  RandomWeightFn fill = host_random_weights(*rig.be);
#ifdef LORASERVE_HAS_CUDA
  Backend* be = rig.be.get();
  if (rig.cuda)
    fill = [be](DType t, int64_t rows, int64_t cols, uint64_t seed, float scale, float offset) {
      return cuda_random_weight(*be, t, rows, cols, seed, scale, offset);
    };
#endif
  const int64_t t0 = now_ns();
  rig.model = must(make_random_model(rig.c, *rig.be, DType::kBF16, ctx.f.seed, fill),
                   "random " + ctx.f.shape + " model");
  rig.sync();
  std::printf("  model %s (bf16, random) on %s in %.1f s\n", ctx.f.shape.c_str(),
              std::string(rig.be->name()).c_str(), seconds_since(t0));
  std::fflush(stdout);
  return rig;
}

DeviceMem device_mem(Rig& rig) {
  DeviceMem m;
#ifdef LORASERVE_HAS_CUDA
  if (rig.cuda) {
    CudaMemoryInfo i = must(cuda_memory_info(*rig.be), "device memory");
    m.total = static_cast<int64_t>(i.total);
    m.free = static_cast<int64_t>(i.free);
    m.in_use = static_cast<int64_t>(i.in_use);
    return m;
  }
#endif
  const int64_t page = sysconf(_SC_PAGESIZE);
  m.total = sysconf(_SC_PHYS_PAGES) * page;
  m.free = sysconf(_SC_AVPHYS_PAGES) * page;
  return m;
}

std::string check_fits(Rig& rig, const Ctx& ctx, int64_t need, const std::string& what) {
  const DeviceMem m = device_mem(rig);
  const double margin = ctx.f.margin_gib * 1073741824.0;
  if (static_cast<double>(need) + margin <= static_cast<double>(m.free)) return "";
  return what + " needs " + gib(static_cast<double>(need)) + " but " +
         gib(static_cast<double>(m.free)) + " is free (of " + gib(static_cast<double>(m.total)) +
         ", keeping a " + strf("%.1f", ctx.f.margin_gib) + " GiB margin for workspace)";
}

int64_t layer_linear_params(const ModelConfig& c) {
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  return H * Q + 2 * H * KV + Q * H + 3 * H * I;
}

int64_t lm_head_params(const ModelConfig& c) {
  return static_cast<int64_t>(c.vocab_size) * c.hidden_size;
}

int64_t decode_weight_bytes(const ModelConfig& c) {
  const int64_t norms = (2ll * c.num_layers + 1) * c.hidden_size;
  return 2 * (c.num_layers * layer_linear_params(c) + lm_head_params(c) + norms);
}

int64_t kv_token_bytes(const ModelConfig& c, int elem_bytes) {
  return 2ll * c.num_layers * c.kv_dim() * elem_bytes;
}

int64_t page_bytes(const ModelConfig& c, DType kv_dtype) {
  return kv_token_bytes(c, static_cast<int>(dtype_size(kv_dtype)));
}

namespace {
int32_t random_token(Rng& rng, const ModelConfig& c) {
  return static_cast<int32_t>(rng.uniform() * (c.vocab_size - 3)) + 3;
}
int32_t slot_of(const std::vector<int>& seq_slot, int s) {
  return seq_slot.empty() ? -1 : seq_slot[static_cast<size_t>(s)];
}
int32_t page_id(const std::vector<int32_t>& pages, int64_t i) {
  if (pages.empty()) return static_cast<int32_t>(i);
  if (i >= static_cast<int64_t>(pages.size()))
    throw std::runtime_error(
        strf("batch needs page %lld of %zu", static_cast<long long>(i), pages.size()));
  return pages[static_cast<size_t>(i)];
}
}  // namespace

ForwardBatch decode_batch(const ModelConfig& c, int seqs, int context,
                          const std::vector<int32_t>& pages,
                          const std::vector<const ResidentAdapter*>& slots,
                          const std::vector<int>& seq_slot, uint64_t seed) {
  Rng rng(seed);
  ForwardBatch fb;
  fb.lora_slots = slots;
  fb.kv_indptr.push_back(0);
  for (int s = 0; s < seqs; ++s) {
    const int64_t base = static_cast<int64_t>(s) * (context + 1);
    fb.tokens.push_back(random_token(rng, c));
    fb.positions.push_back(context);
    fb.token_seq.push_back(s);
    fb.slot_mapping.push_back(page_id(pages, base + context));
    fb.token_lora_slot.push_back(slot_of(seq_slot, s));
    for (int p = 0; p <= context; ++p) fb.kv_indices.push_back(page_id(pages, base + p));
    fb.kv_indptr.push_back(static_cast<int32_t>(fb.kv_indices.size()));
    fb.logit_rows.push_back(s);
  }
  return fb;
}

ForwardBatch prefill_batch(const ModelConfig& c, int seqs, int len,
                           const std::vector<int32_t>& pages,
                           const std::vector<const ResidentAdapter*>& slots,
                           const std::vector<int>& seq_slot, uint64_t seed) {
  Rng rng(seed);
  ForwardBatch fb;
  fb.lora_slots = slots;
  fb.kv_indptr.push_back(0);
  for (int s = 0; s < seqs; ++s) {
    const int64_t base = static_cast<int64_t>(s) * len;
    for (int p = 0; p < len; ++p) {
      fb.tokens.push_back(random_token(rng, c));
      fb.positions.push_back(p);
      fb.token_seq.push_back(s);
      fb.slot_mapping.push_back(page_id(pages, base + p));
      fb.token_lora_slot.push_back(slot_of(seq_slot, s));
      fb.kv_indices.push_back(page_id(pages, base + p));
    }
    fb.kv_indptr.push_back(static_cast<int32_t>(fb.kv_indices.size()));
    fb.logit_rows.push_back(static_cast<int32_t>(fb.tokens.size()) - 1);
  }
  return fb;
}

void zero_store(Backend& be, const PageStore& store) {
  const size_t bytes =
      static_cast<size_t>(store.num_pages()) * store.chunk_elems() * dtype_size(store.dtype());
  for (int32_t l = 0; l < store.num_layers(); ++l) {
    const LayerKv kv = store.layer(l);
    be.fill_zero(kv.k, bytes);
    be.fill_zero(kv.v, bytes);
  }
}

std::vector<LoraTarget> qkvo() {
  return {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV, LoraTarget::kO};
}

std::vector<LoraTarget> all_targets() {
  std::vector<LoraTarget> t;
  for (int32_t i = 0; i < kNumLoraTargets; ++i) t.push_back(static_cast<LoraTarget>(i));
  return t;
}

void keep_targets(LoraAdapter& a, const std::vector<LoraTarget>& keep) {
  for (auto& layer : a.layers)
    for (int32_t t = 0; t < kNumLoraTargets; ++t)
      if (std::find(keep.begin(), keep.end(), static_cast<LoraTarget>(t)) == keep.end())
        layer[static_cast<size_t>(t)].reset();
}

LoraAdapter random_adapter(const ModelConfig& c, const std::string& name, int rank,
                           const std::vector<LoraTarget>& keep, uint64_t seed) {
  LoraAdapter a = make_random_adapter(c, name, rank, seed);
  keep_targets(a, keep);
  return a;
}

LoraAdapter truncated(const LoraAdapter& proto, const std::string& name, int rank) {
  LoraAdapter a;
  a.name = name;
  a.dir = proto.dir;
  a.layers.resize(proto.layers.size());
  for (size_t l = 0; l < proto.layers.size(); ++l)
    for (size_t t = 0; t < static_cast<size_t>(kNumLoraTargets); ++t) {
      const auto& m = proto.layers[l][t];
      if (!m) continue;
      LoraModule n;
      n.rank = std::min(rank, m->rank);
      n.scale = 2.0f;
      const size_t in = m->a.size() / static_cast<size_t>(m->rank);
      const size_t out = m->bt.size() / static_cast<size_t>(m->rank);
      n.a.assign(m->a.begin(), m->a.begin() + static_cast<int64_t>(in) * n.rank);
      n.bt.assign(m->bt.begin(), m->bt.begin() + static_cast<int64_t>(out) * n.rank);
      a.max_rank = std::max(a.max_rank, n.rank);
      a.layers[l][t] = std::move(n);
    }
  return a;
}

LoraAdapter shape_adapter(const ModelConfig& c, const std::string& name, int rank,
                          const std::vector<LoraTarget>& targets) {
  LoraAdapter a;
  a.name = name;
  a.dir = "<shapes only>";
  a.max_rank = rank;
  a.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& layer : a.layers)
    for (LoraTarget t : targets) {
      LoraModule m;
      m.rank = rank;
      m.scale = 2.0f;
      layer[static_cast<size_t>(t)] = std::move(m);
    }
  return a;
}

std::unique_ptr<ResidentAdapter> place(const LoraAdapter& host, const ModelConfig& c,
                                       PagePool& pool, const PageStore& store, Backend& be,
                                       bool copy) {
  const int32_t need = adapter_pages_needed(host, c, store);
  PageList pages(&pool, PageKind::kAdapter);
  if (!pages.grow(static_cast<size_t>(need)).ok())
    throw std::runtime_error(strf("adapter '%s' needs %d pages, the pool has %d free",
                                  host.name.c_str(), need, pool.num_free()));
  auto r = std::make_unique<ResidentAdapter>(place_adapter(host, c, std::move(pages), store));
  if (copy) copy_adapter(host, c, *r, be);
  return r;
}

Json Timing::json() const {
  return {{"median_ms", median_s * 1e3},
          {"min_ms", min_s * 1e3},
          {"max_ms", max_s * 1e3},
          {"samples", samples},
          {"host_median_ms", host_median_s * 1e3}};
}

Timing summarize_times(std::vector<double> t) {
  Timing r;
  if (t.empty()) return r;
  std::sort(t.begin(), t.end());
  r.samples = static_cast<int>(t.size());
  r.min_s = t.front();
  r.max_s = t.back();
  r.median_s = t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
  return r;
}

Timing time_forward(Rig& rig, const ForwardBatch& fb, const PageStore& store, int warmup,
                    int iters) {
  float x = 0;
  for (int i = 0; i < warmup; ++i) {
    Buffer logits = rig.model->forward(fb, store);
    rig.be->download(&x, logits.data, sizeof x);
  }
  std::vector<double> t, host;
  for (int i = 0; i < iters; ++i) {
    const int64_t t0 = now_ns();
    Buffer logits = rig.model->forward(fb, store);
    host.push_back(seconds_since(t0));
    rig.be->download(&x, logits.data, sizeof x);  // waits for the step
    t.push_back(seconds_since(t0));
  }
  Timing r = summarize_times(t);
  r.host_median_s = summarize_times(host).median_s;
  return r;
}

Timing time_op(Rig& rig, const std::function<void()>& op, int calls, int warmup, int samples) {
  for (int i = 0; i < warmup; ++i) op();
  rig.sync();
  std::vector<double> t;
  for (int s = 0; s < samples; ++s) {
    const int64_t t0 = now_ns();
    for (int i = 0; i < calls; ++i) op();
    rig.sync();
    t.push_back(seconds_since(t0) / calls);
  }
  return summarize_times(t);
}

}  // namespace ls::perf
