// Whole-set compression: which (layer, module)s exist, the k-means style cluster assignment
// (farthest-first seeds, then refit / reassign by reconstruction error until stable) and the
// parallel per-module fits of joint_fit.h.
#include "compress/compressor.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <set>

#include "base/thread_pool.h"

namespace ls::compress {

namespace {

struct ModuleId {
  int32_t layer;
  LoraTarget target;
  int64_t in, out;
};

using AdapterList = std::vector<std::shared_ptr<const LoraAdapter>>;

const LoraModule* module_of(const LoraAdapter& a, const ModuleId& m) {
  const auto& slot = a.layers[static_cast<size_t>(m.layer)][static_cast<size_t>(m.target)];
  return slot ? &*slot : nullptr;
}

FactorView view_of(const LoraModule& m) {
  return {m.rank, static_cast<double>(m.scale), m.a.data(), m.bt.data()};
}

Status check_adapters(const ModelConfig& model, const AdapterList& adapters,
                      const std::set<std::string>& taken) {
  std::set<std::string> names = taken;
  for (const auto& a : adapters) {
    if (!a) return invalid_argument("null adapter");
    if (a->name.empty()) return invalid_argument("an adapter has an empty name");
    if (!names.insert(a->name).second)
      return invalid_argument("adapter name '" + a->name + "' appears twice");
    if (a->layers.size() != static_cast<size_t>(model.num_layers))
      return invalid_argument("adapter '" + a->name + "' has " + std::to_string(a->layers.size()) +
                              " layers but the base model has " + std::to_string(model.num_layers));
    bool any = false;
    for (int32_t l = 0; l < model.num_layers; ++l)
      for (int32_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& m = a->layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
        if (!m) continue;
        any = true;
        const auto target = static_cast<LoraTarget>(t);
        const int64_t in = lora_in_dim(model, target), out = lora_out_dim(model, target);
        if (m->rank < 1 || m->a.size() != static_cast<size_t>(m->rank * in) ||
            m->bt.size() != static_cast<size_t>(m->rank * out))
          return invalid_argument("adapter '" + a->name + "': module " +
                                  lora_module_key(l, target) +
                                  " does not have this base model's shape");
      }
    if (!any) return invalid_argument("adapter '" + a->name + "' has no LoRA modules");
  }
  return ok_status();
}

std::vector<ModuleId> modules_of(const ModelConfig& model, const AdapterList& adapters) {
  std::vector<ModuleId> out;
  for (int32_t l = 0; l < model.num_layers; ++l)
    for (int32_t t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      ModuleId id{l, target, lora_in_dim(model, target), lora_out_dim(model, target)};
      for (const auto& a : adapters)
        if (module_of(*a, id)) {
          out.push_back(id);
          break;
        }
    }
  return out;
}

// members[c][m]: the adapters of cluster c that have module m; fits[c][m] their fit.
using Members = std::vector<std::vector<std::vector<int32_t>>>;
using Fits = std::vector<std::vector<std::optional<ModuleFit>>>;

Members members_of(const AdapterList& adapters, const std::vector<ModuleId>& modules,
                   const std::vector<int32_t>& assign, int32_t num_clusters) {
  Members mem(static_cast<size_t>(num_clusters), std::vector<std::vector<int32_t>>(modules.size()));
  for (size_t m = 0; m < modules.size(); ++m)
    for (size_t i = 0; i < adapters.size(); ++i)
      if (assign[i] >= 0 && module_of(*adapters[i], modules[m]))
        mem[static_cast<size_t>(assign[i])][m].push_back(static_cast<int32_t>(i));
  return mem;
}

Fits fit_all(const AdapterList& adapters, const std::vector<ModuleId>& modules,
             const Members& members, const CompressOptions& opts) {
  Fits fits(members.size(), std::vector<std::optional<ModuleFit>>(modules.size()));
  std::vector<std::pair<size_t, size_t>> tasks;
  for (size_t c = 0; c < members.size(); ++c)
    for (size_t m = 0; m < modules.size(); ++m)
      if (!members[c][m].empty()) tasks.emplace_back(c, m);
  use_single_threaded_blas();
  ThreadPool::shared().parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const auto [c, m] = tasks[static_cast<size_t>(k)];
      std::vector<FactorView> views;
      for (int32_t i : members[c][m])
        views.push_back(view_of(*module_of(*adapters[static_cast<size_t>(i)], modules[m])));
      FitOptions fo;
      fo.mode = opts.mode;
      fo.rank = opts.rank;
      fo.iters = opts.iters;
      fo.normalize = opts.normalize;
      fo.seed = opts.seed * 1000003ull + c * 7919ull + m;
      fits[c][m] = fit_module(modules[m].in, modules[m].out, views, fo);
    }
  });
  return fits;
}

// cost[i][c]: how badly cluster c's bases reproduce adapter i, summed over its modules
// (relative errors when normalising, absolute otherwise; a module without bases loses all).
std::vector<std::vector<double>> assignment_costs(const AdapterList& adapters,
                                                  const std::vector<ModuleId>& modules,
                                                  const Fits& fits, bool normalize) {
  const size_t n = adapters.size(), nc = fits.size();
  std::vector<std::vector<double>> per_module(modules.size(), std::vector<double>(n * nc, 0.0));
  ThreadPool::shared().parallel_for(
      static_cast<int64_t>(modules.size()), [&](int64_t b, int64_t e) {
        for (int64_t mm = b; mm < e; ++mm) {
          const auto m = static_cast<size_t>(mm);
          for (size_t i = 0; i < n; ++i) {
            const LoraModule* lm = module_of(*adapters[i], modules[m]);
            if (!lm) continue;
            const FactorView f = view_of(*lm);
            for (size_t c = 0; c < nc; ++c) {
              Coeffs co;
              if (fits[c][m]) {
                co = project(fits[c][m]->bases, f, modules[m].in, modules[m].out);
              } else {
                co.norm2 = frobenius2(f, modules[m].in, modules[m].out);
                co.rel_error = 1.0;
              }
              per_module[m][i * nc + c] = normalize ? co.rel_error : co.rel_error * co.norm2;
            }
          }
        }
      });
  std::vector<std::vector<double>> cost(n, std::vector<double>(nc, 0.0));
  for (const auto& pm : per_module)
    for (size_t i = 0; i < n; ++i)
      for (size_t c = 0; c < nc; ++c) cost[i][c] += pm[i * nc + c];
  return cost;
}

std::vector<int32_t> argmin_assign(const std::vector<std::vector<double>>& cost) {
  std::vector<int32_t> a(cost.size());
  for (size_t i = 0; i < cost.size(); ++i)
    a[i] = static_cast<int32_t>(std::min_element(cost[i].begin(), cost[i].end()) - cost[i].begin());
  return a;
}

// Gives every empty cluster the adapter that its current cluster reproduces worst (taken from
// a cluster with more than one member), so C clusters stay C.
void fill_empty(std::vector<int32_t>* assign, const std::vector<std::vector<double>>& cost,
                int32_t num_clusters) {
  for (int32_t c = 0; c < num_clusters; ++c) {
    std::vector<int32_t> size(static_cast<size_t>(num_clusters), 0);
    for (int32_t a : *assign) ++size[static_cast<size_t>(a)];
    if (size[static_cast<size_t>(c)] > 0) continue;
    int32_t best = -1;
    double worst = -1;
    for (size_t i = 0; i < assign->size(); ++i) {
      const int32_t ci = (*assign)[i];
      if (size[static_cast<size_t>(ci)] < 2) continue;
      const double e = cost[i][static_cast<size_t>(ci)];
      if (e > worst) worst = e, best = static_cast<int32_t>(i);
    }
    if (best >= 0) (*assign)[static_cast<size_t>(best)] = c;
  }
}

// Farthest-first seeds: each next seed is the adapter the seeds so far reproduce worst; every
// adapter then starts in the cluster of the seed that reproduces it best.
std::vector<int32_t> seed_assignment(const AdapterList& adapters,
                                     const std::vector<ModuleId>& modules,
                                     const CompressOptions& opts) {
  const size_t n = adapters.size();
  std::vector<int32_t> seeds = {0};
  std::vector<std::vector<double>> cost(n);
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
  for (int32_t c = 0; c < opts.clusters; ++c) {
    if (c > 0) {
      size_t far = 0;
      double far_cost = -1;
      for (size_t i = 0; i < n; ++i)
        if (std::find(seeds.begin(), seeds.end(), static_cast<int32_t>(i)) == seeds.end() &&
            nearest[i] > far_cost)
          far_cost = nearest[i], far = i;
      seeds.push_back(static_cast<int32_t>(far));
    }
    std::vector<int32_t> only(n, -1);
    only[static_cast<size_t>(seeds.back())] = 0;
    Fits fit = fit_all(adapters, modules, members_of(adapters, modules, only, 1), opts);
    auto cc = assignment_costs(adapters, modules, fit, opts.normalize);
    for (size_t i = 0; i < n; ++i) {
      cost[i].push_back(cc[i][0]);
      nearest[i] = std::min(nearest[i], cc[i][0]);
    }
  }
  std::vector<int32_t> assign = argmin_assign(cost);
  for (int32_t c = 0; c < opts.clusters; ++c) assign[static_cast<size_t>(seeds[c])] = c;
  fill_empty(&assign, cost, opts.clusters);
  return assign;
}

}  // namespace

Result<Bundle> compress_adapters(const ModelConfig& model, const AdapterList& adapters,
                                 const CompressOptions& opts, CompressStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  if (adapters.empty()) return invalid_argument("no adapters to compress");
  if (opts.rank < 1) return invalid_argument("rank K must be at least 1");
  if (opts.clusters < 1) return invalid_argument("the number of clusters must be at least 1");
  if (opts.clusters > static_cast<int32_t>(adapters.size()))
    return invalid_argument(std::to_string(opts.clusters) + " clusters but only " +
                            std::to_string(adapters.size()) +
                            " adapters (need at least one adapter per cluster)");
  if (opts.iters < 0) return invalid_argument("iters must not be negative");
  LS_RETURN_IF_ERROR(check_adapters(model, adapters, {}));
  const std::vector<ModuleId> modules = modules_of(model, adapters);
  const size_t n = adapters.size();

  std::vector<int32_t> assign(n, 0);
  int32_t rounds = 0;
  Fits fits;
  if (opts.clusters > 1) {
    assign = seed_assignment(adapters, modules, opts);
    bool current = false;
    for (; rounds < opts.cluster_iters; ++rounds) {
      fits = fit_all(adapters, modules, members_of(adapters, modules, assign, opts.clusters), opts);
      auto cost = assignment_costs(adapters, modules, fits, opts.normalize);
      std::vector<int32_t> next = argmin_assign(cost);
      fill_empty(&next, cost, opts.clusters);
      if (next == assign) {
        current = true;
        ++rounds;
        break;
      }
      assign = std::move(next);
    }
    if (!current) fits.clear();
  }
  const Members members = members_of(adapters, modules, assign, opts.clusters);
  if (fits.empty()) fits = fit_all(adapters, modules, members, opts);

  Bundle b;
  b.mode = opts.mode;
  b.rank = opts.rank;
  b.normalized = opts.normalize;
  b.shape = BundleShape::of(model);
  const auto nl = static_cast<size_t>(model.num_layers);
  b.clusters.assign(static_cast<size_t>(opts.clusters), PerModule<Bases>(nl));
  b.adapters.resize(n);
  for (size_t i = 0; i < n; ++i) {
    b.adapters[i].name = adapters[i]->name;
    b.adapters[i].source = adapters[i]->dir;
    b.adapters[i].cluster = assign[i];
    b.adapters[i].modules.resize(nl);
  }
  int64_t fitted = 0;
  for (size_t c = 0; c < fits.size(); ++c)
    for (size_t m = 0; m < modules.size(); ++m) {
      if (!fits[c][m]) continue;
      ++fitted;
      ModuleFit& fit = *fits[c][m];
      const auto l = static_cast<size_t>(modules[m].layer);
      const auto t = static_cast<size_t>(modules[m].target);
      for (size_t k = 0; k < members[c][m].size(); ++k) {
        const auto i = static_cast<size_t>(members[c][m][k]);
        const LoraModule* lm = module_of(*adapters[i], modules[m]);
        b.adapters[i].modules[l][t] = AdapterModule{std::move(fit.coeffs[k]), lm->rank, lm->scale};
      }
      b.clusters[c][l][t] = std::move(fit.bases);
    }
  if (stats) {
    stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats->cluster_rounds = rounds;
    stats->modules_fitted = fitted;
  }
  return b;
}

Result<Bundle> add_adapters(const Bundle& bundle, const ModelConfig& model,
                            const AdapterList& adapters) {
  if (adapters.empty()) return invalid_argument("no adapters to add");
  LS_RETURN_IF_ERROR(bundle.shape.check(model));
  std::set<std::string> taken;
  for (const auto& a : bundle.adapters) taken.insert(a.name);
  LS_RETURN_IF_ERROR(check_adapters(model, adapters, taken));
  const auto nl = static_cast<size_t>(model.num_layers);
  // Clusters with bases for every module of each adapter.
  std::vector<std::vector<int32_t>> eligible(adapters.size());
  for (size_t i = 0; i < adapters.size(); ++i) {
    std::string missing;
    for (int32_t c = 0; c < bundle.num_clusters(); ++c) {
      bool all = true;
      for (size_t l = 0; l < nl && all; ++l)
        for (int32_t t = 0; t < kNumLoraTargets && all; ++t)
          if (adapters[i]->layers[l][static_cast<size_t>(t)] &&
              !bundle.clusters[static_cast<size_t>(c)][l][static_cast<size_t>(t)]) {
            all = false;
            missing = lora_module_key(static_cast<int32_t>(l), static_cast<LoraTarget>(t));
          }
      if (all) eligible[i].push_back(c);
    }
    if (eligible[i].empty())
      return invalid_argument("adapter '" + adapters[i]->name + "' targets " + missing +
                              ", for which no cluster of the bundle has bases (compress it "
                              "together with the others instead)");
  }
  std::vector<BundleAdapter> added(adapters.size());
  use_single_threaded_blas();
  ThreadPool::shared().parallel_for(
      static_cast<int64_t>(adapters.size()), [&](int64_t b, int64_t e) {
        for (auto i = static_cast<size_t>(b); i < static_cast<size_t>(e); ++i) {
          double best_cost = std::numeric_limits<double>::infinity();
          for (int32_t c : eligible[i]) {
            BundleAdapter cand;
            cand.name = adapters[i]->name;
            cand.source = adapters[i]->dir;
            cand.cluster = c;
            cand.modules.resize(nl);
            double cost = 0;
            for (size_t l = 0; l < nl; ++l)
              for (int32_t t = 0; t < kNumLoraTargets; ++t) {
                const auto& lm = adapters[i]->layers[l][static_cast<size_t>(t)];
                if (!lm) continue;
                const auto target = static_cast<LoraTarget>(t);
                const Bases& bases =
                    *bundle.clusters[static_cast<size_t>(c)][l][static_cast<size_t>(t)];
                Coeffs co = project(bases, view_of(*lm), lora_in_dim(model, target),
                                    lora_out_dim(model, target));
                cost += bundle.normalized ? co.rel_error : co.rel_error * co.norm2;
                cand.modules[l][static_cast<size_t>(t)] =
                    AdapterModule{std::move(co), lm->rank, lm->scale};
              }
            if (cost < best_cost) {
              best_cost = cost;
              added[i] = std::move(cand);
            }
          }
        }
      });
  Bundle out = bundle;
  for (auto& a : added) out.adapters.push_back(std::move(a));
  return out;
}

}  // namespace ls::compress
