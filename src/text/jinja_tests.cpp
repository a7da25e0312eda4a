// jinja2's tests (tests.py, 3.1): `x is defined`, `is mapping`, `is number` (True counts),
// `is iterable` (Undefined counts), comparison aliases, and the rest chat templates may use.
#include "text/jinja_access.h"
#include "text/jinja_filters.h"
#include "text/jinja_format.h"
#include "text/jinja_operators.h"
#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

using Args = const CallArgs&;

Result<bool> t_defined(Interpreter&, const Value& v, Args) {
  return !v.is_undefined();
}
Result<bool> t_undefined(Interpreter&, const Value& v, Args) {
  return v.is_undefined();
}
Result<bool> t_none(Interpreter&, const Value& v, Args) {
  return v.is_none();
}
Result<bool> t_boolean(Interpreter&, const Value& v, Args) {
  return v.is_bool();
}
Result<bool> t_true(Interpreter&, const Value& v, Args) {
  return v.is_bool() && v.as_bool();
}
Result<bool> t_false(Interpreter&, const Value& v, Args) {
  return v.is_bool() && !v.as_bool();
}
Result<bool> t_integer(Interpreter&, const Value& v, Args) {
  return v.is_int();
}
Result<bool> t_float(Interpreter&, const Value& v, Args) {
  return v.is_float();
}
Result<bool> t_number(Interpreter&, const Value& v, Args) {
  return v.is_number();
}
Result<bool> t_string(Interpreter&, const Value& v, Args) {
  return v.is_string();
}
Result<bool> t_mapping(Interpreter&, const Value& v, Args) {
  return v.is_dict();
}
Result<bool> t_escaped(Interpreter&, const Value&, Args) {
  return false;
}
Result<bool> t_callable(Interpreter&, const Value& v, Args) {
  // Undefined and LoopContext define __call__ in jinja2.
  return v.is_callable() || v.is_undefined() ||
         (v.is_object() && v.as_object().type_name() == "LoopContext");
}
Result<bool> t_iterable(Interpreter&, const Value& v, Args) {
  return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined() ||
         (v.is_object() && v.as_object().type_name() == "LoopContext");
}
Result<bool> t_sequence(Interpreter&, const Value& v, Args) {
  return v.is_string() || v.is_dict() || v.is_undefined() ||
         (v.is_sequence() && v.as_sequence().form != SequenceForm::kIterator &&
          v.as_sequence().form != SequenceForm::kDictKeys &&
          v.as_sequence().form != SequenceForm::kDictValues &&
          v.as_sequence().form != SequenceForm::kDictItems);
}
Result<bool> t_lower(Interpreter&, const Value& v, Args) {
  return python_str_test(python_str(v), "islower");
}
Result<bool> t_upper(Interpreter&, const Value& v, Args) {
  return python_str_test(python_str(v), "isupper");
}

Result<const Value*> one_arg(const char* test, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args(test, args, {"other"}, 1));
  return a[0];
}

Result<bool> t_eq(Interpreter&, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("eq", args));
  return python_equal(v, *o);
}
Result<bool> t_ne(Interpreter&, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("ne", args));
  return !python_equal(v, *o);
}
template <OrderOp kOp>
Result<bool> t_order(Interpreter&, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("comparison", args));
  return python_order(v, *o, kOp);
}
Result<bool> t_in(Interpreter&, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("in", args));
  return python_contains(*o, v);
}
Result<bool> t_sameas(Interpreter&, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("sameas", args));
  if (v.identity() || o->identity()) return v.identity() == o->identity();
  if (v.kind() != o->kind()) return false;
  // Python's singletons and small-int cache make these the "same object".
  if (v.is_none() || v.is_bool()) return python_equal(v, *o);
  if (v.is_int()) return v.as_int() == o->as_int() && v.as_int() >= -5 && v.as_int() <= 256;
  return false;
}

Result<bool> t_odd(Interpreter& interp, const Value& v, Args) {
  LS_ASSIGN_OR_RETURN(Value m, binary_op(interp, BinaryOp::kMod, v, Value::integer(2)));
  return python_equal(m, Value::integer(1));
}
Result<bool> t_even(Interpreter& interp, const Value& v, Args) {
  LS_ASSIGN_OR_RETURN(Value m, binary_op(interp, BinaryOp::kMod, v, Value::integer(2)));
  return python_equal(m, Value::integer(0));
}
Result<bool> t_divisibleby(Interpreter& interp, const Value& v, Args args) {
  LS_ASSIGN_OR_RETURN(const Value* o, one_arg("divisibleby", args));
  LS_ASSIGN_OR_RETURN(Value m, binary_op(interp, BinaryOp::kMod, v, *o));
  return python_equal(m, Value::integer(0));
}
Result<bool> t_filter(Interpreter&, const Value& v, Args) {
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}
Result<bool> t_test(Interpreter&, const Value& v, Args) {
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct NamedTest {
  std::string_view name;
  TestFn fn;
};

constexpr NamedTest kTests[] = {
    {"odd", t_odd},
    {"even", t_even},
    {"divisibleby", t_divisibleby},
    {"defined", t_defined},
    {"undefined", t_undefined},
    {"filter", t_filter},
    {"test", t_test},
    {"none", t_none},
    {"boolean", t_boolean},
    {"false", t_false},
    {"true", t_true},
    {"integer", t_integer},
    {"float", t_float},
    {"lower", t_lower},
    {"upper", t_upper},
    {"string", t_string},
    {"mapping", t_mapping},
    {"number", t_number},
    {"sequence", t_sequence},
    {"iterable", t_iterable},
    {"callable", t_callable},
    {"sameas", t_sameas},
    {"escaped", t_escaped},
    {"in", t_in},
    {"==", t_eq},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"!=", t_ne},
    {"ne", t_ne},
    {">", t_order<OrderOp::kGt>},
    {"gt", t_order<OrderOp::kGt>},
    {"greaterthan", t_order<OrderOp::kGt>},
    {">=", t_order<OrderOp::kGe>},
    {"ge", t_order<OrderOp::kGe>},
    {"<", t_order<OrderOp::kLt>},
    {"lt", t_order<OrderOp::kLt>},
    {"lessthan", t_order<OrderOp::kLt>},
    {"<=", t_order<OrderOp::kLe>},
    {"le", t_order<OrderOp::kLe>},
};

}  // namespace

TestFn find_test(std::string_view name) {
  for (const auto& t : kTests)
    if (t.name == name) return t.fn;
  return nullptr;
}

}  // namespace ls::jinja
