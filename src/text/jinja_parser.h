// Parses a template into statements and expressions with jinja2's grammar and operator
// precedence (parser.py, 3.1), refusing what a chat template may not do (include, import,
// extends) or what we do not implement, with the line and column.
#pragma once

#include <string_view>

#include "text/jinja_ast.h"

namespace ls::jinja {

Result<Body> parse_template(std::string_view source);

}  // namespace ls::jinja
