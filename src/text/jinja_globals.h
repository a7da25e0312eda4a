// jinja2's default globals that chat templates use: range() (capped as the sandbox caps it),
// dict(), and namespace(), whose attributes `{% set ns.x = ... %}` may change.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "text/jinja_interpreter.h"

namespace ls::jinja {

// jinja2's Namespace: the one mutable object a template can hold. It refuses to store
// namespaces or callables, so no reference cycle (and no leak) can form.
class Namespace : public Object {
 public:
  explicit Namespace(std::vector<std::pair<std::string, Value>> attrs);
  std::string_view type_name() const override { return "Namespace"; }
  Value attribute(std::string_view name) const override;
  std::string repr() const override;
  int depth() const override { return depth_; }
  Status set(std::string_view name, Value value);

 private:
  std::vector<std::pair<std::string, Value>> attrs_;
  int depth_ = 1;
};

// Adds range, dict and namespace (and refusals for lipsum, cycler, joiner) to `scope`.
void add_default_globals(Scope* scope);

}  // namespace ls::jinja
