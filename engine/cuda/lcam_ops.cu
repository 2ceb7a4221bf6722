// lcam_ops.cu — the CUDA side of the L-CAM ops of lcam::gpu (engine/backend.h): batched GEMMs
// (cuBLAS strided-batched), row gathers and scatters for the attention's class-selected 1x1
// convolution, sums, and thin wrappers over the shared bodies of kernels/bodies.h (sigmoid,
// bilinear resize, masking, area and TV terms, SGD). Deliberately omits fusion: these run on
// maps of 7x7 to 224x224 per image, small next to the backbone.
#include <algorithm>  // std::max
#include <cstdint>  // int32_t, int64_t

#include <cublas_v2.h>         // cublasSgemmStridedBatched
#include <cuda_runtime_api.h>  // cudaMemcpyAsync

#include "engine/backend.h"         // lcam::gpu declarations
#include "engine/cuda/check.cuh"    // CUDA_CHECK, CUBLAS_CHECK, CEIL_DIV
#include "engine/cuda/context.cuh"  // ctx::stream, ctx::cublas, detail::channel_sum, detail::bias_act
#include "engine/cuda_runtime.h"   // cuda::device_alloc, cuda::copy
#include "kernels/bodies.h"         // kern::*_at

namespace lcam::gpu {
namespace {

using cuda::ctx::kBlock;

unsigned int grid(int64_t total) { return static_cast<unsigned int>(CEIL_DIV(total, kBlock)); }

// Runs body(i) for i < L on the engine's stream.
template <class F>
__global__ void each_kernel(F body, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) body(i);
}

template <class F>
void each(int64_t L, F body) {
  if (L <= 0) return;
  each_kernel<<<grid(L), kBlock, 0, cuda::ctx::stream()>>>(body, L);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void gemm_batched(float* C, const float* A, const float* B, int batch, int M, int N, int K, bool ta, bool tb,
                  int64_t sA, int64_t sB, int64_t sC, float beta) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  const float alpha = 1.f;
  // Leading dimensions at least 1, as cuBLAS requires even for K == 0 (then C = beta C).
  const int ldb = std::max(1, tb ? K : N), lda = std::max(1, ta ? M : K);
  CUBLAS_CHECK(cublasSgemmStridedBatched(cuda::ctx::cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, sB, A, lda, sA,
                                         &beta, C, N, sC, batch));
}

void gather_rows(float* out, const float* table, const int32_t* rows, int R, int C, int T) {
  each(static_cast<int64_t>(R) * C, [=] __device__(int64_t i) {
    const int32_t r = rows[i / C];
    out[i] = r >= 0 && r < T ? table[static_cast<int64_t>(r) * C + i % C] : 0.f;
  });
}

void scatter_add_rows(float* table, const float* in, const int32_t* rows, int R, int C, int T) {
  // One thread per column, rows in order: repeated rows accumulate deterministically.
  each(C, [=] __device__(int64_t c) {
    for (int r = 0; r < R; ++r)
      if (rows[r] >= 0 && rows[r] < T) table[static_cast<int64_t>(rows[r]) * C + c] += in[static_cast<int64_t>(r) * C + c];
  });
}

void argmax_rows(float* idx, const float* x, int N, int O) {
  // One thread per row, as softmax: N is a batch and O a thousand classes.
  each(N, [=] __device__(int64_t n) { kern::argmax_row(idx, x, O, n); });
}

void row_sum(float* out, const float* in, int R, int64_t L) { detail::channel_sum(out, in, 1, R, L); }

void bias_act(float* y, const float* b, int N, int C, int64_t HW, bool relu) { detail::bias_act(y, b, nullptr, N, C, HW, relu); }

double sum(const float* x, int64_t L) {  // the double total, as the CPU's
  struct Block {  // given back on every path, a failed copy included
    double* p = static_cast<double*>(cuda::device_alloc(sizeof(double)));
    ~Block() { cuda::device_free(p, sizeof(double)); }
  } dev;
  detail::channel_sum(dev.p, x, 1, 1, L);
  double host = 0.0;
  cuda::copy(&host, Device::CPU, dev.p, Device::CUDA, sizeof(double));
  return host;
}

void sigmoid_forward(float* y, const float* x, int64_t L) {
  each(L, [=] __device__(int64_t i) { kern::sigmoid_fwd_at(y, x, i); });
}
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t L) {
  each(L, [=] __device__(int64_t i) { kern::sigmoid_bwd_at(dx, dy, y, i); });
}
void upsample_bilinear_forward(float* y, const float* x, int NC, int H, int W, int P, int Q) {
  each(static_cast<int64_t>(NC) * P * Q, [=] __device__(int64_t i) { kern::upsample_fwd_at(y, x, H, W, P, Q, i); });
}
void upsample_bilinear_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q) {
  each(static_cast<int64_t>(NC) * H * W, [=] __device__(int64_t i) { kern::upsample_bwd_at(dx, dy, H, W, P, Q, i); });
}
void mask_mul_forward(float* y, const float* x, const float* m, int N, int C, int64_t L, bool x_shared) {
  each(static_cast<int64_t>(N) * C * L, [=] __device__(int64_t i) { kern::mask_mul_at(y, x, m, C, L, x_shared, i); });
}
void mask_mul_backward_mask(float* dm, const float* dy, const float* x, int N, int C, int64_t L) {
  each(static_cast<int64_t>(N) * L, [=] __device__(int64_t i) { kern::mask_mul_bwd_mask_at(dm, dy, x, C, L, i); });
}
void area_terms(float* value, float* grad, const float* m, int64_t L, float eps, float power, float scale) {
  each(L, [=] __device__(int64_t i) { kern::area_at(value, grad, m, eps, power, scale, i); });
}
void tv_terms(float* value, float* grad, const float* m, int maps, int h, int w, float border, float scale) {
  each(static_cast<int64_t>(maps) * h * w,
       [=] __device__(int64_t i) { kern::tv_at(value, grad, m, h, w, border, scale, i); });
}
void sgd_step(float* p, float* buf, const float* grad, int64_t L, float lr, float momentum, float wd, bool nesterov,
              bool first) {
  each(L, [=] __device__(int64_t i) { kern::sgd_at(p, buf, grad, lr, momentum, wd, nesterov, first, i); });
}

void dropout_forward(float* y, float* mask, const float* x, int64_t L, float p, uint64_t seed) {
  each(L, [=] __device__(int64_t i) { kern::dropout_at(y, mask, x, p, seed, i); });
}
void mul_forward(float* y, const float* a, const float* b, int64_t L) {
  each(L, [=] __device__(int64_t i) { kern::mul_at(y, a, b, i); });
}

namespace {

// One block per map: a strided min/max, a tree over the block, then the values (Score-CAM
// normalizes 512-2048 maps of 224x224 at once; a thread per map left most of the GPU idle and
// read memory uncoalesced). In place is safe: every value is read again by the thread that
// writes it, after the reduction.
__global__ void minmax_kernel(float* y, const float* x, int64_t L, bool sub) {
  __shared__ float lo_s[kBlock], hi_s[kBlock];
  const float* xm = x + static_cast<int64_t>(blockIdx.x) * L;
  float* ym = y + static_cast<int64_t>(blockIdx.x) * L;
  const int t = threadIdx.x;
  float lo = xm[0], hi = xm[0];
  for (int64_t i = t; i < L; i += blockDim.x) kern::minmax_step(xm[i], lo, hi);
  lo_s[t] = lo;
  hi_s[t] = hi;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      lo_s[t] = lo_s[t + stride] < lo_s[t] ? lo_s[t + stride] : lo_s[t];
      hi_s[t] = hi_s[t + stride] > hi_s[t] ? hi_s[t + stride] : hi_s[t];
    }
    __syncthreads();
  }
  const float lo_m = lo_s[0], range = hi_s[0] - lo_s[0];
  for (int64_t i = t; i < L; i += blockDim.x) ym[i] = kern::minmax_value(xm[i], lo_m, range, sub);
}

}  // namespace

void minmax_normalize(float* y, const float* x, int maps, int64_t L, bool sub) {
  if (maps <= 0 || L <= 0) return;
  minmax_kernel<<<maps, kBlock, 0, cuda::ctx::stream()>>>(y, x, L, sub);
  CUDA_CHECK(cudaGetLastError());
}

void cam_weights(float* w, const float* A, const float* g, const float* expS, int N, int C, int64_t L, int kind) {
  each(static_cast<int64_t>(N) * C, [=] __device__(int64_t nc) { kern::cam_weight_at(w, A, g, expS, C, L, kind, nc); });
}

}  // namespace lcam::gpu
