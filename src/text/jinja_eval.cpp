// Expression evaluation: names, literals, attribute/item access, calls, filters, tests and
// operators, each with jinja2's behaviour for Undefined operands.
#include <cmath>

#include "text/jinja_access.h"
#include "text/jinja_filters.h"
#include "text/jinja_format.h"
#include "text/jinja_interpreter.h"
#include "text/jinja_operators.h"

namespace ls::jinja {

Status Interpreter::checked_depth(const Value& v) const {
  if (v.depth() > kMaxValueDepth)
    return invalid_argument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                            " levels");
  return ok_status();
}

Result<Value> Interpreter::eval(const Expr& e) {
  auto r = eval_inner(e);
  if (!r.ok()) note_error(e.pos);
  return r;
}

Result<Value> Interpreter::eval_inner(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.value;
    case ExprKind::kName: {
      if (const Value* v = scope_->find(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple:
      return eval_sequence(e);
    case ExprKind::kDict:
      return eval_dict(e);
    case ExprKind::kGetAttr: {
      LS_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0]));
      return get_attribute(obj, e.name);
    }
    case ExprKind::kGetItem:
      return eval_getitem(e);
    case ExprKind::kCall:
      return eval_call(e);
    case ExprKind::kFilter:
      return eval_filter(e);
    case ExprKind::kTest:
      return eval_test(e);
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.children[0]));
      return unary_op(v, e.kind == ExprKind::kNeg);
    }
    case ExprKind::kNot: {
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.children[0]));
      return Value::boolean(!v.truthy());
    }
    case ExprKind::kBinary: {
      LS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      LS_ASSIGN_OR_RETURN(Value b, eval(*e.children[1]));
      return binary_op(*this, e.binary_op, a, b);
    }
    case ExprKind::kCompare:
      return eval_compare(e);
    case ExprKind::kAnd:
    case ExprKind::kOr: {  // Python returns the deciding operand, not a bool
      LS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      if (a.truthy() == (e.kind == ExprKind::kOr)) return a;
      return eval(*e.children[1]);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& c : e.children) {
        LS_ASSIGN_OR_RETURN(Value v, eval(*c));
        out += python_str(v);
      }
      LS_RETURN_IF_ERROR(charge_bytes(static_cast<double>(out.size())));
      return Value::string(std::move(out));
    }
    case ExprKind::kCondExpr: {
      LS_ASSIGN_OR_RETURN(Value cond, eval(*e.children[0]));
      if (cond.truthy()) return eval(*e.children[1]);
      if (e.children[2]) return eval(*e.children[2]);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.pos.line) +
                              " evaluated to false and no else section was defined.");
    }
    case ExprKind::kSlice:
    case ExprKind::kNsRef:
      break;
  }
  return unimplemented("this expression is not supported here");
}

Result<Value> Interpreter::eval_sequence(const Expr& e) {
  std::vector<Value> items;
  items.reserve(e.children.size());
  for (const auto& c : e.children) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*c));
    items.push_back(std::move(v));
  }
  Value v =
      e.kind == ExprKind::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
  LS_RETURN_IF_ERROR(checked_depth(v));
  return v;
}

Result<Value> Interpreter::eval_dict(const Expr& e) {
  std::vector<std::pair<Value, Value>> items;
  for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
    LS_ASSIGN_OR_RETURN(Value k, eval(*e.children[i]));
    if (!is_hashable(k)) return invalid_argument("unhashable type: '" + python_type_name(k) + "'");
    LS_ASSIGN_OR_RETURN(Value v, eval(*e.children[i + 1]));
    items.emplace_back(std::move(k), std::move(v));
  }
  Value d = Value::dict(Dict(std::move(items)));
  LS_RETURN_IF_ERROR(checked_depth(d));
  return d;
}

Result<Value> Interpreter::eval_getitem(const Expr& e) {
  LS_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0]));
  const Expr& key = *e.children[1];
  if (key.kind != ExprKind::kSlice) {
    LS_ASSIGN_OR_RETURN(Value k, eval(key));
    return get_item(obj, k);
  }
  Value parts[3] = {Value::none(), Value::none(), Value::none()};
  for (int i = 0; i < 3; ++i) {
    if (key.children[i]) {
      LS_ASSIGN_OR_RETURN(parts[i], eval(*key.children[i]));
    }
  }
  return get_slice(obj, parts[0], parts[1], parts[2]);
}

Result<CallArgs> Interpreter::eval_args(const CallSpec& spec) {
  CallArgs args;
  for (const auto& a : spec.args) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*a));
    args.positional.push_back(std::move(v));
  }
  if (spec.dyn_args) {
    LS_ASSIGN_OR_RETURN(Value rest, eval(*spec.dyn_args));
    LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(rest));
    for (auto& v : items) args.positional.push_back(std::move(v));
  }
  for (const auto& [k, a] : spec.kwargs) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*a));
    args.keyword.emplace_back(k, std::move(v));
  }
  if (spec.dyn_kwargs) {
    LS_ASSIGN_OR_RETURN(Value more, eval(*spec.dyn_kwargs));
    if (!more.is_dict())
      return invalid_argument("argument after ** must be a mapping, not " + python_type_name(more));
    for (const auto& [k, v] : more.as_dict().items()) {
      if (!k.is_string()) return invalid_argument("keywords must be strings");
      args.keyword.emplace_back(k.as_string(), v);
    }
  }
  return args;
}

Result<Value> Interpreter::eval_call(const Expr& e) {
  LS_ASSIGN_OR_RETURN(Value fn, eval(*e.children[0]));
  LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e.call));
  if (fn.is_callable()) {
    LS_ASSIGN_OR_RETURN(Value result, fn.as_callable().call(*this, std::move(args)));
    LS_RETURN_IF_ERROR(checked_depth(result));
    return result;
  }
  if (fn.is_undefined()) return undefined_error(fn);
  return invalid_argument("'" + python_type_name(fn) + "' object is not callable");
}

Result<Value> Interpreter::eval_filter(const Expr& e) {
  Value input;
  if (e.children[0]) {
    LS_ASSIGN_OR_RETURN(input, eval(*e.children[0]));
  } else if (block_input_) {
    input = *block_input_;
  }
  if (!e.filter) return invalid_argument("no filter named '" + e.name + "' found");
  if (e.filter == refused_filter)
    return unimplemented("the '" + e.name + "' filter is not supported");
  LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e.call));
  return e.filter(*this, input, args);
}

Result<Value> Interpreter::apply_filter_chain(const Expr& filter, Value input) {
  const Value* saved = block_input_;
  block_input_ = &input;
  auto r = eval(filter);
  block_input_ = saved;
  return r;
}

Result<Value> Interpreter::eval_test(const Expr& e) {
  LS_ASSIGN_OR_RETURN(Value input, eval(*e.children[0]));
  if (!e.test) return invalid_argument("no test named '" + e.name + "' found");
  LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e.call));
  LS_ASSIGN_OR_RETURN(bool r, e.test(*this, input, args));
  return Value::boolean(r);
}

Result<Value> Interpreter::eval_compare(const Expr& e) {
  LS_ASSIGN_OR_RETURN(Value left, eval(*e.children[0]));
  for (size_t i = 0; i < e.compare_ops.size(); ++i) {
    LS_ASSIGN_OR_RETURN(Value right, eval(*e.children[i + 1]));
    bool ok = false;
    switch (e.compare_ops[i]) {
      case CompareOp::kEq:
        ok = python_equal(left, right);
        break;
      case CompareOp::kNe:
        ok = !python_equal(left, right);
        break;
      case CompareOp::kIn:
      case CompareOp::kNotIn: {
        LS_ASSIGN_OR_RETURN(bool in, python_contains(right, left));
        ok = in == (e.compare_ops[i] == CompareOp::kIn);
        break;
      }
      default: {
        const CompareOp op = e.compare_ops[i];
        const OrderOp order = op == CompareOp::kLt   ? OrderOp::kLt
                              : op == CompareOp::kLe ? OrderOp::kLe
                              : op == CompareOp::kGt ? OrderOp::kGt
                                                     : OrderOp::kGe;
        LS_ASSIGN_OR_RETURN(ok, python_order(left, right, order));
      }
    }
    if (!ok) return Value::boolean(false);  // chains stop at the first false, as in Python
    left = std::move(right);
  }
  return Value::boolean(true);
}

}  // namespace ls::jinja
