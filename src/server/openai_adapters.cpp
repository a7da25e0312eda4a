// OpenAiService's adapter routes: names resolved (just in time from --lora-root), /v1/models,
// and runtime load/unload confined to --lora-root.
#include "server/boost_compat.h"  // first: see there

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>

#include "server/openai_json.h"
#include "server/openai_service.h"

namespace ls::server {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

Status OpenAiService::add_adapter(const std::string& name, const std::string& dir) {
  LS_RETURN_IF_ERROR(check_new_adapter_name(name));
  LS_RETURN_IF_ERROR(engine_.adapters().register_source(name, dir));
  std::lock_guard<std::mutex> lock(mu_);
  adapter_dirs_[name] = dir;
  return ok_status();
}

Status OpenAiService::check_new_adapter_name(const std::string& name) const {
  if (!is_valid_adapter_name(name))
    return invalid_argument("adapter name '" + name + "' is invalid");
  if (name == options_.served_model_name)
    return invalid_argument("adapter name '" + name + "' is the base model's name");
  return ok_status();
}

Status OpenAiService::add_registered(const std::string& name, const std::string& source,
                                     const std::function<Status()>& register_it) {
  LS_RETURN_IF_ERROR(check_new_adapter_name(name));
  LS_RETURN_IF_ERROR(register_it());
  std::lock_guard<std::mutex> lock(mu_);
  adapter_dirs_[name] = source;
  return ok_status();
}

Status OpenAiService::add_resident_adapter(std::shared_ptr<const ResidentAdapter> adapter,
                                           const std::string& source) {
  const std::string name = adapter->name;
  return add_registered(name, source,
                        [&] { return engine_.adapters().register_resident(std::move(adapter)); });
}

Status OpenAiService::add_loaded_adapter(std::shared_ptr<const LoraAdapter> adapter,
                                         const std::string& source) {
  const std::string name = adapter->name;
  return add_registered(name, source,
                        [&] { return engine_.adapters().register_loaded(std::move(adapter)); });
}

std::optional<ApiError> OpenAiService::inside_lora_root(const std::string& path,
                                                        std::string* canonical) const {
  if (options_.lora_root.empty())
    return make_error(400, "adapter paths need the server to be started with --lora-root",
                      "lora_path");
  std::error_code ec;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(options_.lora_root) / p;
  const fs::path real = fs::canonical(p, ec);
  if (ec) return make_error(404, "adapter path '" + path + "' does not exist", "lora_path");
  const std::string r = real.string(), root = options_.lora_root;
  if (r.size() <= root.size() || r.compare(0, root.size(), root) != 0 || r[root.size()] != '/')
    return make_error(400, "adapter path '" + path + "' resolves outside --lora-root", "lora_path");
  *canonical = r;
  return std::nullopt;
}

std::optional<ApiError> OpenAiService::resolve_model(const std::string& model,
                                                     std::string* adapter) {
  adapter->clear();
  if (model.empty() || model == options_.served_model_name) return std::nullopt;
  if (engine_.adapters().known(model)) {
    *adapter = model;
    return std::nullopt;
  }
  auto missing =
      not_found_error("The model `" + model + "` does not exist or you do not have access to it.",
                      "model", "model_not_found");
  if (options_.lora_root.empty() || !is_valid_adapter_name(model)) return missing;
  std::string dir;
  if (inside_lora_root(model, &dir)) return missing;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "adapter_config.json", ec)) return missing;
  Status st = engine_.adapters().register_source(model, dir);  // just in time, loaded on use
  if (!st.ok() && !engine_.adapters().known(model))
    return make_error(500, "adapter '" + model + "': " + st.message(), "model");
  {
    std::lock_guard<std::mutex> lock(mu_);
    adapter_dirs_[model] = dir;
  }
  *adapter = model;
  return std::nullopt;
}

asio::awaitable<void> OpenAiService::list_models(HttpExchange& ex) {
  const int64_t created = unix_now();
  Json data = Json::array();
  data.push_back(model_entry(options_.served_model_name, created, options_.model_root, nullptr,
                             options_.max_model_len));
  std::map<std::string, std::string> adapters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    adapters = adapter_dirs_;
  }
  if (!options_.lora_root.empty()) {  // adapters that would load just in time
    std::error_code ec;
    for (fs::directory_iterator it(options_.lora_root, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (adapters.count(name) || !is_valid_adapter_name(name)) continue;
      std::error_code ec2;
      if (fs::is_regular_file(it->path() / "adapter_config.json", ec2))
        adapters.emplace(name, it->path().string());
    }
  }
  for (const auto& [name, dir] : adapters)
    if (engine_.adapters().known(name) || !options_.lora_root.empty())
      data.push_back(
          model_entry(name, created, dir, options_.served_model_name, options_.max_model_len));
  co_await send_json(ex, 200, models_body(std::move(data)));
}

asio::awaitable<void> OpenAiService::load_adapter(HttpExchange& ex) {
  if (!options_.allow_runtime_lora) {
    {
      const ApiError error = make_error(403,
                                        "runtime adapter loading is off (start the server "
                                        "with --enable-lora-loading)");
      co_await send_error(ex, error);
    }
    co_return;
  }
  Json j = Json::parse(ex.body(), nullptr, false);
  if (!j.is_object() || !j.contains("lora_name") || !j["lora_name"].is_string() ||
      !j.contains("lora_path") || !j["lora_path"].is_string()) {
    {
      const ApiError error =
          bad_request("the body must be {\"lora_name\": string, \"lora_path\": string}");
      co_await send_error(ex, error);
    }
    co_return;
  }
  const std::string name = j["lora_name"], path = j["lora_path"];
  if (!is_valid_adapter_name(name) || name == options_.served_model_name) {
    {
      const ApiError error = bad_request("'" + name + "' is not a valid adapter name", "lora_name");
      co_await send_error(ex, error);
    }
    co_return;
  }
  if (engine_.adapters().known(name)) {
    {
      const ApiError error =
          bad_request("The lora adapter '" + name + "' has already been loaded.", "lora_name");
      co_await send_error(ex, error);
    }
    co_return;
  }
  std::string dir;
  if (auto e = inside_lora_root(path, &dir)) {
    co_await send_error(ex, *e);
    co_return;
  }
  // Read and validate now, off the I/O threads, so a bad adapter fails this call.
  const ModelConfig& config = engine_.model().config();
  const int32_t max_rank = options_.max_lora_rank;
  // (co_spawn needs a default-constructible result: a pointer to the Result.)
  auto loaded = co_await asio::co_spawn(
      blocking_,
      [&]() -> asio::awaitable<std::shared_ptr<Result<LoraAdapter>>> {
        co_return std::make_shared<Result<LoraAdapter>>(
            load_lora_adapter(dir, name, config, {max_rank}));
      },
      asio::use_awaitable);
  if (!loaded->ok()) {
    {
      const ApiError error = bad_request(loaded->status().message(), "lora_path");
      co_await send_error(ex, error);
    }
    co_return;
  }
  Status st = engine_.adapters().register_loaded(
      std::make_shared<const LoraAdapter>(std::move(*loaded).value()));
  if (!st.ok()) {
    {
      const ApiError error = bad_request(st.message(), "lora_name");
      co_await send_error(ex, error);
    }
    co_return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    adapter_dirs_[name] = dir;
  }
  metrics_->count_http(200);
  co_await ex.respond(200, "text/plain",
                      "Success: LoRA adapter '" + name + "' added successfully.");
}

asio::awaitable<void> OpenAiService::unload_adapter(HttpExchange& ex) {
  if (!options_.allow_runtime_lora) {
    {
      const ApiError error = make_error(403,
                                        "runtime adapter loading is off (start the server "
                                        "with --enable-lora-loading)");
      co_await send_error(ex, error);
    }
    co_return;
  }
  Json j = Json::parse(ex.body(), nullptr, false);
  if (!j.is_object() || !j.contains("lora_name") || !j["lora_name"].is_string()) {
    {
      const ApiError error = bad_request("the body must be {\"lora_name\": string}");
      co_await send_error(ex, error);
    }
    co_return;
  }
  const std::string name = j["lora_name"];
  Status st = engine_.adapters().unregister(name);
  if (!st.ok()) {
    {
      const ApiError error =
          st.code() == StatusCode::kNotFound
              ? not_found_error("The lora adapter '" + name + "' cannot be found.", "lora_name")
              : make_error(409, st.message(), "lora_name");
      co_await send_error(ex, error);
    }
    co_return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    adapter_dirs_.erase(name);
  }
  metrics_->count_http(200);
  co_await ex.respond(200, "text/plain",
                      "Success: LoRA adapter '" + name + "' removed successfully.");
}

}  // namespace ls::server
