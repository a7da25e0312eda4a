// The benchmark's HTTP client for any OpenAI-compatible server (Boost.Beast on one Asio thread,
// C++20 coroutines): replays a request list open loop against /v1/completions with streaming
// (SSE), ignore_eos and max_tokens = the output length, optionally bounded in concurrency, and
// records when each request was sent, each chunk arrived and the stream ended.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "metrics.h"
#include "trace.h"

namespace ls::bench {

// "http://host:port[/prefix]" ("/v1" at the end is dropped: routes are added to the prefix).
struct BaseUrl {
  std::string host;
  std::string port = "80";
  std::string prefix;  // "" or "/something", no trailing slash
  std::string str() const { return "http://" + host + ":" + port + prefix; }
};
Result<BaseUrl> parse_base_url(const std::string& url);

struct HttpResponse {
  int status = 0;
  std::string body;
};
// One request with the whole body read (for /metrics and /v1/models). Connection failures and
// timeouts are errors that name the URL; any HTTP status is a response.
Result<HttpResponse> http_request(const BaseUrl& url, const std::string& method,
                                  const std::string& path, const std::string& body,
                                  const std::string& api_key, double timeout_s);

struct ClientOptions {
  BaseUrl url;
  std::string api_key;          // sent as "Authorization: Bearer KEY" when not empty
  std::string base_model;       // `model` of requests without an adapter
  int32_t max_concurrency = 0;  // requests in flight at most (0: unbounded, pure open loop)
  double timeout_s = 3600.0;    // per request, connect to the end of the stream
};

struct ClientRun {
  std::vector<RequestTiming> timing;  // one per request, in order
  double wall_s = 0.0;                // first arrival slot to the last stream's end
};

// Sends request i at its timestamp (after the start) whatever the server's pace; with
// max_concurrency, a request whose slot is taken waits for one (first come, first served) and
// its latencies count from when it is sent. Request failures (connection, HTTP status, an error
// event in the stream) are recorded per request, never returned.
ClientRun run_openai_client(const ClientOptions& options,
                            const std::vector<TraceRequest>& requests);

// The JSON body of request `r` (exposed for tests).
std::string completion_body(const TraceRequest& r, const std::string& base_model);

}  // namespace ls::bench
