// The open-loop OpenAI client; see openai_client.h. One coroutine dispatches requests at their
// times, one coroutine per request streams its response through Beast's parser (which handles
// chunked transfer encoding) and cuts the body into SSE events.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include "openai_client.h"

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <deque>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

namespace ls::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

Result<BaseUrl> parse_base_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind("https://", 0) == 0)
    return invalid_argument("--url " + url +
                            ": https is not supported (no TLS in this client); put the server "
                            "behind http on a trusted network or a local proxy");
  if (url.rfind(scheme, 0) != 0)
    return invalid_argument("--url " + url + ": expected http://HOST:PORT[/PREFIX]");
  std::string rest = url.substr(scheme.size());
  BaseUrl out;
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  if (out.prefix.size() >= 3 && out.prefix.compare(out.prefix.size() - 3, 3, "/v1") == 0)
    out.prefix.resize(out.prefix.size() - 3);
  if (authority.find('@') != std::string::npos)
    return invalid_argument("--url " + url +
                            ": credentials in the URL are not supported; use "
                            "--api-key");
  size_t colon = authority.rfind(':');
  if (!authority.empty() && authority[0] == '[') {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) return invalid_argument("--url " + url + ": unclosed '['");
    out.host = authority.substr(1, close - 1);
    colon =
        authority.size() > close + 1 && authority[close + 1] == ':' ? close + 1 : std::string::npos;
  } else {
    out.host = authority.substr(0, colon);
  }
  if (colon != std::string::npos) out.port = authority.substr(colon + 1);
  if (out.host.empty()) return invalid_argument("--url " + url + ": no host");
  if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos ||
      out.port.size() > 5 || std::stoi(out.port) < 1 || std::stoi(out.port) > 65535)
    return invalid_argument("--url " + url + ": the port must be a number in 1..65535");
  return out;
}

std::string completion_body(const TraceRequest& r, const std::string& base_model) {
  Json j;
  j["model"] = r.adapter.empty() ? base_model : r.adapter;
  if (!r.prompt_ids.empty())
    j["prompt"] = r.prompt_ids;
  else
    j["prompt"] = r.prompt_text;
  j["max_tokens"] = r.output_len;
  j["ignore_eos"] = true;  // vLLM's extension, which loraserve shares: exactly max_tokens tokens
  j["temperature"] = 0.0;  // greedy, as S-LoRA's client (do_sample false)
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  return j.dump();
}

namespace {

// The message of an OpenAI error body, or the body's start.
std::string error_message(int status, const std::string& body) {
  std::string m = "HTTP " + std::to_string(status);
  try {
    Json j = Json::parse(body);
    if (j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
      return m + ": " + j["error"]["message"].get<std::string>();
  } catch (const std::exception&) {
  }
  return m + (body.empty() ? "" : ": " + body.substr(0, 200));
}

// Lets the client hold thousands of connections.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// A FIFO counting semaphore for coroutines on one thread: waiters park on a timer that never
// expires, and release() hands the slot to the first of them by cancelling its timer.
class Slots {
 public:
  explicit Slots(int32_t limit) : limit_(limit) {}
  asio::awaitable<void> acquire() {
    if (limit_ <= 0 || in_use_ < limit_) {
      ++in_use_;
      co_return;
    }
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                      Clock::time_point::max());
    waiters_.push_back(timer);
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  void release() {
    if (limit_ <= 0) return;
    if (waiters_.empty()) {
      --in_use_;
      return;
    }
    waiters_.front()->cancel();  // the slot passes to it; in_use_ is unchanged
    waiters_.pop_front();
  }

 private:
  int32_t limit_;
  int32_t in_use_ = 0;
  std::deque<std::shared_ptr<asio::steady_timer>> waiters_;
};

struct RunState {
  const ClientOptions& options;
  const std::vector<TraceRequest>& requests;
  tcp::resolver::results_type endpoints;
  Clock::time_point start;
  Slots slots;
  std::vector<RequestTiming> timing;
  double since() const { return std::chrono::duration<double>(Clock::now() - start).count(); }
};

// Applies one SSE event to the request's timing; false once the stream is over.
bool on_event(const std::string& event, double now, RequestTiming& t) {
  std::string data;
  size_t pos = 0;
  while (pos < event.size()) {  // the data lines, joined as the SSE spec says
    size_t eol = event.find('\n', pos);
    if (eol == std::string::npos) eol = event.size();
    std::string line = event.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("data:", 0) == 0) {
      if (!data.empty()) data += "\n";
      data += line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
    }
    pos = eol + 1;
  }
  if (data.empty()) return true;  // a comment or keep-alive
  if (data == "[DONE]") {
    t.finish_s = now;
    t.ok = t.error.empty() && t.first_token_s >= 0;
    if (t.ok && t.output_tokens == 0)
      t.output_tokens = static_cast<int32_t>(t.token_times_s.size());
    if (t.first_token_s < 0 && t.error.empty()) t.error = "the stream ended without a token";
    return false;
  }
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded()) {
    t.error = "a stream event is not JSON: " + data.substr(0, 200);
    return false;
  }
  if (j.contains("error")) {
    const Json& e = j["error"];
    t.error = "error event: " + (e.is_object() && e.contains("message") && e["message"].is_string()
                                     ? e["message"].get<std::string>()
                                     : e.dump());
    return true;  // [DONE] follows
  }
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    if (t.first_token_s < 0) t.first_token_s = now;
    t.token_times_s.push_back(now);
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    const Json& u = j["usage"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
      t.output_tokens = u["completion_tokens"].get<int32_t>();
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
      t.prompt_tokens = u["prompt_tokens"].get<int32_t>();
  }
  return true;
}

// Releases a concurrency slot when the request's coroutine ends, however it ends.
struct SlotGuard {
  Slots& slots;
  ~SlotGuard() { slots.release(); }
};

asio::awaitable<void> stream_one(RunState& st, size_t i) {
  RequestTiming& t = st.timing[i];
  const TraceRequest& r = st.requests[i];
  co_await st.slots.acquire();
  SlotGuard guard{st.slots};
  t.arrival_s = st.since();
  t.prompt_tokens = r.input_len;
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(std::chrono::milliseconds(static_cast<int64_t>(st.options.timeout_s * 1e3)));
  boost::system::error_code ec;
  auto on_error = asio::redirect_error(asio::use_awaitable, ec);
  co_await stream.async_connect(st.endpoints, on_error);
  if (ec) {
    t.error = "connect to " + st.options.url.str() + ": " + ec.message();
    co_return;
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  http::request<http::string_body> req{http::verb::post, st.options.url.prefix + "/v1/completions",
                                       11};
  req.set(http::field::host, st.options.url.host);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  if (!st.options.api_key.empty())
    req.set(http::field::authorization, "Bearer " + st.options.api_key);
  req.body() = completion_body(r, st.options.base_model);
  req.prepare_payload();
  co_await http::async_write(stream, req, on_error);
  if (ec) {
    t.error = "send: " + ec.message();
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  co_await http::async_read_header(stream, buffer, parser, on_error);
  if (ec) {
    t.error = "reading the response: " + ec.message();
    co_return;
  }
  const int status = parser.get().result_int();
  std::string pending;  // body bytes not yet cut into events
  char chunk[16384];
  bool open = true;
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    // read_some returns as soon as some of the body is there (read would fill `chunk` first).
    co_await http::async_read_some(stream, buffer, parser, on_error);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (t.error.empty()) t.error = "reading the stream: " + ec.message();
      co_return;
    }
    pending.append(chunk, sizeof chunk - parser.get().body().size);
    if (status != 200) continue;
    const double now = st.since();
    for (size_t end; open && (end = pending.find("\n\n")) != std::string::npos;) {
      open = on_event(pending.substr(0, end), now, t);
      pending.erase(0, end + 2);
    }
  }
  if (status != 200) {
    t.error = error_message(status, pending);
  } else if (open && t.error.empty()) {
    t.error = "the stream ended without [DONE]";
  }
}

// stream_one with anything thrown (a bad allocation, a JSON type error) kept to its request.
asio::awaitable<void> guarded(RunState& st, size_t i) {
  try {
    co_await stream_one(st, i);
  } catch (const std::exception& e) {
    st.timing[i].ok = false;
    st.timing[i].error = std::string("client: ") + e.what();
  }
}

asio::awaitable<void> dispatch(RunState& st) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  for (size_t i = 0; i < st.requests.size(); ++i) {
    st.timing[i].scheduled_s = st.requests[i].timestamp_s;
    timer.expires_at(st.start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(st.requests[i].timestamp_s)));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    asio::co_spawn(ex, guarded(st, i), asio::detached);
  }
}

}  // namespace

ClientRun run_openai_client(const ClientOptions& options,
                            const std::vector<TraceRequest>& requests) {
  raise_fd_limit();
  asio::io_context io(1);
  RunState st{options, requests, {}, Clock::now(), Slots(options.max_concurrency), {}};
  st.timing.resize(requests.size());
  boost::system::error_code ec;
  st.endpoints = tcp::resolver(io).resolve(options.url.host, options.url.port, ec);
  if (ec) {
    for (auto& t : st.timing) t.error = "resolve " + options.url.host + ": " + ec.message();
    return {std::move(st.timing), 0.0};
  }
  st.start = Clock::now();
  asio::co_spawn(io, dispatch(st), asio::detached);
  io.run();
  ClientRun out;
  out.wall_s = st.since();
  out.timing = std::move(st.timing);
  return out;
}

Result<HttpResponse> http_request(const BaseUrl& url, const std::string& method,
                                  const std::string& path, const std::string& body,
                                  const std::string& api_key, double timeout_s) {
  asio::io_context io(1);
  HttpResponse out;
  std::string error;
  auto run = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    tcp::resolver resolver(io);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port, on_error);
    if (ec) {
      error = "resolve: " + ec.message();
      co_return;
    }
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1e3)));
    co_await stream.async_connect(endpoints, on_error);
    if (ec) {
      error = ec.message();
      co_return;
    }
    http::request<http::string_body> req{http::string_to_verb(method), url.prefix + path, 11};
    req.set(http::field::host, url.host);
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    co_await http::async_write(stream, req, on_error);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    if (!ec) co_await http::async_read(stream, buffer, parser, on_error);
    if (ec) {
      error = ec.message();
      co_return;
    }
    out.status = parser.get().result_int();
    out.body = std::move(parser.get().body());
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run();
  if (!error.empty()) return failed_precondition(method + " " + url.str() + path + ": " + error);
  return out;
}

}  // namespace ls::bench
