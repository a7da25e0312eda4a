// gpu_perf_bench: every GPU performance target of issue 7 measured in one run, each figure
// beside its reference (copy bandwidth, cuBLAS GEMM rate) measured in the same run. Sections:
//   1 copy      device-to-device copy bandwidth and a large cuBLAS bf16 GEMM (the ceilings)
//   2 decode    Llama-2-7B decode step, batch 1..256 at context 512, vs the bandwidth floor
//   3 prefill   1 x 2048 and 16 x 512 tokens: FLOP/s vs the GEMM ceiling
//   4 lora      LoRA overhead in decode (batch 64) and prefill (16 x 512)
//   5 kernels   LoRA shrink/expand and decode attention alone: bytes/s vs copy bandwidth
//   6 loading   cold (disk) and warm (host) adapter loading while 64 sequences decode
//   7 capacity  rank-16 adapters that fit next to 64 x 1,024 tokens; 2,000-adapter throughput
//   8 peer      our side of the transformers + PEFT comparison (tools/peers/peft_decode_bench.py)
// Each section runs in a child process of its own (fork; the parent never touches CUDA), so a
// CUDA error, an abort or a hang (killed after --section-timeout) costs only that section; its
// table is printed as it finishes, the JSON file (command, machine, every figure) is rewritten
// after every section, and a summary of all of them comes last. scripts/gpu_perf.sh builds
// this and runs it with the PEFT peer.
//   gpu_perf_bench --out /tmp/gpu_perf/gpu_perf.json
//   gpu_perf_bench --quick --sections copy,decode
//   gpu_perf_bench --device cpu --shape tiny --quick     (the harness itself, on the CPU)
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "gpu_perf/perf_common.h"
#include "gpu_perf/sections.h"

#ifndef LS_NVCC
#define LS_NVCC "nvcc"
#endif
#ifndef LS_SOURCE_DIR
#define LS_SOURCE_DIR "."
#endif

namespace ls::perf {
namespace {

struct SectionDef {
  int number;
  const char* name;
  SectionOut (*fn)(Ctx&);
};

const std::vector<SectionDef>& all_sections() {
  static const std::vector<SectionDef> s = {
      {1, "copy", section_copy},         {2, "decode", section_decode},
      {3, "prefill", section_prefill},   {4, "lora", section_lora},
      {5, "kernels", section_kernels},   {6, "loading", section_loading},
      {7, "capacity", section_capacity}, {8, "peer", section_peer}};
  return s;
}

// Output of a shell command (stderr dropped), trailing newlines removed; "" when it fails.
std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// What this machine is, without initialising CUDA (the children must be able to).
Json machine_info() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  struct sysinfo si {};
  sysinfo(&si);
  Json gpus = Json::array();
  std::istringstream lines(
      shell("nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id,clocks.max.sm,"
            "clocks.max.memory,power.limit --format=csv,noheader"));
  for (std::string line; std::getline(lines, line);) gpus.push_back(line);
  const std::string nvcc = shell(std::string(LS_NVCC) + " --version | tail -2 | head -1");
  return {{"hostname", host},
          {"cpu", shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'")},
          {"hardware_threads", std::thread::hardware_concurrency()},
          {"host_memory_bytes", static_cast<double>(si.totalram) * si.mem_unit},
          {"gpus_nvidia_smi", gpus},
          {"nvidia_smi_fields",
           "name, memory.total, driver_version, pci.bus_id, clocks.max.sm, clocks.max.memory, "
           "power.limit"},
          {"nvcc", nvcc.empty() ? std::string("not found (") + LS_NVCC + ")" : nvcc},
          {"nvcc_path", LS_NVCC}};
}

Json git_info() {
  const std::string dir = LS_SOURCE_DIR;
  return {{"commit", shell("git -C '" + dir + "' rev-parse HEAD")},
          {"modified_tracked_files",
           shell("git -C '" + dir + "' status --porcelain --untracked-files=no | wc -l")}};
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json flags_json(const Flags& f) {
  return {{"device", f.device},
          {"shape", f.shape},
          {"quick", f.quick},
          {"seed", f.seed},
          {"gpu_memory_utilization", f.gpu_memory_utilization},
          {"capacity_utilization", f.capacity_utilization},
          {"margin_gib", f.margin_gib},
          {"warmup", f.warmup},
          {"iters", f.iters},
          {"context", f.context},
          {"decode_batches", f.decode_batches},
          {"copy_mib", f.copy_mib},
          {"gemm_n", f.gemm_n},
          {"host_budget_gib", f.host_budget_gib},
          {"loader_threads", f.loader_threads},
          {"loading_probes", f.loading_probes},
          {"capacity_adapters", f.capacity_adapters},
          {"capacity_requests", f.capacity_requests},
          {"capacity_disk_dirs", f.capacity_disk_dirs},
          {"peer",
           {{"batch", f.peer_batch},
            {"prompt", f.peer_prompt},
            {"new_tokens", f.peer_new},
            {"adapters", f.peer_adapters}}},
          {"section_timeout_s", f.section_timeout_s},
          {"skinny_gemm_max_rows", f.skinny_gemm_max_rows},
          {"decode_gemm_max_rows", f.decode_gemm_max_rows},
          {"lora_beside_gemm", f.lora_beside_gemm},
          {"bf16_activations", f.bf16_activations},
          {"pdl", f.pdl},
          {"kv_dtype", std::string(dtype_name(f.kv_dtype))}};
}

// Runs one section in this process; every failure becomes {"status": "error", ...}.
Json run_inline(const SectionDef& d, Ctx& ctx) {
  const int64_t t0 = now_ns();
  Json r;
  try {
    SectionOut out = d.fn(ctx);
    r = {
        {"status", "ok"}, {"verdict", out.verdict}, {"headline", out.headline}, {"data", out.data}};
  } catch (const std::bad_alloc&) {
    r = {{"status", "error"},
         {"error",
          "out of memory (std::bad_alloc: a device or host "
          "allocation failed)"}};
  } catch (const std::exception& e) {
    r = {{"status", "error"}, {"error", e.what()}};
  } catch (...) {
    r = {{"status", "error"}, {"error", "unknown exception"}};
  }
  r["wall_s"] = seconds_since(t0);
  if (r["status"] == "error")
    std::printf("  [%s] FAILED: %s\n", d.name, r["error"].get<std::string>().c_str());
  std::fflush(stdout);
  return r;
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Runs one section in a child process; its JSON comes back through a pipe and its stderr
// through another (relayed as it comes, the tail kept for the JSON). A crash (signal), an exit
// without a result, or a run past `timeout_s` (killed) is reported as such.
Json run_forked(const SectionDef& d, Ctx& ctx, double timeout_s) {
  std::fflush(stdout);
  std::fflush(stderr);
  int res[2], err[2];
  if (pipe(res) != 0 || pipe(err) != 0)
    return {{"status", "error"}, {"error", std::string("pipe: ") + strerror(errno)}};
  const int64_t t0 = now_ns();
  const pid_t pid = fork();
  if (pid < 0) return {{"status", "error"}, {"error", std::string("fork: ") + strerror(errno)}};
  if (pid == 0) {
    // No core dump of a process that maps tens of GiB (an abort must not fill the disk).
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    close(res[0]);
    close(err[0]);
    dup2(err[1], 2);
    close(err[1]);
    const Json r = run_inline(d, ctx);
    write_all(res[1], r.dump());
    close(res[1]);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  close(res[1]);
  close(err[1]);
  std::string buf, err_tail;
  bool timed_out = false, res_open = true, err_open = true;
  while (res_open || err_open) {
    const double left = timeout_s - seconds_since(t0);
    if (left <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p[2] = {{res_open ? res[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    const int ready = poll(p, 2, static_cast<int>(std::min(left, 1.0) * 1000) + 1);
    if (ready <= 0) continue;
    for (int k = 0; k < 2; ++k) {
      if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char chunk[65536];
      const ssize_t n = read(p[k].fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        (k == 0 ? res_open : err_open) = false;
        continue;
      }
      if (k == 0) {
        buf.append(chunk, static_cast<size_t>(n));
      } else {
        write_all(2, std::string(chunk, static_cast<size_t>(n)));
        err_tail.append(chunk, static_cast<size_t>(n));
        if (err_tail.size() > 4000) err_tail.erase(0, err_tail.size() - 4000);
      }
    }
  }
  close(res[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  Json r;
  if (!timed_out && !buf.empty()) {
    try {
      r = Json::parse(buf);
      if (!err_tail.empty()) r["stderr_tail"] = err_tail;
      return r;
    } catch (const std::exception& e) {
      r = {{"status", "error"}, {"error", std::string("unreadable result: ") + e.what()}};
    }
  } else if (timed_out) {
    r = {{"status", "timeout"},
         {"error", strf("killed after %.0f s (--section-timeout)", timeout_s)}};
  } else if (WIFSIGNALED(status)) {
    std::string last = err_tail;  // the last line the child printed (an abort's message)
    while (!last.empty() && last.back() == '\n') last.pop_back();
    if (last.rfind('\n') != std::string::npos) last = last.substr(last.rfind('\n') + 1);
    r = {{"status", "crashed"},
         {"error", strf("signal %d (%s)%s%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                        last.empty() ? "" : ": ", last.c_str())}};
  } else {
    r = {{"status", "crashed"},
         {"error", strf("exited with status %d and no result", WEXITSTATUS(status))}};
  }
  r["wall_s"] = seconds_since(t0);
  if (!err_tail.empty()) r["stderr_tail"] = err_tail;
  std::printf("  [%s] %s: %s\n", d.name, r["status"].get<std::string>().c_str(),
              r["error"].get<std::string>().c_str());
  std::fflush(stdout);
  return r;
}

void write_json(const std::string& path, const Json& doc) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << doc.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "gpu_perf_bench: cannot write %s\n", tmp.c_str());
      return;
    }
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::vector<SectionDef> select_sections(const std::vector<std::string>& wanted) {
  std::vector<SectionDef> out;
  for (const SectionDef& d : all_sections()) {
    bool take = wanted.empty();
    for (const std::string& w : wanted)
      take = take || w == "all" || w == d.name || w == std::to_string(d.number);
    if (take) out.push_back(d);
  }
  for (const std::string& w : wanted) {
    bool known = w == "all";
    for (const SectionDef& d : all_sections())
      known = known || w == d.name || w == std::to_string(d.number);
    if (!known) throw std::runtime_error("unknown section '" + w + "'");
  }
  return out;
}

}  // namespace
}  // namespace ls::perf

int main(int argc, char** argv) {
  using namespace ls::perf;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Ctx ctx;
  Flags& f = ctx.f;
  std::string out_path = "gpu_perf.json";
  std::vector<std::string> wanted;
  bool no_fork = false, keep_work = false;
  double time_budget = 0;
  CLI::App app{
      "Issue 7's GPU performance targets in one run: copy/GEMM ceilings, decode roofline, "
      "prefill FLOP/s, LoRA overhead, kernels, adapter loading, capacity, PEFT peer workload.\n"
      "Sections: 1 copy, 2 decode, 3 prefill, 4 lora, 5 kernels, 6 loading, 7 capacity, 8 peer.\n"
      "Examples:\n"
      "  gpu_perf_bench --out /tmp/gpu_perf/gpu_perf.json\n"
      "  gpu_perf_bench --quick --sections copy,decode\n"
      "  gpu_perf_bench --device cpu --shape tiny --quick --context 64"};
  app.add_option("--out", out_path, "JSON results (rewritten after every section)");
  app.add_option("--sections", wanted, "Sections to run, by name or number (default: all)")
      ->delimiter(',');
  auto* quick =
      app.add_flag("--quick", f.quick, "A short smoke pass (fewer sizes and repetitions)");
  app.add_option("--device", f.device, "cuda (default) or cpu (tiny shapes: tests the harness)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--shape", f.shape, "llama2-7b (default), llama3-8b or tiny");
  app.add_option("--seed", f.seed);
  app.add_option("--gpu-memory-utilization", f.gpu_memory_utilization,
                 "Engine sections: fraction of device memory for weights + workspace + pool")
      ->check(CLI::Range(0.05, 1.0));
  app.add_option("--capacity-utilization", f.capacity_utilization,
                 "Section capacity: the utilization its adapter count is computed at")
      ->check(CLI::Range(0.05, 1.0));
  app.add_option("--margin-gib", f.margin_gib,
                 "Memory kept free beyond each configuration's computed need");
  auto* warm = app.add_option("--warmup", f.warmup, "Untimed repetitions (quick: 1)");
  auto* iters = app.add_option("--iters", f.iters, "Timed repetitions, median reported (quick: 3)")
                    ->check(CLI::Range(1, 1000));
  app.add_option("--context", f.context, "Decode context per sequence")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--decode-batches", f.decode_batches, "Decode batch sizes")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--copy-mib", f.copy_mib, "Copy size for the bandwidth ceiling");
  app.add_option("--gemm-n", f.gemm_n, "cuBLAS GEMM size n (n x n x n)");
  app.add_option("--host-budget-gib", f.host_budget_gib, "Engine host tier budget");
  app.add_option("--loader-threads", f.loader_threads, "Engine adapter loader threads");
  app.add_option("--loading-probes", f.loading_probes, "Cold and warm requests each (loading)");
  app.add_option("--capacity-adapters", f.capacity_adapters, "Registered adapters (capacity)");
  app.add_option("--capacity-requests", f.capacity_requests, "Requests of the capacity run");
  app.add_option("--capacity-dirs", f.capacity_disk_dirs,
                 "Distinct adapter directories on disk the registered names share");
  app.add_option("--peer-batch", f.peer_batch);
  app.add_option("--peer-prompt", f.peer_prompt);
  app.add_option("--peer-new-tokens", f.peer_new);
  app.add_option("--peer-adapters", f.peer_adapters);
  app.add_option("--skinny-gemm-max-rows", f.skinny_gemm_max_rows,
                 "GEMMs of at most this many rows take the skinny decode kernel (0: cuBLAS)")
      ->check(CLI::Range(0, 16));
  app.add_option("--decode-gemm-max-rows", f.decode_gemm_max_rows,
                 "GEMMs of at most this many rows take the tensor-core decode GEMM (0: cuBLAS)")
      ->check(CLI::Range(0, 64));
  app.add_option("--lora-beside-gemm", f.lora_beside_gemm,
                 "Decode LoRA on a second stream beside the base GEMM (1, the default) or after "
                 "it (0)");
  app.add_option("--pdl", f.pdl,
                 "Programmatic dependent launch of the decode-path kernels (1, the default, or 0)");
  app.add_option("--bf16-activations", f.bf16_activations,
                 "bf16 activations in cuBLAS GEMMs and the bf16 flash prefill attention (1), or "
                 "fp32-faithful hi + lo GEMMs and fp32 attention (0, the default)");
  app.add_option("--kv-dtype", f.kv_dtype, "Element type of the page stores: bf16 or fp32")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, ls::DType>{{"bf16", ls::DType::kBF16}, {"fp32", ls::DType::kF32}}));
  app.add_option("--section-timeout", f.section_timeout_s, "Seconds before a section is killed");
  app.add_option("--time-budget", time_budget,
                 "Seconds for the whole run: sections not started by then are skipped (0: none)");
  app.add_option("--work-dir", f.work_dir, "Where adapters are written (default: a temp dir)");
  app.add_flag("--keep-work-dir", keep_work, "Keep the adapters written to disk");
  app.add_flag("--no-fork", no_fork, "Run sections in this process (a crash then ends the run)");
  CLI11_PARSE(app, argc, argv);
  if (f.quick) {
    if (warm->count() == 0) f.warmup = 1;
    if (iters->count() == 0) f.iters = 3;
  }
  (void)quick;
  std::vector<SectionDef> sections;
  try {
    sections = select_sections(wanted);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "gpu_perf_bench: %s (sections: copy decode prefill lora kernels loading "
                 "capacity peer, or 1-8)\n",
                 e.what());
    return 2;
  }
  bool made_work_dir = false;
  if (f.work_dir.empty()) {
    char tmpl[] = "/tmp/gpu_perf_work_XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::fprintf(stderr, "gpu_perf_bench: mkdtemp: %s\n", strerror(errno));
      return 1;
    }
    f.work_dir = tmpl;
    made_work_dir = true;
  }
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  Json doc = {{"benchmark", "gpu_perf"},
              {"issue", 7},
              {"command", cmd},
              {"started_at", utc_now()},
              {"machine", machine_info()},
              {"git", git_info()},
              {"flags", flags_json(f)},
              {"sections", Json::object()}};
  const Json& m = doc["machine"];
  std::printf("gpu_perf_bench on %s: %s; %s\n", m["hostname"].get<std::string>().c_str(),
              m["gpus_nvidia_smi"].empty() ? "no nvidia-smi GPU"
                                           : m["gpus_nvidia_smi"][0].get<std::string>().c_str(),
              m["nvcc"].get<std::string>().c_str());
  const int64_t t_start = now_ns();
  bool all_ran = true;
  for (const SectionDef& d : sections) {
    Json r;
    const double left = time_budget > 0 ? time_budget - seconds_since(t_start) : 1e9;
    std::printf("\n=== [%d %s] ===\n", d.number, d.name);
    if (left < 10) {
      r = {{"status", "skipped"}, {"error", "the --time-budget was spent"}, {"wall_s", 0}};
      std::printf("  skipped: the --time-budget was spent\n");
    } else if (no_fork) {
      r = run_inline(d, ctx);
    } else {
      // The child plans its own waits with the time it really has.
      Ctx child = ctx;
      child.f.section_timeout_s = std::min(f.section_timeout_s, left);
      r = run_forked(d, child, child.f.section_timeout_s);
    }
    if (r["status"] != "ok") all_ran = false;
    if (d.number == 1 && r["status"] == "ok") {  // the children that follow inherit these
      ctx.ceil.copy_gbps = r["data"]["copy_gbps"].get<double>();
      ctx.ceil.gemm_tflops = r["data"]["gemm_tflops"].get<double>();
      ctx.ceil.source = "section copy";
    }
    doc["sections"][d.name] = r;
    doc["total_s"] = seconds_since(t_start);
    write_json(out_path, doc);
  }
  std::printf("\n=== summary (%.0f s; %s) ===\n", seconds_since(t_start), out_path.c_str());
  Table t({"section", "status", "target", "s", "result"});
  t.left({1, 2, 4});
  for (const SectionDef& d : sections) {
    const Json& r = doc["sections"][d.name];
    const bool ok = r["status"] == "ok";
    t.row({strf("%d %s", d.number, d.name), r["status"].get<std::string>(),
           ok ? r["verdict"].get<std::string>() : "-", strf("%.0f", r["wall_s"].get<double>()),
           ok ? r["headline"].get<std::string>() : r["error"].get<std::string>()});
  }
  t.print("");
  if (made_work_dir && !keep_work) {
    std::error_code ec;
    std::filesystem::remove_all(f.work_dir, ec);
  }
  return all_ran ? 0 : 1;
}
