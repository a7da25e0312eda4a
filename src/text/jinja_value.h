// The values a chat template computes with, modelled on the Python objects jinja2 passes around
// (Undefined, None, bool, int, float, str, list, tuple, dict, namespace, callables) so that
// truthiness, equality and ordering come out as Python's. Containers are immutable and shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"

namespace ls::jinja {

class Value;
class Interpreter;

// Deepest nesting of lists, dicts and namespaces a render may build or receive. Every
// recursive walk (repr, tojson, ==, destruction) is bounded by it, far below the stack limit.
inline constexpr int kMaxValueDepth = 200;

class Dict;
class Object;
class Callable;
struct Sequence;

// How a sequence behaves and prints: list, tuple, the iterator-like results of filters
// (select, map, ...; Python cannot index them or take their len(), and they are always truthy)
// and the dict views keys()/values()/items().
enum class SequenceForm : uint8_t { kList, kTuple, kIterator, kDictKeys, kDictValues, kDictItems };

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kSequence,
    kDict,
    kObject,
    kCallable,
  };

  // jinja2's Undefined: a missing variable, attribute or item. It renders as "" and is falsy;
  // most other uses fail with its message ("'dict object' has no attribute 'x'", or the
  // sandbox's "access to attribute 'append' of 'list' object is unsafe.").
  Value();  // Undefined with no message
  static Value undefined(std::string message);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value sequence(SequenceForm form, std::vector<Value> items);
  static Value list(std::vector<Value> items) {
    return sequence(SequenceForm::kList, std::move(items));
  }
  static Value tuple(std::vector<Value> items) {
    return sequence(SequenceForm::kTuple, std::move(items));
  }
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);
  static Value callable(std::shared_ptr<const Callable> c);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_sequence() const { return kind() == Kind::kSequence; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_object() const { return kind() == Kind::kObject; }
  bool is_callable() const { return kind() == Kind::kCallable; }
  // Python's int includes bool; its numbers include both and float.
  bool is_integral() const { return is_int() || is_bool(); }
  bool is_number() const { return is_integral() || is_float(); }
  // A list or tuple (indexable, has len); iterators and dict views are not.
  bool is_list_like() const;

  const std::string& undefined_message() const;
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;    // int or bool
  double as_double() const;  // any number
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Sequence& as_sequence() const { return *std::get<SequencePtr>(v_); }
  const Dict& as_dict() const { return *std::get<DictPtr>(v_); }
  Object& as_object() const { return *std::get<ObjectPtr>(v_); }
  const std::shared_ptr<Object>& object_ptr() const { return std::get<ObjectPtr>(v_); }
  const Callable& as_callable() const { return *std::get<CallablePtr>(v_); }

  // Python's bool(x).
  bool truthy() const;
  // Nesting depth: 0 for scalars.
  int depth() const;
  // True for namespaces, callables and containers holding them: values that may refer back
  // to a namespace and so must not be stored inside one (no reference cycles).
  bool holds_objects() const;
  // Identity of a shared container or object, for `is sameas`.
  const void* identity() const;

 private:
  struct UndefinedBox {
    std::shared_ptr<const std::string> message;
  };
  struct NoneTag {};
  using SequencePtr = std::shared_ptr<const Sequence>;
  using DictPtr = std::shared_ptr<const Dict>;
  using ObjectPtr = std::shared_ptr<Object>;
  using CallablePtr = std::shared_ptr<const Callable>;
  // Order matches Kind.
  std::variant<UndefinedBox, NoneTag, bool, int64_t, double, std::string, SequencePtr, DictPtr,
               ObjectPtr, CallablePtr>
      v_;
};

struct Sequence {
  SequenceForm form = SequenceForm::kList;
  std::vector<Value> items;
  int depth = 1;               // 1 + the deepest item
  bool holds_objects = false;  // some item is (or holds) a namespace or a callable
};

// A Python dict: insertion-ordered, keys compared as Python hashes them (1 == 1.0 == True).
class Dict {
 public:
  Dict() = default;
  // Later pairs whose key equals an earlier one replace its value and keep its position.
  explicit Dict(std::vector<std::pair<Value, Value>> items);
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  int depth() const { return depth_; }
  bool holds_objects() const { return holds_objects_; }

 private:
  std::vector<std::pair<Value, Value>> items_;
  // Index of the string keys, built only for larger dicts where a linear scan would cost.
  std::unordered_map<std::string, size_t> string_index_;
  int depth_ = 1;
  bool holds_objects_ = false;
};

// Objects with attributes: jinja2's namespace() and the `loop` variable.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string_view type_name() const = 0;
  // The attribute, or Undefined when there is none.
  virtual Value attribute(std::string_view name) const = 0;
  virtual std::string repr() const = 0;
  virtual bool truthy() const { return true; }
  // Nesting depth of the values it holds, +1.
  virtual int depth() const { return 1; }
};

// Arguments of a call: positional ones, then keyword ones in call order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Macros, global functions (range, namespace, raise_exception, ...) and bound methods.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual Result<Value> call(Interpreter& interp, CallArgs args) const = 0;
  virtual std::string repr() const = 0;
  virtual int depth() const { return 1; }
};

// Python's ==, with jinja2's Undefined == Undefined.
bool python_equal(const Value& a, const Value& b);
enum class OrderOp : uint8_t { kLt, kLe, kGt, kGe };
// Python's <, <=, > and >=; an error for types Python cannot order ("'<' not supported between
// instances of 'str' and 'int'") and for Undefined operands.
Result<bool> python_order(const Value& a, const Value& b, OrderOp op);
// Whether Python could use the value as a dict key.
bool is_hashable(const Value& v);
// Python's type name: str, int, list, dict, NoneType, Undefined, ...
std::string python_type_name(const Value& v);

}  // namespace ls::jinja
