// Small dense linear algebra in double precision for the joint compression of LoRA adapters:
// row-major matrices, GEMM through OpenBLAS (cblas), thin QR and Cholesky solves through the
// LAPACK in libopenblas. Our own code only orchestrates the calls; the numerics are the
// reference libraries'.
#pragma once

#include <cstdint>
#include <vector>

#include "base/rng.h"

namespace ls::compress {

// Row-major dense matrix of doubles.
struct Mat {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> data;

  Mat() = default;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), data(static_cast<size_t>(r * c), 0.0) {}
  double& at(int64_t r, int64_t c) { return data[static_cast<size_t>(r * cols + c)]; }
  double at(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
  double* row(int64_t r) { return data.data() + r * cols; }
  const double* row(int64_t r) const { return data.data() + r * cols; }
};

// C[m, n] = alpha * op(A) op(B) + beta * C on raw row-major pointers (lda etc. are row strides).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc);

// op(A) op(B) for whole matrices.
Mat matmul(const Mat& a, const Mat& b, bool trans_a = false, bool trans_b = false);

// Replaces the columns of `m` (rows >= cols) by an orthonormal basis of their span (Householder
// QR, Q kept). Columns beyond the numerical rank become arbitrary orthonormal completions.
void orthonormalize_columns(Mat* m);

// Solves X H = R for X (H symmetric positive definite, K x K) in place of R [n, K]. A ridge of
// `ridge` * mean(diag H) is added first so a rank-deficient H still has a unique answer.
void solve_spd_right(const Mat& h, Mat* r, double ridge = 1e-12);

// Solves H x = b for one vector b (H symmetric positive definite, with the same ridge).
std::vector<double> solve_spd(const Mat& h, const std::vector<double>& b, double ridge = 1e-12);

// Standard normal entries.
Mat gaussian(int64_t rows, int64_t cols, Rng& rng);

// sum_ij a_ij * b_ij for equal-shaped matrices (the trace of a^T b).
double dot(const Mat& a, const Mat& b);

// Makes OpenBLAS run each call on the calling thread (we parallelise over modules instead).
void use_single_threaded_blas();

}  // namespace ls::compress
