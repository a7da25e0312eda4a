// Value construction and Python's truthiness, equality and ordering rules.
#include "text/jinja_value.h"

#include <algorithm>

namespace ls::jinja {

namespace {

// Dicts up to this size are searched linearly; larger ones keep a string-key index.
constexpr size_t kIndexedDictSize = 8;

// long double holds every int64 and every double exactly on x86-64, so comparing in it is
// Python's exact int/float comparison.
long double exact(const Value& v) {
  if (v.is_integral()) return static_cast<long double>(v.as_int());
  return static_cast<long double>(v.as_double());
}

bool sequences_equal(const Sequence& a, const Sequence& b) {
  if (a.form != b.form) return false;
  if (a.form == SequenceForm::kIterator) return &a == &b;  // generators compare by identity
  if (a.items.size() != b.items.size()) return false;
  for (size_t i = 0; i < a.items.size(); ++i)
    if (!python_equal(a.items[i], b.items[i])) return false;
  return true;
}

bool dicts_equal(const Dict& a, const Dict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a.items()) {
    const Value* other = b.find(k);
    if (!other || !python_equal(v, *other)) return false;
  }
  return true;
}

const char* order_symbol(OrderOp op) {
  switch (op) {
    case OrderOp::kLt:
      return "<";
    case OrderOp::kLe:
      return "<=";
    case OrderOp::kGt:
      return ">";
    case OrderOp::kGe:
      return ">=";
  }
  return "?";
}

template <typename T>
bool apply_order(const T& a, const T& b, OrderOp op) {
  switch (op) {
    case OrderOp::kLt:
      return a < b;
    case OrderOp::kLe:
      return a <= b;
    case OrderOp::kGt:
      return a > b;
    case OrderOp::kGe:
      return a >= b;
  }
  return false;
}

}  // namespace

Value::Value() : v_(UndefinedBox{}) {}

Value Value::undefined(std::string message) {
  Value v;
  v.v_ = UndefinedBox{std::make_shared<const std::string>(std::move(message))};
  return v;
}

Value Value::none() {
  Value v;
  v.v_ = NoneTag{};
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.v_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.v_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.v_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.v_ = std::move(s);
  return v;
}

Value Value::sequence(SequenceForm form, std::vector<Value> items) {
  auto seq = std::make_shared<Sequence>();
  seq->form = form;
  for (const Value& item : items) {
    seq->depth = std::max(seq->depth, item.depth() + 1);
    seq->holds_objects = seq->holds_objects || item.holds_objects();
  }
  seq->items = std::move(items);
  Value v;
  v.v_ = SequencePtr(std::move(seq));
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.v_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.v_ = std::move(o);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.v_ = std::move(c);
  return v;
}

bool Value::is_list_like() const {
  if (!is_sequence()) return false;
  const SequenceForm f = as_sequence().form;
  return f == SequenceForm::kList || f == SequenceForm::kTuple;
}

const std::string& Value::undefined_message() const {
  static const std::string kEmpty;
  const auto& box = std::get<UndefinedBox>(v_);
  return box.message ? *box.message : kEmpty;
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return as_bool();
    case Kind::kInt:
      return as_int() != 0;
    case Kind::kFloat:
      return as_double() != 0.0;  // NaN is truthy, as in Python
    case Kind::kString:
      return !as_string().empty();
    case Kind::kSequence:
      return as_sequence().form == SequenceForm::kIterator || !as_sequence().items.empty();
    case Kind::kDict:
      return as_dict().size() > 0;
    case Kind::kObject:
      return as_object().truthy();
    case Kind::kCallable:
      return true;
  }
  return false;
}

int Value::depth() const {
  switch (kind()) {
    case Kind::kSequence:
      return as_sequence().depth;
    case Kind::kDict:
      return as_dict().depth();
    case Kind::kObject:
      return as_object().depth();
    case Kind::kCallable:
      return as_callable().depth();
    default:
      return 0;
  }
}

bool Value::holds_objects() const {
  switch (kind()) {
    case Kind::kSequence:
      return as_sequence().holds_objects;
    case Kind::kDict:
      return as_dict().holds_objects();
    case Kind::kObject:
    case Kind::kCallable:
      return true;
    default:
      return false;
  }
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::kSequence:
      return &as_sequence();
    case Kind::kDict:
      return &as_dict();
    case Kind::kObject:
      return &as_object();
    case Kind::kCallable:
      return &as_callable();
    default:
      return nullptr;
  }
}

Dict::Dict(std::vector<std::pair<Value, Value>> items) {
  std::unordered_map<std::string, size_t> index;
  items_.reserve(items.size());
  for (auto& [key, value] : items) {
    depth_ = std::max({depth_, key.depth() + 1, value.depth() + 1});
    holds_objects_ = holds_objects_ || key.holds_objects() || value.holds_objects();
    size_t existing = items_.size();
    if (key.is_string()) {
      auto it = index.find(key.as_string());
      if (it != index.end()) existing = it->second;
    } else {
      for (size_t i = 0; i < items_.size(); ++i)
        if (!items_[i].first.is_string() && python_equal(items_[i].first, key)) existing = i;
    }
    if (existing < items_.size()) {
      items_[existing].second = std::move(value);
      continue;
    }
    if (key.is_string()) index.emplace(key.as_string(), items_.size());
    items_.emplace_back(std::move(key), std::move(value));
  }
  if (items_.size() > kIndexedDictSize) string_index_ = std::move(index);
}

const Value* Dict::find(std::string_view key) const {
  if (items_.size() > kIndexedDictSize) {
    auto it = string_index_.find(std::string(key));
    return it == string_index_.end() ? nullptr : &items_[it->second].second;
  }
  for (const auto& [k, v] : items_)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : items_)
    if (!k.is_string() && python_equal(k, key)) return &v;
  return nullptr;
}

bool python_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return exact(a) == exact(b);
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone:
      return true;
    case K::kString:
      return a.as_string() == b.as_string();
    case K::kSequence:
      return sequences_equal(a.as_sequence(), b.as_sequence());
    case K::kDict:
      return dicts_equal(a.as_dict(), b.as_dict());
    default:
      return a.identity() == b.identity();
  }
}

Result<bool> python_order(const Value& a, const Value& b, OrderOp op) {
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    return invalid_argument(u.undefined_message().empty() ? "value is undefined"
                                                          : u.undefined_message());
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return apply_order(a.as_int(), b.as_int(), op);
    return apply_order(exact(a), exact(b), op);
  }
  if (a.is_string() && b.is_string()) return apply_order(a.as_string(), b.as_string(), op);
  if (a.is_list_like() && b.is_list_like() && a.as_sequence().form == b.as_sequence().form) {
    // Lexicographic, as Python: the first unequal pair decides, else the lengths.
    const auto& x = a.as_sequence().items;
    const auto& y = b.as_sequence().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!python_equal(x[i], y[i])) return python_order(x[i], y[i], op);
    return apply_order(x.size(), y.size(), op);
  }
  return invalid_argument(std::string("'") + order_symbol(op) +
                          "' not supported between instances of '" + python_type_name(a) +
                          "' and '" + python_type_name(b) + "'");
}

bool is_hashable(const Value& v) {
  if (!v.is_sequence()) return !v.is_dict();
  const Sequence& s = v.as_sequence();
  if (s.form == SequenceForm::kList) return false;
  if (s.form != SequenceForm::kTuple) return true;  // iterators hash by identity
  return std::all_of(s.items.begin(), s.items.end(), is_hashable);
}

std::string python_type_name(const Value& v) {
  using K = Value::Kind;
  switch (v.kind()) {
    case K::kUndefined:
      return "Undefined";
    case K::kNone:
      return "NoneType";
    case K::kBool:
      return "bool";
    case K::kInt:
      return "int";
    case K::kFloat:
      return "float";
    case K::kString:
      return "str";
    case K::kDict:
      return "dict";
    case K::kObject:
      return std::string(v.as_object().type_name());
    case K::kCallable:
      return "function";
    case K::kSequence:
      switch (v.as_sequence().form) {
        case SequenceForm::kList:
          return "list";
        case SequenceForm::kTuple:
          return "tuple";
        case SequenceForm::kIterator:
          return "generator";
        case SequenceForm::kDictKeys:
          return "dict_keys";
        case SequenceForm::kDictValues:
          return "dict_values";
        case SequenceForm::kDictItems:
          return "dict_items";
      }
  }
  return "object";
}

}  // namespace ls::jinja
