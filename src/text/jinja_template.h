// A parsed Jinja template and its render entry point: the subset of jinja2 that chat templates
// use, rendered as jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]) renders it. No file, environment or system access.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja_ast.h"
#include "text/jinja_interpreter.h"

namespace ls::jinja {

class JinjaTemplate {
 public:
  // Parses `source`; a syntax error or unsupported tag names its line and column.
  static Result<JinjaTemplate> parse(std::string_view source);

  // Renders with `variables` (later names override earlier ones) over jinja2's default
  // globals (range, dict, namespace). Never throws; failures name the line and column, except
  // a raise_exception() message, which comes back as written.
  Result<std::string> render(const std::vector<std::pair<std::string, Value>>& variables,
                             const JinjaLimits& limits = {}) const;

 private:
  explicit JinjaTemplate(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;  // immutable once parsed; shared by copies
};

}  // namespace ls::jinja
