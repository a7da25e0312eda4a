// The Python methods templates call on values: str (strip, split, startswith, replace, ...),
// dict (items, keys, values, get) and list (count, index). Mutating methods are refused, as
// jinja2's ImmutableSandboxedEnvironment refuses them.
#pragma once

#include <string_view>

#include "text/jinja_value.h"

namespace ls::jinja {

// `receiver.name` as a bound method, an Undefined that fails when called (a mutating method,
// or a Python method we do not implement), or empty optional-like Undefined with no message
// when the type has no such method.
Value find_method(const Value& receiver, std::string_view name);

}  // namespace ls::jinja
