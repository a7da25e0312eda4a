// Runs a parsed template: jinja2's scoping (a for-loop iteration, macro call and block set
// each get their own scope; if does not), loop variables, macros, break/continue, and the
// bounds that keep a hostile template from running away.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja_ast.h"

namespace ls::jinja {

// Bounds on one render. Templates come from users' model directories, so each has a clear
// error instead of running for ever or exhausting memory.
struct JinjaLimits {
  size_t max_output_bytes = size_t{64} << 20;  // the rendered text, and any captured block
  double max_steps = 1e7;       // loop iterations + macro calls + items walked by filters
  double max_work_bytes = 1e9;  // bytes of strings built by operators and filters
  int max_call_depth = 100;     // nested macro calls (recursion)
};

// Variables visible at one point: a chain of scopes ending at the globals.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> vars_;  // a handful per scope: a linear scan
};

class Interpreter {
 public:
  explicit Interpreter(const JinjaLimits& limits) : limits_(limits) {}

  // Renders `body` with `globals` as the outermost scope. Errors name the line and column of
  // the failing expression; raise_exception's message comes back unchanged.
  Result<std::string> render(const Body& body, std::shared_ptr<Scope> globals);

  // Used by callables and filters.
  Result<Value> call_macro(const Stmt& macro, std::shared_ptr<Scope> closure, CallArgs args);
  Status charge_steps(double n);
  Status charge_bytes(double n);
  // raise_exception: the render fails with exactly `message`.
  Status raise(std::string message);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Result<Flow> exec_body(const Body& body, std::string* out);
  Result<Flow> exec(const Stmt& s, std::string* out);
  Result<Flow> exec_if(const Stmt& s, std::string* out);
  Result<Flow> exec_for(const Stmt& s, std::string* out);
  Result<std::string> capture(const Body& body);
  Status append(std::string* out, std::string_view text);
  Status assign(const Expr& target, Value value);

  Result<Value> eval(const Expr& e);
  Result<Value> eval_inner(const Expr& e);
  Result<Value> eval_sequence(const Expr& e);
  Result<Value> eval_dict(const Expr& e);
  Result<Value> eval_getitem(const Expr& e);
  Result<Value> eval_call(const Expr& e);
  Result<CallArgs> eval_args(const CallSpec& spec);
  Result<Value> eval_filter(const Expr& e);
  Result<Value> eval_test(const Expr& e);
  Result<Value> eval_compare(const Expr& e);
  Result<Value> apply_filter_chain(const Expr& filter, Value input);
  Status checked_depth(const Value& v) const;
  void note_error(SourcePos pos);

  JinjaLimits limits_;
  std::shared_ptr<Scope> scope_;
  const Value* block_input_ = nullptr;  // the captured text a filter block's filters start from
  double steps_ = 0;
  double work_bytes_ = 0;
  int call_depth_ = 0;
  std::optional<SourcePos> error_pos_;  // the innermost failing node
  bool raised_ = false;
};

}  // namespace ls::jinja
