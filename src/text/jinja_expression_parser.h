// The token cursor and the expression half of the template parser: jinja2's expression grammar
// (parser.py, 3.1) method by method, so precedence and associativity match: filters bind tighter
// than +, `not` looser than comparisons, `is` tests take one bare argument.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja_ast.h"

namespace ls::jinja {

// Deepest nesting of expressions and blocks the parser accepts; keeps parsing and evaluation
// far from the stack limit (jinja2 itself stops near Python's recursion limit).
inline constexpr int kMaxSyntaxDepth = 100;

class ExpressionParser {
 public:
  explicit ExpressionParser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Result<ExprPtr> parse_assign_target(bool with_tuple, bool name_only,
                                      std::initializer_list<std::string_view> extra_end,
                                      bool with_namespace);
  Result<ExprPtr> parse_expression(bool with_condexpr);
  // An expression, or a tuple when commas separate several ("a, b" or "(a, b)").
  Result<ExprPtr> parse_tuple(bool simplified, bool with_condexpr,
                              std::initializer_list<std::string_view> extra_end,
                              bool explicit_parentheses);
  // `| name(args) | ...`; with start_inline the first filter has no leading pipe.
  Result<ExprPtr> parse_filter(ExprPtr node, bool start_inline);

 protected:
  using TK = Token::Kind;

  const Token& cur() const { return t_[i_]; }
  const Token& look() const { return t_[i_ + 1 < t_.size() ? i_ + 1 : i_]; }
  void advance();
  bool is_name(std::string_view v) const { return cur().kind == TK::kName && cur().text == v; }
  bool is_op(std::string_view v) const { return cur().kind == TK::kOperator && cur().text == v; }
  bool skip_name(std::string_view v);
  bool skip_op(std::string_view v);
  static std::string shown(const Token& t);
  Status fail(const std::string& message) const { return fail_at(cur().pos, message); }
  static Status fail_at(SourcePos p, const std::string& message);
  Status expect_op(std::string_view v);
  Status expect_kind(TK kind, const char* what);
  Result<std::string> expect_name();
  // Bounds recursion: every nesting construct enters one level.
  class Nest {
   public:
    explicit Nest(ExpressionParser* p) : p_(p) { ++p_->depth_; }
    ~Nest() { --p_->depth_; }
    bool too_deep() const { return p_->depth_ > kMaxSyntaxDepth; }

   private:
    ExpressionParser* p_;
  };
  Status too_deep() const;
  // True when the current token is the name of one of `ends` (an end tag or for's "in").
  bool at_end_tag(std::initializer_list<std::string_view> ends) const;

 private:
  static bool can_assign(const Expr& e);
  Result<ExprPtr> parse_condexpr();
  Result<ExprPtr> binary(ExprKind kind, SourcePos pos, ExprPtr left, ExprPtr right);
  Result<ExprPtr> parse_or();
  Result<ExprPtr> parse_and();
  Result<ExprPtr> parse_not();
  Result<ExprPtr> parse_compare();
  Result<ExprPtr> arith(SourcePos pos, BinaryOp op, ExprPtr left, ExprPtr right);
  Result<ExprPtr> parse_math1();
  Result<ExprPtr> parse_concat();
  Result<ExprPtr> parse_math2();
  Result<ExprPtr> parse_pow();
  Result<ExprPtr> parse_unary(bool with_filter);
  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_list_or_dict();
  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const;
  Result<ExprPtr> parse_postfix(ExprPtr node);
  Result<ExprPtr> parse_filter_expr(ExprPtr node);
  Result<ExprPtr> parse_subscript(ExprPtr node);
  // An index or a slice start:stop:step (each part optional).
  Result<ExprPtr> parse_subscribed();
  Status parse_call_args(CallSpec* call);
  Result<ExprPtr> parse_call(ExprPtr node);
  Result<std::string> dotted_name();
  Result<ExprPtr> parse_test(ExprPtr node);

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace ls::jinja
