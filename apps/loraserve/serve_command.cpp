// `loraserve serve`: the OpenAI-compatible HTTP server over one model and its adapters. Every
// flag can also be set by an environment variable (LORASERVE_<FLAG>). SIGTERM/SIGINT stop
// accepting, let in-flight requests finish for up to --shutdown-timeout seconds, then exit 0.
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <thread>

#include "base/file_util.h"
#include "base/logging.h"
#include "bundle_flags.h"
#include "commands.h"
#include "device_flag.h"
#include "engine/engine.h"
#include "server/http_server.h"
#include "server/openai_service.h"
#include "text/chat_template_files.h"
#include "text/tokenizer.h"

namespace ls {

namespace {

struct ServeFlags {
  std::string model, tokenizer, chat_template, lora_root, api_key, served_model_name;
  std::vector<std::string> loras;
  std::vector<std::string> lora_bundles;
  std::string bundle_serving = "shared";
  std::string host = "127.0.0.1";
  int port = 8000;
  int32_t max_model_len = 0;
  int32_t max_num_seqs = 64;
  int32_t max_queue = 4096;
  int32_t max_lora_rank = 256;
  int32_t max_loras = 0;
  int64_t host_adapter_cache_bytes = 4ll << 30;
  int64_t pool_bytes = 512ll << 20;
  int32_t max_tokens_per_step = 2048;
  int32_t page_size = 1;
  double shutdown_timeout = 30.0;
  bool enable_lora_loading = false;
  int64_t max_body_bytes = 8ll << 20;
  int http_threads = 2;
  int32_t max_n = 16;
  PolicyOptions policy;
  double ttft_slo_ms = 0.0;
  std::string device;  // "" = cuda when a GPU is visible, else cpu
  double gpu_memory_utilization = 0.9;
  bool enforce_eager = false;
  std::string kv_cache_dtype = "auto";
  std::string activation_dtype = "fp32";
};

// Lets a server with thousands of streams open enough sockets.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int run_serve(const ServeFlags& f) {
  // Signals go to the thread that waits for them below, not to the server's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  const std::string tok_dir = f.tokenizer.empty() ? f.model : f.tokenizer;
  auto tokenizer = Tokenizer::load_dir(tok_dir);
  if (!tokenizer.ok())
    return fail(tokenizer.status().message() + " (the server needs a tokenizer: --tokenizer DIR)");
  nlohmann::ordered_json tok_config = nlohmann::ordered_json::object();
  if (file_exists(tok_dir + "/tokenizer_config.json")) {
    auto cfg = read_json_file(tok_dir + "/tokenizer_config.json");
    if (!cfg.ok()) return fail(cfg.status().message());
    tok_config = std::move(cfg).value();
  }
  std::unique_ptr<ChatTemplate> chat_template;
  {
    auto t = f.chat_template.empty() ? chat_template_from_dir(tok_dir, tok_config)
                                     : chat_template_from_file(f.chat_template);
    if (t.ok())
      chat_template = std::make_unique<ChatTemplate>(std::move(t).value());
    else if (!f.chat_template.empty() || t.status().code() != StatusCode::kNotFound)
      return fail(t.status().message());
    else
      spdlog::warn("{}: no chat template; /v1/chat/completions will answer 400", tok_dir);
  }
  std::string lora_root;
  if (!f.lora_root.empty()) {
    std::error_code ec;
    auto canonical = std::filesystem::canonical(f.lora_root, ec);
    if (ec || !std::filesystem::is_directory(canonical))
      return fail("--lora-root " + f.lora_root + " is not a directory");
    lora_root = canonical.string();
  }
  if (f.enable_lora_loading && lora_root.empty())
    return fail("--enable-lora-loading needs --lora-root (adapter paths must lie inside it)");

  auto made = make_backend(f.device, f.enforce_eager, f.activation_dtype);
  if (!made.ok()) return fail(made.status().message());
  std::unique_ptr<Backend> backend = std::move(made).value();
  auto model = LlamaModel::load(f.model, *backend);
  if (!model.ok()) return fail(model.status().message());
  // Bundles before the pool is sized: shared ones take device memory.
  auto bundles = load_bundles(f.lora_bundles, f.bundle_serving, model.value()->config(), *backend);
  if (!bundles.ok()) return fail(bundles.status().message());
  auto kv_dtype = kv_cache_dtype(f.kv_cache_dtype, *backend);
  if (!kv_dtype.ok()) return fail(kv_dtype.status().message());
  auto pool = kv_pool_bytes(*backend, model.value()->config(), f.gpu_memory_utilization,
                            f.max_tokens_per_step, f.max_num_seqs, f.pool_bytes, kv_dtype.value());
  if (!pool.ok()) return fail(pool.status().message());
  const ModelConfig& config = model.value()->config();
  if (f.max_model_len > config.max_position_embeddings)
    return fail("--max-model-len " + std::to_string(f.max_model_len) +
                " exceeds the model's context length " +
                std::to_string(config.max_position_embeddings));

  EngineOptions eo;
  eo.max_num_seqs = f.max_num_seqs;
  eo.max_tokens_per_step = f.max_tokens_per_step;
  eo.page_size = f.page_size;
  eo.pool_bytes = pool.value();
  eo.kv_dtype = kv_dtype.value();
  eo.max_queue = f.max_queue;
  eo.adapters.host_budget_bytes = f.host_adapter_cache_bytes;
  eo.adapters.max_lora_rank = f.max_lora_rank;
  eo.policy = f.policy;
  if (f.max_loras > 0) eo.policy.max_active_adapters = f.max_loras;
  eo.ttft_slo_ms = f.ttft_slo_ms;
  Engine engine(*model.value(), eo);

  server::ServiceOptions so;
  so.served_model_name = f.served_model_name.empty() ? f.model : f.served_model_name;
  so.model_root = f.model;
  so.lora_root = lora_root;
  so.api_key = f.api_key;
  so.max_model_len = f.max_model_len > 0 ? f.max_model_len : config.max_position_embeddings;
  so.max_loras = f.max_loras > 0 ? f.max_loras : f.max_num_seqs;
  so.max_lora_rank = f.max_lora_rank;
  so.allow_runtime_lora = f.enable_lora_loading;
  so.limits.max_n = f.max_n;
  server::OpenAiService service(engine, *tokenizer.value(), chat_template.get(), tok_config, so);
  for (const std::string& spec : f.loras) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return fail("--lora '" + spec + "' must be NAME=DIR");
    // Validated now so a broken adapter stops the start instead of failing requests later.
    auto host =
        load_lora_adapter(spec.substr(eq + 1), spec.substr(0, eq), config, {f.max_lora_rank});
    if (!host.ok()) return fail("--lora " + spec + ": " + host.status().message());
    Status st = service.add_adapter(spec.substr(0, eq), spec.substr(eq + 1));
    if (!st.ok()) return fail("--lora " + spec + ": " + st.message());
  }
  for (auto& a : bundles.value().resident) {
    const std::string name = a->name;
    Status st = service.add_resident_adapter(std::move(a), "bundle:" + name);
    if (!st.ok()) return fail("--lora-bundle: " + st.message());
  }
  for (auto& a : bundles.value().materialized) {
    const std::string name = a->name;
    Status st = service.add_loaded_adapter(std::move(a), "bundle:" + name);
    if (!st.ok()) return fail("--lora-bundle: " + st.message());
  }

  server::HttpServerOptions ho;
  ho.host = f.host;
  ho.port = f.port;
  ho.threads = f.http_threads;
  ho.max_body_bytes = static_cast<size_t>(f.max_body_bytes);
  server::HttpServer http(
      ho, [&service](server::HttpExchange& ex) { return service.handle(ex); },
      [](int status, const std::string& message) { return server::error_body(status, message); });
  Status st = http.start();
  if (!st.ok()) return fail(st.message());
  service.set_state(server::ServiceState::kReady);
  spdlog::info("serving {} on http://{}:{}", so.served_model_name, f.host, http.port());
  std::fprintf(stderr, "loraserve: listening on http://%s:%d (model %s)\n", f.host.c_str(),
               http.port(), so.served_model_name.c_str());

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "loraserve: %s: draining (up to %.0f s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", f.shutdown_timeout);
  service.set_state(server::ServiceState::kDraining);
  http.stop_accepting();
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.shutdown_timeout * 1000));
  while (service.in_flight() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t left = service.in_flight();
  http.stop();
  std::fprintf(stderr, "loraserve: stopped (%lld requests cut off by the shutdown timeout)\n",
               static_cast<long long>(left));
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  auto* sub = app.add_subcommand("serve", "Serve the OpenAI-compatible HTTP API");
  sub->footer(
      "Every flag can also be set by its environment variable, e.g. LORASERVE_PORT=9000.\n"
      "Example:\n"
      "  loraserve serve --model build/demo/model --lora pirate=build/demo/adapters/pirate "
      "--lora-root build/demo/adapters --port 8000");
  auto opt = [&](const char* name, auto* value, const char* help, const char* env) {
    return sub->add_option(name, *value, help)->envname(env);
  };
  opt("--model", &f->model, "Model directory (config.json + safetensors + tokenizer)",
      "LORASERVE_MODEL")
      ->required();
  opt("--tokenizer", &f->tokenizer, "Tokenizer directory (default: --model)",
      "LORASERVE_TOKENIZER");
  opt("--chat-template", &f->chat_template,
      "Chat template file (Jinja, or JSON with chat_template) instead of the model's",
      "LORASERVE_CHAT_TEMPLATE");
  opt("--lora", &f->loras, "Adapter NAME=DIR served from the start; repeatable", "LORASERVE_LORA");
  add_bundle_flags(sub, &f->lora_bundles, &f->bundle_serving);
  opt("--lora-root", &f->lora_root,
      "Directory of adapters (one subdirectory each) loaded just in time on first use by name",
      "LORASERVE_LORA_ROOT");
  opt("--host", &f->host, "Address to listen on", "LORASERVE_HOST");
  opt("--port", &f->port, "Port (0: any free port)", "LORASERVE_PORT")->check(CLI::Range(0, 65535));
  opt("--api-key", &f->api_key, "Require 'Authorization: Bearer KEY' on /v1 routes",
      "LORASERVE_API_KEY");
  opt("--served-model-name", &f->served_model_name, "The base model's id (default: --model)",
      "LORASERVE_SERVED_MODEL_NAME");
  opt("--max-model-len", &f->max_model_len,
      "Longest prompt + completion in tokens (default: the model's)", "LORASERVE_MAX_MODEL_LEN")
      ->check(CLI::Range(1, 1 << 24));
  opt("--max-num-seqs", &f->max_num_seqs, "Most sequences running at once",
      "LORASERVE_MAX_NUM_SEQS")
      ->check(CLI::Range(1, 1 << 16));
  opt("--max-queue", &f->max_queue, "Most requests waiting; more get 429 with Retry-After",
      "LORASERVE_MAX_QUEUE")
      ->check(CLI::Range(1, 1 << 24));
  opt("--max-lora-rank", &f->max_lora_rank, "Adapters of larger rank are refused",
      "LORASERVE_MAX_LORA_RANK")
      ->check(CLI::Range(1, 4096));
  opt("--max-loras", &f->max_loras,
      "Most distinct adapters active at once (LoRAX-style fair activation; 0: no cap)",
      "LORASERVE_MAX_LORAS")
      ->check(CLI::NonNegativeNumber);
  opt("--host-adapter-cache-bytes", &f->host_adapter_cache_bytes,
      "Byte budget of adapters kept in host memory", "LORASERVE_HOST_ADAPTER_CACHE_BYTES")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  opt("--pool-bytes", &f->pool_bytes,
      "Bytes of the unified page pool (KV + adapters) on the CPU; on a GPU the pool takes what "
      "--gpu-memory-utilization leaves after the weights",
      "LORASERVE_POOL_BYTES")
      ->check(CLI::Range(int64_t{1} << 16, int64_t{1} << 50));
  opt("--max-tokens-per-step", &f->max_tokens_per_step, "Token budget of one engine step",
      "LORASERVE_MAX_TOKENS_PER_STEP")
      ->check(CLI::Range(1, 1 << 20));
  opt("--page-size", &f->page_size, "Tokens per KV page", "LORASERVE_PAGE_SIZE")
      ->check(CLI::Range(1, 1024));
  opt("--shutdown-timeout", &f->shutdown_timeout,
      "Seconds in-flight requests may take to finish after SIGTERM", "LORASERVE_SHUTDOWN_TIMEOUT")
      ->check(CLI::Range(0.0, 86400.0));
  sub->add_flag("--enable-lora-loading", f->enable_lora_loading,
                "Enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter (paths inside "
                "--lora-root only)")
      ->envname("LORASERVE_ENABLE_LORA_LOADING");
  opt("--max-body-bytes", &f->max_body_bytes, "Largest request body (413 beyond)",
      "LORASERVE_MAX_BODY_BYTES")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 32));
  opt("--http-threads", &f->http_threads, "Threads running the HTTP connections",
      "LORASERVE_HTTP_THREADS")
      ->check(CLI::Range(1, 256));
  opt("--max-n", &f->max_n, "Largest n (choices per request)", "LORASERVE_MAX_N")
      ->check(CLI::Range(1, 1024));
  add_policy_flags(sub, &f->policy, &f->ttft_slo_ms);
  add_device_flag(sub, &f->device);
  add_gpu_memory_flag(sub, &f->gpu_memory_utilization);
  add_enforce_eager_flag(sub, &f->enforce_eager);
  add_kv_cache_dtype_flag(sub, &f->kv_cache_dtype);
  add_activation_dtype_flag(sub, &f->activation_dtype);
  return {sub, [f]() { return run_serve(*f); }};
}

}  // namespace ls
