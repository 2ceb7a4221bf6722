// gemm.cu — linear_forward / linear_backward_data / linear_backward_weight of lcam::gpu with
// cuBLAS sgemm. Tensors are row-major; cuBLAS is column-major, and a row-major [R,C] matrix is
// the column-major [C,R] matrix with leading dimension C, so each product is computed as its
// transpose with no copies:
//   y[N,O]  = x[N,F] w[O,F]^T   ->  y^T[O,N]  = (w^T)^T[O,F] x^T[F,N]    sgemm(T, N, O, N, F)
//   dx[N,F] = dy[N,O] w[O,F]    ->  dx^T[F,N] = w^T[F,O] dy^T[O,N]       sgemm(N, N, F, N, O)
//   dw[O,F] = dy^T[O,N] x[N,F]  ->  dw^T[F,O] = x^T[F,N] (dy^T[O,N])^T   sgemm(N, T, F, O, N)
// Bias and ReLU run as a kernel (kern::bias_act_at); db is a deterministic column-sum kernel.
// The cuBLAS math mode (TF32 or plain fp32) follows set_allow_tf32 (see runtime.cu).
// Deliberately omits batched/strided GEMMs and cublasLt epilogue fusion.
// Letters: N rows (batch), F input features, O output features.
#include <cstdint>  // int64_t

#include <cublas_v2.h>  // cublasSgemm

#include "engine/backend.h"         // lcam::gpu declarations (LCAM_BACKEND_OPS)
#include "engine/cuda/check.cuh"    // CUBLAS_CHECK
#include "engine/cuda/context.cuh"  // ctx::cublas, detail::bias_act, detail::channel_sum
#include "engine/cuda_runtime.h"    // cuda::fill_zero

namespace lcam::gpu {

void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int F, int O,
                    bool relu) {
  if (N <= 0 || O <= 0) return;
  if (F <= 0) {  // empty product: y = act(b)
    cuda::fill_zero(y, sizeof(float) * static_cast<size_t>(N) * O);
  } else {
    const float one = 1.f, zero = 0.f;
    CUBLAS_CHECK(cublasSgemm(cuda::ctx::cublas(), CUBLAS_OP_T, CUBLAS_OP_N, O, N, F, &one, w, F,
                             x, F, &zero, y, O));
  }
  detail::bias_act(y, b, nullptr, N, O, 1, relu);
}

void linear_backward_data(float* dx, const float* dy, const float* w, int N, int F, int O) {
  if (N <= 0 || F <= 0) return;
  if (O <= 0) {
    cuda::fill_zero(dx, sizeof(float) * static_cast<size_t>(N) * F);
    return;
  }
  const float one = 1.f, zero = 0.f;
  CUBLAS_CHECK(cublasSgemm(cuda::ctx::cublas(), CUBLAS_OP_N, CUBLAS_OP_N, F, N, O, &one, w, F, dy,
                           O, &zero, dx, F));
}

void linear_backward_weight(float* dw, float* db, const float* dy, const float* x, int N, int F,
                            int O) {
  if (O <= 0) return;
  if (N <= 0) {  // no samples: zero gradients
    if (F > 0) cuda::fill_zero(dw, sizeof(float) * static_cast<size_t>(O) * F);
    if (db) cuda::fill_zero(db, sizeof(float) * static_cast<size_t>(O));
    return;
  }
  if (F > 0) {
    const float one = 1.f, zero = 0.f;
    CUBLAS_CHECK(cublasSgemm(cuda::ctx::cublas(), CUBLAS_OP_N, CUBLAS_OP_T, F, O, N, &one, x, F,
                             dy, O, &zero, dw, F));
  }
  // db[o] = sum_n dy[n,o]: dy is [N, C=O, HW=1].
  if (db) detail::channel_sum(db, dy, N, O, 1);
}

}  // namespace lcam::gpu
