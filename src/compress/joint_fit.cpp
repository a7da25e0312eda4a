// JD-Full (alternating block power steps) and JD-Diag (alternating least squares) on stacked
// low-rank factors; see joint_fit.h for the math. Cost per step: four GEMMs of
// sum_i r_i x d x K plus per-adapter r x r and r x K products.
#include "compress/joint_fit.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace ls::compress {

namespace {

// The members' factors stacked in double: rows off[i]..off[i+1] of pt and a belong to member i.
// pt rows carry scale_i * w_i (w_i = 1/||dW_i|| when normalising), so the fit sees w_i dW_i.
struct Stack {
  int64_t in = 0, out = 0;
  std::vector<int64_t> off;
  Mat pt;                     // [R, out]
  Mat a;                      // [R, in]
  std::vector<double> w;      // normalisation weight of each member
  std::vector<double> norm2;  // ||dW_i||^2 (unweighted)
  std::vector<Mat> gp, ga;    // P_i^T P_i = pt_i pt_i^T and A_i A_i^T (weighted), r x r
  size_t n() const { return w.size(); }
  int64_t rank(size_t i) const { return off[i + 1] - off[i]; }
};

Mat gram_rows(const Mat& m, int64_t begin, int64_t end) {
  const int64_t r = end - begin;
  Mat g(r, r);
  gemm(false, true, r, r, m.cols, 1.0, m.row(begin), m.cols, m.row(begin), m.cols, 0.0,
       g.data.data(), r);
  return g;
}

Stack stack_members(int64_t in, int64_t out, const std::vector<FactorView>& members,
                    bool normalize) {
  Stack s;
  s.in = in;
  s.out = out;
  s.off.push_back(0);
  for (const auto& f : members) s.off.push_back(s.off.back() + f.rank);
  const int64_t total = s.off.back();
  s.pt = Mat(total, out);
  s.a = Mat(total, in);
  for (size_t i = 0; i < members.size(); ++i) {
    const FactorView& f = members[i];
    for (int64_t j = 0; j < f.rank; ++j) {
      double* prow = s.pt.row(s.off[i] + j);
      const float* bsrc = f.bt + j * out;
      for (int64_t o = 0; o < out; ++o) prow[o] = f.scale * static_cast<double>(bsrc[o]);
      double* arow = s.a.row(s.off[i] + j);
      const float* asrc = f.a + j * in;
      for (int64_t c = 0; c < in; ++c) arow[c] = static_cast<double>(asrc[c]);
    }
    Mat gp = gram_rows(s.pt, s.off[i], s.off[i + 1]);
    Mat ga = gram_rows(s.a, s.off[i], s.off[i + 1]);
    const double n2 = std::max(0.0, dot(gp, ga));
    const double w = (normalize && n2 > 0) ? 1.0 / std::sqrt(n2) : 1.0;
    if (w != 1.0) {
      for (int64_t j = s.off[i]; j < s.off[i + 1]; ++j)
        for (int64_t o = 0; o < out; ++o) s.pt.at(j, o) *= w;
      for (double& v : gp.data) v *= w * w;
    }
    s.w.push_back(w);
    s.norm2.push_back(n2);
    s.gp.push_back(std::move(gp));
    s.ga.push_back(std::move(ga));
  }
  return s;
}

// Y_i = G_i X_i for every member block of rows.
Mat block_apply(const Stack& s, const std::vector<Mat>& g, const Mat& x) {
  Mat y(x.rows, x.cols);
  for (size_t i = 0; i < s.n(); ++i) {
    const int64_t r = s.rank(i);
    gemm(false, false, r, x.cols, r, 1.0, g[i].data.data(), r, x.row(s.off[i]), x.cols, 0.0,
         y.row(s.off[i]), y.cols);
  }
  return y;
}

// Per-member r x r Grams X_i X_i^T of a stacked [R, K] matrix.
std::vector<Mat> block_grams(const Stack& s, const Mat& x) {
  std::vector<Mat> out;
  out.reserve(s.n());
  for (size_t i = 0; i < s.n(); ++i) out.push_back(gram_rows(x, s.off[i], s.off[i + 1]));
  return out;
}

// sum_i ||D_i^T C_i||_F^2 = sum_i <D_i D_i^T, C_i C_i^T>: the energy the bases capture.
double captured(const std::vector<Mat>& dd, const std::vector<Mat>& cc) {
  double e = 0;
  for (size_t i = 0; i < dd.size(); ++i) e += dot(dd[i], cc[i]);
  return e;
}

// Power-step start for a basis: orth((F^T blockdiag(G) F)^steps X), X Gaussian [cols(F), k].
Mat power_start(const Stack& s, const Mat& f, const std::vector<Mat>& g, int64_t k, int steps,
                Rng& rng) {
  Mat x = gaussian(f.cols, k, rng);
  for (int p = 0; p < steps; ++p) {
    Mat t = block_apply(s, g, matmul(f, x));
    x = matmul(f, t, /*trans_a=*/true);
    orthonormalize_columns(&x);
  }
  return x;
}

struct FullState {
  Mat u, v, c, d;  // c = A V [R, kv], d = P^T U [R, ku]
  int32_t iters = 0;
};

FullState fit_full_bases(const Stack& s, int64_t ku, int64_t kv, int32_t iters, double tol,
                         Rng& rng) {
  FullState st;
  st.u = power_start(s, s.pt, s.ga, ku, 2, rng);
  st.v = power_start(s, s.a, s.gp, kv, 2, rng);
  st.c = matmul(s.a, st.v);
  st.d = matmul(s.pt, st.u);
  std::vector<Mat> cc = block_grams(s, st.c);
  std::vector<Mat> dd = block_grams(s, st.d);
  double f = captured(dd, cc);
  for (int32_t it = 0; it < iters; ++it) {
    // U <- orth(sum_i P_i C_i C_i^T P_i^T U)
    st.u = matmul(s.pt, block_apply(s, cc, st.d), /*trans_a=*/true);
    orthonormalize_columns(&st.u);
    st.d = matmul(s.pt, st.u);
    dd = block_grams(s, st.d);
    // V <- orth(sum_i A_i^T D_i D_i^T A_i V)
    st.v = matmul(s.a, block_apply(s, dd, st.c), /*trans_a=*/true);
    orthonormalize_columns(&st.v);
    st.c = matmul(s.a, st.v);
    cc = block_grams(s, st.c);
    ++st.iters;
    const double fn = captured(dd, cc);
    const bool settled = fn - f <= tol * std::max(fn, 1e-300);
    f = fn;
    if (settled) break;
  }
  return st;
}

double rel(double err, double norm2) {
  return norm2 > 0 ? std::max(0.0, err) / norm2 : 0.0;
}

ModuleFit finish_full(const Stack& s, FullState st) {
  ModuleFit fit;
  fit.iters_run = st.iters;
  for (size_t i = 0; i < s.n(); ++i) {
    const int64_t r = s.rank(i);
    Mat si(st.u.cols, st.v.cols);
    gemm(true, false, si.rows, si.cols, r, 1.0, st.d.row(s.off[i]), st.d.cols, st.c.row(s.off[i]),
         st.c.cols, 0.0, si.data.data(), si.cols);
    const double n2w = s.norm2[i] * s.w[i] * s.w[i];
    Coeffs co;
    co.norm2 = s.norm2[i];
    co.rel_error = rel(n2w - dot(si, si), n2w);
    for (double& v : si.data) v /= s.w[i];
    co.s = std::move(si.data);
    fit.coeffs.push_back(std::move(co));
  }
  fit.bases.mode = Mode::kFull;
  fit.bases.u = std::move(st.u);
  fit.bases.v = std::move(st.v);
  return fit;
}

// (X^T X) o (Y^T Y): the Gram of the rank-one terms u_k v_k^T.
Mat hadamard_gram(const Mat& x, const Mat& y) {
  Mat gx = matmul(x, x, true), gy = matmul(y, y, true);
  for (size_t i = 0; i < gx.data.size(); ++i) gx.data[i] *= gy.data[i];
  return gx;
}

void normalize_columns(Mat* m, Rng& rng) {
  for (int64_t k = 0; k < m->cols; ++k) {
    double n = 0;
    for (int64_t r = 0; r < m->rows; ++r) n += m->at(r, k) * m->at(r, k);
    if (n < 1e-200) {
      for (int64_t r = 0; r < m->rows; ++r) m->at(r, k) = rng.normal();
      n = 0;
      for (int64_t r = 0; r < m->rows; ++r) n += m->at(r, k) * m->at(r, k);
    }
    const double inv = 1.0 / std::sqrt(n);
    for (int64_t r = 0; r < m->rows; ++r) m->at(r, k) *= inv;
  }
}

// b_i[k] = diag(D_i^T C_i)[k] for every member: rows of b [n, k].
Mat diag_targets(const Stack& s, const Mat& d, const Mat& c) {
  Mat b(static_cast<int64_t>(s.n()), d.cols);
  for (size_t i = 0; i < s.n(); ++i)
    for (int64_t j = s.off[i]; j < s.off[i + 1]; ++j)
      for (int64_t k = 0; k < d.cols; ++k)
        b.at(static_cast<int64_t>(i), k) += d.at(j, k) * c.at(j, k);
  return b;
}

// Rows of m in member i's block scaled column-wise by s_i.
Mat scale_blocks(const Stack& s, const Mat& m, const Mat& coef) {
  Mat out = m;
  for (size_t i = 0; i < s.n(); ++i)
    for (int64_t j = s.off[i]; j < s.off[i + 1]; ++j)
      for (int64_t k = 0; k < m.cols; ++k) out.at(j, k) *= coef.at(static_cast<int64_t>(i), k);
  return out;
}

ModuleFit fit_diag(const Stack& s, int64_t k, const FitOptions& opts, Rng& rng) {
  Mat u, v;
  const int64_t total = s.off.back();
  if (total <= k) {
    // Exact start: U = [P_1 ... P_n], V = [A_1^T ... A_n^T], s_i = 1 on member i's block.
    u = gaussian(s.out, k, rng);
    v = gaussian(s.in, k, rng);
    for (int64_t j = 0; j < total; ++j) {
      for (int64_t o = 0; o < s.out; ++o) u.at(o, j) = s.pt.at(j, o);
      for (int64_t c = 0; c < s.in; ++c) v.at(c, j) = s.a.at(j, c);
    }
  } else {
    FullState st = fit_full_bases(s, k, k, std::min(opts.iters, 3), opts.tol, rng);
    u = std::move(st.u);
    v = std::move(st.v);
  }
  normalize_columns(&u, rng);
  normalize_columns(&v, rng);
  Mat d = matmul(s.pt, u), c = matmul(s.a, v);
  Mat g, coef;
  auto s_step = [&] {
    g = hadamard_gram(u, v);
    coef = diag_targets(s, d, c);
    solve_spd_right(g, &coef);  // rows s_i^T = b_i^T G^-1 (G symmetric)
  };
  auto residual = [&] {  // sum_i ||w_i dW_i - U diag(s_i) V^T||^2
    Mat b = diag_targets(s, d, c);
    Mat sg = matmul(coef, g);
    double e = 0;
    for (size_t i = 0; i < s.n(); ++i) {
      const auto ii = static_cast<int64_t>(i);
      double n2w = s.norm2[i] * s.w[i] * s.w[i], sb = 0, sgs = 0;
      for (int64_t q = 0; q < k; ++q) {
        sb += coef.at(ii, q) * b.at(ii, q);
        sgs += sg.at(ii, q) * coef.at(ii, q);
      }
      e += n2w - 2 * sb + sgs;
    }
    return e;
  };
  s_step();
  double err = residual();
  double total_n2 = 0;
  for (size_t i = 0; i < s.n(); ++i) total_n2 += s.norm2[i] * s.w[i] * s.w[i];
  ModuleFit fit;
  for (int32_t it = 0; it < opts.iters && err > 1e-28 * total_n2; ++it) {
    Mat ss = matmul(coef, coef, true);  // sum_i s_i s_i^T
    Mat h = matmul(v, v, true);
    for (size_t q = 0; q < h.data.size(); ++q) h.data[q] *= ss.data[q];
    u = matmul(s.pt, scale_blocks(s, c, coef), true);
    solve_spd_right(h, &u);
    normalize_columns(&u, rng);
    d = matmul(s.pt, u);
    s_step();
    ss = matmul(coef, coef, true);
    h = matmul(u, u, true);
    for (size_t q = 0; q < h.data.size(); ++q) h.data[q] *= ss.data[q];
    v = matmul(s.a, scale_blocks(s, d, coef), true);
    solve_spd_right(h, &v);
    normalize_columns(&v, rng);
    c = matmul(s.a, v);
    s_step();
    ++fit.iters_run;
    const double en = residual();
    const bool settled = err - en <= opts.tol * total_n2;
    err = en;
    if (settled) break;
  }
  Mat b = diag_targets(s, d, c);
  Mat sg = matmul(coef, g);
  for (size_t i = 0; i < s.n(); ++i) {
    const auto ii = static_cast<int64_t>(i);
    const double n2w = s.norm2[i] * s.w[i] * s.w[i];
    double sb = 0, sgs = 0;
    Coeffs co;
    co.norm2 = s.norm2[i];
    for (int64_t q = 0; q < k; ++q) {
      sb += coef.at(ii, q) * b.at(ii, q);
      sgs += sg.at(ii, q) * coef.at(ii, q);
      co.s.push_back(coef.at(ii, q) / s.w[i]);
    }
    co.rel_error = rel(n2w - 2 * sb + sgs, n2w);
    fit.coeffs.push_back(std::move(co));
  }
  fit.bases.mode = Mode::kDiag;
  fit.bases.u = std::move(u);
  fit.bases.v = std::move(v);
  return fit;
}

}  // namespace

const char* mode_name(Mode m) {
  return m == Mode::kFull ? "full" : "diag";
}

std::pair<int64_t, int64_t> basis_ranks(Mode mode, int32_t k, int64_t in, int64_t out) {
  if (mode == Mode::kDiag) {
    const int64_t kk = std::min<int64_t>({k, in, out});
    return {kk, kk};
  }
  return {std::min<int64_t>(k, out), std::min<int64_t>(k, in)};
}

ModuleFit fit_module(int64_t in, int64_t out, const std::vector<FactorView>& members,
                     const FitOptions& opts) {
  LS_CHECK(!members.empty() && opts.rank >= 1);
  Rng rng(opts.seed);
  Stack s = stack_members(in, out, members, opts.normalize);
  const auto [ku, kv] = basis_ranks(opts.mode, opts.rank, in, out);
  if (opts.mode == Mode::kDiag) return fit_diag(s, ku, opts, rng);
  return finish_full(s, fit_full_bases(s, ku, kv, opts.iters, opts.tol, rng));
}

double frobenius2(const FactorView& f, int64_t in, int64_t out) {
  Stack s = stack_members(in, out, {f}, false);
  return s.norm2[0];
}

Coeffs project(const Bases& bases, const FactorView& f, int64_t in, int64_t out) {
  LS_CHECK(bases.u.rows == out && bases.v.rows == in);
  Stack s = stack_members(in, out, {f}, false);
  Mat d = matmul(s.pt, bases.u), c = matmul(s.a, bases.v);
  Coeffs co;
  co.norm2 = s.norm2[0];
  if (bases.mode == Mode::kFull) {
    Mat si = matmul(d, c, true);
    co.rel_error = rel(co.norm2 - dot(si, si), co.norm2);
    co.s = std::move(si.data);
    return co;
  }
  Mat g = hadamard_gram(bases.u, bases.v);
  Mat b = diag_targets(s, d, c);
  Mat coef = b;
  solve_spd_right(g, &coef);
  Mat sg = matmul(coef, g);
  double sb = 0, sgs = 0;
  for (int64_t q = 0; q < g.cols; ++q) {
    sb += coef.at(0, q) * b.at(0, q);
    sgs += sg.at(0, q) * coef.at(0, q);
  }
  co.rel_error = rel(co.norm2 - 2 * sb + sgs, co.norm2);
  co.s = std::move(coef.data);
  return co;
}

}  // namespace ls::compress
