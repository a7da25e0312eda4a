// Status, Result<T>, with_context and the early-return macros LS_RETURN_IF_ERROR and
// LS_ASSIGN_OR_RETURN (evaluation count, move-only values, use in Status- and Result-returning
// functions, several uses in one function).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace ls {
namespace {

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_TRUE(ok_status().ok());
  EXPECT_EQ(ok_status().code(), StatusCode::kOk);
}

TEST(Status, FactoriesSetCodeAndMessage) {
  struct Case {
    Status s;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {invalid_argument("m1"), StatusCode::kInvalidArgument},
      {not_found("m2"), StatusCode::kNotFound},
      {data_loss("m3"), StatusCode::kDataLoss},
      {unimplemented("m4"), StatusCode::kUnimplemented},
      {resource_exhausted("m5"), StatusCode::kResourceExhausted},
      {failed_precondition("m6"), StatusCode::kFailedPrecondition},
      {internal_error("m7"), StatusCode::kInternal},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_FALSE(cases[i].s.ok()) << i;
    EXPECT_EQ(cases[i].s.code(), cases[i].code) << i;
    EXPECT_EQ(cases[i].s.message(), "m" + std::to_string(i + 1));
  }
  Status direct(StatusCode::kDataLoss, "truncated");
  EXPECT_FALSE(direct.ok());
  EXPECT_EQ(direct.code(), StatusCode::kDataLoss);
  EXPECT_EQ(direct.message(), "truncated");
}

TEST(Status, WithContextPrefixesAndKeepsCode) {
  Status s = not_found("tensor x missing");
  Status c = s.with_context("model.safetensors");
  EXPECT_EQ(c.code(), StatusCode::kNotFound);
  EXPECT_EQ(c.message(), "model.safetensors: tensor x missing");
  EXPECT_EQ(s.message(), "tensor x missing") << "with_context must not modify the original";
  Status cc = c.with_context("/models/demo");
  EXPECT_EQ(cc.message(), "/models/demo: model.safetensors: tensor x missing");
  EXPECT_EQ(cc.code(), StatusCode::kNotFound);
}

TEST(Status, WithContextOnOkStaysOkAndEmpty) {
  Status c = ok_status().with_context("file.json");
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c.message(), "");
}

TEST(Result, HoldsValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  r.value() = 7;
  EXPECT_EQ(r.value(), 7);
  const Result<int>& cr = r;
  EXPECT_EQ(cr.value(), 7);

  Result<std::string> s = std::string("hello");
  EXPECT_EQ(s->size(), 5u);
  const Result<std::string>& cs = s;
  EXPECT_EQ(cs->substr(1, 2), "el");
}

TEST(Result, HoldsError) {
  Result<int> r = invalid_argument("bad flag");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "bad flag");
}

TEST(Result, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(9);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 9);
}

TEST(ResultDeathTest, ValueOfErrorAndResultFromOkStatusAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Result<int> r = not_found("x");
        (void)r.value();
      },
      "invariant broken");
  EXPECT_DEATH({ Result<int> r = ok_status(); }, "invariant broken");
}

// ---- macros ----

Status step(bool fail, int* counter, const std::string& name) {
  ++*counter;
  if (fail) return data_loss(name + " failed");
  return ok_status();
}

Status three_steps(int fail_at, int* counter) {
  LS_RETURN_IF_ERROR(step(fail_at == 1, counter, "one"));
  LS_RETURN_IF_ERROR(step(fail_at == 2, counter, "two"));
  LS_RETURN_IF_ERROR(step(fail_at == 3, counter, "three"));
  return ok_status();
}

TEST(Macros, ReturnIfErrorStopsAtFirstFailure) {
  for (int fail_at = 0; fail_at <= 3; ++fail_at) {
    int counter = 0;
    Status s = three_steps(fail_at, &counter);
    if (fail_at == 0) {
      EXPECT_TRUE(s.ok());
      EXPECT_EQ(counter, 3);
    } else {
      EXPECT_FALSE(s.ok());
      EXPECT_EQ(s.code(), StatusCode::kDataLoss);
      EXPECT_EQ(counter, fail_at) << "steps after the failure must not run";
      const char* names[] = {"", "one", "two", "three"};
      EXPECT_EQ(s.message(), std::string(names[fail_at]) + " failed");
    }
  }
}

Result<int> parse_positive(int x, int* calls) {
  ++*calls;
  if (x <= 0) return invalid_argument("not positive: " + std::to_string(x));
  return x;
}

Result<int> sum_two(int a, int b, int* calls) {
  LS_ASSIGN_OR_RETURN(int va, parse_positive(a, calls));
  LS_ASSIGN_OR_RETURN(const int vb, parse_positive(b, calls));  // second use, same scope
  return va + vb;
}

TEST(Macros, AssignOrReturnBindsOrPropagates) {
  int calls = 0;
  Result<int> ok = sum_two(2, 5, &calls);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), 7);
  EXPECT_EQ(calls, 2) << "each expression is evaluated exactly once";

  calls = 0;
  Result<int> first_bad = sum_two(-1, 5, &calls);
  EXPECT_FALSE(first_bad.ok());
  EXPECT_EQ(first_bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(first_bad.status().message(), "not positive: -1");
  EXPECT_EQ(calls, 1);

  calls = 0;
  Result<int> second_bad = sum_two(3, 0, &calls);
  EXPECT_FALSE(second_bad.ok());
  EXPECT_EQ(second_bad.status().message(), "not positive: 0");
  EXPECT_EQ(calls, 2);
}

Result<std::unique_ptr<std::string>> make_name(bool fail) {
  if (fail) return resource_exhausted("no memory");
  return std::make_unique<std::string>("adapter");
}

Status use_name(bool fail, std::string* out) {
  std::unique_ptr<std::string> existing;
  LS_ASSIGN_OR_RETURN(existing, make_name(fail));  // assigns to an existing variable
  LS_ASSIGN_OR_RETURN(auto again, make_name(false));
  *out = *existing + "/" + *again;
  return ok_status();
}

TEST(Macros, AssignOrReturnWithMoveOnlyValuesInStatusFunction) {
  std::string out;
  Status s = use_name(false, &out);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(out, "adapter/adapter");

  out = "untouched";
  Status f = use_name(true, &out);
  EXPECT_EQ(f.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(f.message(), "no memory");
  EXPECT_EQ(out, "untouched");
}

Result<std::string> load_with_context(bool fail) {
  int counter = 0;
  LS_RETURN_IF_ERROR(step(fail, &counter, "read").with_context("config.json"));
  return std::string("loaded");
}

TEST(Macros, ReturnIfErrorInResultFunctionKeepsContext) {
  Result<std::string> ok = load_with_context(false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), "loaded");
  Result<std::string> bad = load_with_context(true);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(bad.status().message(), "config.json: read failed");
}

TEST(Macros, UsableAsSingleStatementInIfElse) {
  auto f = [](bool a, bool b) -> Status {
    int counter = 0;
    if (a)
      LS_RETURN_IF_ERROR(step(b, &counter, "x"));
    else
      return not_found("else branch");
    return ok_status();
  };
  EXPECT_TRUE(f(true, false).ok());
  EXPECT_EQ(f(true, true).code(), StatusCode::kDataLoss);
  EXPECT_EQ(f(false, false).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ls
