// cpu_ops.cpp — the CPU backend of engine/backend.h. Convolutions and linear layers are
// im2col + OpenBLAS sgemm (1x1 stride-1 convolutions skip im2col; 8-32-channel stride-1 layers
// take a direct AVX2/FMA kernel where the CPU has it; many-channel 3x3 layers Winograd
// F(4x4, 3x3) or F(2x2, 3x3) with OpenBLAS GEMMs; linear layers of 1 to 8 rows an AVX2/FMA kernel that streams
// the weights once); everything else loops the shared bodies
// of kernels/bodies.h with OpenMP, or, for a few elementwise ops with per-plane operands and the
// upsampling's backward, the same expressions as plain per-plane loops (the same values).
// Letters: N,C,H,W input; K,R,S weight; P,Q output; F,O linear in/out features; L elements.
#include <omp.h>    // omp_set_num_threads, omp_get_max_threads
#include <cblas.h>  // cblas_sgemm, openblas_set_num_threads

#include <algorithm>  // std::fill
#include <cmath>      // std::fma (linear layers of a few rows)
#include <cstdlib>    // std::getenv (blas_core)
#include <cstring>    // std::memcpy, std::memset
#if defined(__x86_64__) && defined(__GNUC__)
#define LCAM_CPU_X86 1
#include <immintrin.h>  // AVX2/FMA intrinsics (direct convolution, chosen at run time)
#else
#define LCAM_CPU_X86 0
#endif
#include <memory>     // std::unique_ptr (im2col scratch)
#include <utility>    // std::pair (upsampling taps)
#include <vector>     // std::vector (upsampling taps)

#include "engine/backend.h"  // the interface implemented here
#include "engine/common.h"   // LCAM_REQUIRE
#include "engine/cuda_runtime.h"  // cuda::TraceRange (each convolution's schedule, for bench --profile)
#include "kernels/bodies.h"  // kern::* shared bodies

namespace lcam::cpu {
namespace {

// Runs body(i) for i in [0, L) on all OpenMP threads (serially for small L).
template <class F>
void parallel_for(int64_t L, F&& body) {
#pragma omp parallel for schedule(static) if (L > 4096)
  for (int64_t i = 0; i < L; ++i) body(i);
}

// body(plane, begin, end) over `planes` contiguous planes of `len` elements each: the
// elementwise ops whose operands are fixed per plane (a channel's scale, an image's mask) run
// as plain contiguous loops, without the per-element index arithmetic of the shared bodies
// (the same values: each element is computed by the same expression).
template <class F>
void parallel_planes(int64_t planes, int64_t len, F&& body) {
#pragma omp parallel for schedule(static) if (planes * len > 4096)
  for (int64_t p = 0; p < planes; ++p) body(p, p * len, (p + 1) * len);
}

bool is_pointwise(const ConvParams& p) {
  return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// A 2x2 window's maximum by max-pooling's rule (kern::maxpool_fwd_at's): the first maximum in
// row-major order wins, a NaN replaces; o gets its index.
inline float window4_max(const float (&v)[4], uint8_t& o) {
  float best = v[0];
  o = 0;
  for (uint8_t t = 1; t < 4; ++t)
    if (v[t] > best || v[t] != v[t]) best = v[t], o = t;
  return best;
}

// Output columns ow whose input column ow*stride - pad + s lies inside [0, W): [lo, hi).
inline void valid_cols(int Q, int W, int stride, int pad, int s, int& lo, int& hi) {
  lo = 0;
  while (lo < Q && lo * stride - pad + s < 0) ++lo;
  hi = Q;
  while (hi > lo && (hi - 1) * stride - pad + s >= W) --hi;
}

// col[C*R*S, len] for output pixels [p0, p0 + len) of one image x[C,H,W] (row stride ld,
// default len). The valid span of each output row is a strided (for stride 1: contiguous) copy.
void im2col_tile(float* col, const float* x, const ConvParams& p, int64_t p0, int64_t len,
                 int row_begin = 0, int row_end = -1, int64_t ld = -1) {
  if (ld < 0) ld = len;
  const int Q = p.Q();
  const int rows = row_end < 0 ? p.C * p.R * p.S : row_end;
  for (int row = row_begin; row < rows; ++row) {
    const int s = row % p.S, r = (row / p.S) % p.R, c = row / (p.R * p.S);
    const float* xc = x + static_cast<int64_t>(c) * p.H * p.W;
    float* out = col + static_cast<int64_t>(row) * ld;
    int lo, hi;
    valid_cols(Q, p.W, p.stride_w, p.pad_w, s, lo, hi);
    for (int64_t pix = p0; pix < p0 + len;) {
      const int oh = static_cast<int>(pix / Q), ow0 = static_cast<int>(pix % Q);
      const int ow1 = static_cast<int>(std::min<int64_t>(Q, ow0 + (p0 + len - pix)));
      float* o = out + (pix - p0) - ow0;  // o[ow] is output column ow of this row
      const int h = oh * p.stride_h - p.pad_h + r;
      if (h < 0 || h >= p.H) {
        std::fill(o + ow0, o + ow1, 0.f);
      } else {
        const float* xr = xc + static_cast<int64_t>(h) * p.W - p.pad_w + s;
        const int a = std::max(ow0, lo), b = std::min(ow1, hi);
        if (a >= b) {
          std::fill(o + ow0, o + ow1, 0.f);
        } else {
          std::fill(o + ow0, o + a, 0.f);
          if (p.stride_w == 1)
            std::memcpy(o + a, xr + a, sizeof(float) * (b - a));
          else
            for (int ow = a; ow < b; ++ow) o[ow] = xr[ow * p.stride_w];
          std::fill(o + b, o + ow1, 0.f);
        }
      }
      pix += ow1 - ow0;
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
        int lo, hi;
        valid_cols(Q, p.W, p.stride_w, p.pad_w, s, lo, hi);
        for (int oh = 0; oh < P; ++oh) {
          const int h = oh * p.stride_h - p.pad_h + r;
          if (h < 0 || h >= p.H) continue;
          float* dr = dxc + static_cast<int64_t>(h) * p.W;
          const float* ir = in + static_cast<int64_t>(oh) * Q;
          float* d = dr - p.pad_w + s;
          if (p.stride_w == 1)  // contiguous: vectorized
            for (int ow = lo; ow < hi; ++ow) d[ow] += ir[ow];
          else
            for (int ow = lo; ow < hi; ++ow) d[ow * p.stride_w] += ir[ow];
        }
      }
  }
}

// A grow-only scratch buffer per thread (im2col columns): no page faults or zeroing per call.
// slots 1 to 3 are further buffers for callers that need several at once.
float* scratch(size_t n, int slot = 0) {
  thread_local std::unique_ptr<float[]> buf[4];
  thread_local size_t cap[4] = {0, 0, 0, 0};
  if (n > cap[slot]) {
    buf[slot].reset(new float[n]);
    cap[slot] = n;
  }
  return buf[slot].get();
}

// wt[c][k][r][s] = w[k][c][R-1-r][S-1-s]: a data gradient's weights (the transposed convolution's,
// flipped), in blocks of 16 x 16 kernels, so that reads and writes both run along rows (read
// kernel by kernel down a column of w, a 512 x 512 layer's data gradient had touched a page of
// w per kernel: ~8 ms of Winograd F(4x4)'s 31 ms at 28x28, batch 4).
void flip_transposed(float* wt, const float* w, int K, int C, int R, int S) {
  constexpr int B = 16;
  const int RS = R * S;
  const int cblocks = (C + B - 1) / B;
#pragma omp parallel for schedule(static)
  for (int cb = 0; cb < cblocks; ++cb)
    for (int k0 = 0; k0 < K; k0 += B)
      for (int c = cb * B; c < std::min(C, cb * B + B); ++c)
        for (int k = k0; k < std::min(K, k0 + B); ++k) {
          const float* src = w + (static_cast<int64_t>(k) * C + c) * RS;
          float* dst = wt + (static_cast<int64_t>(c) * K + k) * RS;
          for (int e = 0; e < RS; ++e) dst[e] = src[RS - 1 - e];
        }
}

// Single-threaded OpenBLAS: C[M,N] = op(A)[M,K] op(B)[K,N] + beta C, row-major, explicit lds.
void sgemm1(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc, float beta) {
  if (M <= 0 || N <= 0) return;
  if (M == 1 && !ta) {  // a row vector times a matrix: GEMV, without packing the matrix
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, 1.f, B, ldb, A, 1,
                beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, 1.f, A, lda, B, ldb, beta, C, ldc);
}

// C[M,N] = op(A) op(B) + beta C with dense operands, split over the OpenMP threads: by blocks
// of columns of C when N is wide, else by blocks of rows. OpenBLAS itself runs one thread per
// call, so there is a single thread pool in the process. done(r0, r1, c0, c1) runs on the
// thread that computed the block rows [r0, r1) x columns [c0, c1) of C, right after it, while
// the block is still in that core's cache (a convolution's bias and ReLU).
template <class Done>
void gemm_then(bool ta, bool tb, int M, int N, int K, const float* A, const float* B, float* C, float beta,
               Done&& done) {
  const int lda = ta ? M : K, ldb = tb ? K : N;
  const int nt = omp_get_max_threads();
  if (nt <= 1 || static_cast<int64_t>(M) * N * K < (1 << 18)) {
    sgemm1(ta, tb, M, N, K, A, lda, B, ldb, C, N, beta);
    done(0, M, 0, N);
    return;
  }
  const bool by_cols = N >= M;  // split the larger side: each thread packs only its share
  const int total = by_cols ? N : M;
  const int chunk = (total + nt - 1) / nt;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < nt; ++t) {
    const int a = t * chunk, b = std::min(total, a + chunk);
    if (a >= b) continue;
    if (by_cols) {
      sgemm1(ta, tb, M, b - a, K, A, lda, tb ? B + static_cast<int64_t>(a) * K : B + a, ldb, C + a, N, beta);
      done(0, M, a, b);
    } else {
      sgemm1(ta, tb, b - a, N, K, ta ? A + a : A + static_cast<int64_t>(a) * K, lda, B, ldb,
             C + static_cast<int64_t>(a) * N, N, beta);
      done(a, b, 0, N);
    }
  }
}

void gemm(bool ta, bool tb, int M, int N, int K, const float* A, const float* B, float* C, float beta) {
  gemm_then(ta, tb, M, N, K, A, B, C, beta, [](int, int, int, int) {});
}

// A convolution's epilogue on rows [k0, k1) (output channels) and columns [c0, c1) (pixels) of
// one image's y[K, PQ]: y = act(y + b[k] + z), z (may be null) of y's shape.
void bias_act_block(float* y, const float* b, const float* z, int k0, int k1, int64_t c0, int64_t c1, int64_t PQ,
                    bool relu) {
  for (int k = k0; k < k1; ++k) {
    float* row = y + k * PQ;
    const float* zrow = z ? z + k * PQ : nullptr;
    const float bk = b ? b[k] : 0.f;
    for (int64_t i = c0; i < c1; ++i) {
      float v = row[i] + bk;
      if (zrow) v += zrow[i];
      row[i] = relu ? kern::relu(v) : v;
    }
  }
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(1);  // parallelism comes from our OpenMP loops around each call
}
int num_threads() { return omp_get_max_threads(); }
std::string blas_core() {
  const char* name = openblas_get_corename();
  std::string s = name ? name : "?";
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE"); forced && *forced) s += " (OPENBLAS_CORETYPE)";
  return s;
}

// Direct convolution for stride-1 layers with few output channels (direct_fits: 8 to 32, 64, or an
// image's 3), where a GEMM of K rows runs far below its speed: for one output row of one image,
// the C*R input rows it reads are zero-padded copies (kept from one output row to the next); each
// block of 8 output columns keeps 8 channels' accumulators in AVX2 registers while it walks over
// (c, r, s): one input vector times 8 broadcast weights per step. Rows of all images are spread
// over the threads. Chosen at run time on CPUs with AVX2 and FMA; the GEMM path otherwise.
#if LCAM_CPU_X86
bool have_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

// One output row (all K channels) from the C*R padded input rows in[c * R + r] (in[cr][i] is
// input column i - pad): out + k * plane is channel k's row.
__attribute__((target("avx2,fma"))) void direct_row_avx2(const float* const* in, int rows, const ConvParams& p,
                                                          const float* w, const float* b, bool relu, float* out,
                                                          int64_t plane) {
  const int Q = p.Q(), QB = (Q + 7) / 8 * 8;
  const int64_t CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  for (int k0 = 0; k0 < p.K; k0 += 8) {
    for (int ow0 = 0; ow0 < QB; ow0 += 8) {
      __m256 acc[8];
      for (int kk = 0; kk < 8; ++kk) acc[kk] = _mm256_set1_ps(b ? b[k0 + kk] : 0.f);
      const float* wk = w + static_cast<int64_t>(k0) * CRS;  // packed: [cr][s][8 channels]
      for (int cr = 0; cr < rows; ++cr) {
        const float* row = in[cr] + ow0;
        for (int s = 0; s < p.S; ++s, wk += 8) {
          const __m256 v = _mm256_loadu_ps(row + s);
          for (int kk = 0; kk < 8; ++kk) acc[kk] = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + kk), v, acc[kk]);
        }
      }
      const int m = std::min(8, Q - ow0);
      for (int kk = 0; kk < 8; ++kk) {
        // max(0, a) returns its second operand for a NaN and for two zeros: kern::relu.
        __m256 a = relu ? _mm256_max_ps(_mm256_setzero_ps(), acc[kk]) : acc[kk];
        float* o = out + (k0 + kk) * plane + ow0;
        if (m == 8) {
          _mm256_storeu_ps(o, a);
        } else {
          alignas(32) float t[8];
          _mm256_store_ps(t, a);
          std::memcpy(o, t, sizeof(float) * m);
        }
      }
    }
  }
}

bool have_avx512f() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}
bool g_direct_avx512 = true;  // set_direct_avx512 (tests); used only where the CPU has AVX-512F

// The same row with AVX-512: the 8 channels' accumulators in zmm registers over blocks of 32
// output columns (two vectors: each broadcast weight serves two products, where one vector per
// block spent a load on every product), then blocks of 16 for the rest; the same products
// added in the same order as direct_row_avx2 (so the same bits). (Blocks of 16 channels, with
// 16 accumulators per vector, measured slower.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's own _mm512_max_ps (its __Y)
template <int V, int KB = 8>  // column vectors and channels per block
__attribute__((target("avx512f"))) inline void direct_block_avx512(const float* const* in, int rows, int S, int64_t CRS,
                                                                   const float* w, const float* b, bool relu, int k0, int ow0,
                                                                   int Q, float* out, int64_t plane) {
  __m512 acc[V][KB];
  for (int kk = 0; kk < KB; ++kk)
    for (int j = 0; j < V; ++j) acc[j][kk] = _mm512_set1_ps(b ? b[k0 + kk] : 0.f);
  const float* wp = w + static_cast<int64_t>(k0) * CRS;  // packed: [cr][s][KB channels]
  for (int cr = 0; cr < rows; ++cr) {
    const float* row = in[cr] + ow0;
    for (int s = 0; s < S; ++s, wp += KB) {
      __m512 v[V];
      for (int j = 0; j < V; ++j) v[j] = _mm512_loadu_ps(row + s + 16 * j);
      for (int kk = 0; kk < KB; ++kk) {
        const __m512 wk = _mm512_set1_ps(wp[kk]);
        for (int j = 0; j < V; ++j) acc[j][kk] = _mm512_fmadd_ps(wk, v[j], acc[j][kk]);
      }
    }
  }
  const __m512 zero = _mm512_set1_ps(0.f);
  for (int j = 0; j < V; ++j) {
    const int m = std::min(16, Q - ow0 - 16 * j);
    if (m <= 0) break;
    const __mmask16 mask = static_cast<__mmask16>(m == 16 ? 0xFFFF : (1u << m) - 1);
    for (int kk = 0; kk < KB; ++kk) {
      const __m512 a = relu ? _mm512_max_ps(zero, acc[j][kk]) : acc[j][kk];  // kern::relu (as the AVX2 rows)
      _mm512_mask_storeu_ps(out + (k0 + kk) * plane + ow0 + 16 * j, mask, a);
    }
  }
}

__attribute__((target("avx512f"))) void direct_row_avx512(const float* const* in, int rows, const ConvParams& p,
                                                           const float* w, const float* b, bool relu, float* out,
                                                           int64_t plane) {
  const int Q = p.Q(), QB = (Q + 15) / 16 * 16;
  const int64_t CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  if (p.K == 3) {  // an image's gradient (RGB): the three channels over blocks of 64 columns
    int ow0 = 0;
    for (; ow0 + 64 <= QB; ow0 += 64) direct_block_avx512<4, 3>(in, rows, p.S, CRS, w, b, relu, 0, ow0, Q, out, plane);
    for (; ow0 < QB; ow0 += 16) direct_block_avx512<1, 3>(in, rows, p.S, CRS, w, b, relu, 0, ow0, Q, out, plane);
    return;
  }
  for (int k0 = 0; k0 < p.K; k0 += 8) {
    int ow0 = 0;
    for (; ow0 + 32 <= QB; ow0 += 32) direct_block_avx512<2>(in, rows, p.S, CRS, w, b, relu, k0, ow0, Q, out, plane);
    for (; ow0 < QB; ow0 += 16) direct_block_avx512<1>(in, rows, p.S, CRS, w, b, relu, k0, ow0, Q, out, plane);
  }
}
#pragma GCC diagnostic pop

// dst[i] = src[i] where bit j0 + i of a packed ReLU mask is set, else 0 (kern::relu_mask_bwd_at's
// values), for i < n: eight lanes per step from the 8 bits at j0 + i.
__attribute__((target("avx2"))) void masked_row_copy(float* dst, const float* src, const uint32_t* bits, int64_t j0,
                                                     int n) {
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const int64_t j = j0 + i;
    const int sh = static_cast<int>(j & 31);
    uint64_t word = bits[j >> 5];
    if (sh > 24) word |= static_cast<uint64_t>(bits[(j >> 5) + 1]) << 32;  // element j + 7 is there
    const __m256i v = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>((word >> sh) & 0xFF)), lane_bit);
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, lane_bit));
    _mm256_storeu_ps(dst + i, _mm256_and_ps(keep, _mm256_loadu_ps(src + i)));
  }
  for (; i < n; ++i) {
    const int64_t j = j0 + i;
    dst[i] = (bits[j >> 5] >> (j & 31)) & 1u ? src[i] : 0.f;
  }
}

// xbits (may be null): x's packed ReLU mask, applied to each row as it is copied (a data gradient
// through a fused ReLU, without a masked copy of the whole of dy). pool2: y is the 2x2/2 max-pool
// of the (ReLU'd) convolution, [N, K, P/2, Q/2]: each thread runs the two rows of a window into
// a buffer and pools them there, so the convolution's output is never written (inference).
void conv2d_forward_direct(float* y, const float* x, const float* w, const float* b, const ConvParams& p, bool relu,
                           const uint32_t* xbits = nullptr, bool pool2 = false) {
  const bool wide = direct_avx512();  // the rule direct_fits judged by (3 channels: these rows only)
  const int vw = wide ? 16 : 8;  // output columns per block
  const int P = p.P(), Q = p.Q(), QB = (Q + vw - 1) / vw * vw;
  const int rows = p.C * p.R, len = QB + p.S - 1;  // a padded row covers ow + s - pad for ow < QB
  const int YP = pool2 ? P / 2 : P, YQ = pool2 ? Q / 2 : Q;  // y's rows and columns
  const int64_t plane = static_cast<int64_t>(YP) * YQ;
  // The weights packed per block of KB output channels as [c*R + r][s][KB], in the order the
  // rows read them: one stream of consecutive broadcasts, where [K][C][R][S] had KB streams
  // CRS apart (3-8% faster on an AVX-512 Xeon; same products in the same order).
  const int KB = p.K == 3 ? 3 : 8;
  const int64_t RS = static_cast<int64_t>(p.R) * p.S, CRS = p.C * RS;
  float* wp = scratch(static_cast<size_t>(p.K) * CRS, 1);
  parallel_for(p.K / KB, [&](int64_t kb) {
    const float* wk = w + kb * KB * CRS;
    float* out = wp + kb * KB * CRS;
    for (int64_t i = 0; i < CRS; ++i)
      for (int kk = 0; kk < KB; ++kk) out[i * KB + kk] = wk[kk * CRS + i];
  });
  w = wp;
  // Each thread keeps, per input channel, a ring of R padded rows (row h in slot h % R; the pads
  // zeroed once): the next output row of the same image needs one new input row per channel,
  // not R (copying every row R times had taken 40% of these layers). Rows above and below the
  // image point at a row of zeros.
#pragma omp parallel
  {
    std::vector<float> ring(static_cast<size_t>(rows) * len, 0.f), zero(len, 0.f);
    std::vector<int64_t> held(p.R, -1);  // n * H + h of the row each slot holds
    std::vector<const float*> in(rows);
    std::vector<float> pair(pool2 ? static_cast<size_t>(2) * p.K * Q : 0);  // a window's two rows, [2][K][Q]
    const int lo = std::max(0, p.pad_w), hi = std::min(len, p.W + p.pad_w);  // row[i] = x[c, h, i - pad]
    // Output row oh of image n (all K channels) into out, channel k's at out + k * ld.
    const auto conv_row = [&](int64_t n, int oh, float* out, int64_t ld) {
      const float* xn = x + n * p.C * p.H * p.W;
      for (int r = 0; r < p.R; ++r) {
        const int h = oh - p.pad_h + r;
        if (h < 0 || h >= p.H || lo >= hi) {
          for (int c = 0; c < p.C; ++c) in[c * p.R + r] = zero.data();
          continue;
        }
        const int slot = h % p.R;
        float* base = ring.data() + static_cast<int64_t>(slot) * len;  // channel c's at + c * R * len
        if (held[slot] != n * p.H + h) {
          for (int c = 0; c < p.C; ++c) {
            const int64_t at = (static_cast<int64_t>(c) * p.H + h) * p.W + (lo - p.pad_w);  // in image n
            float* dst = base + static_cast<int64_t>(c) * p.R * len + lo;
            if (xbits) masked_row_copy(dst, xn + at, xbits, n * p.C * p.H * p.W + at, hi - lo);
            else std::memcpy(dst, xn + at, sizeof(float) * (hi - lo));
          }
          held[slot] = n * p.H + h;
        }
        for (int c = 0; c < p.C; ++c) in[c * p.R + r] = base + static_cast<int64_t>(c) * p.R * len;
      }
      if (wide) direct_row_avx512(in.data(), rows, p, w, b, relu, out, ld);
      else direct_row_avx2(in.data(), rows, p, w, b, relu, out, ld);
    };
#pragma omp for schedule(static)
    for (int64_t na = 0; na < static_cast<int64_t>(p.N) * YP; ++na) {
      const int64_t n = na / YP;
      const int a = static_cast<int>(na % YP);
      float* out = y + n * p.K * plane + static_cast<int64_t>(a) * YQ;
      if (!pool2) {
        conv_row(n, a, out, plane);
        continue;
      }
      conv_row(n, 2 * a, pair.data(), Q);
      conv_row(n, 2 * a + 1, pair.data() + static_cast<int64_t>(p.K) * Q, Q);
      for (int k = 0; k < p.K; ++k) {
        const float* r0 = pair.data() + static_cast<int64_t>(k) * Q;
        const float* r1 = r0 + static_cast<int64_t>(p.K) * Q;
        float* o = out + k * plane;
        uint8_t at;
        for (int q = 0; q < YQ; ++q) o[q] = window4_max({r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]}, at);
      }
    }
  }
}
#else
bool have_avx2_fma() { return false; }
bool have_avx512f() { return false; }
bool g_direct_avx512 = false;
void conv2d_forward_direct(float*, const float*, const float*, const float*, const ConvParams&, bool,
                           const uint32_t* = nullptr, bool = false) {}
#endif

void set_direct_avx512(bool on) { g_direct_avx512 = on; }
bool direct_avx512() { return g_direct_avx512 && have_avx512f(); }

// Whether the direct kernel serves a stride-1, non-pointwise convolution that produces `outs`
// channels from `per_out` inputs per output value: 8 to 32 channels, or 64 from at most 64 inputs
// (a first layer) or, with the AVX-512 rows, from any number (measured on an AVX-512 Xeon: 64 ->
// 64 channels at 224x224, 56x56 and 14x14 in 0.62-0.98 of the GEMM's time, where the AVX2 rows
// took 0.97-1.32 of it against OpenBLAS's AVX-512 GEMM); with the AVX-512 rows also 3 channels
// (an image's gradient, whose GEMM has a first layer's few channels as inner dimension); on CPUs
// with AVX2 and FMA. The forward pass asks with (K, C*R*S), the data gradient with (C, K*R*S).
bool direct_fits(const ConvParams& p, int outs, int64_t per_out) {
  const bool channels = (outs % 8 == 0 && (outs <= 32 || (outs <= 64 && (per_out <= 64 || direct_avx512())))) ||
                        (outs == 3 && direct_avx512());
  return p.stride_h == 1 && p.stride_w == 1 && !is_pointwise(p) && channels && have_avx2_fma();
}

namespace {
// Winograd F(2x2, 3x3) for stride-1 3x3 convolutions with many channels: each 2x2 block of
// outputs comes from a 4x4 block of inputs with 16 products per (input, output) channel pair
// instead of 36, so the work becomes 16 GEMMs [K,C] x [C,tiles] of the transformed weights
// and inputs. The transforms' factors are 0, +-1
// and 1/2 (exact in binary), so the results differ from the direct sum only by the order of
// the additions. Taken where it was measured faster than im2col + GEMM (docs/PERFORMANCE.md),
// forward and data gradient: at least 128 channels in and out, and at least as many output
// pixels as channels (VGG-16's blocks 2 to 4 at 224x224, ResNet-50's layer2) or at least 64
// tiles of all images (14x14 layers from batch 2: VGG-16's block 5, ResNet-50's layer3; 7x7
// ones from batch 4); with fewer tiles the 16 GEMMs are too narrow, and with 64 channels the
// memory-bound transforms cost more than the products saved.
// The transforms run over chunks of tiles (of all images) whose transformed inputs and
// products take about 16 MiB (F(4x4): 32 MiB, so that its GEMMs, over a quarter of the tiles,
// stay as wide), so that the GEMMs read them from cache.
bool g_winograd = true;  // set_winograd (tests)

// The tile size. F(4x4) (below) needs 36 products per channel pair for 16 outputs where F(2x2)
// needs 64, but writes and packs 36 planes of transformed weights instead of 16 at every call:
// it is taken where that is paid for, with at least 128 tiles of 4x4 over the batch, and where
// its tiles cover the output with little waste (its products at most 0.6 of F(2x2)'s: not at
// 14x14, whose 4x4 tiles cover 16x16). Measured (docs/PERFORMANCE.md), forward and data
// gradient: 56x56 from batch 1 and 28x28 from batch 3 (147 tiles) faster as F(4x4), 28x28 at
// batch 2 (98 tiles) even, at batch 1 and 14x14 at any batch slower.
int g_winograd_tile = 0;  // set_winograd_tile: 0 = by the rule
int winograd_tile(const ConvParams& p) {
  if (g_winograd_tile) return g_winograd_tile;
  const int P = p.P(), Q = p.Q();
  const int64_t tiles4 = static_cast<int64_t>(p.N) * ((P + 3) / 4) * ((Q + 3) / 4);
  const int64_t tiles2 = static_cast<int64_t>(p.N) * ((P + 1) / 2) * ((Q + 1) / 2);
  return tiles4 >= 128 && 36 * tiles4 * 10 <= 16 * tiles2 * 6 ? 4 : 2;
}

// 64 input channels only with F(4x4) (VGG-16's features.5, 64 -> 128 at 112x112: at batch 1
// 7.5-7.9 -> 5.3 ms, at batch 4 30 -> 21-22 ms against im2col + GEMM); F(2x2) there moves
// more memory in its transforms than its products save.
bool winograd_fits(const ConvParams& p) {
  return g_winograd && p.R == 3 && p.S == 3 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h <= 2 &&
         p.pad_w <= 2 && p.K >= 128 && (p.C >= 128 || (p.C >= 64 && winograd_tile(p) == 4)) &&
         (static_cast<int64_t>(p.P()) * p.Q() >= p.K ||
          static_cast<int64_t>(p.N) * ((p.P() + 1) / 2) * ((p.Q() + 1) / 2) >= 64);
}

// The 16 (F(4x4): 36) planes of U, V and M lie one cache line further apart than their size:
// planes of 512 x (even) floats are multiples of 4 KiB apart, so the transforms' accesses per tile
// would all fall into one L1 set (and alias in the store buffer).
constexpr int64_t winograd_plane(int64_t size) { return size + 16; }

// The weight transforms' walk: blocks of 8 input channels of each output channel, their 3x3
// taps gathered into g[9][8] (as T), transformed by f into u[E][8] on 8-wide rows
// (vectorized), stored as E contiguous runs of 8 (one per plane of U). The scalar form per
// (k, c) took 1.5 ns per weight on 2 threads.
template <int E, class T, class Transform>
void winograd_weight_blocks(float* U, const float* w, int K, int C, Transform f) {
  const int64_t KC = winograd_plane(static_cast<int64_t>(K) * C);
  constexpr int B = 8;
#pragma omp parallel for schedule(static)
  for (int k = 0; k < K; ++k)
    for (int c0 = 0; c0 < C; c0 += B) {
      const int nb = std::min(B, C - c0);
      T g[9][B] = {};
      for (int cc = 0; cc < nb; ++cc)
        for (int e = 0; e < 9; ++e) g[e][cc] = w[(static_cast<int64_t>(k) * C + c0 + cc) * 9 + e];
      float u[E][B];
      f(g, u);
      float* dst = U + static_cast<int64_t>(k) * C + c0;
      for (int e = 0; e < E; ++e) std::memcpy(dst + e * KC, u[e], sizeof(float) * nb);
    }
}

// U[16][K][C] = G g G^T of each 3x3 kernel w[k][c] (for a data gradient, of the flipped and
// transposed weights: flip_transposed).
void winograd_weights(float* U, const float* w, int K, int C) {
  constexpr int B = 8;
  winograd_weight_blocks<16, float>(U, w, K, C, [](const float (&g)[9][B], float (&u)[16][B]) {
    float t[4][3][B];  // G g
    for (int s = 0; s < 3; ++s)
      for (int cc = 0; cc < B; ++cc) {
        t[0][s][cc] = g[s][cc];
        t[1][s][cc] = 0.5f * (g[s][cc] + g[3 + s][cc] + g[6 + s][cc]);
        t[2][s][cc] = 0.5f * (g[s][cc] - g[3 + s][cc] + g[6 + s][cc]);
        t[3][s][cc] = g[6 + s][cc];
      }
    for (int i = 0; i < 4; ++i)  // (G g) G^T
      for (int cc = 0; cc < B; ++cc) {
        u[i * 4 + 0][cc] = t[i][0][cc];
        u[i * 4 + 1][cc] = 0.5f * (t[i][0][cc] + t[i][1][cc] + t[i][2][cc]);
        u[i * 4 + 2][cc] = 0.5f * (t[i][0][cc] - t[i][1][cc] + t[i][2][cc]);
        u[i * 4 + 3][cc] = t[i][2][cc];
      }
  });
}

// B^T d B of nb <= kWinogradInRun side-by-side tiles of the plane xc [H,W] whose top-left input
// is (h0, w0 + 2b) for tile b (zeros outside the plane); element e of tile b goes to
// v[e * st + b]. The four input rows are copied (zero-padded) into line buffers, B^T runs down
// whole rows, then B across them: the same operations as tile by tile (B^T d first, then B),
// with contiguous rows and stores instead of 16 strided stores per tile.
constexpr int kWinogradInRun = 64;
void winograd_bt_rows(float* __restrict t, const float* __restrict d, int len, int ld) {
  const float* d0 = d;
  const float* d1 = d + ld;
  const float* d2 = d + 2 * ld;
  const float* d3 = d + 3 * ld;
  for (int q = 0; q < len; ++q) {
    t[q] = d0[q] - d2[q];
    t[ld + q] = d1[q] + d2[q];
    t[2 * ld + q] = d2[q] - d1[q];
    t[3 * ld + q] = d1[q] - d3[q];
  }
}
void winograd_b_row(float* __restrict v, int64_t st, const float* __restrict t, int nb) {
  float* __restrict v0 = v;
  float* __restrict v1 = v + st;
  float* __restrict v2 = v + 2 * st;
  float* __restrict v3 = v + 3 * st;
  for (int b = 0; b < nb; ++b) {
    const float e0 = t[2 * b], o0 = t[2 * b + 1], e1 = t[2 * b + 2], o1 = t[2 * b + 3];
    v0[b] = e0 - e1;
    v1[b] = o0 + e1;
    v2[b] = e1 - o0;
    v3[b] = o0 - o1;
  }
}
// The rows h0 .. h0 + rows - 1 of the plane xc [H,W], columns w0 .. w0 + len - 1 (zeros outside
// the plane), into d (rows ld apart).
void winograd_load_rows(float* d, int rows, int ld, const float* xc, int H, int W, int h0, int w0, int len) {
  const int c0 = std::max(0, -w0), c1 = std::min(len, W - w0);  // the columns inside the plane
  for (int r = 0; r < rows; ++r) {
    float* row = d + r * ld;
    const int h = h0 + r;
    if (h < 0 || h >= H || c0 >= c1) {
      std::fill(row, row + len, 0.f);
      continue;
    }
    std::fill(row, row + c0, 0.f);
    std::memcpy(row + c0, xc + static_cast<int64_t>(h) * W + w0 + c0, sizeof(float) * (c1 - c0));
    std::fill(row + c1, row + len, 0.f);
  }
}
void winograd_input_run(const float* xc, int H, int W, int h0, int w0, int nb, float* v, int64_t st) {
  constexpr int ld = 2 * kWinogradInRun + 2;
  const int len = 2 * nb + 2;
  float d[4 * ld], t[4 * ld];
  winograd_load_rows(d, 4, ld, xc, H, W, h0, w0, len);
  winograd_bt_rows(t, d, len, ld);
  for (int i = 0; i < 4; ++i) winograd_b_row(v + 4 * i * st, st, t + i * ld, nb);
}

// An output row's width values o at y + at, plus bias bk, residual z + at (or none) and ReLU.
void winograd_store_row(float* y, const float* z, int64_t at, const float* o, int width, float bk, bool relu) {
  float* yr = y + at;
  const float* zr = z ? z + at : nullptr;
  for (int c = 0; c < width; ++c) {
    float v = o[c] + bk;
    if (zr) v += zr[c];
    yr[c] = relu ? kern::relu(v) : v;
  }
}

constexpr int kWinogradRun = 8;
// The E products of nb <= kWinogradRun tiles (element e of tile b at m[e * st + b]) into a[e][b],
// zeros past nb.
template <int E>
void winograd_gather(float (&a)[E][kWinogradRun], const float* m, int64_t st, int nb) {
  for (int e = 0; e < E; ++e) {
    std::memcpy(a[e], m + e * st, sizeof(float) * nb);
    std::fill(a[e] + nb, a[e] + kWinogradRun, 0.f);
  }
}

// A^T m A of nb <= kWinogradRun side-by-side tiles (element e of tile b at m[e * st + b]), whose
// outputs start at row oh0, column ow0 + 2b of the plane y [P,Q]; plus bias bk, residual z (same
// plane layout, or null) and ReLU. The 16 rows are read whole and both transform steps run
// across the tiles (vectorized); each output row is then one contiguous run. Same additions,
// in the same order, as one tile at a time.
void winograd_output_run(const float* m, int64_t st, int nb, int oh0, int ow0, int P, int Q, float bk,
                         const float* z, bool relu, float* y) {
  constexpr int B = kWinogradRun;
  float a[16][B];
  winograd_gather(a, m, st, nb);
  float t[2][4][B];  // A^T m
  for (int s = 0; s < 4; ++s)
    for (int c = 0; c < B; ++c) {
      t[0][s][c] = a[s][c] + a[4 + s][c] + a[8 + s][c];
      t[1][s][c] = a[4 + s][c] - a[8 + s][c] - a[12 + s][c];
    }
  const int width = std::min(2 * nb, Q - ow0);
  for (int i = 0; i < 2 && oh0 + i < P; ++i) {
    float o[2 * B];  // the output row's values, tile by tile: (A^T m) A
    for (int c = 0; c < B; ++c) {
      o[2 * c] = t[i][0][c] + t[i][1][c] + t[i][2][c];
      o[2 * c + 1] = t[i][1][c] - t[i][2][c] - t[i][3][c];
    }
    winograd_store_row(y, z, static_cast<int64_t>(oh0 + i) * Q + ow0, o, width, bk, relu);
  }
}

// Winograd F(4x4, 3x3): each 4x4 block of outputs from a 6x6 block of inputs, with 36 products
// per channel pair where the direct sum takes 144 and F(2x2) 64 (four tiles of 16), as 36
// GEMMs over a quarter of F(2x2)'s tiles. Interpolation points 0, 1, -1, 1/2, -2 and infinity: of the sets
// tried (tools/winograd_points.py), the one with the smallest float32 error, 1.7e-6 of the
// output's rms against 2.6e-6 for 0, +-1, +-2 and 4.3e-7 for F(2x2) (256 channels, 28x28).
// B^T and A^T hold halves, quarters and eighths (exact in binary); G's thirds and fifteenths
// are applied in double, so U is rounded once.
constexpr double kWinogradG4[6][3] = {{1, 0, 0},
                                      {1.0 / 3, 1.0 / 3, 1.0 / 3},
                                      {-1.0 / 3, 1.0 / 3, -1.0 / 3},
                                      {-16.0 / 15, -8.0 / 15, -4.0 / 15},
                                      {1.0 / 15, -2.0 / 15, 4.0 / 15},
                                      {0, 0, 1}};

// U[36][K][C] = G g G^T, as winograd_weights, in double.
void winograd4_weights(float* U, const float* w, int K, int C) {
  constexpr int B = 8;
  winograd_weight_blocks<36, double>(U, w, K, C, [](const double (&g)[9][B], float (&u)[36][B]) {
    double t[6][3][B];  // G g
    for (int i = 0; i < 6; ++i)
      for (int s = 0; s < 3; ++s)
        for (int cc = 0; cc < B; ++cc)
          t[i][s][cc] = kWinogradG4[i][0] * g[s][cc] + kWinogradG4[i][1] * g[3 + s][cc] + kWinogradG4[i][2] * g[6 + s][cc];
    for (int i = 0; i < 6; ++i)  // (G g) G^T
      for (int j = 0; j < 6; ++j)
        for (int cc = 0; cc < B; ++cc)
          u[i * 6 + j][cc] = static_cast<float>(kWinogradG4[j][0] * t[i][0][cc] + kWinogradG4[j][1] * t[i][1][cc] +
                                                kWinogradG4[j][2] * t[i][2][cc]);
  });
}

// B^T of six values (one column or row of a 6x6 input block), left to right as written.
inline void winograd4_bt(float d0, float d1, float d2, float d3, float d4, float d5, float* o0, float* o1, float* o2,
                         float* o3, float* o4, float* o5) {
  *o0 = d0 - 1.5f * d1 - 2.f * d2 + 1.5f * d3 + d4;
  *o1 = -d1 + 0.5f * d2 + 2.5f * d3 + d4;
  *o2 = d1 - 2.5f * d2 + 0.5f * d3 + d4;
  *o3 = -2.f * d1 - d2 + 2.f * d3 + d4;
  *o4 = 0.5f * d1 - d2 - 0.5f * d3 + d4;
  *o5 = d1 - 1.5f * d2 - 2.f * d3 + 1.5f * d4 + d5;
}

// B^T d B of nb <= kWinograd4InRun side-by-side tiles, as winograd_input_run: six line buffers,
// B^T down whole rows, then B across each tile's six columns.
constexpr int kWinograd4InRun = 32;
void winograd4_input_run(const float* xc, int H, int W, int h0, int w0, int nb, float* v, int64_t st) {
  constexpr int ld = 4 * kWinograd4InRun + 2;
  const int len = 4 * nb + 2;
  float d[6 * ld], t[6 * ld];
  winograd_load_rows(d, 6, ld, xc, H, W, h0, w0, len);
  for (int q = 0; q < len; ++q)
    winograd4_bt(d[q], d[ld + q], d[2 * ld + q], d[3 * ld + q], d[4 * ld + q], d[5 * ld + q], &t[q], &t[ld + q],
                 &t[2 * ld + q], &t[3 * ld + q], &t[4 * ld + q], &t[5 * ld + q]);
  for (int i = 0; i < 6; ++i) {
    const float* ti = t + i * ld;
    float* vi = v + 6 * i * st;
    for (int b = 0; b < nb; ++b) {
      const float* c = ti + 4 * b;
      winograd4_bt(c[0], c[1], c[2], c[3], c[4], c[5], &vi[b], &vi[st + b], &vi[2 * st + b], &vi[3 * st + b],
                   &vi[4 * st + b], &vi[5 * st + b]);
    }
  }
}

// A^T of six values, left to right as written.
inline void winograd4_at(float m0, float m1, float m2, float m3, float m4, float m5, float* o0, float* o1, float* o2,
                         float* o3) {
  *o0 = m0 + m1 + m2 + m3 + m4;
  *o1 = m1 - m2 + 0.5f * m3 - 2.f * m4;
  *o2 = m1 + m2 + 0.25f * m3 + 4.f * m4;
  *o3 = m1 - m2 + 0.125f * m3 - 8.f * m4 + m5;
}

// A^T m A of nb <= kWinogradRun side-by-side tiles, as winograd_output_run: four output rows of
// 4 nb values each.
void winograd4_output_run(const float* m, int64_t st, int nb, int oh0, int ow0, int P, int Q, float bk,
                          const float* z, bool relu, float* y) {
  constexpr int B = kWinogradRun;
  float a[36][B];
  winograd_gather(a, m, st, nb);
  float t[4][6][B];  // A^T m
  for (int s = 0; s < 6; ++s)
    for (int c = 0; c < B; ++c)
      winograd4_at(a[s][c], a[6 + s][c], a[12 + s][c], a[18 + s][c], a[24 + s][c], a[30 + s][c], &t[0][s][c],
                   &t[1][s][c], &t[2][s][c], &t[3][s][c]);
  const int width = std::min(4 * nb, Q - ow0);
  for (int i = 0; i < 4 && oh0 + i < P; ++i) {
    float o[4 * B];  // the output row's values, tile by tile: (A^T m) A
    for (int c = 0; c < B; ++c)
      winograd4_at(t[i][0][c], t[i][1][c], t[i][2][c], t[i][3][c], t[i][4][c], t[i][5][c], &o[4 * c], &o[4 * c + 1],
                   &o[4 * c + 2], &o[4 * c + 3]);
    winograd_store_row(y, z, static_cast<int64_t>(oh0 + i) * Q + ow0, o, width, bk, relu);
  }
}

// A run of consecutive tiles of one tile row: image n, tile row ty, first tile column tx, and
// nb tiles (at most `most`, and no more than `left` of the chunk).
struct TileRun {
  int64_t n;
  int ty, tx, nb;
};
TileRun tile_run(int64_t tile, int64_t per_image, int TQ, int most, int64_t left) {
  const int64_t rem = tile % per_image;
  const int ty = static_cast<int>(rem / TQ), tx = static_cast<int>(rem % TQ);
  return {tile / per_image, ty, tx, static_cast<int>(std::min<int64_t>({most, TQ - tx, left}))};
}

// The two tile sizes' transforms: m outputs square per tile from (m + 2)^2 inputs, E = (m + 2)^2
// products per channel pair; chunks of about chunk_floats transformed inputs and products.
using WeightsFn = void (*)(float* U, const float* w, int K, int C);
using InputFn = void (*)(const float* xc, int H, int W, int h0, int w0, int nb, float* v, int64_t st);
using OutputFn = void (*)(const float* m, int64_t st, int nb, int oh0, int ow0, int P, int Q, float bk,
                          const float* z, bool relu, float* y);
template <int M, int InRun, int64_t ChunkFloats, WeightsFn Weights, InputFn Input, OutputFn Output>
struct WinogradTiles {
  static constexpr int m = M, E = (M + 2) * (M + 2), in_run = InRun;
  static constexpr int64_t chunk_floats = ChunkFloats;
  static constexpr const char* name = M == 4 ? "Winograd F(4x4,3x3)" : "Winograd F(2x2,3x3)";
  static constexpr WeightsFn weights = Weights;
  static constexpr InputFn input = Input;
  static constexpr OutputFn output = Output;
};
using WinogradF2 = WinogradTiles<2, kWinogradInRun, int64_t{1} << 22, winograd_weights, winograd_input_run,
                                 winograd_output_run>;
using WinogradF4 = WinogradTiles<4, kWinograd4InRun, int64_t{1} << 23, winograd4_weights, winograd4_input_run,
                                 winograd4_output_run>;

// y = the convolution of x with U (the transformed weights of a layer of p.K outputs and p.C
// inputs), plus bias, residual and ReLU.
template <class F>
void conv2d_winograd(float* y, const float* x, const float* U, const float* b, const float* z, const ConvParams& p,
                     bool relu) {
  constexpr int m = F::m, E = F::E;
  const int P = p.P(), Q = p.Q(), TP = (P + m - 1) / m, TQ = (Q + m - 1) / m;
  const int64_t per_image = static_cast<int64_t>(TP) * TQ, tiles = per_image * p.N;
  const int64_t HW = static_cast<int64_t>(p.H) * p.W, PQ = static_cast<int64_t>(P) * Q;
  const int64_t KC = winograd_plane(static_cast<int64_t>(p.K) * p.C);
  // Tiles per chunk: the chunk's transformed inputs and products about 16 MiB together.
  // At least 64 (or all of them): std::min after std::max, as clamp's bounds may cross.
  const int64_t cols = std::min(tiles, std::max<int64_t>(64, F::chunk_floats / (E * (p.C + p.K)) / 16 * 16));
  float* V = scratch(static_cast<size_t>(E * winograd_plane(p.C * cols)));
  float* M = scratch(static_cast<size_t>(E * winograd_plane(p.K * cols)), 1);
  const int nt = omp_get_max_threads();
  for (int64_t t0 = 0; t0 < tiles; t0 += cols) {
    const int64_t nc = std::min(cols, tiles - t0);
    const int64_t ldv = nc;
    const int64_t vst = winograd_plane(p.C * ldv), mst = winograd_plane(p.K * ldv);  // plane strides
    // Input transform V[E][C][nc] = B^T d B, in runs of tiles of one tile row.
#pragma omp parallel for schedule(static)
    for (int c = 0; c < p.C; ++c)
      for (int64_t j = 0; j < nc;) {
        const TileRun r = tile_run(t0 + j, per_image, TQ, F::in_run, nc - j);
        F::input(x + (r.n * p.C + c) * HW, p.H, p.W, m * r.ty - p.pad_h, m * r.tx - p.pad_w, r.nb,
                 V + static_cast<int64_t>(c) * ldv + j, vst);
        j += r.nb;
      }
    // M[e] = U[e] V[e] for the E elements, split over threads by element and column block.
    const int blocks = std::max(1, (2 * nt + E - 1) / E);
    const int64_t bw = (nc + blocks - 1) / blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < E * blocks; ++task) {
      const int e = task / blocks;
      const int64_t c0 = (task % blocks) * bw, c1 = std::min(nc, c0 + bw);
      if (c0 >= c1) continue;
      sgemm1(false, false, p.K, static_cast<int>(c1 - c0), p.C, U + e * KC, p.C,
             V + e * vst + c0, static_cast<int>(ldv), M + e * mst + c0, static_cast<int>(ldv), 0.f);
    }
    // Output transform y = A^T m A, then bias, residual and ReLU, in runs of up to 8 tiles of
    // one tile row.
#pragma omp parallel for schedule(static)
    for (int k = 0; k < p.K; ++k)
      for (int64_t j = 0; j < nc;) {
        const TileRun r = tile_run(t0 + j, per_image, TQ, kWinogradRun, nc - j);
        const int64_t base = (r.n * p.K + k) * PQ;
        F::output(M + static_cast<int64_t>(k) * ldv + j, mst, r.nb, m * r.ty, m * r.tx, P, Q, b ? b[k] : 0.f,
                  z ? z + base : nullptr, relu, y + base);
        j += r.nb;
      }
  }
}

template <class F>
void conv2d_winograd_with(float* y, const float* x, const float* w, const float* b, const float* z,
                          const ConvParams& p, bool relu, bool flip) {
  const cuda::TraceRange schedule(F::name);
  // U for the layer (flip: a data gradient's, K and C as the transposed convolution has them),
  // in this thread's third scratch buffer.
  float* U = scratch(static_cast<size_t>(F::E * winograd_plane(static_cast<int64_t>(p.K) * p.C)), 2);
  if (flip) {  // w is the forward's [p.C][p.K][3][3]
    float* wt = scratch(static_cast<size_t>(p.K) * p.C * 9, 3);
    flip_transposed(wt, w, p.C, p.K, 3, 3);
    w = wt;
  }
  F::weights(U, w, p.K, p.C);
  conv2d_winograd<F>(y, x, U, b, z, p, relu);
}

// The Winograd convolution of p (a forward pass, or with flip the data gradient's transposed
// convolution), F(4x4) or F(2x2) by winograd_tile.
void conv2d_forward_winograd(float* y, const float* x, const float* w, const float* b, const float* z,
                             const ConvParams& p, bool relu, bool flip) {
  if (winograd_tile(p) == 4)
    conv2d_winograd_with<WinogradF4>(y, x, w, b, z, p, relu, flip);
  else
    conv2d_winograd_with<WinogradF2>(y, x, w, b, z, p, relu, flip);
}
}  // namespace

void set_winograd(bool on) { g_winograd = on; }
void set_winograd_tile(int m) {
  LCAM_REQUIRE(m == 0 || m == 2 || m == 4, "Winograd tile size: 0 (by the rule), 2 or 4");
  g_winograd_tile = m;
}
bool uses_winograd(const ConvParams& p) { return winograd_fits(p); }
int winograd_tile_of(const ConvParams& p) { return winograd_fits(p) ? winograd_tile(p) : 0; }
bool uses_direct(const ConvParams& p) { return direct_fits(p, p.K, static_cast<int64_t>(p.C) * p.R * p.S); }

// Five schedules. Stride 1 with few output channels (direct_fits) on an AVX2 CPU: the direct
// kernel above. Many-channel 3x3 stride-1 layers with
// enough pixels: Winograd (above). Wide outputs (pixels >= output channels,
// the early layers): tiles of output pixels, each a task for one thread — im2col of the tile
// into a per-thread buffer sized for the cache, a single-threaded GEMM into y's columns, then
// bias and ReLU on the tile while it is in cache. Narrow outputs (deep layers, few pixels) of
// several images: their columns side by side, one GEMM over up to 1024 of them. Narrow outputs
// of one image: im2col of the whole image by all threads, then a GEMM split by output
// channels, so no thread packs weights it does not use.
namespace {
// Each schedule runs inside a profiler range named after it, nested in the op's
// ("conv2d_forward" > "direct AVX-512"), so that `bench --profile` shows which one every layer
// took.
const char* direct_name() { return direct_avx512() ? "direct AVX-512" : "direct AVX2"; }

void conv2d_forward_f32(float* y, const float* x, const float* w, const float* b, const float* z, const ConvParams& p,
                        bool relu) {
  const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q(), CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  const bool pw = is_pointwise(p);
  const int nt = omp_get_max_threads();
  if (direct_fits(p, p.K, CRS)) {
    const cuda::TraceRange schedule(direct_name());
    conv2d_forward_direct(y, x, w, b, p, relu && !z);
    if (z) parallel_for(static_cast<int64_t>(p.N) * p.K * PQ, [&](int64_t i) { kern::add_at(y, y, z, relu, i); });
    return;
  }
  if (winograd_fits(p)) {
    conv2d_forward_winograd(y, x, w, b, z, p, relu, false);
    return;
  }
  if (PQ < p.K && p.N > 1 && PQ < 512) {
    const cuda::TraceRange schedule("GEMM over images side by side");
    // Deep layers with few pixels: the columns of G images side by side (about 1024 in all),
    // so that one GEMM [K,CRS] x [CRS, G*PQ] is wide enough to run well, then the product is
    // copied to the images' planes with bias and ReLU. (Per image, ResNet-50's layer4 GEMMs
    // would be 49 columns wide.)
    const int G = static_cast<int>(std::clamp<int64_t>(1024 / PQ, 1, p.N));
    float* col = scratch(static_cast<size_t>(CRS * G * PQ));
    float* out = scratch(static_cast<size_t>(p.K) * G * PQ, 1);
    for (int n0 = 0; n0 < p.N; n0 += G) {
      const int g = std::min(G, p.N - n0);
      const int64_t ld = static_cast<int64_t>(g) * PQ;
      const int64_t chw = static_cast<int64_t>(p.C) * p.H * p.W;
      const int rows = static_cast<int>(CRS);
#pragma omp parallel for schedule(static)
      for (int row = 0; row < rows; ++row)
        for (int j = 0; j < g; ++j) {
          const float* xn = x + (n0 + j) * chw;
          if (pw)
            std::memcpy(col + row * ld + j * PQ, xn + static_cast<int64_t>(row) * PQ, sizeof(float) * PQ);
          else
            im2col_tile(col + j * PQ, xn, p, 0, PQ, row, row + 1, ld);
        }
      gemm(false, false, p.K, static_cast<int>(ld), static_cast<int>(CRS), w, col, out, 0.f);
#pragma omp parallel for schedule(static)
      for (int k = 0; k < p.K; ++k)
        for (int j = 0; j < g; ++j) {
          const float* src = out + k * ld + j * PQ;
          const int64_t at = (static_cast<int64_t>(n0 + j) * p.K + k) * PQ;
          float* dst = y + at;
          const float* zrow = z ? z + at : nullptr;
          const float bk = b ? b[k] : 0.f;
          for (int64_t i = 0; i < PQ; ++i) {
            float v = src[i] + bk;
            if (zrow) v += zrow[i];
            dst[i] = relu ? kern::relu(v) : v;
          }
        }
    }
    return;
  }
  if (PQ < p.K) {
    const cuda::TraceRange schedule("GEMM per image by output channels");
    float* col = pw ? nullptr : scratch(static_cast<size_t>(CRS * PQ));
    for (int n = 0; n < p.N; ++n) {
      const float* xn = x + static_cast<int64_t>(n) * p.C * p.H * p.W;
      if (col) {
        const int rows = static_cast<int>(CRS), chunk = (rows + nt - 1) / nt;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < nt; ++t)
          im2col_tile(col, xn, p, 0, PQ, std::min(rows, t * chunk), std::min(rows, (t + 1) * chunk));
      }
      float* yn = y + static_cast<int64_t>(n) * p.K * PQ;
      const float* zn = z ? z + static_cast<int64_t>(n) * p.K * PQ : nullptr;
      gemm_then(false, false, p.K, static_cast<int>(PQ), static_cast<int>(CRS), w, col ? col : xn, yn, 0.f,
                [&](int k0, int k1, int c0, int c1) {
                  if (b || relu || zn) bias_act_block(yn, b, zn, k0, k1, c0, c1, PQ, relu);
                });
    }
    return;
  }
  // ~1 MiB of columns per tile, but at least 256 pixels (amortizes packing the weights), and
  // at most the image (min after max: an image of fewer than 256 pixels is one tile).
  const int64_t by_cache = std::max<int64_t>((1 << 18) / std::max<int64_t>(CRS, 1) / 16 * 16, 256);
  int64_t T = std::min(by_cache, std::max<int64_t>(PQ, 1));
  if (p.N * ((PQ + T - 1) / T) < nt) T = std::max<int64_t>(16, (PQ * p.N + nt - 1) / nt);
  const int64_t tiles = (PQ + T - 1) / T;
  const cuda::TraceRange schedule("GEMM per tile of pixels");
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < p.N * tiles; ++task) {
    const int64_t n = task / tiles, p0 = (task % tiles) * T, len = std::min(T, PQ - p0);
    const float* xn = x + n * p.C * p.H * p.W;
    float* yn = y + n * p.K * PQ;
    if (pw) {
      sgemm1(false, false, p.K, static_cast<int>(len), p.C, w, p.C, xn + p0, static_cast<int>(PQ), yn + p0,
             static_cast<int>(PQ), 0.f);
    } else {
      float* col = scratch(static_cast<size_t>(CRS * len));
      im2col_tile(col, xn, p, p0, len);
      sgemm1(false, false, p.K, static_cast<int>(len), static_cast<int>(CRS), w, static_cast<int>(CRS), col,
             static_cast<int>(len), yn + p0, static_cast<int>(PQ), 0.f);
    }
    if (b || relu || z) bias_act_block(yn, b, z ? z + n * p.K * PQ : nullptr, 0, p.K, p0, p0 + len, PQ, relu);
  }
}

// Stride 1: dx is the convolution of dy with the weights flipped and transposed, padded by
// R-1-pad; with few input channels (the backward's outputs) the direct kernel runs it, masking
// dy's rows by a fused ReLU's bits as it copies them when bits are given.
bool direct_data_fits(const ConvParams& p) {
  return direct_fits(p, p.C, static_cast<int64_t>(p.K) * p.R * p.S) && p.pad_h < p.R && p.pad_w < p.S;
}

void conv2d_backward_data_direct(float* dx, const float* dy, const uint32_t* dybits, const float* w,
                                 const ConvParams& p) {
  const int64_t KRS = static_cast<int64_t>(p.K) * p.R * p.S;
  float* wt = scratch(static_cast<size_t>(KRS) * p.C);
  flip_transposed(wt, w, p.K, p.C, p.R, p.S);
  const ConvParams t{p.N, p.K, p.P(), p.Q(), p.C, p.R, p.S, 1, 1, p.R - 1 - p.pad_h, p.S - 1 - p.pad_w};
  conv2d_forward_direct(dx, dy, wt, nullptr, t, false, dybits);
}

void conv2d_backward_data_f32(float* dx, const float* dy, const float* w, const ConvParams& p) {
  const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q(), CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  const bool pw = is_pointwise(p);
  if (direct_data_fits(p)) {
    const cuda::TraceRange schedule(direct_name());
    conv2d_backward_data_direct(dx, dy, nullptr, w, p);
    return;
  }
  // Winograd for the data gradient where the forward takes it (the transposed convolution has
  // the same tiles and channel counts swapped).
  if (winograd_fits(p)) {
    const ConvParams t{p.N, p.K, p.P(), p.Q(), p.C, 3, 3, 1, 1, 2 - p.pad_h, 2 - p.pad_w};
    conv2d_forward_winograd(dx, dy, w, nullptr, nullptr, t, false, true);
    return;
  }
  const cuda::TraceRange schedule(pw ? "GEMM per image" : "GEMM per image, col2im");
  float* col = pw ? nullptr : scratch(CRS * PQ);
  for (int n = 0; n < p.N; ++n) {
    const float* dyn = dy + static_cast<int64_t>(n) * p.K * PQ;
    float* dxn = dx + static_cast<int64_t>(n) * p.C * p.H * p.W;
    float* out = pw ? dxn : col;
    gemm(true, false, static_cast<int>(CRS), static_cast<int>(PQ), p.K, w, dyn, out, 0.f);
    if (!pw) col2im(dxn, col, p);
  }
}

// bf16 emulation (set_conv_bf16): the GPU's bfloat16 convolutions, same rounding (to nearest
// even, kern::bf16_from_float) of the same operands, for checking what they change; no faster.
bool g_conv_bf16 = false;

bool bf16_applies(const ConvParams& p) { return g_conv_bf16 && p.C > 0 && p.C % 8 == 0 && p.K % 8 == 0; }

void round_bf16(float* out, const float* in, int64_t L) {
  parallel_for(L, [&](int64_t i) { out[i] = kern::bf16_to_float(kern::bf16_from_float(in[i])); });
}

std::unique_ptr<float[]> rounded_bf16(const float* in, int64_t L) {
  std::unique_ptr<float[]> out(new float[static_cast<size_t>(L)]);
  round_bf16(out.get(), in, L);
  return out;
}
}  // namespace

void set_conv_bf16(bool on) { g_conv_bf16 = on; }

// As the GPU: the convolution of rounded input and weights, its output rounded, then the
// bias, residual and ReLU in float32.
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const float* z, const ConvParams& p,
                    bool relu) {
  if (!bf16_applies(p)) return conv2d_forward_f32(y, x, w, b, z, p, relu);
  const int64_t L = static_cast<int64_t>(p.N) * p.K * p.P() * p.Q();
  const auto xr = rounded_bf16(x, static_cast<int64_t>(p.N) * p.C * p.H * p.W);
  const auto wr = rounded_bf16(w, static_cast<int64_t>(p.K) * p.C * p.R * p.S);
  conv2d_forward_f32(y, xr.get(), wr.get(), nullptr, nullptr, p, false);
  round_bf16(y, y, L);
  if (b || z || relu)
    parallel_for(L, [&](int64_t i) { kern::bias_act_at(y, b, z, p.K, static_cast<int64_t>(p.P()) * p.Q(), relu, i); });
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvParams& p) {
  if (!bf16_applies(p)) return conv2d_backward_data_f32(dx, dy, w, p);
  const auto dyr = rounded_bf16(dy, static_cast<int64_t>(p.N) * p.K * p.P() * p.Q());
  const auto wr = rounded_bf16(w, static_cast<int64_t>(p.K) * p.C * p.R * p.S);
  conv2d_backward_data_f32(dx, dyr.get(), wr.get(), p);
  round_bf16(dx, dx, static_cast<int64_t>(p.N) * p.C * p.H * p.W);
}

bool fuses_relu_data(const ConvParams& p) { return !bf16_applies(p) && direct_data_fits(p); }

bool fuses_conv_pool(const ConvParams& p) {
  return !bf16_applies(p) && p.P() >= 2 && p.Q() >= 2 && direct_fits(p, p.K, static_cast<int64_t>(p.C) * p.R * p.S);
}

void conv2d_relu_maxpool2_forward(float* y, const float* x, const float* w, const float* b, const ConvParams& p) {
  LCAM_REQUIRE(fuses_conv_pool(p), "conv2d_relu_maxpool2_forward: not a direct-kernel layer (ask fuses_conv_pool)");
  const cuda::TraceRange schedule(direct_avx512() ? "direct AVX-512, 2x2 max-pool fused" : "direct AVX2, 2x2 max-pool fused");
  conv2d_forward_direct(y, x, w, b, p, true, nullptr, true);
}

void conv2d_backward_data_relu(float* dx, const float* dy, const uint32_t* bits, const float* w, const ConvParams& p) {
  LCAM_REQUIRE(fuses_relu_data(p), "conv2d_backward_data_relu: not a direct-kernel layer (ask fuses_relu_data)");
  const cuda::TraceRange schedule(direct_avx512() ? "direct AVX-512, ReLU mask fused" : "direct AVX2, ReLU mask fused");
  conv2d_backward_data_direct(dx, dy, bits, w, p);
}

void conv2d_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const ConvParams& p) {
  const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q(), CRS = static_cast<int64_t>(p.C) * p.R * p.S;
  float* col = is_pointwise(p) ? nullptr : scratch(CRS * PQ);
  for (int n = 0; n < p.N; ++n) {
    const float* xn = x + static_cast<int64_t>(n) * p.C * p.H * p.W;
    const float* dyn = dy + static_cast<int64_t>(n) * p.K * PQ;
    const float* B = xn;
    if (col) {
      im2col_tile(col, xn, p, 0, PQ);
      B = col;
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

namespace {
// ---- Linear layers of a few rows ------------------------------------------------------------
// With a batch of a few images a linear layer is bound by reading its weights W[O,F] once, and
// OpenBLAS's sgemm packs all of W first: VGG-16's fc6 (411 MB) took 31.6-31.9 ms at batch 4,
// where one pass over W takes about 17. These kernels stream W once, with the rows of x
// (forward) or of dy (data gradient) in cache, on CPUs with AVX2 and FMA: 17.5-17.9 ms. Each
// output is one fixed sequence of FMAs (uses_linear_rows in backend.h), whatever the batch
// size, thread count or tiling: an image's logits do not depend on the other images of its
// batch (up to kLinearRows of them).
constexpr int kLinearRows = 8;  // at most this many rows (from 12-16 OpenBLAS is faster, docs/PERFORMANCE.md)
constexpr int kLinearChunk = 1024;  // forward: floats of F per pass over a tile's W rows (4 KiB each, in L1)
constexpr int kLinearRowsO = 16;  // data gradient: rows of W per pass over a thread's columns

bool linear_rows_fit(int N) {
#if LCAM_CPU_X86
  return N >= 1 && N <= kLinearRows && have_avx2_fma();
#else
  (void)N;
  return false;
#endif
}

#if LCAM_CPU_X86
// Forward: y[n,o] = sum_f x[n,f] w[o,f] as 16 partial sums, lane l taking f = l (mod 16) in
// increasing f, then added as (l, l+8), (l, l+4), (l, l+2), (l, l+1). A tile of NX rows of x by
// NW rows of W over columns [f0, f1) (a multiple of 16 long): acc[(i*NW + j)*16 + l] is lane l
// of x[i] and w[j], continued unless first.
template <int NX, int NW>
__attribute__((target("avx2,fma"))) void linear_tile_avx2(float* acc, const float* const* x, const float* const* w,
                                                          int f0, int f1, bool first) {
  for (int h = 0; h < 16; h += 8) {  // lanes 0-7, then 8-15 (in L1 the second time)
    __m256 a[NX][NW];
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) a[i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + (i * NW + j) * 16 + h);
    for (int f = f0 + h; f < f1; f += 16) {
      __m256 wv[NW];
      for (int j = 0; j < NW; ++j) wv[j] = _mm256_loadu_ps(w[j] + f);
      for (int i = 0; i < NX; ++i) {
        const __m256 xv = _mm256_loadu_ps(x[i] + f);
        for (int j = 0; j < NW; ++j) a[i][j] = _mm256_fmadd_ps(xv, wv[j], a[i][j]);
      }
    }
    for (int i = 0; i < NX; ++i)
      for (int j = 0; j < NW; ++j) _mm256_storeu_ps(acc + (i * NW + j) * 16 + h, a[i][j]);
  }
}

// The columns F16.. of the lanes (l = f - F16), then the lanes' sum.
__attribute__((target("avx2,fma"))) float linear_lanes_sum(float* lanes, const float* x, const float* w, int F16, int F) {
  for (int f = F16; f < F; ++f) lanes[f - F16] = std::fma(x[f], w[f], lanes[f - F16]);
  for (int half = 8; half >= 1; half /= 2)
    for (int l = 0; l < half; ++l) lanes[l] += lanes[l + half];
  return lanes[0];
}

// Tiles of NX rows of x by NW rows of W (the last ones repeated where N or O runs out).
template <int NX, int NW>
void linear_forward_tiles(float* y, const float* x, const float* w, int N, int F, int O) {
  const int F16 = F / 16 * 16, NT = (N + NX - 1) / NX;
#pragma omp parallel
  {
    float acc[kLinearRows][NW * 16];  // per tile of x's rows: [i][j][lane]
#pragma omp for schedule(static)
    for (int ot = 0; ot < (O + NW - 1) / NW; ++ot) {
      int o[NW];
      const float* wr[NW];
      for (int j = 0; j < NW; ++j) {
        o[j] = std::min(ot * NW + j, O - 1);
        wr[j] = w + static_cast<int64_t>(o[j]) * F;
      }
      for (int f0 = 0; f0 == 0 || f0 < F16; f0 += kLinearChunk)
        for (int nt = 0; nt < NT; ++nt) {
          const float* xr[NX];
          for (int i = 0; i < NX; ++i) xr[i] = x + static_cast<int64_t>(std::min(nt * NX + i, N - 1)) * F;
          linear_tile_avx2<NX, NW>(acc[nt * NX], xr, wr, f0, std::min(F16, f0 + kLinearChunk), f0 == 0);
        }
      for (int n = 0; n < N; ++n)
        for (int j = 0; j < NW; ++j)
          y[static_cast<int64_t>(n) * O + o[j]] =
              linear_lanes_sum(acc[n - n % NX] + ((n % NX) * NW + j) * 16, x + static_cast<int64_t>(n) * F,
                               w + static_cast<int64_t>(o[j]) * F, F16, F);
    }
  }
}

void linear_forward_rows(float* y, const float* x, const float* w, int N, int F, int O) {
  // Tiles of 1 x 4 and 2 x 4 rows (measured against 2 x 2, 4 x 2 and 3 x 3 on VGG-16's fc6).
  if (N == 1) linear_forward_tiles<1, 4>(y, x, w, N, F, O);
  else linear_forward_tiles<2, 4>(y, x, w, N, F, O);
}

// Data gradient: dx[n,f] = sum_o dy[n,o] w[o,f], one FMA per o in increasing o from 0. A tile is
// up to NR rows of dx by 8*NV columns (from f0) over rows [o0, o1) of W, continuing from dx
// unless first.
template <int NR, int NV>
__attribute__((target("avx2,fma"))) void linear_dx_tile_avx2(float* dx, const float* dy, const float* w, int rows, int F,
                                                             int O, int f0, int o0, int o1, bool first) {
  __m256 a[NR][NV];
  for (int i = 0; i < NR; ++i)
    for (int h = 0; h < NV; ++h)
      a[i][h] = first || i >= rows ? _mm256_setzero_ps() : _mm256_loadu_ps(dx + static_cast<int64_t>(i) * F + f0 + 8 * h);
  for (int o = o0; o < o1; ++o) {
    const float* wo = w + static_cast<int64_t>(o) * F + f0;
    __m256 wv[NV];
    for (int h = 0; h < NV; ++h) wv[h] = _mm256_loadu_ps(wo + 8 * h);
    for (int i = 0; i < NR; ++i) {
      if (i >= rows) break;
      const __m256 d = _mm256_broadcast_ss(dy + static_cast<int64_t>(i) * O + o);
      for (int h = 0; h < NV; ++h) a[i][h] = _mm256_fmadd_ps(d, wv[h], a[i][h]);
    }
  }
  for (int i = 0; i < rows; ++i)
    for (int h = 0; h < NV; ++h) _mm256_storeu_ps(dx + static_cast<int64_t>(i) * F + f0 + 8 * h, a[i][h]);
}

__attribute__((target("avx2,fma"))) void linear_dx_column(float* dx, const float* dy, const float* w, int N, int F, int O,
                                                          int f) {
  for (int n = 0; n < N; ++n) {
    float s = 0.f;
    for (int o = 0; o < O; ++o) s = std::fma(dy[static_cast<int64_t>(n) * O + o], w[static_cast<int64_t>(o) * F + f], s);
    dx[static_cast<int64_t>(n) * F + f] = s;
  }
}

template <int NR, int NV>
void linear_backward_data_tiles(float* dx, const float* dy, const float* w, int N, int F, int O) {
  constexpr int TW = 8 * NV;  // columns per tile
  const int tiles = F / TW;
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int t0 = static_cast<int>(static_cast<int64_t>(tiles) * t / nt),
              t1 = static_cast<int>(static_cast<int64_t>(tiles) * (t + 1) / nt);
    // Rows of W in groups of kLinearRowsO, each over all of this thread's columns: W is read
    // once, as kLinearRowsO sequential streams.
    for (int o0 = 0; o0 == 0 || o0 < O; o0 += kLinearRowsO)
      for (int tile = t0; tile < t1; ++tile)
        for (int n = 0; n < N; n += NR)
          linear_dx_tile_avx2<NR, NV>(dx + static_cast<int64_t>(n) * F, dy + static_cast<int64_t>(n) * O, w,
                                      std::min(NR, N - n), F, O, tile * TW, o0, std::min(O, o0 + kLinearRowsO), o0 == 0);
#pragma omp for schedule(static)
    for (int f = tiles * TW; f < F; ++f) linear_dx_column(dx, dy, w, N, F, O, f);
  }
}

void linear_backward_data_rows(float* dx, const float* dy, const float* w, int N, int F, int O) {
  linear_backward_data_tiles<4, 2>(dx, dy, w, N, F, O);  // (8x1, 4x3, 2x4 and 6x2 tiles: no faster)
}
#else
void linear_forward_rows(float*, const float*, const float*, int, int, int) {}
void linear_backward_data_rows(float*, const float*, const float*, int, int, int) {}
#endif
}  // namespace

bool uses_linear_rows(int N) { return linear_rows_fit(N); }

void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int F, int O,
                    bool relu) {
  if (linear_rows_fit(N)) linear_forward_rows(y, x, w, N, F, O);
  else gemm(false, true, N, O, F, x, w, y, 0.f);
  if (b || relu)
    parallel_for(static_cast<int64_t>(N) * O, [&](int64_t i) { kern::bias_act_at(y, b, nullptr, O, 1, relu, i); });
}

void linear_backward_data(float* dx, const float* dy, const float* w, int N, int F, int O) {
  if (linear_rows_fit(N)) linear_backward_data_rows(dx, dy, w, N, F, O);
  else gemm(false, false, N, F, O, dy, w, dx, 0.f);
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
namespace {
// The packed ReLU masks word by word, in blocks of words, four lanes at a time with SSE2 on x86
// (the per-element bodies ran scalar: backward and packing of 6.4M elements took 14 and 2.4 ms,
// now 1.1 and 0.55).
// bits[w] = the word of !(y[32w + j] <= 0) (kern::relu_mask_pack_at) for words [w0, w1): eight
// compares, each a 4-bit movemask (not-less-or-equal: true for a NaN, as in the body).
void pack_words(uint32_t* __restrict bits, const float* __restrict y, int64_t w0, int64_t w1) {
  for (int64_t w = w0; w < w1; ++w) {
    const float* __restrict yw = y + w * 32;
    uint32_t v = 0;
#if LCAM_CPU_X86
    const __m128 zero = _mm_setzero_ps();
    for (int j = 0; j < 32; j += 4)
      v |= static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpnle_ps(_mm_loadu_ps(yw + j), zero))) << j;
#else
    for (int j = 0; j < 32; ++j) v |= (yw[j] <= 0.f ? 0u : 1u) << j;
#endif
    bits[w] = v;
  }
}
constexpr int64_t kMaskBlock = 256;  // words per task (32 KiB of floats)
// d[32w + j] = bit j of bits[w] ? g[32w + j] : 0 (kern::relu_mask_bwd_at) for words [w0, w1);
// d may be g (in place): each lane is loaded before it is stored.
void mask_words(float* d, const float* g, const uint32_t* __restrict bits, int64_t w0, int64_t w1) {
#if LCAM_CPU_X86
  const __m128i zero = _mm_setzero_si128();
  __m128i lane_bit[8];  // bits j..j+3 of the word, one per lane
  for (int q = 0; q < 8; ++q) {
    const auto bit = [q](int l) { return static_cast<int>(1u << (4 * q + l)); };
    lane_bit[q] = _mm_setr_epi32(bit(0), bit(1), bit(2), bit(3));
  }
#endif
  for (int64_t w = w0; w < w1; ++w) {
    float* dw = d + w * 32;
    const float* gw = g + w * 32;
#if LCAM_CPU_X86
    const __m128i m = _mm_set1_epi32(static_cast<int>(bits[w]));
    for (int q = 0; q < 8; ++q) {
      const __m128i off = _mm_cmpeq_epi32(_mm_and_si128(m, lane_bit[q]), zero);  // all ones: bit clear
      _mm_storeu_ps(dw + 4 * q, _mm_andnot_ps(_mm_castsi128_ps(off), _mm_loadu_ps(gw + 4 * q)));
    }
#else
    for (int j = 0; j < 32; ++j) dw[j] = (bits[w] >> j) & 1u ? gw[j] : 0.f;
#endif
  }
}
// f(w0, w1) over words [0, words) in blocks of kMaskBlock, on all threads when there are many.
template <class F>
void word_blocks(int64_t words, F&& f) {
#pragma omp parallel for schedule(static) if (words > kMaskBlock)
  for (int64_t t = 0; t < (words + kMaskBlock - 1) / kMaskBlock; ++t)
    f(t * kMaskBlock, std::min(words, (t + 1) * kMaskBlock));
}
}  // namespace
// The full words in blocks, the tail of L % 32 elements by the shared body.
void relu_mask_pack(uint32_t* bits, const float* y, int64_t L) {
  const int64_t words = L / 32;
  word_blocks(words, [&](int64_t w0, int64_t w1) { pack_words(bits, y, w0, w1); });
  if (words * 32 < L) kern::relu_mask_pack_at(bits, y, L, words);
}
void relu_mask_backward(float* dx, const float* dy, const uint32_t* bits, int64_t L) {
  const int64_t words = L / 32;
  word_blocks(words, [&](int64_t w0, int64_t w1) { mask_words(dx, dy, bits, w0, w1); });
  for (int64_t i = words * 32; i < L; ++i) kern::relu_mask_bwd_at(dx, dy, bits, i);
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
  parallel_planes(static_cast<int64_t>(N) * C, HW, [&](int64_t p, int64_t i0, int64_t i1) {
    const float s = scale[p % C];
    for (int64_t i = i0; i < i1; ++i) dx[i] = dy[i] * s;  // kern::channel_affine_bwd_at
  });
}
namespace {
// best[j], o[j] = src[j * stride], t where that is larger or a NaN (max-pool's rule); separate
// pointers and no short circuit, so that the compiler vectorizes it. kStride 0: the run-time one.
template <int kStride>
void max_select(float* __restrict best, int32_t* __restrict o, const float* __restrict src, int n, int t,
                int stride = kStride) {
  if (kStride) stride = kStride;
  for (int j = 0; j < n; ++j) {
    const float v = src[j * stride];
    const bool take = (v > best[j]) | (v != v);
    best[j] = take ? v : best[j];
    o[j] = take ? t : o[j];
  }
}
}  // namespace

void maxpool2d_forward(float* y, uint8_t* argmax, const float* x, const PoolParams& p) {
  // Windows that lie inside the image (all but the first row and column of ResNet's 3x3/2) run
  // in blocks of up to 32 outputs of a row, window element by element: the compare-and-select
  // of one element runs across the block in vector registers, where a loop per output is a
  // chain of data-dependent branches that mispredicts on ReLU outputs (ties of zeros). The
  // border windows take the shared body. Same rule in both: the first maximum in row-major
  // window order wins, a NaN replaces.
  const int P = p.P(), Q = p.Q();
  const int64_t planes = static_cast<int64_t>(p.N) * p.C;
  if (p.R == 2 && p.S == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0) {
    // VGG's 2x2/2 measured faster as a loop per output over two pairs of neighbours (three
    // selects each) than in blocks (1.1 against 1.9 ms for 64x224x224).
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane)
      for (int a = 0; a < P; ++a) {
        const float* r0 = x + (plane * p.H + 2 * a) * p.W;
        const float* r1 = r0 + p.W;
        float* out = y + (plane * P + a) * Q;
        uint8_t* am = argmax ? argmax + (plane * P + a) * Q : nullptr;
        for (int b = 0; b < Q; ++b) {
          uint8_t o;
          out[b] = window4_max({r0[2 * b], r0[2 * b + 1], r1[2 * b], r1[2 * b + 1]}, o);
          if (am) am[b] = o;
        }
      }
    return;
  }
  const auto first_inside = [](int pad, int stride) { return (pad + stride - 1) / stride; };
  const auto last_inside = [](int extent, int pad, int window, int stride) {
    return extent + pad < window ? -1 : (extent + pad - window) / stride;
  };
  const int a0 = first_inside(p.pad_h, p.stride_h), a1 = std::min(P - 1, last_inside(p.H, p.pad_h, p.R, p.stride_h));
  const int b0 = first_inside(p.pad_w, p.stride_w), b1 = std::min(Q - 1, last_inside(p.W, p.pad_w, p.S, p.stride_w));
  const int sw = p.stride_w;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int a = 0; a < P; ++a) {
      const int64_t o0 = (plane * P + a) * Q;
      if (a < a0 || a > a1 || b0 > b1) {
        for (int b = 0; b < Q; ++b) kern::maxpool_fwd_at(y, argmax, x, p, plane, a, b, o0 + b);
        continue;
      }
      for (int b = 0; b < b0; ++b) kern::maxpool_fwd_at(y, argmax, x, p, plane, a, b, o0 + b);
      const float* top = x + (plane * p.H + a * p.stride_h - p.pad_h) * p.W - p.pad_w;
      for (int bb = b0; bb <= b1; bb += 32) {
        const int nb = std::min(32, b1 + 1 - bb);
        float best[32];
        int32_t o[32];
        const float* corner = top + static_cast<int64_t>(bb) * sw;
        for (int j = 0; j < nb; ++j) best[j] = corner[j * sw], o[j] = 0;
        for (int t = 1; t < p.R * p.S; ++t) {
          const float* src = corner + (t / p.S) * p.W + t % p.S;
          if (sw == 2)
            max_select<2>(best, o, src, nb, t);
          else
            max_select<0>(best, o, src, nb, t, sw);
        }
        std::memcpy(y + o0 + bb, best, sizeof(float) * nb);
        if (argmax)
          for (int j = 0; j < nb; ++j) argmax[o0 + bb + j] = static_cast<uint8_t>(o[j]);
      }
      for (int b = b1 + 1; b < Q; ++b) kern::maxpool_fwd_at(y, argmax, x, p, plane, a, b, o0 + b);
    }
}
void maxpool2d_backward(float* dx, const float* dy, const uint8_t* argmax, const PoolParams& p) {
  // Each output scatters into its argmax, plane by plane in row-major order, without the
  // gather's divisions. Where windows overlap (ResNet's 3x3/2) a pixel receives its terms in the
  // order the gather (kern::maxpool_bwd_at) adds them, windows in row-major order, so the sums
  // are the same to the bit.
  const int P = p.P(), Q = p.Q();
  const int64_t HW = static_cast<int64_t>(p.H) * p.W, PQ = static_cast<int64_t>(P) * Q;
  int64_t offset[256];  // window offset r*S + s -> r*W + s
  for (int o = 0; o < 256; ++o) offset[o] = static_cast<int64_t>(o / p.S) * p.W + o % p.S;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < static_cast<int64_t>(p.N) * p.C; ++plane) {
    float* dxp = dx + plane * HW;
    const float* dyp = dy + plane * PQ;
    const uint8_t* ap = argmax + plane * PQ;
    std::fill(dxp, dxp + HW, 0.f);
    for (int a = 0; a < P; ++a) {
      const int64_t row = static_cast<int64_t>(a * p.stride_h - p.pad_h) * p.W - p.pad_w;
      for (int b = 0; b < Q; ++b) {
        const int o = ap[a * Q + b];
        if (o != kern::kArgmaxNone) dxp[row + b * p.stride_w + offset[o]] += dyp[a * Q + b];
      }
    }
  }
}
// Adaptive average pooling to the input's own size (VGG-16's 7x7 at 224x224) is a copy: one
// pixel per bin, divided by 1.
void adaptive_avgpool2d_forward(float* y, const float* x, int NC, int H, int W, int P, int Q) {
  if (H == P && W == Q) {
    std::memcpy(y, x, sizeof(float) * static_cast<size_t>(NC) * H * W);
    return;
  }
  parallel_for(static_cast<int64_t>(NC) * P * Q,
               [&](int64_t i) { kern::adaptive_avgpool_fwd_at(y, x, H, W, P, Q, i); });
}
void adaptive_avgpool2d_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q) {
  if (H == P && W == Q) {
    std::memcpy(dx, dy, sizeof(float) * static_cast<size_t>(NC) * H * W);
    return;
  }
  if (P == 1 && Q == 1) {  // global average (ResNet-50): one value per plane, as the body's one bin
    const int64_t HW = static_cast<int64_t>(H) * W;
    parallel_planes(NC, HW, [&](int64_t plane, int64_t i0, int64_t i1) {
      std::fill(dx + i0, dx + i1, dy[plane] / static_cast<float>(HW));
    });
    return;
  }
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
  parallel_planes(static_cast<int64_t>(N) * 3, HW, [&](int64_t p, int64_t i0, int64_t i1) {
    const int c = static_cast<int>(p % 3);
    const float m = c == 0 ? m0 : (c == 1 ? m1 : m2), s = c == 0 ? s0 : (c == 1 ? s1 : s2);
    for (int64_t i = i0; i < i1; ++i) y[i] = (x[i] - m) / s;  // kern::normalize_at
  });
}

// ---- L-CAM ----------------------------------------------------------------------------------

void gemm_batched(float* C, const float* A, const float* B, int batch, int M, int N, int K, bool ta, bool tb,
                  int64_t sA, int64_t sB, int64_t sC, float beta) {
  const int nt = omp_get_max_threads();
  if (batch >= nt) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < batch; ++i)
      sgemm1(ta, tb, M, N, K, A + i * sA, ta ? M : K, B + i * sB, tb ? K : N, C + i * sC, N, beta);
  } else {
    for (int i = 0; i < batch; ++i) gemm(ta, tb, M, N, K, A + i * sA, B + i * sB, C + i * sC, beta);
  }
}

void gather_rows(float* out, const float* table, const int32_t* rows, int R, int C, int T) {
  for (int r = 0; r < R; ++r) {
    float* o = out + static_cast<int64_t>(r) * C;
    if (rows[r] >= 0 && rows[r] < T)
      std::memcpy(o, table + static_cast<int64_t>(rows[r]) * C, sizeof(float) * C);
    else
      std::fill(o, o + C, 0.f);
  }
}

// Rows in order, so repeated rows accumulate deterministically; columns are parallel.
void scatter_add_rows(float* table, const float* in, const int32_t* rows, int R, int C, int T) {
#pragma omp parallel for schedule(static) if (C >= 256)
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      if (rows[r] >= 0 && rows[r] < T) table[static_cast<int64_t>(rows[r]) * C + c] += in[static_cast<int64_t>(r) * C + c];
}

void argmax_rows(float* idx, const float* x, int N, int O) {
  for (int64_t n = 0; n < N; ++n) kern::argmax_row(idx, x, O, n);
}

void row_sum(float* out, const float* in, int R, int64_t L) {
  for (int r = 0; r < R; ++r) {
    double acc = 0.0;
    for (int64_t i = 0; i < L; ++i) acc += in[r * L + i];
    out[r] = static_cast<float>(acc);
  }
}

void bias_act(float* y, const float* b, int N, int C, int64_t HW, bool relu) {
  parallel_for(static_cast<int64_t>(N) * C * HW, [&](int64_t i) { kern::bias_act_at(y, b, nullptr, C, HW, relu, i); });
}

double sum(const float* x, int64_t L) {
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (L > 65536)
  for (int64_t i = 0; i < L; ++i) acc += x[i];
  return acc;
}

void sigmoid_forward(float* y, const float* x, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::sigmoid_fwd_at(y, x, i); });
}
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::sigmoid_bwd_at(dx, dy, y, i); });
}
void upsample_bilinear_forward(float* y, const float* x, int NC, int H, int W, int P, int Q) {
  // kern::upsample_fwd_at with the rows' and columns' taps computed once (the same floats), an
  // output row at a time: no divisions per value (they had taken 4 ns per value).
  std::vector<kern::Lerp> rows(P), cols(Q);
  for (int p = 0; p < P; ++p) rows[p] = kern::bilinear_src(p, H, static_cast<float>(H) / static_cast<float>(P));
  for (int q = 0; q < Q; ++q) cols[q] = kern::bilinear_src(q, W, static_cast<float>(W) / static_cast<float>(Q));
  parallel_planes(static_cast<int64_t>(NC) * P, Q, [&](int64_t row, int64_t i0, int64_t) {
    const kern::Lerp& a = rows[row % P];
    const float* xp = x + (row / P) * H * W;
    float* yr = y + i0;
    for (int q = 0; q < Q; ++q) yr[q] = kern::bilinear_mix(a, cols[q], xp, W);
  });
}
// Per input index along one axis, the output indices that read it and their weights
// (kern::lerp_weight of kern::bilinear_src, the same floats), in ascending output order.
static std::vector<std::vector<std::pair<int, float>>> lerp_taps(int in, int out) {
  std::vector<std::vector<std::pair<int, float>>> taps(static_cast<size_t>(in));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    const kern::Lerp l = kern::bilinear_src(d, in, scale);
    const float w0 = kern::lerp_weight(l, l.i0);  // l0, or l0 + l1 at the edge where i1 == i0
    if (w0 != 0.f) taps[l.i0].push_back({d, w0});
    if (l.i1 != l.i0) {
      const float w1 = kern::lerp_weight(l, l.i1);
      if (w1 != 0.f) taps[l.i1].push_back({d, w1});
    }
  }
  return taps;
}

void upsample_bilinear_backward(float* dx, const float* dy, int NC, int H, int W, int P, int Q) {
  // kern::upsample_bwd_at with the weights tabulated once: each pixel gathers the same nonzero
  // terms in the same order (output rows, then columns, ascending).
  const auto rows = lerp_taps(H, P), cols = lerp_taps(W, Q);
  parallel_for(static_cast<int64_t>(NC) * H * W, [&](int64_t i) {
    const int w = static_cast<int>(i % W), h = static_cast<int>((i / W) % H);
    const float* dyp = dy + (i / (static_cast<int64_t>(H) * W)) * P * Q;
    float acc = 0.f;
    for (const auto& [p, a] : rows[h])
      for (const auto& [q, b] : cols[w]) acc += a * b * dyp[p * Q + q];
    dx[i] = acc;
  });
}
void mask_mul_forward(float* y, const float* x, const float* m, int N, int C, int64_t L, bool x_shared) {
  // kern::mask_mul_at, a plane (n, c) at a time.
  parallel_planes(static_cast<int64_t>(N) * C, L, [&](int64_t p, int64_t i0, int64_t i1) {
    const float* mp = m + (p / C) * L;
    const float* xp = x + (x_shared ? (p % C) * L : i0);
    float* yp = y + i0;
    for (int64_t l = 0; l < i1 - i0; ++l) yp[l] = xp[l] * mp[l];
  });
}
void mask_mul_backward_mask(float* dm, const float* dy, const float* x, int N, int C, int64_t L) {
  // kern::mask_mul_bwd_mask_at, an image at a time: the channels added in the same order.
  parallel_planes(N, L, [&](int64_t n, int64_t i0, int64_t i1) {
    float* d = dm + i0;
    for (int64_t l = 0; l < i1 - i0; ++l) d[l] = 0.f;
    for (int c = 0; c < C; ++c) {
      const float* a = dy + (n * C + c) * L;
      const float* b = x + (n * C + c) * L;
      for (int64_t l = 0; l < i1 - i0; ++l) d[l] += a[l] * b[l];
    }
  });
}
void area_terms(float* value, float* grad, const float* m, int64_t L, float eps, float power, float scale) {
  parallel_for(L, [&](int64_t i) { kern::area_at(value, grad, m, eps, power, scale, i); });
}
void tv_terms(float* value, float* grad, const float* m, int maps, int h, int w, float border, float scale) {
  parallel_for(static_cast<int64_t>(maps) * h * w, [&](int64_t i) { kern::tv_at(value, grad, m, h, w, border, scale, i); });
}
void sgd_step(float* p, float* buf, const float* grad, int64_t L, float lr, float momentum, float wd, bool nesterov,
              bool first) {
  parallel_for(L, [&](int64_t i) { kern::sgd_at(p, buf, grad, lr, momentum, wd, nesterov, first, i); });
}

void dropout_forward(float* y, float* mask, const float* x, int64_t L, float p, uint64_t seed) {
  parallel_for(L, [&](int64_t i) { kern::dropout_at(y, mask, x, p, seed, i); });
}
void mul_forward(float* y, const float* a, const float* b, int64_t L) {
  parallel_for(L, [&](int64_t i) { kern::mul_at(y, a, b, i); });
}

void minmax_normalize(float* y, const float* x, int maps, int64_t L, bool sub) {
#pragma omp parallel for schedule(static) if (maps > 1)
  for (int m = 0; m < maps; ++m) kern::minmax_map(y, x, L, sub, m);
}

void cam_weights(float* w, const float* A, const float* g, const float* expS, int N, int C, int64_t L, int kind) {
  parallel_for(static_cast<int64_t>(N) * C, [&](int64_t nc) { kern::cam_weight_at(w, A, g, expS, C, L, kind, nc); });
}

}  // namespace lcam::cpu
