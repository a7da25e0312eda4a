// OpenAI error bodies and the type names OpenAI's SDKs map statuses to.
#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace ls::server {

namespace {
std::string type_for(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 500:
      return "server_error";
    case 503:
      return "service_unavailable";
    default:
      return "invalid_request_error";
  }
}
}  // namespace

std::string error_body(const ApiError& e) {
  nlohmann::ordered_json err = {{"message", e.message},
                                {"type", e.type.empty() ? type_for(e.status) : e.type},
                                {"param", nullptr},
                                {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return nlohmann::ordered_json{{"error", err}}.dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace);
}

std::string error_body(int status, const std::string& message) {
  ApiError e;
  e.status = status;
  e.message = message;
  e.type = type_for(status);
  return error_body(e);
}

ApiError make_error(int status, std::string message, std::string param, std::string code,
                    Headers headers) {
  return ApiError{status,           std::move(message), type_for(status),
                  std::move(param), std::move(code),    std::move(headers)};
}

ApiError bad_request(std::string message, std::string param, std::string code) {
  return ApiError{
      400, std::move(message), "invalid_request_error", std::move(param), std::move(code), {}};
}

ApiError not_found_error(std::string message, std::string param, std::string code) {
  return ApiError{
      404, std::move(message), "invalid_request_error", std::move(param), std::move(code), {}};
}

}  // namespace ls::server
