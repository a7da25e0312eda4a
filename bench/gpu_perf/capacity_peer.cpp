// Sections "capacity" and "peer" (issue 7 targets 7 and 5), through the Engine.
// capacity: the page pool `loraserve serve` would get on this device (kv_pool_bytes at
// --capacity-utilization, default 0.97: as much of the GPU as is sane), minus
// the KV of 64 sequences x 1,024 tokens and the engine's reserve, divided by a rank-16
// adapter's pages; then checked by placing adapters into that real pool (a PageStore of that
// size on the device) until it is full. Then output tokens/s with 2,000 registered adapters
// (cold, on disk; the names share a few PEFT directories to bound disk use) at uniform
// popularity, all requests queued at once.
// peer: our side of the transformers + PEFT comparison (tools/peers/peft_decode_bench.py):
// batch 32, prompt 256, 128 new tokens, 32 distinct rank-16 q,k,v,o adapters resident, and the
// same without adapters; output tokens/s over the wall time from submit to the last token.
#include <algorithm>
#include <cstdio>
#include <set>

#include "base/rng.h"
#include "device_flag.h"
#include "gpu_perf/engine_util.h"
#include "gpu_perf/sections.h"

namespace ls::perf {

namespace {

struct RunResult {
  double wall_s = 0, ttft_p50_s = 0, tpot_s = 0;
  int64_t tokens = 0;
  int finished = 0, failed = 0;
  std::string first_error;
  double tok_s() const { return wall_s > 0 ? static_cast<double>(tokens) / wall_s : 0; }
  Json json() const {
    return {{"wall_s", wall_s},
            {"output_tokens", tokens},
            {"output_tok_s", tok_s()},
            {"ttft_p50_ms", ttft_p50_s * 1e3},
            {"tpot_p50_ms", tpot_s * 1e3},
            {"finished", finished},
            {"failed", failed},
            {"first_error", first_error}};
  }
};

// Submits requests keys [key0, key0 + adapters.size()) at once (adapter "" = base) and waits.
RunResult run_batch(Engine& engine, EventLog& log, const ModelConfig& c,
                    const std::vector<std::string>& adapters, int prompt, int max_tokens, int key0,
                    uint64_t seed, double timeout_s) {
  const int n = static_cast<int>(adapters.size());
  const int64_t t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    EngineRequest q;
    q.prompt_ids = random_prompt(c, prompt, seed + i);
    q.adapter = adapters[static_cast<size_t>(i)];
    q.max_tokens = max_tokens;
    must(engine.submit(q, log.callback(key0 + i)).status(), "submit");
  }
  const bool done = wait_until(
      [&] {
        for (int i = 0; i < n; ++i)
          if (!log.finished(key0 + i)) return false;
        return true;
      },
      timeout_s);
  RunResult r;
  int64_t last = t0;
  std::vector<double> ttft, tpot;
  for (int i = 0; i < n; ++i) {
    const int k = key0 + i;
    r.tokens += log.tokens(k);
    if (!log.error(k).empty()) {
      ++r.failed;
      if (r.first_error.empty()) r.first_error = log.error(k);
    } else if (log.finished(k)) {
      ++r.finished;
    }
    const auto t = log.times(k);
    if (!t.empty()) {
      last = std::max(last, t.back());
      ttft.push_back(static_cast<double>(t.front() - t0) * 1e-9);
      if (t.size() > 1)
        tpot.push_back(static_cast<double>(t.back() - t.front()) * 1e-9 /
                       static_cast<double>(t.size() - 1));
    }
  }
  if (!done && r.first_error.empty())
    r.first_error =
        strf("%d of %d requests unfinished after %.0f s", n - r.finished - r.failed, n, timeout_s);
  r.wall_s = static_cast<double>(last - t0) * 1e-9;
  r.ttft_p50_s = summarize_times(ttft).median_s;
  r.tpot_s = summarize_times(tpot).median_s;
  return r;
}

// Part 1 of "capacity": what fits next to 64 x 1,024 tokens of KV in the real pool.
Json capacity_fit(Ctx& ctx, Rig& rig, int* fit_qkvo) {
  const ModelConfig& c = rig.c;
  const int seqs = 64, tokens = std::min(1024, c.max_position_embeddings);
  const int64_t pool_bytes = must(kv_pool_bytes(*rig.be, c, ctx.f.capacity_utilization, 2048, seqs,
                                                512ll << 20, ctx.f.kv_dtype),
                                  "page pool size (--capacity-utilization)");
  const int64_t pb = page_bytes(c, ctx.f.kv_dtype);
  const int64_t num_pages = std::min<int64_t>(pool_bytes / pb, 1 << 30);
  const int64_t kv_pages = static_cast<int64_t>(seqs) * tokens;
  const int64_t reserve = std::min<int64_t>(num_pages / 10, seqs);  // the Engine's default
  const int64_t room = num_pages - kv_pages - reserve;
  std::printf(
      "  page pool at --capacity-utilization %.2f: %s = %lld pages of %.2f MiB; KV of "
      "%d x %d tokens: %lld pages; engine reserve %lld; left for adapters: %lld pages\n",
      ctx.f.capacity_utilization, gib(static_cast<double>(pool_bytes)).c_str(),
      static_cast<long long>(num_pages), static_cast<double>(pb) / (1 << 20), seqs, tokens,
      static_cast<long long>(kv_pages), static_cast<long long>(reserve),
      static_cast<long long>(room));
  Table t({"rank-16 adapter", "pages each", "MiB each", "fit (computed)", "fit (placed)"});
  Json rows = Json::array();
  const std::vector<std::pair<std::string, std::vector<LoraTarget>>> kinds = {
      {"q,k,v,o", qkvo()}, {"all 7 modules", all_targets()}};
  for (const auto& [name, targets] : kinds) {
    const LoraAdapter a = shape_adapter(c, name, 16, targets);
    const int64_t need = adapter_pages_needed(a, c, c.kv_dim());
    const int64_t computed = room > 0 ? room / need : 0;
    int64_t placed = 0;
    double fragmentation = 0;
    if (room > 0) {  // the real pool on the device, filled until it is full
      PagePool pool(static_cast<int32_t>(num_pages));
      PageStore store(*rig.be, c.num_layers, pool.num_pages(), 1, c.kv_dim(), ctx.f.kv_dtype);
      PageList kv(&pool, PageKind::kKv);
      must(kv.grow(static_cast<size_t>(kv_pages)), "KV pages");
      std::vector<std::unique_ptr<ResidentAdapter>> list;
      int64_t used = 0, allocated = 0;
      while (pool.num_free() >= need + reserve) {
        list.push_back(place(a, c, pool, store, *rig.be, false));
        used += list.back()->used_elems;
        allocated += list.back()->allocated_elems;
      }
      placed = static_cast<int64_t>(list.size());
      fragmentation = allocated > 0 ? 1.0 - static_cast<double>(used) / allocated : 0;
    }
    if (name == "q,k,v,o") *fit_qkvo = static_cast<int>(placed);
    t.row({name, std::to_string(need), strf("%.0f", static_cast<double>(need * pb) / (1 << 20)),
           std::to_string(computed), room > 0 ? std::to_string(placed) : "0 (KV alone overflows)"});
    rows.push_back({{"targets", name},
                    {"pages_each", need},
                    {"fit_computed", computed},
                    {"fit_placed", placed},
                    {"fragmentation", fragmentation}});
  }
  t.print(
      strf("[7 capacity] rank-16 adapters resident next to %d sequences x %d tokens (%s KV "
           "and adapter pages)",
           seqs, tokens, std::string(dtype_name(ctx.f.kv_dtype)).c_str()));
  return {{"pool_bytes", pool_bytes},
          {"page_bytes", pb},
          {"num_pages", num_pages},
          {"kv_pages", kv_pages},
          {"reserve_pages", reserve},
          {"kv_dtype", std::string(dtype_name(ctx.f.kv_dtype))},
          {"rows", rows}};
}

}  // namespace

SectionOut section_capacity(Ctx& ctx) {
  SectionOut out;
  const int64_t t_start = now_ns();
  Rig rig = make_rig(ctx, true);
  const ModelConfig& c = rig.c;
  int fit = 0;
  out.data["fit"] = capacity_fit(ctx, rig, &fit);
  // Part 2: throughput with many registered adapters, uniform popularity.
  const int n_adapters = ctx.f.quick ? 200 : ctx.f.capacity_adapters;
  const int n_req = ctx.f.quick ? 64 : ctx.f.capacity_requests;
  const int n_dirs = std::min(n_adapters, ctx.f.quick ? 4 : ctx.f.capacity_disk_dirs);
  const int prompt = std::min(128, c.max_position_embeddings / 4),
            new_tokens = ctx.f.quick ? 32 : 128;
  int64_t t0 = now_ns();
  const std::vector<std::string> dirs =
      write_adapter_dirs(c, ctx.f.work_dir + "/capacity", n_dirs, 16, ctx.f.seed + 300);
  std::printf("  %d adapter directories written in %.1f s; registering %d adapters over them\n",
              n_dirs, seconds_since(t0), n_adapters);
  EventLog log;  // before the engine (its destructor calls back)
  int64_t pool_bytes = 0;
  auto engine = make_engine(ctx, rig, 64, &pool_bytes);
  for (int i = 0; i < n_adapters; ++i)
    must(
        engine->adapters().register_source(strf("u%04d", i), dirs[static_cast<size_t>(i % n_dirs)]),
        "register adapter");
  Rng rng(ctx.f.seed + 9);
  std::vector<std::string> names;
  std::set<std::string> distinct;
  for (int r = 0; r < n_req; ++r) {
    names.push_back(strf("u%04d", static_cast<int>(rng.uniform() * n_adapters)));
    distinct.insert(names.back());
  }
  const double budget = std::max(30.0, ctx.f.section_timeout_s - seconds_since(t_start) - 20);
  const RunResult r = run_batch(*engine, log, c, names, prompt, new_tokens, 0, ctx.f.seed, budget);
  const EngineStats st = engine->stats();
  Table t({"workload", "wall s", "output tokens", "tokens/s", "TTFT p50 ms", "TPOT p50 ms",
           "disk loads", "host hits", "device hits", "evictions", "failed"});
  t.row({strf("%d requests over %d adapters", n_req, n_adapters), strf("%.2f", r.wall_s),
         std::to_string(r.tokens), strf("%.1f", r.tok_s()), strf("%.0f", r.ttft_p50_s * 1e3),
         strf("%.2f", r.tpot_s * 1e3), std::to_string(st.adapters.disk_loads),
         std::to_string(st.adapters.host_hits), std::to_string(st.adapters.device_hits),
         std::to_string(st.adapters.device_evictions), std::to_string(r.failed)});
  t.print(
      strf("[7 capacity] throughput: %d registered rank-16 q,k,v,o adapters (uniform "
           "popularity, %zu distinct requested), prompt %d, %d new tokens, max 64 running",
           n_adapters, distinct.size(), prompt, new_tokens));
  if (!r.first_error.empty()) std::printf("  first error: %s\n", r.first_error.c_str());
  out.data["throughput"] = r.json();
  out.data["throughput"]["registered"] = n_adapters;
  out.data["throughput"]["requests"] = n_req;
  out.data["throughput"]["distinct_requested"] = distinct.size();
  out.data["throughput"]["disk_dirs"] = n_dirs;
  out.data["throughput"]["pool_bytes"] = pool_bytes;
  out.data["throughput"]["engine"] = {{"steps", st.steps},
                                      {"preemptions", st.preemptions_total},
                                      {"disk_loads", st.adapters.disk_loads},
                                      {"cold_requests", st.adapters.cold_requests},
                                      {"host_hits", st.adapters.host_hits},
                                      {"device_hits", st.adapters.device_hits},
                                      {"device_evictions", st.adapters.device_evictions},
                                      {"host_evictions", st.adapters.host_evictions},
                                      {"load_failures", st.adapters.load_failures}};
  const Json& fj = out.data["fit"];
  out.headline = strf(
      "%d rank-16 q,k,v,o adapters fit next to %lld KV tokens; %.1f output "
      "tok/s with %d registered",
      fit, static_cast<long long>(fj["kv_pages"].get<int64_t>()), r.tok_s(), n_adapters);
  return out;
}

SectionOut section_peer(Ctx& ctx) {
  SectionOut out;
  Rig rig = make_rig(ctx, true);
  const ModelConfig& c = rig.c;
  const int batch = ctx.f.peer_batch, adapters = ctx.f.peer_adapters;
  const int prompt = std::min(ctx.f.peer_prompt, c.max_position_embeddings / 2);
  const int new_tokens = ctx.f.quick ? 32 : ctx.f.peer_new;
  const LoraAdapter proto = random_adapter(c, "peer", 16, qkvo(), ctx.f.seed + 400);
  EventLog log;  // before the engine (its destructor calls back)
  int64_t pool_bytes = 0;
  auto engine = make_engine(ctx, rig, batch, &pool_bytes);
  std::vector<std::string> names, warm_names, base_names(static_cast<size_t>(batch));
  for (int i = 0; i < adapters; ++i) {
    LoraAdapter a = proto;
    a.name = strf("peer%02d", i);
    names.push_back(a.name);
    must(engine->adapters().register_loaded(std::make_shared<const LoraAdapter>(std::move(a))),
         "register adapter");
  }
  // Warm-up: every adapter onto the device and every code path once (not timed).
  warm_names = names;
  warm_names.push_back("");
  const RunResult w = run_batch(*engine, log, c, warm_names, 8, 2, 10000, 7, 180);
  if (w.failed > 0 || w.finished < static_cast<int>(warm_names.size()))
    throw std::runtime_error("warm-up failed: " + w.first_error);
  std::vector<std::string> mixed;
  for (int i = 0; i < batch; ++i) mixed.push_back(names[static_cast<size_t>(i % adapters)]);
  const double timeout = std::max(60.0, ctx.f.section_timeout_s / 3);
  const RunResult with = run_batch(*engine, log, c, mixed, prompt, new_tokens, 20000, 11, timeout);
  const RunResult base =
      run_batch(*engine, log, c, base_names, prompt, new_tokens, 30000, 11, timeout);
  Table t({"workload", "wall s", "output tokens", "tokens/s", "TTFT p50 ms", "TPOT p50 ms"});
  t.row({strf("%d distinct rank-16 adapters", adapters), strf("%.2f", with.wall_s),
         std::to_string(with.tokens), strf("%.1f", with.tok_s()),
         strf("%.0f", with.ttft_p50_s * 1e3), strf("%.2f", with.tpot_s * 1e3)});
  t.row({"base model", strf("%.2f", base.wall_s), std::to_string(base.tokens),
         strf("%.1f", base.tok_s()), strf("%.0f", base.ttft_p50_s * 1e3),
         strf("%.2f", base.tpot_s * 1e3)});
  t.print(
      strf("[8 peer] ours through the Engine: batch %d, prompt %d, %d new tokens (the PEFT "
           "side is tools/peers/peft_decode_bench.py)",
           batch, prompt, new_tokens));
  for (const RunResult* r : {&with, &base})
    if (!r->first_error.empty()) std::printf("  error: %s\n", r->first_error.c_str());
  out.data["batch"] = batch;
  out.data["prompt"] = prompt;
  out.data["new_tokens"] = new_tokens;
  out.data["adapters"] = adapters;
  out.data["with_adapters"] = with.json();
  out.data["base"] = base.json();
  out.data["ours_tok_s"] = with.tok_s();
  out.data["ours_base_tok_s"] = base.tok_s();
  out.headline = strf(
      "ours %.1f output tok/s with %d adapters, %.1f base (the PEFT ratio is in "
      "the summary of scripts/gpu_perf.sh)",
      with.tok_s(), adapters, base.tok_s());
  if (with.failed > 0 || base.failed > 0 || !with.first_error.empty() ||
      !base.first_error.empty()) {
    out.verdict = "FAIL";
    out.headline =
        "requests failed or did not finish: " + with.first_error + " " + base.first_error;
  }
  return out;
}

}  // namespace ls::perf
