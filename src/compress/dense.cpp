// Thin wrappers over cblas_dgemm, LAPACKE_dgeqrf/dorgqr and LAPACKE_dpotrf/dpotrs.
#include "compress/dense.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace ls::compress {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= beta;
    return;
  }
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

Mat matmul(const Mat& a, const Mat& b, bool trans_a, bool trans_b) {
  const int64_t m = trans_a ? a.cols : a.rows, k = trans_a ? a.rows : a.cols;
  const int64_t n = trans_b ? b.rows : b.cols;
  LS_CHECK((trans_b ? b.cols : b.rows) == k);
  Mat c(m, n);
  gemm(trans_a, trans_b, m, n, k, 1.0, a.data.data(), a.cols, b.data.data(), b.cols, 0.0,
       c.data.data(), c.cols);
  return c;
}

void orthonormalize_columns(Mat* m) {
  LS_CHECK(m->rows >= m->cols);
  if (m->cols == 0) return;
  std::vector<double> tau(static_cast<size_t>(m->cols));
  const auto rows = static_cast<lapack_int>(m->rows), cols = static_cast<lapack_int>(m->cols);
  lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, cols, m->data.data(), cols, tau.data());
  LS_CHECK(info == 0);
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, cols, cols, m->data.data(), cols, tau.data());
  LS_CHECK(info == 0);
}

namespace {
// Cholesky factor of h + ridge * mean(diag) * I; grows the ridge until the factorisation works.
std::vector<double> cholesky(const Mat& h, double ridge) {
  LS_CHECK(h.rows == h.cols);
  const int64_t k = h.rows;
  double mean_diag = 0;
  for (int64_t i = 0; i < k; ++i) mean_diag += h.at(i, i);
  mean_diag = k ? std::max(mean_diag / static_cast<double>(k), 1e-300) : 1.0;
  for (double r = ridge;; r *= 100) {
    std::vector<double> l = h.data;
    for (int64_t i = 0; i < k; ++i) l[static_cast<size_t>(i * k + i)] += r * mean_diag;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', static_cast<lapack_int>(k), l.data(),
                       static_cast<lapack_int>(k)) == 0)
      return l;
    LS_CHECK(r < 1.0);  // h is symmetric by construction; a ridge this large always works
  }
}
}  // namespace

void solve_spd_right(const Mat& h, Mat* r, double ridge) {
  // X H = R  <=>  H X^T = R^T (H symmetric): solve with R^T as column-major right-hand sides.
  LS_CHECK(h.rows == r->cols);
  if (r->rows == 0 || r->cols == 0) return;
  std::vector<double> l = cholesky(h, ridge);
  const auto k = static_cast<lapack_int>(h.rows);
  // r->data row-major [n, K] is R^T column-major [K, n] with leading dimension K.
  lapack_int info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'U', k, static_cast<lapack_int>(r->rows),
                                   l.data(), k, r->data.data(), k);
  LS_CHECK(info == 0);
}

std::vector<double> solve_spd(const Mat& h, const std::vector<double>& b, double ridge) {
  Mat r(1, static_cast<int64_t>(b.size()));
  r.data = b;
  solve_spd_right(h, &r, ridge);
  return r.data;
}

Mat gaussian(int64_t rows, int64_t cols, Rng& rng) {
  Mat m(rows, cols);
  for (double& v : m.data) v = rng.normal();
  return m;
}

double dot(const Mat& a, const Mat& b) {
  LS_CHECK(a.data.size() == b.data.size());
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i) s += a.data[i] * b.data[i];
  return s;
}

void use_single_threaded_blas() {
  openblas_set_num_threads(1);
}

}  // namespace ls::compress
