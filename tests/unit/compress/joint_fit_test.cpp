// JD-Full and JD-Diag on one module, checked against dense reconstructions formed here (the
// library never forms d_out x d_in matrices): lossless when K covers the ranks, reported errors
// equal the dense ones, error falls with K, and projection of an adapter inside the bases is
// exact.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/joint_fit.h"
#include "compress/synthetic.h"

namespace ls::compress {
namespace {

struct Factors {
  int32_t rank;
  std::vector<float> a, bt;
  FactorView view(double scale = 1.5) const { return {rank, scale, a.data(), bt.data()}; }
};

std::vector<Factors> make(int64_t in, int64_t out, const std::vector<int32_t>& ranks,
                          int32_t shared_dim, double noise, uint64_t seed) {
  SubspaceGenerator gen(in, out, shared_dim, noise, seed);
  std::vector<Factors> fs;
  for (size_t i = 0; i < ranks.size(); ++i) {
    Factors f{ranks[i], std::vector<float>(static_cast<size_t>(ranks[i] * in)),
              std::vector<float>(static_cast<size_t>(ranks[i] * out))};
    gen.make(ranks[i], seed * 100 + i, f.a.data(), f.bt.data());
    fs.push_back(std::move(f));
  }
  return fs;
}

std::vector<FactorView> views(const std::vector<Factors>& fs) {
  std::vector<FactorView> v;
  for (size_t i = 0; i < fs.size(); ++i) v.push_back(fs[i].view(0.5 + static_cast<double>(i)));
  return v;
}

Mat dense(const FactorView& f, int64_t in, int64_t out) {
  Mat d(out, in);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; ++c) {
      double s = 0;
      for (int32_t r = 0; r < f.rank; ++r) s += double(f.bt[r * out + o]) * f.a[r * in + c];
      d.at(o, c) = f.scale * s;
    }
  return d;
}

Mat reconstruct(const Bases& b, const Coeffs& c) {
  Mat s(b.ku(), b.kv());
  if (b.mode == Mode::kDiag) {
    for (int64_t k = 0; k < b.ku(); ++k) s.at(k, k) = c.s[static_cast<size_t>(k)];
  } else {
    s.data = c.s;
  }
  return matmul(matmul(b.u, s), b.v, false, true);
}

double rel_diff(const Mat& a, const Mat& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    num += (a.data[i] - b.data[i]) * (a.data[i] - b.data[i]);
    den += b.data[i] * b.data[i];
  }
  return num / den;
}

double mean_error(const ModuleFit& fit) {
  double s = 0;
  for (const auto& c : fit.coeffs) s += c.rel_error;
  return s / static_cast<double>(fit.coeffs.size());
}

TEST(JointFit, LosslessWhenKCoversTheRanks) {
  const int64_t in = 40, out = 36;
  auto fs = make(in, out, {3, 4, 5}, 0, 0, 7);
  for (Mode mode : {Mode::kFull, Mode::kDiag})
    for (bool normalize : {true, false}) {
      SCOPED_TRACE(std::string(mode_name(mode)) + (normalize ? " normalized" : " raw"));
      FitOptions o;
      o.mode = mode;
      o.rank = 12;
      o.normalize = normalize;
      ModuleFit fit = fit_module(in, out, views(fs), o);
      ASSERT_EQ(fit.coeffs.size(), 3u);
      for (size_t i = 0; i < fs.size(); ++i) {
        EXPECT_LT(fit.coeffs[i].rel_error, 1e-12);
        EXPECT_LT(rel_diff(reconstruct(fit.bases, fit.coeffs[i]), dense(views(fs)[i], in, out)),
                  1e-12);
      }
      if (mode == Mode::kFull) {
        Mat utu = matmul(fit.bases.u, fit.bases.u, true);
        for (int64_t r = 0; r < utu.rows; ++r)
          for (int64_t c = 0; c < utu.cols; ++c) EXPECT_NEAR(utu.at(r, c), r == c, 1e-12);
      }
    }
}

TEST(JointFit, BasesAreCappedAtTheModuleWidths) {
  // out = 10 < sum of ranks: U is square (exact), V keeps min(K, in) columns; still lossless.
  const int64_t in = 30, out = 10;
  auto fs = make(in, out, {4, 6, 8}, 0, 0, 3);
  FitOptions o;
  o.rank = 18;
  ModuleFit fit = fit_module(in, out, views(fs), o);
  EXPECT_EQ(fit.bases.ku(), 10);
  EXPECT_EQ(fit.bases.kv(), 18);
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_LT(rel_diff(reconstruct(fit.bases, fit.coeffs[i]), dense(views(fs)[i], in, out)), 1e-12);
}

TEST(JointFit, ReportedErrorsEqualDenseErrors) {
  const int64_t in = 48, out = 40;
  auto fs = make(in, out, {4, 4, 6, 2, 5}, 6, 0.3, 11);
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    FitOptions o;
    o.mode = mode;
    o.rank = 5;
    ModuleFit fit = fit_module(in, out, views(fs), o);
    for (size_t i = 0; i < fs.size(); ++i) {
      const double dense_err =
          rel_diff(reconstruct(fit.bases, fit.coeffs[i]), dense(views(fs)[i], in, out));
      EXPECT_GT(dense_err, 1e-4);
      EXPECT_NEAR(fit.coeffs[i].rel_error, dense_err, 1e-9 + 1e-9 * dense_err);
      EXPECT_NEAR(fit.coeffs[i].norm2,
                  dot(dense(views(fs)[i], in, out), dense(views(fs)[i], in, out)),
                  1e-9 * fit.coeffs[i].norm2);
    }
  }
}

TEST(JointFit, ErrorFallsWithK) {
  const int64_t in = 64, out = 56;
  auto fs = make(in, out, std::vector<int32_t>(12, 4), 10, 0.2, 5);
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    double prev = 2;
    for (int32_t k : {2, 4, 8, 16, 32}) {
      FitOptions o;
      o.mode = mode;
      o.rank = k;
      o.iters = 15;
      const double e = mean_error(fit_module(in, out, views(fs), o));
      EXPECT_LT(e, prev) << "K=" << k;
      prev = e;
    }
  }
}

TEST(JointFit, FullFitBeatsItsStartAndIsMonotone) {
  // More alternating steps never capture less energy.
  const int64_t in = 50, out = 50;
  auto fs = make(in, out, std::vector<int32_t>(8, 6), 0, 0, 9);
  double prev = 2;
  for (int32_t iters : {0, 1, 3, 10}) {
    FitOptions o;
    o.rank = 8;
    o.iters = iters;
    o.tol = 0;
    const double e = mean_error(fit_module(in, out, views(fs), o));
    EXPECT_LE(e, prev + 1e-12) << "iters=" << iters;
    prev = e;
  }
}

TEST(JointFit, ProjectionOfAnAdapterInsideTheBasesIsExact) {
  const int64_t in = 40, out = 32;
  auto fs = make(in, out, {4, 4, 4, 4}, 0, 0, 21);
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    FitOptions o;
    o.mode = mode;
    o.rank = 6;  // lossy for the fitted adapters
    ModuleFit fit = fit_module(in, out, views(fs), o);
    // A new adapter dW = U M V^T (M full for JD-Full, diagonal for JD-Diag), as rank-6 factors.
    const int64_t k = 6;
    Rng rng(4);
    Mat m(k, k);
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < k; ++c)
        m.at(r, c) = (mode == Mode::kFull || r == c) ? rng.normal() : 0.0;
    Mat a = matmul(m, fit.bases.v, false, true);  // [k, in]
    Mat bt(k, out);
    for (int64_t r = 0; r < k; ++r)
      for (int64_t o2 = 0; o2 < out; ++o2) bt.at(r, o2) = fit.bases.u.at(o2, r);
    Factors nf{static_cast<int32_t>(k), {}, {}};
    for (double v : a.data) nf.a.push_back(static_cast<float>(v));
    for (double v : bt.data) nf.bt.push_back(static_cast<float>(v));
    Coeffs c = project(fit.bases, nf.view(1.0), in, out);
    EXPECT_LT(c.rel_error, 1e-10);
    EXPECT_LT(rel_diff(reconstruct(fit.bases, c), dense(nf.view(1.0), in, out)), 1e-10);
    // An unrelated adapter is not exact.
    auto other = make(in, out, {4}, 0, 0, 99);
    EXPECT_GT(project(fit.bases, other[0].view(), in, out).rel_error, 0.1);
  }
}

}  // namespace
}  // namespace ls::compress
