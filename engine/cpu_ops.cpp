// cpu_ops.cpp — the CPU backend of engine/backend.h. Convolutions and linear layers are
// im2col + OpenBLAS sgemm (1x1 stride-1 convolutions skip im2col); everything else loops the
// shared bodies of kernels/bodies.h with OpenMP. Omits any SIMD of its own: the GEMM dominates.
// Letters: N,C,H,W input; K,R,S weight; P,Q output; F,O linear in/out features; L elements.
#include <omp.h>    // omp_set_num_threads, omp_get_max_threads
#include <cblas.h>  // cblas_sgemm, openblas_set_num_threads

#include <algorithm>  // std::fill
#include <cstring>    // std::memcpy, std::memset
#include <vector>     // std::vector (im2col scratch)

#include "engine/backend.h"  // the interface implemented here
#include "kernels/bodies.h"  // kern::* shared bodies

namespace lcam::cpu {
namespace {

// Runs body(i) for i in [0, L) on all OpenMP threads (serially for small L).
template <class F>
void parallel_for(int64_t L, F&& body) {
#pragma omp parallel for schedule(static) if (L > 4096)
  for (int64_t i = 0; i < L; ++i) body(i);
}

bool is_pointwise(const ConvParams& p) {
  return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// col[C*R*S, P*Q] from one image x[C,H,W]; rows are parallel, each row writes its own span.
void im2col(float* col, const float* x, const ConvParams& p) {
  const int P = p.P(), Q = p.Q();
  const int rows = p.C * p.R * p.S;
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int s = row % p.S, r = (row / p.S) % p.R, c = row / (p.R * p.S);
    const float* xc = x + static_cast<int64_t>(c) * p.H * p.W;
    float* out = col + static_cast<int64_t>(row) * P * Q;
    for (int oh = 0; oh < P; ++oh) {
      const int h = oh * p.stride_h - p.pad_h + r;
      float* o = out + static_cast<int64_t>(oh) * Q;
      if (h < 0 || h >= p.H) {
        std::fill(o, o + Q, 0.f);
        continue;
      }
      const float* xr = xc + static_cast<int64_t>(h) * p.W;
      // Valid ow: 0 <= ow*stride - pad + s < W.
      for (int ow = 0; ow < Q; ++ow) {
        const int w = ow * p.stride_w - p.pad_w + s;
        o[ow] = (w >= 0 && w < p.W) ? xr[w] : 0.f;
      }
    }
  }
}

// dx[C,H,W] = col2im(col[C*R*S, P*Q]) (overwrites); channels are parallel, so no two threads
// touch the same plane.
void col2im(float* dx, const float* col, const ConvParams& p) {
  const int P = p.P(), Q = p.Q();
#pragma omp parallel for schedule(static)
  for (int c = 0; c < p.C; ++c) {
    float* dxc = dx + static_cast<int64_t>(c) * p.H * p.W;
    std::memset(dxc, 0, sizeof(float) * p.H * p.W);
    for (int r = 0; r < p.R; ++r)
      for (int s = 0; s < p.S; ++s) {
        const float* in = col + ((static_cast<int64_t>(c) * p.R + r) * p.S + s) * P * Q;
        for (int oh = 0; oh < P; ++oh) {
          const int h = oh * p.stride_h - p.pad_h + r;
          if (h < 0 || h >= p.H) continue;
          float* dr = dxc + static_cast<int64_t>(h) * p.W;
          const float* ir = in + static_cast<int64_t>(oh) * Q;
          for (int ow = 0; ow < Q; ++ow) {
            const int w = ow * p.stride_w - p.pad_w + s;
            if (w >= 0 && w < p.W) dr[w] += ir[ow];
          }
        }
      }
  }
}

// C[M,N] = A[M,K] B[K,N] (+ beta C), row-major, optional transposes.
void gemm(bool ta, bool tb, int M, int N, int K, const float* A, const float* B, float* C,
          float beta) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, 1.f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const ConvParams& p,
                    bool relu) {
  const int P = p.P(), Q = p.Q();
  const int64_t PQ = static_cast<int64_t>(P) * Q, CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  std::vector<float> col(is_pointwise(p) ? 0 : CRS * PQ);
  for (int n = 0; n < p.N; ++n) {
    const float* xn = x + static_cast<int64_t>(n) * p.C * p.H * p.W;
    float* yn = y + static_cast<int64_t>(n) * p.K * PQ;
    const float* B = xn;
    if (!col.empty()) {
      im2col(col.data(), xn, p);
      B = col.data();
    }
    gemm(false, false, p.K, static_cast<int>(PQ), static_cast<int>(CRS), w, B, yn, 0.f);
  }
  if (b || relu)
    parallel_for(static_cast<int64_t>(p.N) * p.K * PQ,
                 [&](int64_t i) { kern::bias_act_at(y, b, p.K, PQ, relu, i); });
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvParams& p) {
  const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q(), CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  const bool pw = is_pointwise(p);
  std::vector<float> col(pw ? 0 : CRS * PQ);
  for (int n = 0; n < p.N; ++n) {
    const float* dyn = dy + static_cast<int64_t>(n) * p.K * PQ;
    float* dxn = dx + static_cast<int64_t>(n) * p.C * p.H * p.W;
    float* out = pw ? dxn : col.data();
    gemm(true, false, static_cast<int>(CRS), static_cast<int>(PQ), p.K, w, dyn, out, 0.f);
    if (!pw) col2im(dxn, col.data(), p);
  }
}

void conv2d_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const ConvParams& p) {
  const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q(), CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  std::vector<float> col(is_pointwise(p) ? 0 : CRS * PQ);
  for (int n = 0; n < p.N; ++n) {
    const float* xn = x + static_cast<int64_t>(n) * p.C * p.H * p.W;
    const float* dyn = dy + static_cast<int64_t>(n) * p.K * PQ;
    const float* B = xn;
    if (!col.empty()) {
      im2col(col.data(), xn, p);
      B = col.data();
    }
    gemm(false, true, p.K, static_cast<int>(CRS), static_cast<int>(PQ), dyn, B, dw, n ? 1.f : 0.f);
  }
  if (p.N == 0) std::memset(dw, 0, sizeof(float) * p.K * CRS);
  if (db) {
#pragma omp parallel for schedule(static)
    for (int k = 0; k < p.K; ++k) {
      double acc = 0.0;
      for (int n = 0; n < p.N; ++n) {
        const float* d = dy + (static_cast<int64_t>(n) * p.K + k) * PQ;
        for (int64_t i = 0; i < PQ; ++i) acc += d[i];
      }
      db[k] = static_cast<float>(acc);
    }
  }
}

void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int F, int O,
                    bool relu) {
  gemm(false, true, N, O, F, x, w, y, 0.f);
  if (b || relu)
    parallel_for(static_cast<int64_t>(N) * O, [&](int64_t i) { kern::bias_act_at(y, b, O, 1, relu, i); });
}

void linear_backward_data(float* dx, const float* dy, const float* w, int N, int F, int O) {
  gemm(false, false, N, F, O, dy, w, dx, 0.f);
}

void linear_backward_weight(float* dw, float* db, const float* dy, const float* x, int N, int F,
                            int O) {
  gemm(true, false, O, F, N, dy, x, dw, 0.f);
  if (db)
    for (int o = 0; o < O; ++o) {
      double acc = 0.0;
      for (int n = 0; n < N; ++n) acc += dy[static_cast<int64_t>(n) * O + o];
      db[o] = static_cast<float>(acc);
    }
}

void relu_forward(float* y, const float* x, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::relu_fwd_at(y, x, i); });
}
void relu_backward(float* dx, const float* dy, const float* y, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::relu_bwd_at(dx, dy, y, i); });
}
void add_forward(float* y, const float* a, const float* b, int64_t L, bool relu) {
  parallel_for(L, [&](int64_t i) { kern::add_at(y, a, b, relu, i); });
}
void add_inplace(float* y, const float* a, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::add_inplace_at(y, a, i); });
}
void channel_affine_forward(float* y, const float* x, const float* scale, const float* shift, int N,
                            int C, int64_t HW) {
  parallel_for(static_cast<int64_t>(N) * C * HW,
               [&](int64_t i) { kern::channel_affine_fwd_at(y, x, scale, shift, C, HW, i); });
}
void channel_affine_backward(float* dx, const float* dy, const float* scale, int N, int C,
                             int64_t HW) {
  parallel_for(static_cast<int64_t>(N) * C * HW,
               [&](int64_t i) { kern::channel_affine_bwd_at(dx, dy, scale, C, HW, i); });
}
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const PoolParams& p) {
  parallel_for(static_cast<int64_t>(p.N) * p.C * p.P() * p.Q(),
               [&](int64_t i) { kern::maxpool_fwd_at(y, argmax, x, p, i); });
}
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const PoolParams& p) {
  parallel_for(static_cast<int64_t>(p.N) * p.C * p.H * p.W,
               [&](int64_t i) { kern::maxpool_bwd_at(dx, dy, argmax, p, i); });
}
void adaptive_avgpool2d_forward(float* y, const float* x, int NC, int H, int W, int P, int Q) {
  parallel_for(static_cast<int64_t>(NC) * P * Q,
               [&](int64_t i) { kern::adaptive_avgpool_fwd_at(y, x, H, W, P, Q, i); });
}
void adaptive_avgpool2d_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q) {
  parallel_for(static_cast<int64_t>(NC) * H * W,
               [&](int64_t i) { kern::adaptive_avgpool_bwd_at(dx, dy, H, W, P, Q, i); });
}
void softmax_forward(float* y, const float* x, int N, int O, bool log) {
  for (int64_t n = 0; n < N; ++n) kern::softmax_row(y, x, O, log, n);
}
void cross_entropy(float* loss_per_row, float* dlogits, const float* logits, const int32_t* labels,
                   int N, int O, float scale) {
  for (int64_t n = 0; n < N; ++n)
    kern::cross_entropy_row(loss_per_row, dlogits, logits, labels, O, scale, n);
}
void normalize_forward(float* y, const float* x, int N, int64_t HW, float m0, float m1, float m2,
                       float s0, float s1, float s2) {
  parallel_for(static_cast<int64_t>(N) * 3 * HW,
               [&](int64_t i) { kern::normalize_at(y, x, HW, m0, m1, m2, s0, s1, s2, i); });
}

}  // namespace lcam::cpu
