// Joint compression of the LoRA updates of one (layer, module): dW_i = scale_i * B_i A_i
// ~= U S_i V^T with bases shared by every adapter (Compress then Serve, Brueel-Gabrielsson et
// al., 2024). Everything works from the low-rank factors; no d_out x d_in matrix is formed.
//
// JD-Full: U [out, ku], V [in, kv] orthonormal, S_i = U^T dW_i V [ku, kv], fitted by alternating
// block power steps: U <- orth(sum_i dW_i V V^T dW_i^T U), V <- orth(sum_i dW_i^T U U^T dW_i V),
// each a power step on the Gram matrix of [dW_1 V ... dW_n V] (resp. [dW_1^T U ...]), so the
// captured energy sum_i ||S_i||^2 never decreases. With the factors stacked (P^T = [s_1 B_1^T;
// ...], A = [A_1; ...]) one step is four GEMMs of cost O(sum_i r_i * d * K).
// JD-Diag: U, V unconstrained [., k], S_i = diag(s_i), by alternating least squares with every
// step closed form: s_i = G^-1 diag(U^T dW_i V), G = (U^T U) o (V^T V); U = R H^-1 with
// R = sum_i dW_i V diag(s_i), H = sum_i (s_i s_i^T) o (V^T V); V likewise.
// Errors: ||dW_i||^2 = <P_i^T P_i, A_i A_i^T> and the residual follow from r x r and K x K
// products. All arithmetic is double; the inputs are the fp32 factors the adapters hold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/dense.h"

namespace ls::compress {

enum class Mode { kFull, kDiag };
const char* mode_name(Mode m);  // "full" | "diag"

// One adapter's factors for this module, pointing into its fp32 storage.
struct FactorView {
  int32_t rank = 0;
  double scale = 1.0;
  const float* a = nullptr;   // [rank, in]
  const float* bt = nullptr;  // [rank, out]  (B^T)
};

struct FitOptions {
  Mode mode = Mode::kFull;
  int32_t rank = 16;      // K; a module uses min(K, out) x min(K, in) (diag: min(K, in, out))
  int32_t iters = 10;     // alternating steps (stops earlier once the objective settles)
  bool normalize = true;  // fit every dW_i at unit Frobenius norm, then restore its scale
  double tol = 1e-9;      // relative objective change that counts as settled
  uint64_t seed = 1;
};

// The shared bases of one module (one cluster).
struct Bases {
  Mode mode = Mode::kFull;
  Mat u;  // [out, ku]
  Mat v;  // [in, kv]
  int64_t ku() const { return u.cols; }
  int64_t kv() const { return v.cols; }
};

// One adapter's coefficients for one module and how well they reproduce its dW.
struct Coeffs {
  std::vector<double> s;  // full: [ku, kv] row-major; diag: [k]
  double norm2 = 0;       // ||dW||_F^2
  double rel_error = 0;   // ||dW - U S V^T||_F^2 / ||dW||_F^2 (0 when dW = 0)
};

struct ModuleFit {
  Bases bases;
  std::vector<Coeffs> coeffs;  // per member, in input order
  int32_t iters_run = 0;
};

// The rank of each basis for a module of these dims: {ku, kv}.
std::pair<int64_t, int64_t> basis_ranks(Mode mode, int32_t k, int64_t in, int64_t out);

// Fits shared bases to `members` (at least one) of a module with input width `in` and output
// width `out`.
ModuleFit fit_module(int64_t in, int64_t out, const std::vector<FactorView>& members,
                     const FitOptions& opts);

// Coefficients of one adapter on fixed bases (least squares; for orthonormal JD-Full bases the
// projection U^T dW V), without refitting.
Coeffs project(const Bases& bases, const FactorView& f, int64_t in, int64_t out);

// ||dW||_F^2 of one adapter's module from its factors.
double frobenius2(const FactorView& f, int64_t in, int64_t out);

}  // namespace ls::compress
