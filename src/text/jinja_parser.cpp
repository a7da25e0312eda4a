// Statement parsing ({% for %}, {% if %}, {% set %}, {% macro %}, ...) on top of the expression
// parser, then name resolution of filters and tests; mirrors jinja2's Parser (parser.py, 3.1).
#include "text/jinja_parser.h"

#include <initializer_list>

#include "text/jinja_expression_parser.h"
#include "text/jinja_filters.h"

namespace ls::jinja {

namespace {

class StatementParser : public ExpressionParser {
 public:
  using ExpressionParser::ExpressionParser;

  Result<Body> parse() {
    LS_ASSIGN_OR_RETURN(Body body, subparse({}));
    if (cur().kind != TK::kEof) return fail("unexpected " + shown(cur()));
    return body;
  }

 private:
  // Statements up to (not including) one of `ends`; leaves the end name current.
  static std::string end_list(std::initializer_list<std::string_view> ends) {
    std::string list;
    for (auto e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
    return list;
  }

  Result<Body> subparse(std::initializer_list<std::string_view> ends) {
    Nest nest(this);
    if (nest.too_deep()) return too_deep();
    // Remembers what closes the innermost block, for "unknown tag" messages.
    struct OpenBlock {
      OpenBlock(StatementParser* p, std::string ends) : p_(p) {
        p_->open_ends_.push_back(std::move(ends));
      }
      ~OpenBlock() { p_->open_ends_.pop_back(); }
      StatementParser* p_;
    } open(this, end_list(ends));
    Body body;
    while (cur().kind != TK::kEof) {
      const Token& tok = cur();
      if (tok.kind == TK::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->pos = tok.pos;
        s->text = tok.text;
        body.push_back(std::move(s));
        advance();
      } else if (tok.kind == TK::kVarBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = tok.pos;
        LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
        LS_RETURN_IF_ERROR(expect_kind(TK::kVarEnd, "'}}'"));
        body.push_back(std::move(s));
      } else if (tok.kind == TK::kBlockBegin) {
        advance();
        if (at_end_tag(ends)) return body;
        LS_RETURN_IF_ERROR(parse_statement(&body));
        LS_RETURN_IF_ERROR(expect_kind(TK::kBlockEnd, "'%}'"));
      } else {
        return fail("unexpected " + shown(tok));
      }
    }
    if (ends.size() > 0) return fail("unexpected end of template, expected " + end_list(ends));
    return body;
  }

  // `{% ... %}` body then the end tag `name`, consumed.
  Result<Body> parse_statements_until(std::initializer_list<std::string_view> ends, bool drop) {
    skip_op(":");
    LS_RETURN_IF_ERROR(expect_kind(TK::kBlockEnd, "'%}'"));
    LS_ASSIGN_OR_RETURN(Body body, subparse(ends));
    if (drop) advance();
    return body;
  }

  Status parse_statement(Body* out) {
    if (cur().kind != TK::kName) return fail("tag name expected, got " + shown(cur()));
    const std::string tag = cur().text;
    const SourcePos pos = cur().pos;
    auto s = std::make_unique<Stmt>();
    s->pos = pos;
    if (tag == "for") {
      LS_RETURN_IF_ERROR(parse_for(s.get()));
    } else if (tag == "if") {
      LS_RETURN_IF_ERROR(parse_if(s.get()));
    } else if (tag == "set") {
      LS_RETURN_IF_ERROR(parse_set(s.get()));
    } else if (tag == "macro") {
      LS_RETURN_IF_ERROR(parse_macro(s.get()));
    } else if (tag == "filter") {
      advance();
      s->kind = StmtKind::kFilterBlock;
      LS_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, true));
      LS_ASSIGN_OR_RETURN(s->body, parse_statements_until({"endfilter"}, true));
    } else if (tag == "with") {
      LS_RETURN_IF_ERROR(parse_with(s.get()));
    } else if (tag == "print") {
      advance();
      for (bool first = true; cur().kind != TK::kBlockEnd; first = false) {
        if (!first) LS_RETURN_IF_ERROR(expect_op(","));
        auto p = std::make_unique<Stmt>();
        p->kind = StmtKind::kOutput;
        p->pos = pos;
        LS_ASSIGN_OR_RETURN(p->expr, parse_expression(true));
        out->push_back(std::move(p));
      }
      return ok_status();
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return fail("'" + tag + "' outside of a loop");
      advance();
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
    } else if (tag == "generation") {  // transformers' assistant-mask tag: renders its body
      advance();
      s->kind = StmtKind::kScope;
      LS_ASSIGN_OR_RETURN(s->body, parse_statements_until({"endgeneration"}, true));
    } else if (tag == "include" || tag == "import" || tag == "from" || tag == "extends") {
      return fail("'" + tag + "' is not allowed: a chat template cannot read other files");
    } else if (tag == "block" || tag == "call" || tag == "autoescape" || tag == "do") {
      return fail("the '" + tag + "' tag is not supported in chat templates");
    } else {
      const std::string& open = open_ends_.back();
      return fail("unknown tag '" + tag + "'" + (open.empty() ? "" : ", expected " + open));
    }
    out->push_back(std::move(s));
    return ok_status();
  }

  Status parse_for(Stmt* s) {
    advance();
    s->kind = StmtKind::kFor;
    LS_ASSIGN_OR_RETURN(s->target, parse_assign_target(true, false, {"in"}, false));
    if (!skip_name("in")) return fail("expected 'in', got " + shown(cur()));
    LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, false, {"recursive"}, false));
    if (skip_name("if")) {
      LS_ASSIGN_OR_RETURN(s->condition, parse_expression(true));
    }
    if (is_name("recursive")) return fail("recursive loops are not supported");
    ++loop_depth_;
    auto body = parse_statements_until({"endfor", "else"}, false);
    --loop_depth_;
    if (!body.ok()) return body.status();
    s->body = std::move(body).value();
    const bool has_else = is_name("else");
    advance();
    if (has_else) {
      LS_ASSIGN_OR_RETURN(s->else_body, parse_statements_until({"endfor"}, true));
    }
    return ok_status();
  }

  Status parse_if(Stmt* s) {
    advance();
    s->kind = StmtKind::kIf;
    while (true) {
      LS_ASSIGN_OR_RETURN(ExprPtr test, parse_tuple(false, false, {}, false));
      LS_ASSIGN_OR_RETURN(Body body, parse_statements_until({"elif", "else", "endif"}, false));
      s->branches.emplace_back(std::move(test), std::move(body));
      const std::string end = cur().text;
      advance();
      if (end == "elif") continue;
      if (end == "else") {
        LS_ASSIGN_OR_RETURN(s->else_body, parse_statements_until({"endif"}, true));
      }
      return ok_status();
    }
  }

  Status parse_set(Stmt* s) {
    advance();
    LS_ASSIGN_OR_RETURN(s->target, parse_assign_target(true, false, {}, true));
    if (skip_op("=")) {
      s->kind = StmtKind::kSet;
      LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
      return ok_status();
    }
    s->kind = StmtKind::kSetBlock;
    LS_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, false));
    LS_ASSIGN_OR_RETURN(s->body, parse_statements_until({"endset"}, true));
    return ok_status();
  }

  Status parse_macro(Stmt* s) {
    advance();
    s->kind = StmtKind::kMacro;
    LS_ASSIGN_OR_RETURN(s->name, expect_name());
    LS_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!s->params.empty()) LS_RETURN_IF_ERROR(expect_op(","));
      LS_ASSIGN_OR_RETURN(std::string param, expect_name());
      if (skip_op("=")) {
        LS_ASSIGN_OR_RETURN(ExprPtr d, parse_expression(true));
        s->defaults.push_back(std::move(d));
      } else if (!s->defaults.empty()) {
        return fail("non-default argument follows default argument");
      }
      s->params.push_back(std::move(param));
    }
    advance();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot reach a loop outside the macro
    auto body = parse_statements_until({"endmacro"}, true);
    loop_depth_ = saved_loops;
    if (!body.ok()) return body.status();
    s->body = std::move(body).value();
    return ok_status();
  }

  Status parse_with(Stmt* s) {
    advance();
    s->kind = StmtKind::kWith;
    while (cur().kind != TK::kBlockEnd) {
      if (!s->assignments.empty()) LS_RETURN_IF_ERROR(expect_op(","));
      LS_ASSIGN_OR_RETURN(ExprPtr target, parse_assign_target(true, false, {}, false));
      LS_RETURN_IF_ERROR(expect_op("="));
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      s->assignments.emplace_back(std::move(target), std::move(value));
    }
    LS_ASSIGN_OR_RETURN(s->body, parse_statements_until({"endwith"}, true));
    return ok_status();
  }

  int loop_depth_ = 0;
  std::vector<std::string> open_ends_;
};

// Resolves filter and test names after parsing. jinja2 3.x reports an unknown name at
// compile time, except inside {% if %} and inline if/else, where only running it fails; the
// same split is kept by leaving those unresolved (the interpreter then fails when it runs).
// Also marks macros whose body reads `varargs` or `kwargs`.
class Resolver {
 public:
  Status body(Body& b, bool soft) {
    for (auto& s : b) LS_RETURN_IF_ERROR(stmt(*s, soft));
    return ok_status();
  }

 private:
  // Statement bodies of if/elif/else stay "soft"; the bodies of for, macro, set, with and
  // filter blocks are new scopes in jinja2 and are checked strictly again.
  Status stmt(Stmt& s, bool soft) {
    for (ExprPtr* e : {&s.expr, &s.target, &s.condition}) LS_RETURN_IF_ERROR(expr(e->get(), soft));
    for (auto& [test, b] : s.branches) {
      LS_RETURN_IF_ERROR(expr(test.get(), true));
      LS_RETURN_IF_ERROR(body(b, true));
    }
    for (auto& [t, v] : s.assignments) {
      LS_RETURN_IF_ERROR(expr(t.get(), soft));
      LS_RETURN_IF_ERROR(expr(v.get(), soft));
    }
    for (auto& d : s.defaults) LS_RETURN_IF_ERROR(expr(d.get(), soft));
    if (s.kind == StmtKind::kMacro) macros_.push_back(&s);
    LS_RETURN_IF_ERROR(body(s.body, false));
    LS_RETURN_IF_ERROR(body(s.else_body, s.kind == StmtKind::kIf));
    if (s.kind == StmtKind::kMacro) macros_.pop_back();
    return ok_status();
  }

  Status expr(Expr* e, bool soft) {
    if (!e) return ok_status();
    if (e->kind == ExprKind::kName && !macros_.empty()) {
      for (Stmt* m : macros_) {
        if (e->name == "varargs") m->uses_varargs = true;
        if (e->name == "kwargs") m->uses_kwargs = true;
      }
    }
    if (e->kind == ExprKind::kFilter) {
      e->filter = find_filter(e->name);
      if (!e->filter && !soft) return unknown(*e, "filter");
    }
    if (e->kind == ExprKind::kTest) {
      e->test = find_test(e->name);
      if (!e->test && !soft) return unknown(*e, "test");
    }
    const bool child_soft = soft || e->kind == ExprKind::kCondExpr;
    for (auto& c : e->children) LS_RETURN_IF_ERROR(expr(c.get(), child_soft));
    for (auto& a : e->call.args) LS_RETURN_IF_ERROR(expr(a.get(), child_soft));
    for (auto& [k, v] : e->call.kwargs) LS_RETURN_IF_ERROR(expr(v.get(), child_soft));
    LS_RETURN_IF_ERROR(expr(e->call.dyn_args.get(), child_soft));
    return expr(e->call.dyn_kwargs.get(), child_soft);
  }

  static Status unknown(const Expr& e, const char* what) {
    return invalid_argument("template syntax error at line " + std::to_string(e.pos.line) +
                            ", column " + std::to_string(e.pos.column) + ": no " + what +
                            " named '" + e.name + "'");
  }

  std::vector<Stmt*> macros_;
};

}  // namespace

Result<Body> parse_template(std::string_view source) {
  LS_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize_template(source));
  LS_ASSIGN_OR_RETURN(Body body, StatementParser(std::move(tokens)).parse());
  LS_RETURN_IF_ERROR(Resolver().body(body, false));
  return body;
}

}  // namespace ls::jinja
