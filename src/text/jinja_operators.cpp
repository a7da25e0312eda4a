// Python numeric semantics over int64 and double: floor division and modulo take the
// divisor's sign, / is true division, ints that would outgrow 64 bits are an error (Python
// would switch to big ints, which no chat template needs).
#include "text/jinja_operators.h"

#include <cmath>

#include "text/jinja_access.h"
#include "text/jinja_interpreter.h"

namespace ls::jinja {

namespace {

const char* symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kFloorDiv:
      return "//";
    case BinaryOp::kMod:
      return "%";
    case BinaryOp::kPow:
      return "** or pow()";
  }
  return "?";
}

Status unsupported(BinaryOp op, const Value& a, const Value& b) {
  return invalid_argument(std::string("unsupported operand type(s) for ") + symbol(op) + ": '" +
                          python_type_name(a) + "' and '" + python_type_name(b) + "'");
}

Status overflow() {
  return invalid_argument("integer result does not fit in 64 bits");
}

// CPython's float_divmod, so -7.5 // 2 and -7.5 % 2 match to the last bit.
void float_divmod(double vx, double wx, double* floordiv, double* mod) {
  double m = std::fmod(vx, wx);
  double div = (vx - m) / wx;
  if (m != 0.0) {
    if ((wx < 0) != (m < 0)) {
      m += wx;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, wx);
  }
  double fd;
  if (div != 0.0) {
    fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = std::copysign(0.0, vx / wx);
  }
  *floordiv = fd;
  *mod = m;
}

Result<Value> int_power(int64_t base, int64_t exp) {
  if (exp < 0) {
    if (base == 0) return invalid_argument("0.0 cannot be raised to a negative power");
    return Value::number(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  }
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1)
      if (__builtin_mul_overflow(result, base, &result)) return overflow();
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return overflow();
  }
  return Value::integer(result);
}

Result<Value> integer_op(BinaryOp op, int64_t x, int64_t y) {
  int64_t r = 0;
  switch (op) {
    case BinaryOp::kAdd:
      if (__builtin_add_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case BinaryOp::kSub:
      if (__builtin_sub_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case BinaryOp::kMul:
      if (__builtin_mul_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case BinaryOp::kDiv:
      if (y == 0) return invalid_argument("division by zero");
      return Value::number(static_cast<double>(x) / static_cast<double>(y));
    case BinaryOp::kFloorDiv:
    case BinaryOp::kMod: {
      if (y == 0) return invalid_argument("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == BinaryOp::kMod) return Value::integer(0);
        return overflow();
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        m += y;
        q -= 1;
      }
      return Value::integer(op == BinaryOp::kMod ? m : q);
    }
    case BinaryOp::kPow:
      return int_power(x, y);
  }
  return internal_error("unknown operator");
}

Result<Value> float_op(BinaryOp op, double x, double y) {
  switch (op) {
    case BinaryOp::kAdd:
      return Value::number(x + y);
    case BinaryOp::kSub:
      return Value::number(x - y);
    case BinaryOp::kMul:
      return Value::number(x * y);
    case BinaryOp::kDiv:
      if (y == 0.0) return invalid_argument("float division by zero");
      return Value::number(x / y);
    case BinaryOp::kFloorDiv:
    case BinaryOp::kMod: {
      if (y == 0.0)
        return invalid_argument(op == BinaryOp::kMod ? "float modulo"
                                                     : "float floor division by zero");
      double fd = 0, m = 0;
      float_divmod(x, y, &fd, &m);
      return Value::number(op == BinaryOp::kMod ? m : fd);
    }
    case BinaryOp::kPow: {
      if (x == 0.0 && y < 0.0) return invalid_argument("0.0 cannot be raised to a negative power");
      if (x < 0.0 && y != std::floor(y))
        return invalid_argument("complex results are not supported");
      const double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y))
        return invalid_argument("(34, 'Numerical result out of range')");
      return Value::number(r);
    }
  }
  return internal_error("unknown operator");
}

Result<Value> repeat(Interpreter& interp, const Value& seq, int64_t times) {
  if (times <= 0) {
    if (seq.is_string()) return Value::string("");
    return Value::sequence(seq.as_sequence().form, {});
  }
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    LS_RETURN_IF_ERROR(
        interp.charge_bytes(static_cast<double>(s.size()) * static_cast<double>(times)));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value::string(std::move(out));
  }
  const auto& items = seq.as_sequence().items;
  LS_RETURN_IF_ERROR(
      interp.charge_steps(static_cast<double>(items.size()) * static_cast<double>(times)));
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::sequence(seq.as_sequence().form, std::move(out));
}

}  // namespace

Result<Value> binary_op(Interpreter& interp, BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return integer_op(op, a.as_int(), b.as_int());
    return float_op(op, a.as_double(), b.as_double());
  }
  if (op == BinaryOp::kAdd) {
    if (a.is_string() && b.is_string()) {
      LS_RETURN_IF_ERROR(
          interp.charge_bytes(static_cast<double>(a.as_string().size() + b.as_string().size())));
      return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_list_like() && b.is_list_like() && a.as_sequence().form == b.as_sequence().form) {
      const auto& x = a.as_sequence().items;
      const auto& y = b.as_sequence().items;
      LS_RETURN_IF_ERROR(interp.charge_steps(static_cast<double>(x.size() + y.size())));
      std::vector<Value> out(x);
      out.insert(out.end(), y.begin(), y.end());
      return Value::sequence(a.as_sequence().form, std::move(out));
    }
    if (a.is_string() || a.is_list_like())
      return invalid_argument("can only concatenate " + python_type_name(a) + " (not \"" +
                              python_type_name(b) + "\") to " + python_type_name(a));
  }
  if (op == BinaryOp::kMul) {
    if ((a.is_string() || a.is_list_like()) && b.is_integral())
      return repeat(interp, a, b.as_int());
    if ((b.is_string() || b.is_list_like()) && a.is_integral())
      return repeat(interp, b, a.as_int());
  }
  if (op == BinaryOp::kMod && a.is_string())
    return invalid_argument("printf-style string formatting ('...' % args) is not supported");
  return unsupported(op, a, b);
}

Result<Value> unary_op(const Value& v, bool negate) {
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_float()) return Value::number(negate ? -v.as_double() : v.as_double());
  if (v.is_integral()) {
    if (!negate) return Value::integer(v.as_int());
    if (v.as_int() == INT64_MIN) return overflow();
    return Value::integer(-v.as_int());
  }
  return invalid_argument(std::string("bad operand type for unary ") + (negate ? "-" : "+") +
                          ": '" + python_type_name(v) + "'");
}

Result<bool> python_contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string())
        return invalid_argument("'in <string>' requires string as left operand, not " +
                                python_type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kDict:
      if (!is_hashable(item))
        return invalid_argument("unhashable type: '" + python_type_name(item) + "'");
      return container.as_dict().find(item) != nullptr;
    case Value::Kind::kSequence:
      for (const Value& v : container.as_sequence().items)
        if (python_equal(v, item)) return true;
      return false;
    default:
      return invalid_argument("argument of type '" + python_type_name(container) +
                              "' is not iterable");
  }
}

}  // namespace ls::jinja
