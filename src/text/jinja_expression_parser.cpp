// Expression parsing and token handling for the template parser; see jinja_expression_parser.h.
#include "text/jinja_expression_parser.h"

#include <utility>

namespace ls::jinja {

namespace {

using TK = Token::Kind;

const char* describe(const Token& t) {
  switch (t.kind) {
    case TK::kData:
      return "template data";
    case TK::kBlockBegin:
      return "'{%'";
    case TK::kBlockEnd:
      return "'%}'";
    case TK::kVarBegin:
      return "'{{'";
    case TK::kVarEnd:
      return "'}}'";
    case TK::kString:
      return "string";
    case TK::kInteger:
      return "integer";
    case TK::kFloat:
      return "float";
    case TK::kEof:
      return "end of template";
    default:
      return nullptr;  // names and operators are shown as written
  }
}

ExprPtr make_expr(ExprKind kind, SourcePos pos) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

}  // namespace

void ExpressionParser::advance() {
  if (i_ + 1 < t_.size()) ++i_;
}

bool ExpressionParser::skip_name(std::string_view v) {
  if (!is_name(v)) return false;
  advance();
  return true;
}

bool ExpressionParser::skip_op(std::string_view v) {
  if (!is_op(v)) return false;
  advance();
  return true;
}

std::string ExpressionParser::shown(const Token& t) {
  if (const char* d = describe(t)) return d;
  return "'" + t.text + "'";
}

Status ExpressionParser::fail_at(SourcePos p, const std::string& message) {
  return invalid_argument("template syntax error at line " + std::to_string(p.line) + ", column " +
                          std::to_string(p.column) + ": " + message);
}

Status ExpressionParser::expect_op(std::string_view v) {
  if (skip_op(v)) return ok_status();
  return fail("expected '" + std::string(v) + "', got " + shown(cur()));
}

Status ExpressionParser::expect_kind(TK kind, const char* what) {
  if (cur().kind != kind) return fail(std::string("expected ") + what + ", got " + shown(cur()));
  advance();
  return ok_status();
}

Result<std::string> ExpressionParser::expect_name() {
  if (cur().kind != TK::kName) return fail("expected a name, got " + shown(cur()));
  std::string v = cur().text;
  advance();
  return v;
}

Status ExpressionParser::too_deep() const {
  return fail("template nests deeper than " + std::to_string(kMaxSyntaxDepth) + " levels");
}

bool ExpressionParser::can_assign(const Expr& e) {
  if (e.kind == ExprKind::kName || e.kind == ExprKind::kNsRef) return true;
  if (e.kind != ExprKind::kTuple) return false;
  for (const auto& c : e.children)
    if (!can_assign(*c)) return false;
  return true;
}

Result<ExprPtr> ExpressionParser::parse_assign_target(
    bool with_tuple, bool name_only, std::initializer_list<std::string_view> extra_end,
    bool with_namespace) {
  const SourcePos pos = cur().pos;
  ExprPtr target;
  if (with_namespace && cur().kind == TK::kName && look().kind == TK::kOperator &&
      look().text == ".") {
    target = make_expr(ExprKind::kNsRef, pos);
    target->children.push_back(make_expr(ExprKind::kName, pos));
    target->children[0]->name = cur().text;
    advance();
    advance();
    LS_ASSIGN_OR_RETURN(target->name, expect_name());
  } else if (name_only) {
    target = make_expr(ExprKind::kName, pos);
    LS_ASSIGN_OR_RETURN(target->name, expect_name());
  } else if (with_tuple) {
    LS_ASSIGN_OR_RETURN(target, parse_tuple(true, true, extra_end, false));
  } else {
    LS_ASSIGN_OR_RETURN(target, parse_primary());
  }
  if (!can_assign(*target)) return fail_at(pos, "cannot assign to this expression");
  return target;
}

Result<ExprPtr> ExpressionParser::parse_expression(bool with_condexpr) {
  if (with_condexpr) return parse_condexpr();
  return parse_or();
}

Result<ExprPtr> ExpressionParser::parse_condexpr() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr expr1, parse_or());
  while (skip_name("if")) {
    Nest nest(this);
    if (nest.too_deep()) return too_deep();
    LS_ASSIGN_OR_RETURN(ExprPtr expr2, parse_or());
    ExprPtr expr3;
    if (skip_name("else")) {
      LS_ASSIGN_OR_RETURN(expr3, parse_condexpr());
    }
    auto e = make_expr(ExprKind::kCondExpr, pos);
    e->children.push_back(std::move(expr2));
    e->children.push_back(std::move(expr1));
    e->children.push_back(std::move(expr3));
    expr1 = std::move(e);
  }
  return expr1;
}

Result<ExprPtr> ExpressionParser::binary(ExprKind kind, SourcePos pos, ExprPtr left,
                                         ExprPtr right) {
  auto e = make_expr(kind, pos);
  e->children.push_back(std::move(left));
  e->children.push_back(std::move(right));
  return e;
}

Result<ExprPtr> ExpressionParser::parse_or() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
  while (skip_name("or")) {
    LS_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
    LS_ASSIGN_OR_RETURN(left, binary(ExprKind::kOr, pos, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_and() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
  while (skip_name("and")) {
    LS_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
    LS_ASSIGN_OR_RETURN(left, binary(ExprKind::kAnd, pos, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_not() {
  if (is_name("not")) {
    Nest nest(this);
    if (nest.too_deep()) return too_deep();
    auto e = make_expr(ExprKind::kNot, cur().pos);
    advance();
    LS_ASSIGN_OR_RETURN(ExprPtr inner, parse_not());
    e->children.push_back(std::move(inner));
    return e;
  }
  return parse_compare();
}

Result<ExprPtr> ExpressionParser::parse_compare() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
  std::vector<CompareOp> ops;
  std::vector<ExprPtr> operands;
  while (true) {
    CompareOp op;
    if (is_op("==")) {
      op = CompareOp::kEq;
    } else if (is_op("!=")) {
      op = CompareOp::kNe;
    } else if (is_op("<")) {
      op = CompareOp::kLt;
    } else if (is_op("<=")) {
      op = CompareOp::kLe;
    } else if (is_op(">")) {
      op = CompareOp::kGt;
    } else if (is_op(">=")) {
      op = CompareOp::kGe;
    } else if (is_name("in")) {
      op = CompareOp::kIn;
    } else if (is_name("not") && look().kind == TK::kName && look().text == "in") {
      advance();
      op = CompareOp::kNotIn;
    } else {
      break;
    }
    advance();
    LS_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
    ops.push_back(op);
    operands.push_back(std::move(rhs));
  }
  if (ops.empty()) return first;
  auto e = make_expr(ExprKind::kCompare, pos);
  e->children.push_back(std::move(first));
  for (auto& o : operands) e->children.push_back(std::move(o));
  e->compare_ops = std::move(ops);
  return e;
}

Result<ExprPtr> ExpressionParser::arith(SourcePos pos, BinaryOp op, ExprPtr left, ExprPtr right) {
  LS_ASSIGN_OR_RETURN(ExprPtr e, binary(ExprKind::kBinary, pos, std::move(left), std::move(right)));
  e->binary_op = op;
  return e;
}

Result<ExprPtr> ExpressionParser::parse_math1() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
  while (is_op("+") || is_op("-")) {
    const BinaryOp op = is_op("+") ? BinaryOp::kAdd : BinaryOp::kSub;
    advance();
    LS_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
    LS_ASSIGN_OR_RETURN(left, arith(pos, op, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_concat() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr first, parse_math2());
  if (!is_op("~")) return first;
  auto e = make_expr(ExprKind::kConcat, pos);
  e->children.push_back(std::move(first));
  while (skip_op("~")) {
    LS_ASSIGN_OR_RETURN(ExprPtr next, parse_math2());
    e->children.push_back(std::move(next));
  }
  return e;
}

Result<ExprPtr> ExpressionParser::parse_math2() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const BinaryOp op = is_op("*")    ? BinaryOp::kMul
                        : is_op("/")  ? BinaryOp::kDiv
                        : is_op("//") ? BinaryOp::kFloorDiv
                                      : BinaryOp::kMod;
    advance();
    LS_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
    LS_ASSIGN_OR_RETURN(left, arith(pos, op, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_pow() {
  const SourcePos pos = cur().pos;
  LS_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
  while (skip_op("**")) {
    LS_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
    LS_ASSIGN_OR_RETURN(left, arith(pos, BinaryOp::kPow, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_unary(bool with_filter) {
  Nest nest(this);
  if (nest.too_deep()) return too_deep();
  const SourcePos pos = cur().pos;
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    const ExprKind kind = is_op("-") ? ExprKind::kNeg : ExprKind::kPos;
    advance();
    node = make_expr(kind, pos);
    LS_ASSIGN_OR_RETURN(ExprPtr inner, parse_unary(false));
    node->children.push_back(std::move(inner));
  } else {
    LS_ASSIGN_OR_RETURN(node, parse_primary());
  }
  LS_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
  if (with_filter) return parse_filter_expr(std::move(node));
  return node;
}

Result<ExprPtr> ExpressionParser::parse_primary() {
  Nest nest(this);
  if (nest.too_deep()) return too_deep();
  const Token& tok = cur();
  const SourcePos pos = tok.pos;
  if (tok.kind == TK::kName) {
    ExprPtr e = make_expr(ExprKind::kConst, pos);
    if (tok.text == "true" || tok.text == "True") {
      e->value = Value::boolean(true);
    } else if (tok.text == "false" || tok.text == "False") {
      e->value = Value::boolean(false);
    } else if (tok.text == "none" || tok.text == "None") {
      e->value = Value::none();
    } else {
      e->kind = ExprKind::kName;
      e->name = tok.text;
    }
    advance();
    return e;
  }
  if (tok.kind == TK::kString) {
    std::string s;
    while (cur().kind == TK::kString) {  // adjacent literals join, as in Python
      s += cur().text;
      advance();
    }
    ExprPtr e = make_expr(ExprKind::kConst, pos);
    e->value = Value::string(std::move(s));
    return e;
  }
  if (tok.kind == TK::kInteger || tok.kind == TK::kFloat) {
    ExprPtr e = make_expr(ExprKind::kConst, pos);
    e->value =
        tok.kind == TK::kInteger ? Value::integer(tok.int_value) : Value::number(tok.float_value);
    advance();
    return e;
  }
  if (is_op("(")) {
    advance();
    LS_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(false, true, {}, true));
    LS_RETURN_IF_ERROR(expect_op(")"));
    return e;
  }
  if (is_op("[") || is_op("{")) return parse_list_or_dict();
  return fail("unexpected " + shown(tok));
}

Result<ExprPtr> ExpressionParser::parse_list_or_dict() {
  const bool is_list = is_op("[");
  const char* close = is_list ? "]" : "}";
  auto e = make_expr(is_list ? ExprKind::kList : ExprKind::kDict, cur().pos);
  advance();
  while (!is_op(close)) {
    if (!e->children.empty()) {
      LS_RETURN_IF_ERROR(expect_op(","));
      if (is_op(close)) break;
    }
    LS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
    e->children.push_back(std::move(item));
    if (!is_list) {
      LS_RETURN_IF_ERROR(expect_op(":"));
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      e->children.push_back(std::move(value));
    }
  }
  advance();
  return e;
}

bool ExpressionParser::is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
  if (cur().kind == TK::kVarEnd || cur().kind == TK::kBlockEnd || is_op(")")) return true;
  return at_end_tag(extra_end);
}

// An expression, or a tuple when commas separate several ("a, b" or "(a, b)").
Result<ExprPtr> ExpressionParser::parse_tuple(bool simplified, bool with_condexpr,
                                              std::initializer_list<std::string_view> extra_end,
                                              bool explicit_parentheses) {
  const SourcePos pos = cur().pos;
  std::vector<ExprPtr> args;
  bool is_tuple = false;
  while (true) {
    if (!args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    if (is_tuple_end(extra_end)) break;
    ExprPtr item;
    if (simplified) {
      LS_ASSIGN_OR_RETURN(item, parse_primary());
    } else {
      LS_ASSIGN_OR_RETURN(item, parse_expression(with_condexpr));
    }
    args.push_back(std::move(item));
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!args.empty()) return std::move(args[0]);
    if (!explicit_parentheses) return fail("expected an expression, got " + shown(cur()));
  }
  auto e = make_expr(ExprKind::kTuple, pos);
  e->children = std::move(args);
  return e;
}

Result<ExprPtr> ExpressionParser::parse_postfix(ExprPtr node) {
  while (true) {
    if (is_op(".") || is_op("[")) {
      LS_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
    } else if (is_op("(")) {
      LS_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
    } else {
      return node;
    }
  }
}

Result<ExprPtr> ExpressionParser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (is_op("|")) {
      LS_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), false));
    } else if (is_name("is")) {
      LS_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
    } else if (is_op("(")) {
      LS_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
    } else {
      return node;
    }
  }
}

Result<ExprPtr> ExpressionParser::parse_subscript(ExprPtr node) {
  const SourcePos pos = cur().pos;
  if (skip_op(".")) {
    const Token& attr = cur();
    if (attr.kind == TK::kName) {
      auto e = make_expr(ExprKind::kGetAttr, pos);
      e->name = attr.text;
      e->children.push_back(std::move(node));
      advance();
      return e;
    }
    if (attr.kind != TK::kInteger) return fail("expected name or number after '.'");
    auto e = make_expr(ExprKind::kGetItem, pos);
    e->children.push_back(std::move(node));
    e->children.push_back(make_expr(ExprKind::kConst, attr.pos));
    e->children[1]->value = Value::integer(attr.int_value);
    advance();
    return e;
  }
  advance();  // '['
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    LS_ASSIGN_OR_RETURN(ExprPtr a, parse_subscribed());
    args.push_back(std::move(a));
  }
  advance();
  auto e = make_expr(ExprKind::kGetItem, pos);
  e->children.push_back(std::move(node));
  if (args.size() == 1) {
    e->children.push_back(std::move(args[0]));
  } else {
    auto t = make_expr(ExprKind::kTuple, pos);
    t->children = std::move(args);
    e->children.push_back(std::move(t));
  }
  return e;
}

// An index or a slice start:stop:step (each part optional).
Result<ExprPtr> ExpressionParser::parse_subscribed() {
  const SourcePos pos = cur().pos;
  std::vector<ExprPtr> parts;
  if (skip_op(":")) {
    parts.push_back(nullptr);
  } else {
    LS_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(true));
    if (!skip_op(":")) return first;
    parts.push_back(std::move(first));
  }
  if (is_op(":") || is_op("]") || is_op(",")) {
    parts.push_back(nullptr);
  } else {
    LS_ASSIGN_OR_RETURN(ExprPtr stop, parse_expression(true));
    parts.push_back(std::move(stop));
  }
  if (skip_op(":") && !is_op("]") && !is_op(",")) {
    LS_ASSIGN_OR_RETURN(ExprPtr step, parse_expression(true));
    parts.push_back(std::move(step));
  } else {
    parts.push_back(nullptr);
  }
  auto e = make_expr(ExprKind::kSlice, pos);
  e->children = std::move(parts);
  return e;
}

Status ExpressionParser::parse_call_args(CallSpec* call) {
  LS_RETURN_IF_ERROR(expect_op("("));
  bool require_comma = false;
  while (!is_op(")")) {
    if (require_comma) {
      LS_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;  // trailing comma
    }
    const bool bad_order = call->dyn_args || call->dyn_kwargs;
    if (skip_op("*")) {
      if (bad_order) return fail("invalid syntax for function call expression");
      LS_ASSIGN_OR_RETURN(call->dyn_args, parse_expression(true));
    } else if (skip_op("**")) {
      if (call->dyn_kwargs) return fail("invalid syntax for function call expression");
      LS_ASSIGN_OR_RETURN(call->dyn_kwargs, parse_expression(true));
    } else if (cur().kind == TK::kName && look().kind == TK::kOperator && look().text == "=") {
      if (call->dyn_kwargs) return fail("invalid syntax for function call expression");
      std::string key = cur().text;
      advance();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      call->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (bad_order || !call->kwargs.empty())
        return fail("positional argument follows keyword argument");
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      call->args.push_back(std::move(value));
    }
    require_comma = true;
  }
  advance();
  return ok_status();
}

Result<ExprPtr> ExpressionParser::parse_call(ExprPtr node) {
  Nest nest(this);
  if (nest.too_deep()) return too_deep();
  auto e = make_expr(ExprKind::kCall, cur().pos);
  e->children.push_back(std::move(node));
  LS_RETURN_IF_ERROR(parse_call_args(&e->call));
  return e;
}

Result<std::string> ExpressionParser::dotted_name() {
  LS_ASSIGN_OR_RETURN(std::string name, expect_name());
  while (skip_op(".")) {
    LS_ASSIGN_OR_RETURN(std::string part, expect_name());
    name += "." + part;
  }
  return name;
}

// `| name(args) | ...`; with start_inline the first filter has no leading pipe.
Result<ExprPtr> ExpressionParser::parse_filter(ExprPtr node, bool start_inline) {
  while (is_op("|") || start_inline) {
    Nest nest(this);
    if (nest.too_deep()) return too_deep();
    if (!start_inline) advance();
    start_inline = false;
    auto e = make_expr(ExprKind::kFilter, cur().pos);
    LS_ASSIGN_OR_RETURN(e->name, dotted_name());
    if (is_op("(")) LS_RETURN_IF_ERROR(parse_call_args(&e->call));
    e->children.push_back(std::move(node));
    node = std::move(e);
  }
  return node;
}

Result<ExprPtr> ExpressionParser::parse_test(ExprPtr node) {
  const SourcePos pos = cur().pos;
  advance();  // 'is'
  const bool negated = skip_name("not");
  auto e = make_expr(ExprKind::kTest, pos);
  LS_ASSIGN_OR_RETURN(e->name, dotted_name());
  const TK k = cur().kind;
  if (is_op("(")) {
    LS_RETURN_IF_ERROR(parse_call_args(&e->call));
  } else if ((k == TK::kName || k == TK::kString || k == TK::kInteger || k == TK::kFloat ||
              is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) return fail("you cannot chain multiple tests with is");
    LS_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
    LS_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
    e->call.args.push_back(std::move(arg));
  }
  e->children.push_back(std::move(node));
  if (!negated) return e;
  auto n = make_expr(ExprKind::kNot, pos);
  n->children.push_back(std::move(e));
  return n;
}

bool ExpressionParser::at_end_tag(std::initializer_list<std::string_view> ends) const {
  for (auto e : ends)
    if (is_name(e)) return true;
  return false;
}

}  // namespace ls::jinja
