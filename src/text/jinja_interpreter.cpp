// Statement execution: output, if, for (with loop.*), set, macros, blocks; errors carry the
// position of the innermost failing node, noted once as the failure unwinds.
#include "text/jinja_interpreter.h"

#include "text/jinja_access.h"
#include "text/jinja_format.h"
#include "text/jinja_globals.h"

namespace ls::jinja {

namespace {

// `loop.cycle(a, b, ...)`: the argument at this iteration's index, round robin.
class LoopCycle : public Callable {
 public:
  explicit LoopCycle(size_t index) : index_(index) {}
  Result<Value> call(Interpreter& /*interp*/, CallArgs args) const override {
    if (args.positional.empty()) return invalid_argument("no items for cycling given");
    return args.positional[index_ % args.positional.size()];
  }
  std::string repr() const override { return "<bound method LoopContext.cycle>"; }

 private:
  size_t index_;
};

// jinja2's LoopContext for one iteration (recursive loops are refused by the parser).
class LoopContext : public Object {
 public:
  LoopContext(std::shared_ptr<const std::vector<Value>> items, size_t index)
      : items_(std::move(items)), index_(index) {}
  std::string_view type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_->size()) +
           ">";
  }
  Value attribute(std::string_view name) const override {
    const auto i = static_cast<int64_t>(index_);
    const auto n = static_cast<int64_t>(items_->size());
    if (name == "index0") return Value::integer(i);
    if (name == "index") return Value::integer(i + 1);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem")
      return i > 0 ? (*items_)[index_ - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem")
      return i + 1 < n ? (*items_)[index_ + 1] : Value::undefined("there is no next item");
    if (name == "cycle") return Value::callable(std::make_shared<LoopCycle>(index_));
    if (name == "changed") return Value::undefined("loop.changed() is not supported");
    return Value::undefined("'jinja2.runtime.LoopContext object' has no attribute '" +
                            std::string(name) + "'");
  }

 private:
  std::shared_ptr<const std::vector<Value>> items_;
  size_t index_;
};

// A {% macro %}: the definition plus the scope it was defined in. The scope is held weakly
// because it also holds the macro (a cycle otherwise); it outlives every call made while
// rendering.
class Macro : public Callable {
 public:
  Macro(const Stmt* def, std::weak_ptr<Scope> closure) : def_(def), closure_(std::move(closure)) {}
  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    auto scope = closure_.lock();
    if (!scope)
      return failed_precondition("macro '" + def_->name + "' was called after its scope ended");
    return interp.call_macro(*def_, std::move(scope), std::move(args));
  }
  std::string repr() const override { return "<Macro '" + def_->name + "'>"; }

 private:
  const Stmt* def_;
  std::weak_ptr<Scope> closure_;
};

}  // namespace

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent_.get())
    for (const auto& [k, v] : s->vars_)
      if (k == name) return &v;
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [k, v] : vars_)
    if (k == name) {
      v = std::move(value);
      return;
    }
  vars_.emplace_back(std::string(name), std::move(value));
}

namespace {

// Enters a child scope (or a given one) and restores the previous scope on exit.
class ScopeGuard {
 public:
  ScopeGuard(std::shared_ptr<Scope>* slot, std::shared_ptr<Scope> next)
      : slot_(slot), saved_(std::move(*slot)) {
    *slot_ = next ? std::move(next) : std::make_shared<Scope>(saved_);
  }
  ~ScopeGuard() { *slot_ = std::move(saved_); }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;

 private:
  std::shared_ptr<Scope>* slot_;
  std::shared_ptr<Scope> saved_;
};

}  // namespace

Result<std::string> Interpreter::render(const Body& body, std::shared_ptr<Scope> globals) {
  scope_ = std::make_shared<Scope>(std::move(globals));
  std::string out;
  auto flow = exec_body(body, &out);
  scope_.reset();
  if (flow.ok()) return out;
  if (raised_ || !error_pos_) return flow.status();
  return Status(flow.status().code(), "template error at line " + std::to_string(error_pos_->line) +
                                          ", column " + std::to_string(error_pos_->column) + ": " +
                                          flow.status().message());
}

Status Interpreter::raise(std::string message) {
  raised_ = true;
  return invalid_argument(std::move(message));
}

Status Interpreter::charge_steps(double n) {
  steps_ += n;
  if (steps_ > limits_.max_steps)
    return resource_exhausted("template exceeded " +
                              std::to_string(static_cast<int64_t>(limits_.max_steps)) +
                              " steps (loop iterations, macro calls and filtered items)");
  return ok_status();
}

Status Interpreter::charge_bytes(double n) {
  work_bytes_ += n;
  if (work_bytes_ > limits_.max_work_bytes)
    return resource_exhausted("template built more than " +
                              std::to_string(static_cast<int64_t>(limits_.max_work_bytes)) +
                              " bytes of text");
  return ok_status();
}

void Interpreter::note_error(SourcePos pos) {
  if (!error_pos_) error_pos_ = pos;
}

Status Interpreter::append(std::string* out, std::string_view text) {
  if (out->size() + text.size() > limits_.max_output_bytes)
    return resource_exhausted("rendered text exceeds " + std::to_string(limits_.max_output_bytes) +
                              " bytes");
  LS_RETURN_IF_ERROR(charge_bytes(static_cast<double>(text.size())));
  out->append(text);
  return ok_status();
}

Result<Interpreter::Flow> Interpreter::exec_body(const Body& body, std::string* out) {
  for (const auto& s : body) {
    LS_ASSIGN_OR_RETURN(Flow f, exec(*s, out));
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Result<Interpreter::Flow> Interpreter::exec(const Stmt& s, std::string* out) {
  auto run = [&]() -> Result<Flow> {
    switch (s.kind) {
      case StmtKind::kData:
        LS_RETURN_IF_ERROR(append(out, s.text));
        return Flow::kNormal;
      case StmtKind::kOutput: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
        LS_RETURN_IF_ERROR(append(out, python_str(v)));
        return Flow::kNormal;
      }
      case StmtKind::kIf:
        return exec_if(s, out);
      case StmtKind::kFor:
        return exec_for(s, out);
      case StmtKind::kSet: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
        LS_RETURN_IF_ERROR(assign(*s.target, std::move(v)));
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock:
      case StmtKind::kFilterBlock: {
        LS_ASSIGN_OR_RETURN(std::string text, capture(s.body));
        Value v = Value::string(std::move(text));
        if (s.expr) {
          LS_ASSIGN_OR_RETURN(v, apply_filter_chain(*s.expr, std::move(v)));
        }
        if (s.kind == StmtKind::kFilterBlock) {
          LS_RETURN_IF_ERROR(append(out, python_str(v)));
        } else {
          LS_RETURN_IF_ERROR(assign(*s.target, std::move(v)));
        }
        return Flow::kNormal;
      }
      case StmtKind::kMacro:
        scope_->set(s.name, Value::callable(std::make_shared<Macro>(&s, scope_)));
        return Flow::kNormal;
      case StmtKind::kWith: {
        std::vector<Value> values;  // evaluated in the enclosing scope, as jinja2 does
        for (const auto& [target, value] : s.assignments) {
          LS_ASSIGN_OR_RETURN(Value v, eval(*value));
          values.push_back(std::move(v));
        }
        ScopeGuard guard(&scope_, nullptr);
        for (size_t i = 0; i < values.size(); ++i)
          LS_RETURN_IF_ERROR(assign(*s.assignments[i].first, std::move(values[i])));
        return exec_body(s.body, out);
      }
      case StmtKind::kScope: {
        ScopeGuard guard(&scope_, nullptr);
        return exec_body(s.body, out);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
    }
    return internal_error("unknown statement");
  };
  auto r = run();
  if (!r.ok()) note_error(s.pos);
  return r;
}

Result<Interpreter::Flow> Interpreter::exec_if(const Stmt& s, std::string* out) {
  for (const auto& [test, body] : s.branches) {
    LS_ASSIGN_OR_RETURN(Value cond, eval(*test));
    if (cond.truthy()) return exec_body(body, out);
  }
  return exec_body(s.else_body, out);
}

Result<Interpreter::Flow> Interpreter::exec_for(const Stmt& s, std::string* out) {
  LS_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(iterable));
  if (s.condition) {  // `for x in xs if cond`: loop.* counts only the kept items
    LS_RETURN_IF_ERROR(charge_steps(static_cast<double>(items.size())));
    std::vector<Value> kept;
    for (Value& item : items) {
      ScopeGuard guard(&scope_, nullptr);
      LS_RETURN_IF_ERROR(assign(*s.target, item));
      LS_ASSIGN_OR_RETURN(Value keep, eval(*s.condition));
      if (keep.truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    ScopeGuard guard(&scope_, nullptr);
    LS_ASSIGN_OR_RETURN(Flow f, exec_body(s.else_body, out));
    (void)f;  // break/continue in a for-else have no loop of their own to leave
    return Flow::kNormal;
  }
  auto shared = std::make_shared<const std::vector<Value>>(std::move(items));
  for (size_t i = 0; i < shared->size(); ++i) {
    LS_RETURN_IF_ERROR(charge_steps(1));
    // Each iteration gets a fresh scope: a {% set %} inside does not survive the iteration.
    ScopeGuard guard(&scope_, nullptr);
    LS_RETURN_IF_ERROR(assign(*s.target, (*shared)[i]));
    scope_->set("loop", Value::object(std::make_shared<LoopContext>(shared, i)));
    LS_ASSIGN_OR_RETURN(Flow f, exec_body(s.body, out));
    if (f == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Result<std::string> Interpreter::capture(const Body& body) {
  ScopeGuard guard(&scope_, nullptr);
  std::string text;
  LS_ASSIGN_OR_RETURN(Flow f, exec_body(body, &text));
  if (f != Flow::kNormal)
    return unimplemented("break/continue inside a set or filter block is not supported");
  return text;
}

Status Interpreter::assign(const Expr& target, Value value) {
  if (target.kind == ExprKind::kName) {
    scope_->set(target.name, std::move(value));
    return ok_status();
  }
  if (target.kind == ExprKind::kNsRef) {
    const std::string& ns_name = target.children[0]->name;
    const Value* ns = scope_->find(ns_name);
    auto* obj = ns && ns->is_object() ? dynamic_cast<Namespace*>(&ns->as_object()) : nullptr;
    if (!obj) return invalid_argument("cannot assign attribute on non-namespace object");
    return obj->set(target.name, std::move(value));
  }
  // Tuple unpacking: `for k, v in d.items()`, `set a, b = 1, 2`.
  if (!value.is_string() && !value.is_sequence() && !value.is_dict() && !value.is_undefined())
    return invalid_argument("cannot unpack non-iterable " + python_type_name(value) + " object");
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(value));
  const size_t want = target.children.size();
  if (items.size() > want)
    return invalid_argument("too many values to unpack (expected " + std::to_string(want) + ")");
  if (items.size() < want)
    return invalid_argument("not enough values to unpack (expected " + std::to_string(want) +
                            ", got " + std::to_string(items.size()) + ")");
  for (size_t i = 0; i < want; ++i)
    LS_RETURN_IF_ERROR(assign(*target.children[i], std::move(items[i])));
  return ok_status();
}

Result<Value> Interpreter::call_macro(const Stmt& macro, std::shared_ptr<Scope> closure,
                                      CallArgs args) {
  if (call_depth_ >= limits_.max_call_depth)
    return resource_exhausted("macro calls nest deeper than " +
                              std::to_string(limits_.max_call_depth) + " (runaway recursion?)");
  LS_RETURN_IF_ERROR(charge_steps(1));
  const size_t n = macro.params.size();
  std::vector<std::optional<Value>> bound(n);
  const size_t given = std::min(n, args.positional.size());
  for (size_t i = 0; i < given; ++i) bound[i] = std::move(args.positional[i]);
  // jinja2 takes keywords only for parameters after the positional ones; the rest are
  // `kwargs` (when the body reads it) or an error.
  std::vector<std::pair<Value, Value>> extra_kwargs;
  for (auto& [key, value] : args.keyword) {
    bool used = false;
    for (size_t i = given; i < n && !used; ++i)
      if (macro.params[i] == key && !bound[i]) bound[i] = std::move(value), used = true;
    if (!used) extra_kwargs.emplace_back(Value::string(key), std::move(value));
  }
  if (!extra_kwargs.empty() && !macro.uses_kwargs)
    return invalid_argument("macro '" + macro.name + "' takes no keyword argument '" +
                            extra_kwargs[0].first.as_string() + "'");
  if (args.positional.size() > n && !macro.uses_varargs)
    return invalid_argument("macro '" + macro.name + "' takes not more than " + std::to_string(n) +
                            " argument(s)");

  ScopeGuard guard(&scope_, std::make_shared<Scope>(std::move(closure)));
  const size_t first_default = n - macro.defaults.size();
  for (size_t i = 0; i < n; ++i) {
    if (!bound[i]) {
      if (i >= first_default) {  // defaults see the parameters before them
        LS_ASSIGN_OR_RETURN(bound[i], eval(*macro.defaults[i - first_default]));
      } else {
        bound[i] = Value::undefined("parameter '" + macro.params[i] + "' was not provided");
      }
    }
    scope_->set(macro.params[i], std::move(*bound[i]));
  }
  if (macro.uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = n; i < args.positional.size(); ++i)
      rest.push_back(std::move(args.positional[i]));
    scope_->set("varargs", Value::tuple(std::move(rest)));
  }
  if (macro.uses_kwargs) scope_->set("kwargs", Value::dict(Dict(std::move(extra_kwargs))));

  ++call_depth_;
  std::string out;
  auto flow = exec_body(macro.body, &out);
  --call_depth_;
  if (!flow.ok()) return flow.status();
  return Value::string(std::move(out));
}

}  // namespace ls::jinja
