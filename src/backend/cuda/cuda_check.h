// Error checks of CUDA runtime and cuBLAS calls in the CUDA backend's host code: a failed call
// is a bug or a lost device, so it stops the process with the call's name and the error.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "base/check.h"

namespace ls::cuda {

inline void check_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const std::string msg = std::string(what) + ": " + cudaGetErrorString(err);
  LS_CHECK_MSG(err == cudaSuccess, msg.c_str());
}

inline void check_cublas(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  const std::string msg = std::string(what) + ": " + cublasGetStatusString(st);
  LS_CHECK_MSG(st == CUBLAS_STATUS_SUCCESS, msg.c_str());
}

}  // namespace ls::cuda
