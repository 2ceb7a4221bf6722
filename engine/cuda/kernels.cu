// kernels.cu — the CUDA side of the elementwise, pooling, softmax, cross-entropy and normalize
// ops of lcam::gpu (engine/backend.h), plus the bias/activation and per-channel-sum helpers
// that conv.cu and gemm.cu use (context.cuh). Each op is a thin __global__ wrapper that guards
// i < total and calls the body in kernels/bodies.h that the CPU backend also runs, so the
// arithmetic is tested without a GPU; launchers compute CEIL_DIV and check every launch.
// Only channel_sum has GPU-only arithmetic (a block reduction in double; fixed order, deterministic).
// Deliberately omits vectorized loads, fused ops and tuned block sizes: these kernels are
// memory-bound and small next to the convolutions.
// Letters: N batch, C channels, HW plane size, P,Q pooled size, O logits per row, L elements.
#include <cstdint>  // int32_t, int64_t

#include <cuda_runtime_api.h>  // cudaGetLastError, cudaStream_t

#include "engine/backend.h"         // lcam::gpu declarations (LCAM_BACKEND_OPS)
#include "engine/common.h"          // LCAM_REQUIRE
#include "engine/cuda/check.cuh"    // CUDA_CHECK, CEIL_DIV
#include "engine/cuda/context.cuh"  // ctx::stream, ctx::kBlock, detail:: launchers
#include "kernels/bodies.h"         // kern::*_at bodies shared with the CPU backend

// A host-only function called from a shared body compiles with a mere warning and leaves the
// kernel empty: make that an error here. The bodies call ConvParams/PoolParams::P() and Q(),
// which must therefore stay constexpr (device-callable under --expt-relaxed-constexpr).
#pragma nv_diag_error 20011
#pragma nv_diag_error 20014
static_assert(lcam::PoolParams{1, 1, 4, 4, 2, 2, 2, 2, 0, 0}.P() == 2,
              "PoolParams::P() must be constexpr: the CUDA kernels call it");
static_assert(lcam::ConvParams{1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1}.Q() == 4,
              "ConvParams::Q() must be constexpr: the CUDA kernels call it");

namespace lcam::gpu {
namespace {

using cuda::ctx::kBlock;

// Grid for `total` flat indices (total > 0; callers return early on empty tensors).
unsigned int grid_for(int64_t total) { return static_cast<unsigned int>(CEIL_DIV(total, kBlock)); }

// ---- kernels: guard and call the shared body ----------------------------------------------------
__global__ void relu_fwd_kernel(float* y, const float* x, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::relu_fwd_at(y, x, i);
}

__global__ void relu_bwd_kernel(float* dx, const float* dy, const float* y, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::relu_bwd_at(dx, dy, y, i);
}

// One thread per element, one warp per 32-bit word (kBlock is a multiple of 32): the warp's
// ballot is the word. Every lane takes part in the ballot, the ones past the end with 0.
__global__ void relu_mask_pack_kernel(uint32_t* bits, const float* y, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const unsigned word = __ballot_sync(0xffffffffu, i < L && !(y[i] <= 0.f));
  if ((threadIdx.x & 31) == 0 && i < L) bits[i >> 5] = word;
}

__global__ void relu_mask_bwd_kernel(float* dx, const float* dy, const uint32_t* bits, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::relu_mask_bwd_at(dx, dy, bits, i);
}

__global__ void add_kernel(float* y, const float* a, const float* b, bool relu, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::add_at(y, a, b, relu, i);
}

__global__ void add_inplace_kernel(float* y, const float* a, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::add_inplace_at(y, a, i);
}

__global__ void channel_affine_fwd_kernel(float* y, const float* x, const float* scale,
                                          const float* shift, int C, int64_t HW, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::channel_affine_fwd_at(y, x, scale, shift, C, HW, i);
}

__global__ void channel_affine_bwd_kernel(float* dx, const float* dy, const float* scale, int C,
                                          int64_t HW, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::channel_affine_bwd_at(dx, dy, scale, C, HW, i);
}

__global__ void bias_act_kernel(float* y, const float* b, const float* z, int C, int64_t HW, bool relu,
                                int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::bias_act_at(y, b, z, C, HW, relu, i);
}

__global__ void maxpool_fwd_kernel(float* y, uint8_t* argmax, const float* x, PoolParams p,
                                   int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::maxpool_fwd_at(y, argmax, x, p, i);
}

__global__ void maxpool_bwd_kernel(float* dx, const float* dy, const uint8_t* argmax,
                                   PoolParams p, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::maxpool_bwd_at(dx, dy, argmax, p, i);
}

__global__ void adaptive_avgpool_fwd_kernel(float* y, const float* x, int H, int W, int P, int Q,
                                            int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::adaptive_avgpool_fwd_at(y, x, H, W, P, Q, i);
}

__global__ void adaptive_avgpool_bwd_kernel(float* dx, const float* dy, int H, int W, int P,
                                            int Q, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::adaptive_avgpool_bwd_at(dx, dy, H, W, P, Q, i);
}

// One thread per row: rows are few (a batch) and O is 1000, so this is not worth a reduction.
__global__ void softmax_kernel(float* y, const float* x, int N, int O, bool log) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < N) kern::softmax_row(y, x, O, log, n);
}

__global__ void cross_entropy_kernel(float* loss, float* dlogits, const float* logits,
                                     const int32_t* labels, int N, int O, float scale) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < N) kern::cross_entropy_row(loss, dlogits, logits, labels, O, scale, n);
}

__global__ void normalize_kernel(float* y, const float* x, int64_t HW, float m0, float m1,
                                 float m2, float s0, float s1, float s2, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) kern::normalize_at(y, x, HW, m0, m1, m2, s0, s1, s2, i);
}

// out[c] = sum of x[n, c, :] over n and the plane. One block per channel; each thread sums a
// strided subset in a fixed order, then a shared-memory tree combines them: deterministic.
// Accumulated in double, as the CPU's sums (ops.h): the L-CAM loss totals add up to N*L
// values, where a float accumulator would drift with the batch.
template <class T>  // float, or double for sum() (the CPU's sum keeps its double)
__global__ void channel_sum_kernel(T* out, const float* x, int N, int C, int64_t HW) {
  __shared__ double partial[kBlock];
  const int c = blockIdx.x;
  double acc = 0.0;
  // Each image's plane of channel c is contiguous: walk the planes, no division per element.
  // With small planes (HW < blockDim: a linear layer's bias has HW = 1) the threads take
  // (image, pixel) pairs instead, so that the block is not left mostly idle.
  if (HW >= blockDim.x) {
    for (int n = 0; n < N; ++n) {
      const float* plane = x + (static_cast<int64_t>(n) * C + c) * HW;
      for (int64_t hw = threadIdx.x; hw < HW; hw += blockDim.x) acc += plane[hw];
    }
  } else {
    const int64_t per_channel = static_cast<int64_t>(N) * HW;
    for (int64_t j = threadIdx.x; j < per_channel; j += blockDim.x) {
      const int64_t n = j / HW, hw = j - n * HW;
      acc += x[(n * C + c) * HW + hw];
    }
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[c] = static_cast<T>(partial[0]);
}

}  // namespace

// ---- layout changes for the bfloat16 convolutions (conv.cu) ------------------------------------
// A 32x32 tile of an image's [C, HW] plane goes through shared memory (one spare column keeps
// the transposed reads free of bank conflicts), so both the float32 NCHW side and the bfloat16
// NHWC side are read and written along rows. Block 32x8: each thread moves 4 elements.
constexpr int kTile = 32, kTileRows = 8;

// out[n, hw, c] = bf16(in[n, c, hw]).
__global__ void to_nhwc_bf16_kernel(uint16_t* out, const float* in, int C, int64_t HW) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t n = blockIdx.z, hw0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int c0 = blockIdx.y * kTile;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int c = c0 + j;
    const int64_t hw = hw0 + threadIdx.x;
    if (c < C && hw < HW) tile[j][threadIdx.x] = in[(n * C + c) * HW + hw];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int64_t hw = hw0 + j;
    const int c = c0 + threadIdx.x;
    if (c < C && hw < HW) out[(n * HW + hw) * C + c] = kern::bf16_from_float(tile[threadIdx.x][j]);
  }
}

// out[n, c, hw] = act(in[n, hw, c] + b[c] + z[n, c, hw]) in float32; b and z may be null.
__global__ void from_nhwc_bf16_kernel(float* out, const uint16_t* in, const float* b, const float* z, int C,
                                      int64_t HW, bool relu) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t n = blockIdx.z, hw0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int c0 = blockIdx.y * kTile;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int64_t hw = hw0 + j;
    const int c = c0 + threadIdx.x;
    if (c < C && hw < HW) tile[j][threadIdx.x] = kern::bf16_to_float(in[(n * HW + hw) * C + c]);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int c = c0 + j;
    const int64_t hw = hw0 + threadIdx.x;
    if (c < C && hw < HW) {
      const int64_t at = (n * C + c) * HW + hw;
      float v = tile[threadIdx.x][j] + (b ? b[c] : 0.f);
      if (z) v += z[at];
      out[at] = relu ? kern::relu(v) : v;
    }
  }
}

// HW == 1 (a 1x1 convolution's weights [K, C, 1, 1]): both layouts are the same, a flat cast.
__global__ void to_bf16_flat_kernel(uint16_t* out, const float* in, int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < L) out[i] = kern::bf16_from_float(in[i]);
}
__global__ void from_bf16_flat_kernel(float* out, const uint16_t* in, const float* b, const float* z, int C, bool relu,
                                      int64_t L) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= L) return;
  float v = kern::bf16_to_float(in[i]) + (b ? b[i % C] : 0.f);
  if (z) v += z[i];
  out[i] = relu ? kern::relu(v) : v;
}

dim3 tile_grid(int N, int C, int64_t HW) {
  return dim3(static_cast<unsigned int>(CEIL_DIV(HW, kTile)), static_cast<unsigned int>(CEIL_DIV(C, kTile)),
              static_cast<unsigned int>(N));
}

// ---- launchers: lcam::gpu ops (semantics in engine/ops.h) ------------------------------------
void relu_forward(float* y, const float* x, int64_t L) {
  if (L <= 0) return;
  relu_fwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, x, L);
  CUDA_CHECK(cudaGetLastError());
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t L) {
  if (L <= 0) return;
  relu_bwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(dx, dy, y, L);
  CUDA_CHECK(cudaGetLastError());
}

void relu_mask_pack(uint32_t* bits, const float* y, int64_t L) {
  if (L <= 0) return;
  static_assert(kBlock % 32 == 0, "relu_mask_pack_kernel: a warp per word");
  relu_mask_pack_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(bits, y, L);
  CUDA_CHECK(cudaGetLastError());
}

void relu_mask_backward(float* dx, const float* dy, const uint32_t* bits, int64_t L) {
  if (L <= 0) return;
  relu_mask_bwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(dx, dy, bits, L);
  CUDA_CHECK(cudaGetLastError());
}

void add_forward(float* y, const float* a, const float* b, int64_t L, bool relu) {
  if (L <= 0) return;
  add_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, a, b, relu, L);
  CUDA_CHECK(cudaGetLastError());
}

void add_inplace(float* y, const float* a, int64_t L) {
  if (L <= 0) return;
  add_inplace_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, a, L);
  CUDA_CHECK(cudaGetLastError());
}

void channel_affine_forward(float* y, const float* x, const float* scale, const float* shift,
                            int N, int C, int64_t HW) {
  const int64_t L = static_cast<int64_t>(N) * C * HW;
  if (L <= 0) return;
  channel_affine_fwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, x, scale, shift,
                                                                             C, HW, L);
  CUDA_CHECK(cudaGetLastError());
}

void channel_affine_backward(float* dx, const float* dy, const float* scale, int N, int C,
                             int64_t HW) {
  const int64_t L = static_cast<int64_t>(N) * C * HW;
  if (L <= 0) return;
  channel_affine_bwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(dx, dy, scale, C,
                                                                             HW, L);
  CUDA_CHECK(cudaGetLastError());
}

void maxpool2d_forward(float* y, uint8_t* argmax, const float* x, const PoolParams& p) {
  const int64_t L = static_cast<int64_t>(p.N) * p.C * p.P() * p.Q();
  if (L <= 0) return;
  maxpool_fwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, argmax, x, p, L);
  CUDA_CHECK(cudaGetLastError());
}

void maxpool2d_backward(float* dx, const float* dy, const uint8_t* argmax, const PoolParams& p) {
  const int64_t L = static_cast<int64_t>(p.N) * p.C * p.H * p.W;
  if (L <= 0) return;
  maxpool_bwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(dx, dy, argmax, p, L);
  CUDA_CHECK(cudaGetLastError());
}

void adaptive_avgpool2d_forward(float* y, const float* x, int NC, int H, int W, int P, int Q) {
  const int64_t L = static_cast<int64_t>(NC) * P * Q;
  if (L <= 0) return;
  adaptive_avgpool_fwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, x, H, W, P, Q,
                                                                               L);
  CUDA_CHECK(cudaGetLastError());
}

void adaptive_avgpool2d_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q) {
  const int64_t L = static_cast<int64_t>(NC) * H * W;
  if (L <= 0) return;
  adaptive_avgpool_bwd_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(dx, dy, H, W, P,
                                                                               Q, L);
  CUDA_CHECK(cudaGetLastError());
}

void softmax_forward(float* y, const float* x, int N, int O, bool log) {
  if (N <= 0 || O <= 0) return;
  softmax_kernel<<<grid_for(N), kBlock, 0, cuda::ctx::stream()>>>(y, x, N, O, log);
  CUDA_CHECK(cudaGetLastError());
}

void cross_entropy(float* loss_per_row, float* dlogits, const float* logits,
                   const int32_t* labels, int N, int O, float scale) {
  if (N <= 0 || O <= 0) return;
  cross_entropy_kernel<<<grid_for(N), kBlock, 0, cuda::ctx::stream()>>>(
      loss_per_row, dlogits, logits, labels, N, O, scale);
  CUDA_CHECK(cudaGetLastError());
}

void normalize_forward(float* y, const float* x, int N, int64_t HW, float m0, float m1, float m2,
                       float s0, float s1, float s2) {
  const int64_t L = static_cast<int64_t>(N) * 3 * HW;
  if (L <= 0) return;
  normalize_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, x, HW, m0, m1, m2, s0, s1,
                                                                    s2, L);
  CUDA_CHECK(cudaGetLastError());
}

// ---- helpers for conv.cu and gemm.cu (context.cuh) ----------------------------------------------
namespace detail {

void bias_act(float* y, const float* b, const float* z, int N, int C, int64_t HW, bool relu) {
  const int64_t L = static_cast<int64_t>(N) * C * HW;
  if (L <= 0 || (!b && !z && !relu)) return;
  bias_act_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(y, b, z, C, HW, relu, L);
  CUDA_CHECK(cudaGetLastError());
}

namespace {
template <class T>
void launch_channel_sum(T* out, const float* x, int N, int C, int64_t HW) {
  if (C <= 0) return;
  // N == 0 or HW == 0 still launches: every channel sum is then written as 0.
  channel_sum_kernel<T><<<static_cast<unsigned int>(C), kBlock, 0, cuda::ctx::stream()>>>(out, x, N, C, HW);
  CUDA_CHECK(cudaGetLastError());
}
}  // namespace
void channel_sum(float* out, const float* x, int N, int C, int64_t HW) { launch_channel_sum(out, x, N, C, HW); }
void channel_sum(double* out, const float* x, int N, int C, int64_t HW) { launch_channel_sum(out, x, N, C, HW); }

void to_nhwc_bf16(uint16_t* out, const float* in, int N, int C, int64_t HW) {
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (HW == 1) {
    const int64_t L = static_cast<int64_t>(N) * C;
    to_bf16_flat_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(out, in, L);
    CUDA_CHECK(cudaGetLastError());
    return;
  }
  LCAM_REQUIRE(N <= 65535, "to_nhwc_bf16: at most 65535 images per call");
  to_nhwc_bf16_kernel<<<tile_grid(N, C, HW), dim3(kTile, kTileRows), 0, cuda::ctx::stream()>>>(out, in, C, HW);
  CUDA_CHECK(cudaGetLastError());
}

void from_nhwc_bf16(float* out, const uint16_t* in, const float* b, const float* z, int N, int C, int64_t HW,
                    bool relu) {
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (HW == 1) {
    const int64_t L = static_cast<int64_t>(N) * C;
    from_bf16_flat_kernel<<<grid_for(L), kBlock, 0, cuda::ctx::stream()>>>(out, in, b, z, C, relu, L);
    CUDA_CHECK(cudaGetLastError());
    return;
  }
  LCAM_REQUIRE(N <= 65535, "from_nhwc_bf16: at most 65535 images per call");
  from_nhwc_bf16_kernel<<<tile_grid(N, C, HW), dim3(kTile, kTileRows), 0, cuda::ctx::stream()>>>(out, in, b, z, C,
                                                                                                   HW, relu);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace lcam::gpu
