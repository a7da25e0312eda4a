// Parse once, render many times: each render gets its own interpreter and scopes.
#include "text/jinja_template.h"

#include "text/jinja_globals.h"
#include "text/jinja_parser.h"

namespace ls::jinja {

Result<JinjaTemplate> JinjaTemplate::parse(std::string_view source) {
  LS_ASSIGN_OR_RETURN(Body body, parse_template(source));
  return JinjaTemplate(std::make_shared<const Body>(std::move(body)));
}

Result<std::string> JinjaTemplate::render(
    const std::vector<std::pair<std::string, Value>>& variables, const JinjaLimits& limits) const {
  auto globals = std::make_shared<Scope>(nullptr);
  add_default_globals(globals.get());
  for (const auto& [name, value] : variables) globals->set(name, value);
  Interpreter interp(limits);
  return interp.render(*body_, std::move(globals));
}

}  // namespace ls::jinja
