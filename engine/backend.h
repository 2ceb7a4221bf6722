// backend.h — the raw-pointer entry points each backend implements. engine/ops.cpp checks
// shapes and devices and calls lcam::cpu::* (engine/cpu_ops.cpp) or lcam::gpu::* (engine/cuda/).
// The list is written once (LCAM_BACKEND_OPS) so the two backends cannot drift apart in
// signature. Semantics are those of engine/ops.h; b, db, argmax may be null.
// Letters: N,C,H,W input; K,R,S weight; P,Q output; F,O linear in/out features; L elements.
#pragma once
#include <string>  // std::string (blas_core)
#include <cstdint>  // int64_t

#include "engine/ops.h"  // ConvParams, PoolParams

#define LCAM_BACKEND_OPS                                                                         \
  /* y = act(conv(x, w) + b + z); b and z (a residual of y's shape) may be null */              \
  void conv2d_forward(float* y, const float* x, const float* w, const float* b, const float* z, \
                      const ConvParams& p, bool relu);                                           \
  void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvParams& p);    \
  void conv2d_backward_weight(float* dw, float* db, const float* dy, const float* x,            \
                              const ConvParams& p);                                              \
  void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int F,   \
                      int O, bool relu);                                                         \
  void linear_backward_data(float* dx, const float* dy, const float* w, int N, int F, int O);    \
  void linear_backward_weight(float* dw, float* db, const float* dy, const float* x, int N,     \
                              int F, int O);                                                     \
  void relu_forward(float* y, const float* x, int64_t L);                                        \
  void relu_backward(float* dx, const float* dy, const float* y, int64_t L);                     \
  void relu_mask_pack(uint32_t* bits, const float* y, int64_t L);                                \
  void relu_mask_backward(float* dx, const float* dy, const uint32_t* bits, int64_t L);          \
  void add_forward(float* y, const float* a, const float* b, int64_t L, bool relu);              \
  void add_inplace(float* y, const float* a, int64_t L);                                         \
  void channel_affine_forward(float* y, const float* x, const float* scale, const float* shift, \
                              int N, int C, int64_t HW);                                         \
  void channel_affine_backward(float* dx, const float* dy, const float* scale, int N, int C,     \
                               int64_t HW);                                                      \
  void maxpool2d_forward(float* y, uint8_t* argmax, const float* x, const PoolParams& p);        \
  void maxpool2d_backward(float* dx, const float* dy, const uint8_t* argmax, const PoolParams& p);\
  void adaptive_avgpool2d_forward(float* y, const float* x, int NC, int H, int W, int P, int Q); \
  void adaptive_avgpool2d_backward(float* dx, const float* dy, int NC, int H, int W, int P,      \
                                   int Q);                                                       \
  void softmax_forward(float* y, const float* x, int N, int O, bool log);                        \
  /* loss_per_row[N] = -log_softmax(x)[label]; dlogits (may be null) = (softmax-onehot)*scale */ \
  void cross_entropy(float* loss_per_row, float* dlogits, const float* logits,                  \
                     const int32_t* labels, int N, int O, float scale);                          \
  void normalize_forward(float* y, const float* x, int N, int64_t HW, float m0, float m1,       \
                         float m2, float s0, float s1, float s2);                                \
  /* C_b = op(A_b) op(B_b) + beta C_b for b < batch; row-major, dense, strides in elements */   \
  void gemm_batched(float* C, const float* A, const float* B, int batch, int M, int N, int K,    \
                    bool ta, bool tb, int64_t sA, int64_t sB, int64_t sC, float beta);           \
  /* table has T rows; a row index outside [0,T) gathers zeros / is skipped (device indices */  \
  /* are not range-checked by ops.cpp: that would need a copy back) */                          \
  void gather_rows(float* out, const float* table, const int32_t* rows, int R, int C, int T);   \
  void scatter_add_rows(float* table, const float* in, const int32_t* rows, int R, int C, int T);\
  void argmax_rows(float* idx, const float* x, int N, int O);                                    \
  void row_sum(float* out, const float* in, int R, int64_t L);                                   \
  /* y[n,c,:] = act(y[n,c,:] + b[c]) */                                                          \
  void bias_act(float* y, const float* b, int N, int C, int64_t HW, bool relu);                  \
  double sum(const float* x, int64_t L);                                                         \
  void sigmoid_forward(float* y, const float* x, int64_t L);                                     \
  void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t L);                  \
  void upsample_bilinear_forward(float* y, const float* x, int NC, int H, int W, int P, int Q);  \
  void upsample_bilinear_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q);\
  void mask_mul_forward(float* y, const float* x, const float* m, int N, int C, int64_t L,      \
                        bool x_shared);                                                          \
  void mask_mul_backward_mask(float* dm, const float* dy, const float* x, int N, int C,         \
                              int64_t L);                                                        \
  void area_terms(float* value, float* grad, const float* m, int64_t L, float eps, float power,  \
                  float scale);                                                                  \
  void tv_terms(float* value, float* grad, const float* m, int maps, int h, int w, float border, \
                float scale);                                                                    \
  void sgd_step(float* p, float* buf, const float* grad, int64_t L, float lr, float momentum,    \
                float wd, bool nesterov, bool first);                                            \
  void dropout_forward(float* y, float* mask, const float* x, int64_t L, float p, uint64_t seed); \
  void mul_forward(float* y, const float* a, const float* b, int64_t L);                          \
  void minmax_normalize(float* y, const float* x, int maps, int64_t L, bool sub);                       \
  void cam_weights(float* w, const float* A, const float* g, const float* expS, int N, int C,     \
                   int64_t L, int kind);

namespace lcam::cpu {
LCAM_BACKEND_OPS
void set_num_threads(int n);  // OpenMP loops and OpenBLAS; n <= 0 means all cores
int num_threads();
// The kernels OpenBLAS runs ("Cooperlake", "Haswell", ...: its own choice for this CPU, or the
// one OPENBLAS_CORETYPE forces), for benchmark logs: forcing an older set can halve GEMM speed.
std::string blas_core();
// The direct convolution's AVX-512 rows (default on where the CPU has AVX-512F; the same bits
// as its AVX2 rows): off for tests that compare the two. direct_avx512() says whether they run.
void set_direct_avx512(bool on);
bool direct_avx512();
// Whether a forward convolution with p takes the direct kernel (stride 1, on CPUs with AVX2 and
// FMA: 8 to 32 output channels, or 64 from a first layer's few inputs or, with the AVX-512 rows,
// from any number; with the AVX-512 rows also 3).
bool uses_direct(const ConvParams& p);
// The data gradient of a convolution whose output went through a ReLU, from that ReLU's packed
// mask (relu_mask_pack): relu_mask_backward then conv2d_backward_data, the same values, where
// fuses_relu_data(p) (the layers the direct kernel runs it for): the kernel masks dy's rows as it
// copies them, without a masked copy of dy. Only for such p.
bool fuses_relu_data(const ConvParams& p);
void conv2d_backward_data_relu(float* dx, const float* dy, const uint32_t* bits, const float* w, const ConvParams& p);
// Inference through a convolution, its bias and ReLU, then a 2x2/2 max-pool (floor mode, no
// indices): y[N, K, P/2, Q/2], the same values as conv2d_forward then maxpool2d_forward, in one
// pass where fuses_conv_pool(p) (the layers the direct kernel runs): the convolution's output is
// pooled two rows at a time in cache and never written. Only for such p.
bool fuses_conv_pool(const ConvParams& p);
void conv2d_relu_maxpool2_forward(float* y, const float* x, const float* w, const float* b, const ConvParams& p);
// Whether a linear layer of N rows takes the few-row kernels (1 to 8 rows, CPUs with AVX2 and
// FMA): y[n,o] as 16 partial sums, lane l taking the columns f = l (mod 16) in increasing f by
// FMAs, added as (l, l+8), (l, l+4), (l, l+2), (l, l+1); dx[n,f] by FMAs in increasing o.
bool uses_linear_rows(int N);
// Winograd for stride-1 3x3 convolutions of at least 128 input and output channels (64 input
// channels with F(4x4): VGG-16's features.5 at 224x224) whose
// output has at least as many pixels as channels (VGG-16's blocks 2 to 4 at 224x224) or 64 2x2
// tiles over the batch (14x14 layers from batch 2), in the forward pass and the data gradient
// alike. Default on. uses_winograd(p) says whether a forward with p takes it. Tiles of 4x4
// outputs, F(4x4, 3x3), with at least 128 of them over the batch and little of them past the
// output's edge (56x56 from batch 1, 28x28 from batch 3), else F(2x2, 3x3): winograd_tile_of(p)
// says which (4 or 2; 0 without Winograd). set_winograd_tile(2 or 4) forces one where Winograd
// runs, 0 restores the rule (tests).
void set_winograd(bool on);
bool uses_winograd(const ConvParams& p);
void set_winograd_tile(int m);
int winograd_tile_of(const ConvParams& p);
// Emulates the GPU's bf16 convolutions (cuda::set_conv_bf16) with the same rounding: for
// checking what bf16 changes, not for speed. Default off.
void set_conv_bf16(bool on);
}  // namespace lcam::cpu

namespace lcam::gpu {
LCAM_BACKEND_OPS
}  // namespace lcam::gpu
