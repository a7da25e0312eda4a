// OpenAiService: the OpenAI-compatible routes over one Engine: completions and chat (whole or
// SSE-streamed), models, runtime adapter load/unload, health, metrics, version. Validation runs
// in the order body size (transport) -> JSON shape -> parameter ranges -> tokenize -> context
// length -> adapter existence, before anything is allocated in the engine.
#pragma once

#include "server/boost_compat.h"  // first: see there

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http_exchange.h"
#include "server/openai_request.h"
#include "server/server_metrics.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace ls::server {

struct ServiceOptions {
  std::string served_model_name;
  std::string model_root;  // shown as the base model's "root"
  std::string lora_root;   // canonical path, or empty: no just-in-time adapters, no loading
  std::string api_key;     // empty: no authentication
  int32_t max_model_len = 0;
  int32_t max_loras = 0;  // shown in vllm:lora_requests_info
  int32_t max_lora_rank = 256;
  bool allow_runtime_lora = false;
  int retry_after_s = 1;
  RequestLimits limits;
};

enum class ServiceState { kStarting, kReady, kDraining };

class OpenAiService {
 public:
  // `chat_template` may be null (the chat route then answers 400).
  OpenAiService(Engine& engine, const Tokenizer& tokenizer, const ChatTemplate* chat_template,
                nlohmann::ordered_json special_tokens_config, ServiceOptions options);
  ~OpenAiService();

  boost::asio::awaitable<void> handle(HttpExchange& ex);
  void set_state(ServiceState s) { state_ = s; }
  // Generation requests being served now.
  int64_t in_flight() const { return in_flight_.load(); }
  // Registers an adapter at start (--lora NAME=DIR); the names of --lora-root are found lazily.
  Status add_adapter(const std::string& name, const std::string& dir);
  // An always-resident adapter (a compressed adapter of a served bundle); `source` is what
  // /v1/models shows as its root.
  Status add_resident_adapter(std::shared_ptr<const ResidentAdapter> adapter,
                              const std::string& source);
  // An adapter already in host memory (a bundle adapter materialised as LoRA factors).
  Status add_loaded_adapter(std::shared_ptr<const LoraAdapter> adapter, const std::string& source);
  ServerMetrics& metrics() { return *metrics_; }

 private:
  Status check_new_adapter_name(const std::string& name) const;
  // Checks the name, runs `register_it` (the engine side) and records the adapter's source.
  Status add_registered(const std::string& name, const std::string& source,
                        const std::function<Status()>& register_it);
  struct Choice;
  boost::asio::awaitable<void> generate(HttpExchange& ex, bool chat);
  boost::asio::awaitable<void> list_models(HttpExchange& ex);
  boost::asio::awaitable<void> load_adapter(HttpExchange& ex);
  boost::asio::awaitable<void> unload_adapter(HttpExchange& ex);
  boost::asio::awaitable<void> render_metrics(HttpExchange& ex);
  boost::asio::awaitable<void> send_error(HttpExchange& ex, const ApiError& e);
  boost::asio::awaitable<void> send_json(HttpExchange& ex, int status, const std::string& body);

  // Tokenizes (rendering the chat template first); runs on the blocking pool.
  std::optional<ApiError> build_prompts(const GenerationParams& p,
                                        std::vector<std::vector<int32_t>>* prompts) const;
  // "" for the base; else the adapter, registered from --lora-root on first use.
  std::optional<ApiError> resolve_model(const std::string& model, std::string* adapter);
  // `path` resolved (symlinks followed) inside --lora-root, or an error.
  std::optional<ApiError> inside_lora_root(const std::string& path, std::string* canonical) const;
  void log_unknown_fields(const std::vector<std::string>& fields);
  void track(const std::string& adapter, int delta, bool running);

  Engine& engine_;
  const Tokenizer& tokenizer_;
  const ChatTemplate* chat_template_;
  nlohmann::ordered_json special_tokens_config_;
  ServiceOptions options_;
  std::unique_ptr<ServerMetrics> metrics_;
  boost::asio::thread_pool blocking_{2};  // tokenizing, templates, adapter validation
  std::atomic<ServiceState> state_{ServiceState::kStarting};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> next_id_{0};
  uint64_t id_salt_ = 0;

  std::mutex mu_;                                    // guards the maps below
  std::map<std::string, std::string> adapter_dirs_;  // registered adapter -> directory
  std::set<std::string> logged_unknown_;
  std::map<std::string, int> adapter_waiting_, adapter_running_;  // in-flight choices
};

}  // namespace ls::server
