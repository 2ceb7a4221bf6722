// check.cuh — CUDA_CHECK, CUBLAS_CHECK and CUDNN_CHECK, all generated from ENGINE_CHECK_GEN
// (engine/common.h): each evaluates its expression once and throws lcam::InternalError naming
// the call, file, line, function and the library's own error string. The _PRINT variants report
// to stderr without throwing, for destructors and teardown. Also CEIL_DIV for launch sizes.
// Deliberately omits any recovery: a failed library call ends the op that made it.
#pragma once
#include <cstdio>  // std::fprintf
#include <string>  // std::string

#include <cublas_v2.h>         // cublasStatus_t, cublasGetStatusString
#include <cuda_runtime_api.h>  // cudaError_t, cudaGetErrorName, cudaGetErrorString
#include <cudnn.h>             // cudnnStatus_t, cudnnGetErrorString

#include "engine/common.h"  // ENGINE_CHECK_GEN, InternalError

namespace lcam::cuda::check {

inline bool ok(cudaError_t e) { return e == cudaSuccess; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }

inline std::string str(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}
inline std::string str(cublasStatus_t s) { return cublasGetStatusString(s); }
inline std::string str(cudnnStatus_t s) { return cudnnGetErrorString(s); }

// The message of a failed CUDA runtime call. The call also left its code as the thread's last
// error: a non-sticky one is cleared here, so that whoever catches the exception and carries on
// does not see it reported by the next launch check as that kernel's failure (a sticky one
// stays whatever is done: every later call fails with it).
inline std::string failure(cudaError_t e) {
  if (cudaPeekAtLastError() == e) (void)cudaGetLastError();
  return str(e);
}

}  // namespace lcam::cuda::check

#define CUDA_CHECK(expr) \
  ENGINE_CHECK_GEN("CUDA call", expr, ::lcam::cuda::check::ok, ::lcam::cuda::check::failure)
#define CUBLAS_CHECK(expr) \
  ENGINE_CHECK_GEN("cuBLAS call", expr, ::lcam::cuda::check::ok, ::lcam::cuda::check::str)
#define CUDNN_CHECK(expr) \
  ENGINE_CHECK_GEN("cuDNN call", expr, ::lcam::cuda::check::ok, ::lcam::cuda::check::str)

// Same checks for places that must not throw (destructors, teardown): print and continue.
#define LCAM_CHECK_PRINT_GEN(kind, expr)                                                        \
  do {                                                                                          \
    auto engine_check_v_ = (expr);                                                              \
    if (!::lcam::cuda::check::ok(engine_check_v_))                                              \
      std::fprintf(stderr, "%s failed: %s (%s) at %s:%d in %s\n", kind, #expr,                  \
                   ::lcam::cuda::check::str(engine_check_v_).c_str(), __FILE__, __LINE__,       \
                   __func__);                                                                   \
  } while (0)
#define CUDA_CHECK_PRINT(expr) LCAM_CHECK_PRINT_GEN("CUDA call", expr)
#define CUBLAS_CHECK_PRINT(expr) LCAM_CHECK_PRINT_GEN("cuBLAS call", expr)
#define CUDNN_CHECK_PRINT(expr) LCAM_CHECK_PRINT_GEN("cuDNN call", expr)

// Blocks needed to cover n items with blocks of `block` threads (n >= 0).
#define CEIL_DIV(n, block) (((n) + (block) - 1) / (block))
