// Python's arithmetic, unary and membership operators on template values, with Python's
// results (7 // -2 == -4, 1 / 2 == 0.5, 'ab' * 2) and errors for what Python refuses.
#pragma once

#include "text/jinja_ast.h"

namespace ls::jinja {

// a op b. String and list results count against the render's work budget.
Result<Value> binary_op(Interpreter& interp, BinaryOp op, const Value& a, const Value& b);
// -v (negate) or +v.
Result<Value> unary_op(const Value& v, bool negate);
// `item in container`.
Result<bool> python_contains(const Value& container, const Value& item);

}  // namespace ls::jinja
