// bodies.h — kernel bodies written once, as functions of one output index, and run both by the
// CPU backend's parallel loops and by the thin __global__ wrappers of engine/cuda/kernels.cu.
// CI (no GPU) therefore exercises the exact arithmetic the GPU runs. Omits anything that needs
// shared memory or warp cooperation: those kernels live in engine/cuda/ with their own tests.
// Letters: N,C,H,W input; P,Q output; i a flat output index in row-major order.
#pragma once
#include <cmath>    // expf, logf
#include <cstdint>  // int32_t, int64_t, uint16_t
#include <cstring>  // std::memcpy (host bit casts)

#include "engine/common.h"  // ENGINE_HD
#include "engine/ops.h"     // ConvParams, PoolParams

namespace lcam::kern {

// ReLU as torch.relu: negative values to +0; NaN and -0 pass unchanged (v < 0 is false for
// both), so that a NaN is not hidden by the layers after it.
ENGINE_HD inline float relu(float v) { return v < 0.f ? 0.f : v; }

// bfloat16 as its bits: the upper half of a float32. bf16_from_float rounds to nearest, ties to
// even (as __float2bfloat16_rn and torch); a NaN stays a quiet NaN, overflow gives infinity.
ENGINE_HD inline uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
ENGINE_HD inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
ENGINE_HD inline uint16_t bf16_from_float(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
ENGINE_HD inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

ENGINE_HD inline void relu_fwd_at(float* y, const float* x, int64_t i) { y[i] = relu(x[i]); }
// The gradient passes where the output is not <= 0: as torch's threshold_backward, a NaN
// output passes it, a -0 or +0 one stops it.
ENGINE_HD inline void relu_bwd_at(float* dx, const float* dy, const float* y, int64_t i) {
  dx[i] = y[i] <= 0.f ? 0.f : dy[i];
}
// A ReLU's mask packed 32 to a word: bit (i % 32) of bits[i / 32] is !(y[i] <= 0), the
// gradient's rule above (what the backbone's tape keeps instead of the ReLU's output). The CUDA
// side packs with a warp ballot.
ENGINE_HD inline void relu_mask_pack_at(uint32_t* bits, const float* y, int64_t L, int64_t word) {
  const int64_t i0 = word * 32;
  const int n = L - i0 < 32 ? static_cast<int>(L - i0) : 32;
  uint32_t v = 0;
  for (int j = 0; j < n; ++j) v |= (y[i0 + j] <= 0.f ? 0u : 1u) << j;
  bits[word] = v;
}
ENGINE_HD inline void relu_mask_bwd_at(float* dx, const float* dy, const uint32_t* bits, int64_t i) {
  dx[i] = (bits[i >> 5] >> (i & 31)) & 1u ? dy[i] : 0.f;
}
ENGINE_HD inline void add_at(float* y, const float* a, const float* b, bool r, int64_t i) {
  float v = a[i] + b[i];
  y[i] = r ? relu(v) : v;
}
ENGINE_HD inline void add_inplace_at(float* y, const float* a, int64_t i) { y[i] += a[i]; }

// Channel of flat index i in an [N,C,HW] tensor.
ENGINE_HD inline int channel_of(int64_t i, int C, int64_t HW) { return static_cast<int>((i / HW) % C); }

ENGINE_HD inline void channel_affine_fwd_at(float* y, const float* x, const float* scale,
                                            const float* shift, int C, int64_t HW, int64_t i) {
  int c = channel_of(i, C, HW);
  y[i] = x[i] * scale[c] + shift[c];
}
ENGINE_HD inline void channel_affine_bwd_at(float* dx, const float* dy, const float* scale, int C,
                                            int64_t HW, int64_t i) {
  dx[i] = dy[i] * scale[channel_of(i, C, HW)];
}
// Per-channel bias (and optional ReLU) after a GEMM-based convolution or linear layer.
// y = act(y + b[c] + z): the epilogue of a convolution or linear layer; z (may be null) is a
// residual of y's shape (a ResNet bottleneck's shortcut), added after the bias.
ENGINE_HD inline void bias_act_at(float* y, const float* b, const float* z, int C, int64_t HW, bool r, int64_t i) {
  float v = y[i] + (b ? b[channel_of(i, C, HW)] : 0.f);
  if (z) v += z[i];
  y[i] = r ? relu(v) : v;
}

ENGINE_HD inline void normalize_at(float* y, const float* x, int64_t HW, float m0, float m1,
                                   float m2, float s0, float s1, float s2, int64_t i) {
  int c = static_cast<int>((i / HW) % 3);
  float m = c == 0 ? m0 : (c == 1 ? m1 : m2);
  float s = c == 0 ? s0 : (c == 1 ? s1 : s2);
  y[i] = (x[i] - m) / s;
}

// ---- max-pool: y[N,C,P,Q]; argmax holds one byte per output: the window offset r*S + s of its
// first maximum (kArgmaxNone when the window lies in the padding), so windows up to 15x15 ----
constexpr uint8_t kArgmaxNone = 255;

// One output at plane (n*C + c), row pp, column q. The CPU loops call this directly (no index
// decomposition); the GPU calls the flat-index form below.
ENGINE_HD inline void maxpool_fwd_at(float* y, uint8_t* argmax, const float* x, const PoolParams& p,
                                     int64_t plane, int pp, int q, int64_t i) {
  const float* xp = x + plane * p.H * p.W;
  const int h0 = pp * p.stride_h - p.pad_h, w0 = q * p.stride_w - p.pad_w;
  // The window's rows and columns inside the image, so that the loop has no bounds checks.
  const int r0 = h0 < 0 ? -h0 : 0, r1 = h0 + p.R > p.H ? p.H - h0 : p.R;
  const int s0 = w0 < 0 ? -w0 : 0, s1 = w0 + p.S > p.W ? p.W - w0 : p.S;
  float best = -INFINITY;
  int best_o = -1;
  for (int r = r0; r < r1; ++r) {
    const float* row = xp + (h0 + r) * p.W + w0;
    for (int s = s0; s < s1; ++s) {
      const float v = row[s];
      // As PyTorch: the first maximum wins; a NaN always replaces (so NaN propagates).
      if (v > best || v != v || best_o < 0) {
        best = v;
        best_o = r * p.S + s;
      }
    }
  }
  y[i] = best;
  if (argmax) argmax[i] = best_o < 0 ? kArgmaxNone : static_cast<uint8_t>(best_o);
}

// Flat form: i indexes y[N,C,P,Q] in row-major order.
ENGINE_HD inline void maxpool_fwd_at(float* y, uint8_t* argmax, const float* x,
                                     const PoolParams& p, int64_t i) {
  const int P = p.P(), Q = p.Q();
  maxpool_fwd_at(y, argmax, x, p, i / (static_cast<int64_t>(P) * Q), static_cast<int>((i / Q) % P),
                 static_cast<int>(i % Q), i);
}

// Gather form of the backward (no atomics, deterministic): i indexes dx[N,C,H,W]; sums dy over
// the windows whose argmax is this pixel.
ENGINE_HD inline void maxpool_bwd_at(float* dx, const float* dy, const uint8_t* argmax,
                                     const PoolParams& p, int64_t i) {
  const int P = p.P(), Q = p.Q();
  const int w = static_cast<int>(i % p.W), h = static_cast<int>((i / p.W) % p.H);
  const int64_t plane = i / (static_cast<int64_t>(p.H) * p.W);
  // Windows pp with pp*stride - pad <= h <= pp*stride - pad + R - 1.
  int p_lo = (h + p.pad_h - p.R + p.stride_h) / p.stride_h;  // ceil((h+pad-R+1)/stride) for >=0
  if (h + p.pad_h - p.R + 1 < 0) p_lo = 0;
  int p_hi = (h + p.pad_h) / p.stride_h;
  if (p_hi > P - 1) p_hi = P - 1;
  int q_lo = (w + p.pad_w - p.S + p.stride_w) / p.stride_w;
  if (w + p.pad_w - p.S + 1 < 0) q_lo = 0;
  int q_hi = (w + p.pad_w) / p.stride_w;
  if (q_hi > Q - 1) q_hi = Q - 1;
  const float* dyp = dy + plane * P * Q;
  const uint8_t* ap = argmax + plane * P * Q;
  float acc = 0.f;
  for (int a = p_lo; a <= p_hi; ++a)
    for (int b = q_lo; b <= q_hi; ++b) {
      // This pixel's offset in window (a, b).
      const int self = (h - (a * p.stride_h - p.pad_h)) * p.S + (w - (b * p.stride_w - p.pad_w));
      if (ap[a * Q + b] == self) acc += dyp[a * Q + b];
    }
  dx[i] = acc;
}

// ---- adaptive average pool (PyTorch bins) ----------------------------------------------------
ENGINE_HD inline int bin_start(int o, int in, int out) { return (o * in) / out; }
ENGINE_HD inline int bin_end(int o, int in, int out) { return ((o + 1) * in + out - 1) / out; }

// i indexes y[NC,P,Q]
ENGINE_HD inline void adaptive_avgpool_fwd_at(float* y, const float* x, int H, int W, int P,
                                              int Q, int64_t i) {
  const int q = static_cast<int>(i % Q), pp = static_cast<int>((i / Q) % P);
  const int64_t plane = i / (static_cast<int64_t>(P) * Q);
  const int h0 = bin_start(pp, H, P), h1 = bin_end(pp, H, P);
  const int w0 = bin_start(q, W, Q), w1 = bin_end(q, W, Q);
  const float* xp = x + plane * H * W;
  float acc = 0.f;
  for (int h = h0; h < h1; ++h)
    for (int w = w0; w < w1; ++w) acc += xp[h * W + w];
  y[i] = acc / static_cast<float>((h1 - h0) * (w1 - w0));
}

// i indexes dx[NC,H,W]: gathers dy / bin size over every bin that covers the pixel.
ENGINE_HD inline void adaptive_avgpool_bwd_at(float* dx, const float* dy, int H, int W, int P,
                                              int Q, int64_t i) {
  const int w = static_cast<int>(i % W), h = static_cast<int>((i / W) % H);
  const int64_t plane = i / (static_cast<int64_t>(H) * W);
  const float* dyp = dy + plane * P * Q;
  float acc = 0.f;
  // Only the bins near the pixel can cover it (a bin spans about in/out pixels): the same
  // terms in the same order as a loop over every bin, without its O(P*Q) tests per pixel.
  const int a0 = h * P / H > 0 ? h * P / H - 1 : 0, a1 = (h + 1) * P / H + 1 < P ? (h + 1) * P / H + 1 : P - 1;
  const int b0 = w * Q / W > 0 ? w * Q / W - 1 : 0, b1 = (w + 1) * Q / W + 1 < Q ? (w + 1) * Q / W + 1 : Q - 1;
  for (int a = a0; a <= a1; ++a) {
    const int h0 = bin_start(a, H, P), h1 = bin_end(a, H, P);
    if (h < h0 || h >= h1) continue;
    for (int b = b0; b <= b1; ++b) {
      const int w0 = bin_start(b, W, Q), w1 = bin_end(b, W, Q);
      if (w < w0 || w >= w1) continue;
      acc += dyp[a * Q + b] / static_cast<float>((h1 - h0) * (w1 - w0));
    }
  }
  dx[i] = acc;
}

// ---- rows of logits: n indexes the row ----------------------------------------------------
ENGINE_HD inline void softmax_row(float* y, const float* x, int O, bool log_out, int64_t n) {
  const float* xr = x + n * O;
  float* yr = y + n * O;
  float m = xr[0];
  for (int o = 1; o < O; ++o) m = xr[o] > m ? xr[o] : m;
  float s = 0.f;
  for (int o = 0; o < O; ++o) s += expf(xr[o] - m);
  if (log_out) {
    const float ls = logf(s);
    for (int o = 0; o < O; ++o) yr[o] = xr[o] - m - ls;
  } else {
    const float inv = 1.f / s;
    for (int o = 0; o < O; ++o) yr[o] = expf(xr[o] - m) * inv;
  }
}

ENGINE_HD inline void cross_entropy_row(float* loss, float* dlogits, const float* x,
                                        const int32_t* labels, int O, float scale, int64_t n) {
  const float* xr = x + n * O;
  float m = xr[0];
  for (int o = 1; o < O; ++o) m = xr[o] > m ? xr[o] : m;
  float s = 0.f;
  for (int o = 0; o < O; ++o) s += expf(xr[o] - m);
  const int t = labels[n];
  // A label outside [0,O) (only possible for device labels, which ops.cpp cannot check without a
  // copy back) gives a NaN loss and a zero gradient instead of an out-of-bounds read.
  if (t < 0 || t >= O) {
    loss[n] = NAN;
    if (dlogits)
      for (int o = 0; o < O; ++o) dlogits[n * O + o] = 0.f;
    return;
  }
  loss[n] = -(xr[t] - m - logf(s));
  if (dlogits) {
    const float inv = 1.f / s;
    for (int o = 0; o < O; ++o)
      dlogits[n * O + o] = (expf(xr[o] - m) * inv - (o == t ? 1.f : 0.f)) * scale;
  }
}

// idx[n] = the first maximum of row n of x[N,O] (as torch.argmax and top1 in models/model.h),
// stored as a float (exact below 2^24) so that it can share a buffer with the loss values.
ENGINE_HD inline void argmax_row(float* idx, const float* x, int O, int64_t n) {
  const float* xr = x + n * O;
  int best = 0;
  for (int o = 1; o < O; ++o)
    if (xr[o] > xr[best]) best = o;
  idx[n] = static_cast<float>(best);
}

}  // namespace lcam::kern

// ---- L-CAM: sigmoid masks, bilinear upsampling, masking, regularizers, SGD ------------------
namespace lcam::kern {

ENGINE_HD inline void sigmoid_fwd_at(float* y, const float* x, int64_t i) { y[i] = 1.f / (1.f + expf(-x[i])); }
ENGINE_HD inline void sigmoid_bwd_at(float* dx, const float* dy, const float* y, int64_t i) {
  dx[i] = dy[i] * y[i] * (1.f - y[i]);
}

// PyTorch's bilinear interpolation with align_corners=False: source coordinate
// max(0, (dst + 0.5) * in/out - 0.5), the lower neighbour, the upper one clamped to the edge.
struct Lerp {
  int i0, i1;
  float l0, l1;
};
ENGINE_HD inline Lerp bilinear_src(int dst, int in, float scale) {
  float src = scale * (static_cast<float>(dst) + 0.5f) - 0.5f;
  if (src < 0.f) src = 0.f;
  Lerp r;
  r.i0 = static_cast<int>(src);
  r.i1 = r.i0 + (r.i0 < in - 1 ? 1 : 0);
  r.l1 = src - static_cast<float>(r.i0);
  r.l0 = 1.f - r.l1;
  return r;
}

// One upsampled value from a plane xp[H, W] (row stride W): a the row's taps, b the column's.
ENGINE_HD inline float bilinear_mix(const Lerp& a, const Lerp& b, const float* xp, int W) {
  return a.l0 * (b.l0 * xp[a.i0 * W + b.i0] + b.l1 * xp[a.i0 * W + b.i1]) +
         a.l1 * (b.l0 * xp[a.i1 * W + b.i0] + b.l1 * xp[a.i1 * W + b.i1]);
}

// i indexes y[NC, P, Q] upsampled (or resized) from x[NC, H, W].
ENGINE_HD inline void upsample_fwd_at(float* y, const float* x, int H, int W, int P, int Q, int64_t i) {
  const int q = static_cast<int>(i % Q), p = static_cast<int>((i / Q) % P);
  const int64_t plane = i / (static_cast<int64_t>(P) * Q);
  const Lerp a = bilinear_src(p, H, static_cast<float>(H) / static_cast<float>(P));
  const Lerp b = bilinear_src(q, W, static_cast<float>(W) / static_cast<float>(Q));
  y[i] = bilinear_mix(a, b, x + plane * H * W, W);
}

// Weight of input index `src` in output index `dst` along one axis.
ENGINE_HD inline float lerp_weight(const Lerp& l, int src) {
  return (l.i0 == src ? l.l0 : 0.f) + (l.i1 == src ? l.l1 : 0.f);
}

// Gather form of the backward: i indexes dx[NC, H, W]; visits the output rows/columns whose
// source interval can touch this pixel and recomputes the forward weights exactly.
ENGINE_HD inline void upsample_bwd_at(float* dx, const float* dy, int H, int W, int P, int Q, int64_t i) {
  const int w = static_cast<int>(i % W), h = static_cast<int>((i / W) % H);
  const int64_t plane = i / (static_cast<int64_t>(H) * W);
  const float sh = static_cast<float>(H) / static_cast<float>(P), sw = static_cast<float>(W) / static_cast<float>(Q);
  // Outputs whose source lies in [h - 1, h + 1]: dst in ((h - 0.5) / s - 0.5, (h + 1.5) / s - 0.5).
  int p0 = static_cast<int>((static_cast<float>(h) - 0.5f) / sh - 0.5f) - 1, p1 = static_cast<int>((static_cast<float>(h) + 1.5f) / sh - 0.5f) + 1;
  int q0 = static_cast<int>((static_cast<float>(w) - 0.5f) / sw - 0.5f) - 1, q1 = static_cast<int>((static_cast<float>(w) + 1.5f) / sw - 0.5f) + 1;
  if (p0 < 0) p0 = 0;
  if (q0 < 0) q0 = 0;
  if (p1 > P - 1) p1 = P - 1;
  if (q1 > Q - 1) q1 = Q - 1;
  const float* dyp = dy + plane * P * Q;
  float acc = 0.f;
  for (int p = p0; p <= p1; ++p) {
    const float a = lerp_weight(bilinear_src(p, H, sh), h);
    if (a == 0.f) continue;
    for (int q = q0; q <= q1; ++q) {
      const float b = lerp_weight(bilinear_src(q, W, sw), w);
      if (b != 0.f) acc += a * b * dyp[p * Q + q];
    }
  }
  dx[i] = acc;
}

// y[n, c, :] = x[n, c, :] * m[n, 0, :]; i indexes y[N, C, L].
// y[n,c,l] = x[n,c,l] * m[n,0,l]; x_shared: x is one image [1,C,L] masked N times.
ENGINE_HD inline void mask_mul_at(float* y, const float* x, const float* m, int C, int64_t L, bool x_shared, int64_t i) {
  const int64_t CL = static_cast<int64_t>(C) * L;
  y[i] = x[x_shared ? i % CL : i] * m[(i / CL) * L + i % L];
}
// dm[n, 0, l] = sum_c dy[n, c, l] * x[n, c, l]; i indexes dm[N, L].
ENGINE_HD inline void mask_mul_bwd_mask_at(float* dm, const float* dy, const float* x, int C, int64_t L, int64_t i) {
  const int64_t n = i / L, l = i % L;
  float acc = 0.f;
  for (int c = 0; c < C; ++c) {
    const int64_t k = (n * C + c) * L + l;
    acc += dy[k] * x[k];
  }
  dm[i] = acc;
}

// Area term, per element: value (m + eps)^power, gradient scale * power * (m + eps)^(power-1).
ENGINE_HD inline void area_at(float* value, float* grad, const float* m, float eps, float power, float scale, int64_t i) {
  const float v = m[i] + eps;
  value[i] = powf(v, power);
  if (grad) grad[i] += scale * power * powf(v, power - 1.f);
}

// Total variation with border term, per element of maps [M, h, w]: value holds this element's
// share (its squared differences to the next row and column, plus border * v^2 for each border
// row/column it lies on), grad (+=) the derivative of the whole sum times scale.
ENGINE_HD inline void tv_at(float* value, float* grad, const float* m, int h, int w, float border, float scale, int64_t i) {
  const int x = static_cast<int>(i % w), y = static_cast<int>((i / w) % h);
  const float v = m[i];
  const int nb = (y == 0) + (y == h - 1) + (x == 0) + (x == w - 1);
  float val = border * static_cast<float>(nb) * v * v;
  float g = 2.f * border * static_cast<float>(nb) * v;
  if (y + 1 < h) {
    const float d = m[i + w] - v;
    val += d * d;
    g -= 2.f * d;
  }
  if (y > 0) g += 2.f * (v - m[i - w]);
  if (x + 1 < w) {
    const float d = m[i + 1] - v;
    val += d * d;
    g -= 2.f * d;
  }
  if (x > 0) g += 2.f * (v - m[i - 1]);
  value[i] = val;
  if (grad) grad[i] += scale * g;
}

// PyTorch's SGD step (dampening 0): g += wd * p; buf = first ? g : momentum * buf + g;
// step = nesterov ? g + momentum * buf : buf; p -= lr * step.
ENGINE_HD inline void sgd_at(float* p, float* buf, const float* grad, float lr, float momentum, float wd,
                             bool nesterov, bool first, int64_t i) {
  const float g = grad[i] + wd * p[i];
  const float b = first ? g : momentum * buf[i] + g;
  buf[i] = b;
  p[i] -= lr * (nesterov ? g + momentum * b : b);
}

}  // namespace lcam::kern

namespace lcam::kern {

// splitmix64: a small, well-mixed, portable generator step (the same numbers on every platform
// and on the GPU); the engine's seeded draws (shuffles, crops, dropout, scenes) all use it.
ENGINE_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Inverted dropout as nn.Dropout in training mode: each element is kept with probability
// 1 - p (then scaled by 1 / (1 - p)) by a hash of (seed, i), so CPU and GPU draw the same mask.
ENGINE_HD inline void dropout_at(float* y, float* mask, const float* x, float p, uint64_t seed, int64_t i) {
  const uint64_t z = splitmix64(seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i));
  const float u = static_cast<float>(z >> 40) * (1.f / 16777216.f);  // [0, 1) from 24 bits
  const float m = u >= p ? 1.f / (1.f - p) : 0.f;
  mask[i] = m;
  y[i] = x[i] * m;
}

ENGINE_HD inline void mul_at(float* y, const float* a, const float* b, int64_t i) { y[i] = a[i] * b[i]; }

}  // namespace lcam::kern

namespace lcam::kern {

// Min-max normalization of one map of L values: (x - min) / (max - min); a constant map gives
// zeros (never NaN). Without subtract_min: x / (max - min), 1 for the range where it is 0.
// m indexes the map.
// The GPU splits a map's min and max over a block (minmax_step, same comparisons: min and max
// are exact in any order) and writes its values with minmax_value, so both backends agree to
// the bit.
ENGINE_HD inline void minmax_step(float v, float& lo, float& hi) {
  lo = v < lo ? v : lo;
  hi = v > hi ? v : hi;
}
ENGINE_HD inline float minmax_value(float v, float lo, float range, bool subtract_min) {
  if (subtract_min) return range > 0.f ? (v - lo) / range : 0.f;
  return v / (range > 0.f ? range : 1.f);  // Score-CAM's reference: divided by the range only
}
ENGINE_HD inline void minmax_map(float* y, const float* x, int64_t L, bool subtract_min, int64_t m) {
  const float* xm = x + m * L;
  float* ym = y + m * L;
  float lo = xm[0], hi = xm[0];
  for (int64_t i = 1; i < L; ++i) minmax_step(xm[i], lo, hi);
  const float range = hi - lo;
  for (int64_t i = 0; i < L; ++i) ym[i] = minmax_value(xm[i], lo, range, subtract_min);
}

}  // namespace lcam::kern

namespace lcam::kern {

// Channel weights of the gradient CAMs, one (image, channel) pair nc at a time over its L
// pixels; A are the feature maps, g the gradient of the score with respect to them.
// kind 0, Grad-CAM: the spatial mean of g.
// kind 1, Grad-CAM++ as the comparison's reference ran it: alpha = g^2 / (D' + 1e-7) with
//   D = 2 g^2 + sum_ab(A g^3) and D' = D where D != 0, else 1; weight = sum_ab(alpha relu(expS g)).
// kind 2, Grad-CAM++ with the paper's Eq. 19 denominator: D = 2 g^2 + sum_ab(A) g^3.
ENGINE_HD inline void cam_weight_at(float* w, const float* A, const float* g, const float* expS, int C, int64_t L,
                                    int kind, int64_t nc) {
  const float* a = A + nc * L;
  const float* d = g + nc * L;
  float acc = 0.f;
  if (kind == 0) {
    for (int64_t i = 0; i < L; ++i) acc += d[i];
    w[nc] = acc / static_cast<float>(L);
    return;
  }
  float s = 0.f;
  for (int64_t i = 0; i < L; ++i) s += kind == 1 ? a[i] * d[i] * d[i] * d[i] : a[i];
  const float e = expS[nc / C];
  for (int64_t i = 0; i < L; ++i) {
    const float g2 = d[i] * d[i];
    float D = 2.f * g2 + (kind == 1 ? s : s * g2 * d[i]);
    if (D == 0.f) D = 1.f;
    const float alpha = g2 / (D + 1e-7f);
    acc += alpha * relu(e * d[i]);
  }
  w[nc] = acc;
}

}  // namespace lcam::kern

