// OpenAiService: routes, the generation flow (validate, submit n x prompts engine requests,
// detokenize and match stop strings per choice, answer whole or as SSE) and metrics. The
// adapter routes are in openai_adapters.cpp.
#include "server/openai_service.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <random>

#include "base/logging.h"
#include "server/event_channel.h"
#include "server/openai_json.h"
#include "text/stop_matcher.h"
#include "text/stream_detokenizer.h"

namespace ls::server {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kJson = "application/json";

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

// The state of one choice (one engine request) while it is served.
struct OpenAiService::Choice {
  int32_t index = 0;
  int32_t prompt = 0;  // which prompt of the request
  RequestId id = 0;
  bool submitted = false;
  std::unique_ptr<StreamDetokenizer> detok;
  std::unique_ptr<StopMatcher> stop;
  std::string text;     // everything released so far
  std::string pending;  // released since the last chunk
  int32_t generated = 0;
  bool done = false;
  std::string finish_reason;
  std::string error;
  Clock::time_point last_token;
  // log-probs of every token, and the ones not yet sent
  struct Lp {
    int32_t token;
    float logprob;
    std::vector<std::pair<int32_t, float>> top;
  };
  std::vector<Lp> logprobs;
  size_t logprobs_sent = 0;
  bool role_sent = false;
};

OpenAiService::OpenAiService(Engine& engine, const Tokenizer& tokenizer,
                             const ChatTemplate* chat_template, Json special_tokens_config,
                             ServiceOptions options)
    : engine_(engine),
      tokenizer_(tokenizer),
      chat_template_(chat_template),
      special_tokens_config_(std::move(special_tokens_config)),
      options_(std::move(options)),
      metrics_(std::make_unique<ServerMetrics>(options_.served_model_name, options_.max_loras)) {
  id_salt_ = std::random_device{}();
  id_salt_ = (id_salt_ << 32) ^ std::random_device{}();
}

OpenAiService::~OpenAiService() {
  blocking_.join();
}

asio::awaitable<void> OpenAiService::send_json(HttpExchange& ex, int status,
                                               const std::string& body) {
  metrics_->count_http(status);
  co_await ex.respond(status, kJson, body);
}

asio::awaitable<void> OpenAiService::send_error(HttpExchange& ex, const ApiError& e) {
  metrics_->count_http(e.status);
  if (ex.streaming()) {  // the stream began: the error is its last event
    co_await ex.write("data: " + error_body(e) + "\n\n");
    co_await ex.write("data: [DONE]\n\n");
    co_await ex.end();
    co_return;
  }
  co_await ex.respond(e.status, kJson, error_body(e), e.headers);
}

asio::awaitable<void> OpenAiService::handle(HttpExchange& ex) {
  const std::string path = ex.path(), method = ex.method();
  if (path == "/health") {
    const bool ready = state_ == ServiceState::kReady;
    metrics_->count_http(ready ? 200 : 503);
    std::string body = ready ? std::string() : std::string("not ready");
    co_await ex.respond(ready ? 200 : 503, "text/plain", std::move(body));
    co_return;
  }
  if (path == "/metrics") {
    co_await render_metrics(ex);
    co_return;
  }
  if (path == "/version") {
    co_await send_json(ex, 200, version_body());
    co_return;
  }
  if (path.rfind("/v1/", 0) != 0) {
    {
      const ApiError error = make_error(404, "no route for " + path);
      co_await send_error(ex, error);
    }
    co_return;
  }
  if (!options_.api_key.empty() && ex.header("Authorization") != "Bearer " + options_.api_key) {
    ApiError e = make_error(401, "Incorrect API key provided.", "", "invalid_api_key",
                            one_header("WWW-Authenticate", "Bearer"));
    e.type = "invalid_request_error";
    co_await send_error(ex, e);
    co_return;
  }
  if (state_ == ServiceState::kDraining) {
    ApiError e =
        make_error(503, "the server is shutting down", "", "", one_header("Retry-After", "5"));
    co_await send_error(ex, e);
    co_return;
  }
  auto is = [&](const char* m, const char* p) { return method == m && path == p; };
  if (is("POST", "/v1/completions")) {
    co_await generate(ex, false);
  } else if (is("POST", "/v1/chat/completions")) {
    co_await generate(ex, true);
  } else if (is("GET", "/v1/models")) {
    co_await list_models(ex);
  } else if (is("POST", "/v1/load_lora_adapter")) {
    co_await load_adapter(ex);
  } else if (is("POST", "/v1/unload_lora_adapter")) {
    co_await unload_adapter(ex);
  } else {
    const bool known = path == "/v1/completions" || path == "/v1/chat/completions" ||
                       path == "/v1/models" || path == "/v1/load_lora_adapter" ||
                       path == "/v1/unload_lora_adapter";
    ApiError e =
        make_error(known ? 405 : 404, known ? "method " + method + " is not allowed on " + path
                                            : "no route for " + path);
    co_await send_error(ex, e);
  }
}

void OpenAiService::log_unknown_fields(const std::vector<std::string>& fields) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : fields)
    if (logged_unknown_.size() < 1000 && logged_unknown_.insert(f).second)
      spdlog::warn("ignoring unknown request field '{}' (logged once)", f);
}

std::optional<ApiError> OpenAiService::build_prompts(
    const GenerationParams& p, std::vector<std::vector<int32_t>>* prompts) const {
  const int32_t vocab = engine_.model().config().vocab_size;
  if (p.chat) {
    if (!chat_template_)
      return bad_request(
          "this model has no chat template (start the server with --chat-template FILE)",
          "messages");
    ChatTemplateInputs in;
    ChatTemplate::apply_special_tokens(special_tokens_config_, &in);
    in.messages = p.messages;
    in.tools = p.tools;
    in.add_generation_prompt = p.add_generation_prompt;
    for (const auto& [k, v] : p.chat_template_kwargs.items())
      if (k != "messages" && k != "tools" && k != "add_generation_prompt") in.extra_context[k] = v;
    auto text = chat_template_->render(in);
    if (!text.ok()) return bad_request("chat template: " + text.status().message(), "messages");
    // The template already wrote the special tokens it wants.
    auto ids = tokenizer_.encode(text.value(), false);
    if (!ids.ok()) return bad_request(ids.status().message(), "messages");
    if (ids.value().empty()) return bad_request("the messages render to no tokens", "messages");
    prompts->push_back(std::move(ids).value());
    return std::nullopt;
  }
  if (p.prompt_is_ids) {
    for (const auto& ids : p.id_prompts)
      for (int32_t id : ids)
        if (id >= vocab)
          return bad_request("token id " + std::to_string(id) + " is out of the vocabulary [0, " +
                                 std::to_string(vocab) + ")",
                             "prompt");
    *prompts = p.id_prompts;
    return std::nullopt;
  }
  for (const std::string& text : p.text_prompts) {
    auto ids = tokenizer_.encode(text, true);
    if (!ids.ok()) return bad_request(ids.status().message(), "prompt");
    if (ids.value().empty()) return bad_request("the prompt encodes to no tokens", "prompt");
    for (int32_t id : ids.value())
      if (id >= vocab)
        return bad_request(
            "the tokenizer produced id " + std::to_string(id) + " outside the model's vocabulary",
            "prompt");
    prompts->push_back(std::move(ids).value());
  }
  return std::nullopt;
}

void OpenAiService::track(const std::string& adapter, int delta, bool running) {
  if (adapter.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto& m = running ? adapter_running_ : adapter_waiting_;
  if ((m[adapter] += delta) <= 0) m.erase(adapter);
}

asio::awaitable<void> OpenAiService::generate(HttpExchange& ex, bool chat) {
  const Clock::time_point arrival = Clock::now();
  GenerationParams p;
  if (auto e = parse_generation_request(ex.body(), chat, options_.limits, &p)) {
    co_await send_error(ex, *e);
    co_return;
  }
  if (!p.unknown_fields.empty()) log_unknown_fields(p.unknown_fields);
  // Tokenizing and templates can take milliseconds: off the I/O threads.
  std::vector<std::vector<int32_t>> prompts;
  auto tok_error = co_await asio::co_spawn(
      blocking_,
      [&]() -> asio::awaitable<std::optional<ApiError>> { co_return build_prompts(p, &prompts); },
      asio::use_awaitable);
  if (tok_error) {
    co_await send_error(ex, *tok_error);
    co_return;
  }
  // Context length, OpenAI's wording.
  const int32_t max_len = options_.max_model_len;
  int64_t prompt_tokens = 0;
  for (const auto& ids : prompts) {
    const int64_t n = static_cast<int64_t>(ids.size());
    prompt_tokens += n;
    const int64_t want = p.max_tokens ? *p.max_tokens : (chat ? 0 : 16);
    if (n + want > max_len || n >= max_len) {
      std::string msg = "This model's maximum context length is " + std::to_string(max_len) +
                        " tokens. However, you requested " + std::to_string(n + want) +
                        " tokens (" + std::to_string(n) + " in the " +
                        (chat ? "messages, " : "prompt; ") + std::to_string(want) +
                        (chat ? " in the completion). Please reduce the length of the messages "
                                "or completion."
                              : " for the completion). Please reduce your prompt; or completion "
                                "length.");
      {
        const ApiError error =
            bad_request(msg, chat ? "messages" : "prompt", "context_length_exceeded");
        co_await send_error(ex, error);
      }
      co_return;
    }
  }
  std::string adapter;
  if (auto e = resolve_model(p.model, &adapter)) {
    co_await send_error(ex, *e);
    co_return;
  }

  // One engine request per prompt and choice.
  auto channel = std::make_shared<EventChannel>(ex.executor());
  std::vector<Choice> choices;
  std::vector<EngineRequest> reqs;
  std::mt19937_64 seed_rng(p.seed_given ? p.sampling.seed : std::random_device{}());
  std::vector<int32_t> eos = tokenizer_.eos_ids();
  for (size_t pi = 0; pi < prompts.size(); ++pi)
    for (int32_t k = 0; k < p.n; ++k) {
      EngineRequest r;
      r.prompt_ids = prompts[pi];
      r.adapter = adapter;
      r.max_tokens = p.max_tokens
                         ? *p.max_tokens
                         : std::max<int32_t>(1, max_len - static_cast<int32_t>(prompts[pi].size()));
      if (!chat && !p.max_tokens) r.max_tokens = std::min<int32_t>(16, r.max_tokens);
      r.sampling = p.sampling;
      r.sampling.seed = p.seed_given ? p.sampling.seed + static_cast<uint64_t>(k) : seed_rng();
      r.stop_at_eos = !p.ignore_eos;
      r.stop_token_ids = p.stop_token_ids;
      if (!p.ignore_eos) r.stop_token_ids.insert(r.stop_token_ids.end(), eos.begin(), eos.end());
      r.top_logprobs = p.logprobs ? p.top_logprobs : 0;
      Status v = engine_.validate(r);
      if (!v.ok()) {
        {
          const ApiError error = v.code() == StatusCode::kNotFound
                                     ? not_found_error(v.message(), "model", "model_not_found")
                                     : bad_request(v.message());
          co_await send_error(ex, error);
        }
        co_return;
      }
      Choice c;
      c.index = static_cast<int32_t>(choices.size());
      c.prompt = static_cast<int32_t>(pi);
      c.detok = std::make_unique<StreamDetokenizer>(tokenizer_, p.skip_special_tokens);
      c.stop = std::make_unique<StopMatcher>(p.stop);
      choices.push_back(std::move(c));
      reqs.push_back(std::move(r));
    }
  ++in_flight_;
  struct InFlight {
    std::atomic<int64_t>& n;
    ~InFlight() { --n; }
  } in_flight_guard{in_flight_};
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto id = engine_.submit(std::move(reqs[i]), [channel, i](const TokenEvent& e) {
      channel->push(static_cast<int32_t>(i), e);
    });
    if (!id.ok()) {  // queue full (validated above): take back what was queued
      for (Choice& c : choices)
        if (c.submitted) engine_.cancel(c.id);
      ApiError e = make_error(429, "the server is overloaded: " + id.status().message(), "", "",
                              one_header("Retry-After", std::to_string(options_.retry_after_s)));
      if (id.status().code() != StatusCode::kResourceExhausted)
        e = bad_request(id.status().message());
      co_await send_error(ex, e);
      co_return;
    }
    choices[i].id = id.value();
    choices[i].submitted = true;
    track(adapter, 1, false);
  }
  ex.watch_disconnect([channel] { channel->close(); });

  const std::string rid = (chat ? "chatcmpl-" : "cmpl-") + [&] {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(id_salt_),
                  static_cast<unsigned long long>(++next_id_));
    return std::string(buf);
  }();
  const int64_t created = unix_now();
  const std::string model_name = p.model.empty() ? options_.served_model_name : p.model;
  int64_t completion_tokens = 0;
  size_t open = choices.size();

  auto token_text = [&](int32_t id) { return tokenizer_.decode({id}, false); };
  auto chat_lp_entry = [&](int32_t id, float lp) {
    const std::string t = token_text(id);
    Json bytes = Json::array();
    for (unsigned char ch : t) bytes.push_back(static_cast<int>(ch));
    return Json{{"token", t}, {"logprob", lp}, {"bytes", bytes}};
  };
  // The log-prob block of choice c's tokens [from, to), in the route's format.
  auto logprobs_json = [&](const Choice& c, size_t from, size_t to, size_t text_offset) -> Json {
    if (!p.logprobs) return nullptr;
    if (chat) {
      Json content = Json::array();
      for (size_t i = from; i < to; ++i) {
        const auto& l = c.logprobs[i];
        Json e = chat_lp_entry(l.token, l.logprob);
        Json top = Json::array();
        for (const auto& [id, lp] : l.top) top.push_back(chat_lp_entry(id, lp));
        e["top_logprobs"] = top;
        content.push_back(e);
      }
      return Json{{"content", content}};
    }
    Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offs = Json::array();
    for (size_t i = from; i < to; ++i) {
      const auto& l = c.logprobs[i];
      const std::string t = token_text(l.token);
      tokens.push_back(t);
      lps.push_back(l.logprob);
      offs.push_back(text_offset);
      text_offset += t.size();
      if (p.top_logprobs > 0) {
        Json top = Json::object();
        for (const auto& [id, lp] : l.top) top[token_text(id)] = lp;
        tops.push_back(top);
      } else {
        tops.push_back(nullptr);
      }
    }
    return Json{
        {"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
  };
  auto usage = [&] {
    return Json{{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt_tokens + completion_tokens}};
  };
  auto chunk_json = [&](Json choices_json) {
    return Json{{"id", rid},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", model_name},
                {"choices", std::move(choices_json)}};
  };

  // Applies one engine event to its choice.
  auto apply = [&](Choice& c, const TokenEvent& e) {
    if (c.done) return;
    const bool final_stop_token = e.finished && e.finish_reason == "stop";
    if (e.token >= 0) {
      ++c.generated;
      ++completion_tokens;
      const Clock::time_point now = Clock::now();
      if (c.generated == 1) {
        metrics_->observe_ttft(seconds_since(arrival));
        if (e.queue_s >= 0) metrics_->observe_queue_time(e.queue_s);
        track(adapter, -1, false);
        track(adapter, 1, true);
      } else {
        metrics_->observe_inter_token(std::chrono::duration<double>(now - c.last_token).count());
      }
      c.last_token = now;
      if (p.logprobs) c.logprobs.push_back({e.token, e.logprob, e.top});
      if (!final_stop_token) {  // EOS / stop ids end the text without appearing in it
        StopMatcher::Output o = c.stop->push(c.detok->push(e.token));
        c.text += o.text;
        c.pending += o.text;
        if (o.stopped) {
          c.done = true;
          c.finish_reason = "stop";
          engine_.cancel(c.id);
          return;
        }
      }
    }
    if (e.finished) {
      c.done = true;
      if (e.finish_reason == "length" || e.finish_reason == "stop") {
        StopMatcher::Output o = c.stop->push(c.detok->finish());
        std::string rest = o.text + (o.stopped ? "" : c.stop->finish());
        c.text += rest;
        c.pending += rest;
        c.finish_reason = o.stopped ? "stop" : e.finish_reason;
      } else {
        c.finish_reason = e.finish_reason;
        c.error = e.error.empty() ? "the request was " + e.finish_reason : e.error;
      }
    }
  };
  auto finish_choice = [&](Choice& c) {
    --open;
    track(adapter, -1, c.generated > 0);
    metrics_->observe_finished(c.finish_reason, seconds_since(arrival),
                               static_cast<int64_t>(prompts[static_cast<size_t>(c.prompt)].size()),
                               c.generated);
  };
  auto cancel_all = [&] {
    for (Choice& c : choices)
      if (!c.done) {
        engine_.cancel(c.id);
        c.done = true;
        c.finish_reason = "cancelled";
        finish_choice(c);
      }
  };

  if (p.stream) {
    if (!co_await ex.begin_stream(200, "text/event-stream")) {
      cancel_all();
      co_return;
    }
    metrics_->count_http(200);
    if (chat) {  // the first chunk of each choice carries the role
      Json first = Json::array();
      for (Choice& c : choices) first.push_back(role_chunk_choice(c.index));
      if (!co_await ex.write("data: " + dump(chunk_json(first)) + "\n\n")) {
        cancel_all();
        co_return;
      }
    }
  }
  std::optional<ApiError> failure;
  while (open > 0) {
    std::vector<ChoiceEvent> events = co_await channel->next();
    if (events.empty() && channel->closed()) {  // the client went away
      cancel_all();
      co_return;
    }
    std::vector<bool> touched(choices.size(), false);
    for (const ChoiceEvent& ce : events) {
      Choice& c = choices[static_cast<size_t>(ce.choice)];
      if (c.done) continue;
      apply(c, ce.event);
      touched[static_cast<size_t>(ce.choice)] = true;
      if (c.done) {
        finish_choice(c);
        if (!c.error.empty() && !failure) {
          failure = make_error(500, c.error);
          if (c.finish_reason == "abort")
            failure = make_error(503, c.error, "", "", one_header("Retry-After", "1"));
        }
      }
    }
    if (failure && !p.stream) break;
    if (!p.stream) continue;
    Json out = Json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
      Choice& c = choices[i];
      if (!touched[i]) continue;
      if (c.pending.empty() && c.logprobs_sent == c.logprobs.size() && !c.done) continue;
      Json lp =
          logprobs_json(c, c.logprobs_sent, c.logprobs.size(), c.text.size() - c.pending.size());
      c.logprobs_sent = c.logprobs.size();
      Json one = stream_choice(chat, c.index, c.pending, c.done, std::move(lp),
                               c.done && c.error.empty() ? Json(c.finish_reason) : Json(nullptr));
      c.pending.clear();
      if (!c.error.empty()) continue;  // reported below as the stream's error event
      out.push_back(std::move(one));
    }
    if (!out.empty()) {
      std::string chunk = "data: " + dump(chunk_json(std::move(out))) + "\n\n";
      if (!co_await ex.write(std::move(chunk))) {
        cancel_all();
        co_return;
      }
    }
    if (failure) break;
  }
  if (failure) {
    cancel_all();
    co_await send_error(ex, *failure);
    co_return;
  }
  if (p.stream) {
    if (p.include_usage) {
      Json last = chunk_json(Json::array());
      last["usage"] = usage();
      co_await ex.write("data: " + dump(last) + "\n\n");
    }
    co_await ex.write("data: [DONE]\n\n");
    co_await ex.end();
    co_return;
  }
  Json out_choices = Json::array();
  for (Choice& c : choices) {
    Json one = final_choice(chat, c.index, c.text, logprobs_json(c, 0, c.logprobs.size(), 0),
                            c.finish_reason);
    out_choices.push_back(std::move(one));
  }
  Json body = completion_body(rid, chat, created, model_name, std::move(out_choices), usage());
  co_await send_json(ex, 200, dump(body));
}

asio::awaitable<void> OpenAiService::render_metrics(HttpExchange& ex) {
  std::vector<std::string> running, waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, n] : adapter_running_) running.push_back(name);
    for (const auto& [name, n] : adapter_waiting_)
      if (!adapter_running_.count(name)) waiting.push_back(name);
  }
  std::string text = metrics_->render(engine_.stats(), running, waiting);
  co_await ex.respond(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
}

}  // namespace ls::server
