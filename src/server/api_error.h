// ApiError: an OpenAI-style error answer: HTTP status plus the body
// {"error": {"message", "type", "param", "code"}} and optional headers (Retry-After).
#pragma once

#include <string>

#include "server/http_exchange.h"

namespace ls::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty = null
  std::string code;   // empty = null
  Headers headers;
};

std::string error_body(const ApiError& e);
// The body alone for a status and message (the transport's own 413/400/500 answers).
std::string error_body(int status, const std::string& message);

// Any status; the type follows the status.
ApiError make_error(int status, std::string message, std::string param = "", std::string code = "",
                    Headers headers = {});
ApiError bad_request(std::string message, std::string param = "", std::string code = "");
ApiError not_found_error(std::string message, std::string param = "", std::string code = "");

}  // namespace ls::server
