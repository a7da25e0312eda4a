// Thin wrappers over cblas_dgemm and LAPACK's dgeqrf/dorgqr and dpotrf/dpotrs. LAPACK is
// called through its Fortran symbols, which libopenblas exports (Debian builds OpenBLAS with
// LAPACK), so no package beyond libopenblas-dev is needed (LAPACKE is a separate one).
#include "compress/dense.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "base/check.h"

extern "C" {
// LAPACK (Fortran calling convention, LP64 integers, hidden string lengths last).
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work,
             const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau,
             double* work, const int* lwork, int* info);
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
void dpotrs_(const char* uplo, const int* n, const int* nrhs, const double* a, const int* lda,
             double* b, const int* ldb, int* info, size_t);
}

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
  const int rows = static_cast<int>(m->rows), cols = static_cast<int>(m->cols);
  // LAPACK is column-major: copy in, QR, form Q, copy back.
  std::vector<double> a(m->data.size());
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) a[static_cast<size_t>(c) * rows + r] = m->at(r, c);
  std::vector<double> tau(static_cast<size_t>(cols));
  int info = 0, lwork = -1;
  double query = 0;
  dgeqrf_(&rows, &cols, a.data(), &rows, tau.data(), &query, &lwork, &info);
  LS_CHECK(info == 0);
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgeqrf_(&rows, &cols, a.data(), &rows, tau.data(), work.data(), &lwork, &info);
  LS_CHECK(info == 0);
  lwork = -1;
  dorgqr_(&rows, &cols, &cols, a.data(), &rows, tau.data(), &query, &lwork, &info);
  LS_CHECK(info == 0);
  lwork = std::max(1, static_cast<int>(query));
  work.resize(static_cast<size_t>(lwork));
  dorgqr_(&rows, &cols, &cols, a.data(), &rows, tau.data(), work.data(), &lwork, &info);
  LS_CHECK(info == 0);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m->at(r, c) = a[static_cast<size_t>(c) * rows + r];
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
    // h is symmetric, so its row-major storage is also its column-major storage.
    std::vector<double> l = h.data;
    for (int64_t i = 0; i < k; ++i) l[static_cast<size_t>(i * k + i)] += r * mean_diag;
    const int n = static_cast<int>(k);
    int info = 0;
    dpotrf_("L", &n, l.data(), &n, &info, 1);
    if (info == 0) return l;
    LS_CHECK(r < 1.0);  // h is symmetric by construction; a ridge this large always works
  }
}
}  // namespace

void solve_spd_right(const Mat& h, Mat* r, double ridge) {
  // X H = R  <=>  H X^T = R^T (H symmetric): solve with R^T as column-major right-hand sides.
  LS_CHECK(h.rows == r->cols);
  if (r->rows == 0 || r->cols == 0) return;
  std::vector<double> l = cholesky(h, ridge);  // column-major lower factor
  const int k = static_cast<int>(h.rows), nrhs = static_cast<int>(r->rows);
  // r->data row-major [n, K] is R^T column-major [K, n] with leading dimension K.
  int info = 0;
  dpotrs_("L", &k, &nrhs, l.data(), &k, r->data.data(), &k, &info, 1);
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
