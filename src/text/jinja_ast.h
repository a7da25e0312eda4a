// The syntax tree of a parsed template: expressions and statements as jinja2's parser builds
// them (nodes.py), with filters and tests resolved to functions at parse time.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_lexer.h"
#include "text/jinja_value.h"

namespace ls::jinja {

// A filter: `input | name(args)`. A test: `input is name(args)`.
using FilterFn = Result<Value> (*)(Interpreter& interp, const Value& input, const CallArgs& args);
using TestFn = Result<bool> (*)(Interpreter& interp, const Value& input, const CallArgs& args);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  kConst,     // value
  kName,      // name
  kNsRef,     // name.attribute as an assignment target (`set ns.x = ...`)
  kList,      // [children...]
  kTuple,     // (children...)
  kDict,      // {children[0]: children[1], children[2]: children[3], ...}
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // start:stop:step as children[0..2], each null when left out
  kCall,      // children[0](call)
  kFilter,    // children[0] | name(call); children[0] is null in a filter block
  kTest,      // children[0] is name(call)
  kNeg,       // -children[0]
  kPos,       // +children[0]
  kNot,       // not children[0]
  kBinary,    // children[0] binary_op children[1]
  kCompare,   // children[0] compare_ops[0] children[1] compare_ops[1] children[2] ...
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kConcat,    // children[0] ~ children[1] ~ ...
  kCondExpr,  // children[1] if children[0] else children[2] (null: Undefined)
};

enum class BinaryOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

// Arguments as written at a call site: f(a, b, k=v, *rest, **more).
struct CallSpec {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *rest
  ExprPtr dyn_kwargs;  // **more
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  SourcePos pos;
  Value value;
  std::string name;
  std::vector<ExprPtr> children;
  CallSpec call;
  BinaryOp binary_op = BinaryOp::kAdd;
  std::vector<CompareOp> compare_ops;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind : uint8_t {
  kData,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (test, body)..., else_body
  kFor,          // for target in expr [if condition]: body, else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filter expr]: body captured as a string
  kMacro,        // macro name(params = defaults): body
  kFilterBlock,  // filter expr: body captured, then filtered
  kWith,         // with assignments: body in a new scope
  kBreak,
  kContinue,
  kScope,  // a body rendered in place ({% generation %} of transformers)
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr condition;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::pair<ExprPtr, ExprPtr>> assignments;  // kWith: target = value
  Body body;
  Body else_body;
  // kMacro: parameters, default expressions for the last defaults.size() of them, and whether
  // the body reads `varargs` / `kwargs` (which decides if extra arguments are accepted).
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;
  bool uses_varargs = false;
  bool uses_kwargs = false;
};

}  // namespace ls::jinja
