// test_ops.cpp — every op of engine/ops.h on the CPU backend against an independent naive loop
// in double, and every backward against central differences of that naive forward. The shared
// kernel bodies (kernels/bodies.h) are what the GPU runs, so this also checks their arithmetic.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <algorithm>  // std::max
#include <chrono>     // std::chrono (the profiler test's busy loop)
#include <cmath>      // std::exp, std::log
#include <cstring>    // std::memcmp
#include <limits>     // std::numeric_limits
#include <thread>     // std::thread (the profiler test)

#include "engine/algo_choice.h"  // choose_algo
#include "engine/backend.h"      // cpu::cross_entropy, cpu::gather_rows (the kernels themselves)
#include "engine/common.h"   // InputError, InternalError
#include "engine/cuda_runtime.h"  // cuda::TraceRange (the range profiler)
#include "engine/ops.h"      // the ops under test
#include "engine/profile.h"  // prof::start, rows
#include "kernels/bodies.h"   // kern::bf16_from_float (the bf16 convolutions' rounding)
#include "tests/test_util.h" // randn_t, numeric_grad, check_close

using namespace lcam;
using lcam::test::check_close;
using lcam::test::numeric_grad;
using lcam::test::randn_t;
using lcam::test::to_double;
using Vec = std::vector<double>;

namespace {

Vec conv_ref(const Vec& x, const Vec& w, const Vec& b, const ConvParams& p) {
  const int P = p.P(), Q = p.Q();
  Vec y(static_cast<size_t>(p.N) * p.K * P * Q);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int oh = 0; oh < P; ++oh)
        for (int ow = 0; ow < Q; ++ow) {
          double acc = b.empty() ? 0.0 : b[k];
          for (int c = 0; c < p.C; ++c)
            for (int r = 0; r < p.R; ++r)
              for (int s = 0; s < p.S; ++s) {
                const int h = oh * p.stride_h - p.pad_h + r, ww = ow * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= p.H || ww < 0 || ww >= p.W) continue;
                acc += x[((static_cast<size_t>(n) * p.C + c) * p.H + h) * p.W + ww] *
                       w[((static_cast<size_t>(k) * p.C + c) * p.R + r) * p.S + s];
              }
          y[((static_cast<size_t>(n) * p.K + k) * P + oh) * Q + ow] = acc;
        }
  return y;
}

// The data gradient of conv_ref (stride 1): dx[n, c, h, w] = sum over k, r, s of
// dy[n, k, h + pad - r, w + pad - s] w[k, c, r, s].
Vec conv_dx_ref(const Vec& dy, const Vec& w, const ConvParams& p) {
  const int P = p.P(), Q = p.Q();
  Vec dx(static_cast<size_t>(p.N) * p.C * p.H * p.W, 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int oh = 0; oh < P; ++oh)
        for (int ow = 0; ow < Q; ++ow) {
          const double g = dy[((static_cast<size_t>(n) * p.K + k) * P + oh) * Q + ow];
          for (int c = 0; c < p.C; ++c)
            for (int r = 0; r < p.R; ++r)
              for (int s = 0; s < p.S; ++s) {
                const int h = oh - p.pad_h + r, ww = ow - p.pad_w + s;
                if (h < 0 || h >= p.H || ww < 0 || ww >= p.W) continue;
                dx[((static_cast<size_t>(n) * p.C + c) * p.H + h) * p.W + ww] +=
                    g * w[((static_cast<size_t>(k) * p.C + c) * p.R + r) * p.S + s];
              }
        }
  return dx;
}

struct ConvCase {
  const char* name;
  ConvParams p;
};

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("conv2d forward and backward against naive loops and finite differences") {
  const ConvCase cases[] = {
      {"3x3 s1 p1", {2, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1}},
      {"3x3 s2 p1", {2, 3, 9, 7, 4, 3, 3, 2, 2, 1, 1}},
      {"1x1 s1 p0 (pointwise)", {2, 5, 4, 3, 6, 1, 1, 1, 1, 0, 0}},
      {"1x1 s2 p0", {1, 4, 7, 6, 3, 1, 1, 2, 2, 0, 0}},
      {"7x7 s2 p3", {1, 3, 11, 10, 2, 7, 7, 2, 2, 3, 3}},
      {"3x3 s2 p0", {1, 2, 8, 9, 3, 3, 3, 2, 2, 0, 0}},
      // Stride 1 with 8 to 32 output channels: the direct convolution (on CPUs with AVX2 and
      // FMA), rows not a multiple of 8 wide, padding on either side or none, a 5x3 window.
      {"3x3 s1 p1, K 8 (direct)", {2, 3, 7, 13, 8, 3, 3, 1, 1, 1, 1}},
      {"3x3 s1 p0, K 16 (direct)", {1, 5, 6, 11, 16, 3, 3, 1, 1, 0, 0}},
      {"5x3 s1 p2,1, K 24 (direct)", {1, 2, 9, 10, 24, 5, 3, 1, 1, 2, 1}},
      {"3x3 s1 p1, K 64 from 3 channels (direct)", {1, 3, 5, 4, 64, 3, 3, 1, 1, 1, 1}},
      // ... and its data gradient, when the input has 8 to 32 channels.
      {"3x3 s1 p1, C 8 K 8 (direct both ways)", {2, 8, 5, 6, 8, 3, 3, 1, 1, 1, 1}},
      {"3x3 s1 p0, C 16 K 4 (direct backward)", {1, 16, 6, 9, 4, 3, 3, 1, 1, 0, 0}},
      // Fewer pixels than output channels, several images: the images' columns side by side.
      {"3x3 s1 p1, deep", {5, 3, 3, 2, 8, 3, 3, 1, 1, 1, 1}},
      {"1x1 s1 p0, deep", {3, 4, 2, 2, 6, 1, 1, 1, 1, 0, 0}},
  };
  for (const auto& cs : cases) {
    SUBCASE(cs.name) {
      const ConvParams p = cs.p;
      Tensor x = randn_t({p.N, p.C, p.H, p.W}, 1), w = randn_t({p.K, p.C, p.R, p.S}, 2, 0.3f), b = randn_t({p.K}, 3);
      Vec xd = to_double(x), wd = to_double(w), bd = to_double(b);
      for (bool relu : {false, true}) {
        Tensor y = Tensor::empty({p.N, p.K, p.P(), p.Q()});
        conv2d_forward(y, x, w, b, p, relu);
        Vec want = conv_ref(xd, wd, bd, p);
        if (relu)
          for (auto& v : want) v = std::max(v, 0.0);
        check_close(relu ? "conv+relu forward" : "conv forward", y.to_vector(), want, 1e-5);
      }
      Tensor nob = Tensor::empty({p.N, p.K, p.P(), p.Q()});
      conv2d_forward(nob, x, w, Tensor(), p);
      check_close("conv forward without bias", nob.to_vector(), conv_ref(xd, wd, {}, p), 1e-5);

      Tensor g = randn_t({p.N, p.K, p.P(), p.Q()}, 4);
      Vec gd = to_double(g);
      Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()), db = Tensor::empty(b.shape());
      conv2d_backward_data(dx, g, w, p);
      conv2d_backward_weight(dw, db, g, x, p);
      check_close("conv dx", dx.to_vector(), numeric_grad([&](const Vec& v) { return conv_ref(v, wd, bd, p); }, xd, gd), 1e-5);
      check_close("conv dw", dw.to_vector(), numeric_grad([&](const Vec& v) { return conv_ref(xd, v, bd, p); }, wd, gd), 1e-5);
      check_close("conv db", db.to_vector(), numeric_grad([&](const Vec& v) { return conv_ref(xd, wd, v, p); }, bd, gd), 1e-5);
    }
  }
}

TEST_CASE("conv2d forward of deep layers in groups of images (columns side by side)") {
  // PQ < K with more images than one group takes (1024 / PQ per group): 7 images of 169 pixels
  // go as 6 + 1, 4 of 300 as 3 + 1; 3x3 strided and pointwise.
  for (const ConvParams p : {ConvParams{7, 2, 25, 25, 200, 3, 3, 2, 2, 1, 1}, ConvParams{4, 2, 15, 20, 320, 1, 1, 1, 1, 0, 0}}) {
    CAPTURE(p.N);
    Tensor x = randn_t({p.N, p.C, p.H, p.W}, 21), w = randn_t({p.K, p.C, p.R, p.S}, 22, 0.3f), b = randn_t({p.K}, 23);
    Vec want = conv_ref(to_double(x), to_double(w), to_double(b), p);
    for (auto& v : want) v = std::max(v, 0.0);
    Tensor y = Tensor::empty({p.N, p.K, p.P(), p.Q()});
    conv2d_forward(y, x, w, b, p, /*relu=*/true);
    check_close("grouped conv+relu forward", y.to_vector(), want, 1e-5);
  }
}

TEST_CASE("conv2d forward with a residual: act(conv + b + z) on every schedule") {
  // Direct kernel (16 outputs, stride 1, 3x3), grouped deep layers (PQ < K, several images),
  // one image's deep layer (small: one thread; larger, 3x3 and 1x1: its GEMM split by output
  // channels over the threads, each finishing its rows), pixel tiles (PQ >= K); with and
  // without the ReLU.
  for (const ConvParams p : {ConvParams{2, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1}, ConvParams{5, 4, 9, 9, 120, 1, 1, 1, 1, 0, 0},
                             ConvParams{1, 6, 7, 7, 64, 3, 3, 1, 1, 1, 1}, ConvParams{1, 32, 8, 8, 160, 3, 3, 1, 1, 1, 1},
                             ConvParams{1, 300, 6, 6, 400, 1, 1, 1, 1, 0, 0}, ConvParams{2, 5, 20, 20, 24, 1, 1, 2, 2, 0, 0}}) {
    CAPTURE(p.K);
    Tensor x = randn_t({p.N, p.C, p.H, p.W}, 31), w = randn_t({p.K, p.C, p.R, p.S}, 32, 0.3f), b = randn_t({p.K}, 33);
    Tensor z = randn_t({p.N, p.K, p.P(), p.Q()}, 34);
    const Vec conv = conv_ref(to_double(x), to_double(w), to_double(b), p), zd = to_double(z);
    for (bool relu : {false, true}) {
      Vec want(conv.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = relu ? std::max(conv[i] + zd[i], 0.0) : conv[i] + zd[i];
      Tensor y = Tensor::empty(z.shape());
      conv2d_forward_add(y, x, w, b, z, p, relu);
      check_close("conv + residual", y.to_vector(), want, 1e-5);
    }
    Tensor y = Tensor::empty(z.shape());
    CHECK_THROWS_AS(conv2d_forward_add(z, x, w, b, z, p, true), InternalError);  // z must not be y
    CHECK_THROWS_AS(conv2d_forward_add(y, x, w, b, Tensor::empty({1, 2, 3, 4}), p, true), InternalError);
  }
}

TEST_CASE("bfloat16 rounding: nearest, ties to even, as torch") {
  using lcam::kern::bf16_from_float;
  using lcam::kern::bf16_to_float;
  using lcam::kern::bits_float;
  CHECK(bf16_from_float(1.f) == 0x3f80);
  CHECK(bf16_from_float(-2.f) == 0xc000);
  CHECK(bf16_from_float(bits_float(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(bf16_from_float(bits_float(0x3f818000u)) == 0x3f82);  // tie, odd rounds up to even
  CHECK(bf16_from_float(bits_float(0x3f808001u)) == 0x3f81);  // above the tie
  CHECK(bf16_from_float(bits_float(0x3f807fffu)) == 0x3f80);  // below it
  CHECK(bf16_from_float(bits_float(0x3fffffffu)) == 0x4000);  // carries into the exponent
  CHECK(bf16_from_float(std::numeric_limits<float>::max()) == 0x7f80);  // overflows to infinity
  CHECK(bf16_from_float(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bf16_from_float(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(std::isnan(bf16_to_float(bf16_from_float(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(bf16_to_float(bf16_from_float(bits_float(0x7f800001u)))));  // a NaN with low bits only
  CHECK(bf16_to_float(bf16_from_float(1e-40f)) == bits_float(0x00010000u));    // subnormals round too
  CHECK(bf16_to_float(0x4049) == 3.140625f);
  // torch.tensor([0.1, 1/3, 1000.7, -5e-3]).bfloat16().view(torch.int16)
  CHECK(bf16_from_float(0.1f) == 0x3dcd);
  CHECK(bf16_from_float(1.f / 3.f) == 0x3eab);
  CHECK(bf16_from_float(1000.7f) == 0x447a);
  CHECK(bf16_from_float(-5e-3f) == 0xbba4);
}

TEST_CASE("bf16 convolution emulation: rounded operands, output rounded, then the epilogue") {
  // Eligible shapes (channels multiples of 8) against float64 loops over the rounded operands,
  // the output rounded to bf16 (half an ulp: 2^-8 relative) before bias, residual and ReLU; a
  // shape with 3 input channels stays float32.
  const lcam::test::CpuBf16Scope on;
  auto rounded = [](const Tensor& t) {
    Vec v = to_double(t);
    for (double& d : v) d = kern::bf16_to_float(kern::bf16_from_float(static_cast<float>(d)));
    return v;
  };
  for (const ConvParams p : {ConvParams{2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1}, ConvParams{1, 16, 6, 6, 24, 1, 1, 2, 2, 0, 0},
                             ConvParams{2, 3, 9, 9, 8, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.C);
    const bool bf = p.C % 8 == 0;
    Tensor x = randn_t({p.N, p.C, p.H, p.W}, 41), w = randn_t({p.K, p.C, p.R, p.S}, 42, 0.3f), b = randn_t({p.K}, 43);
    Tensor z = randn_t({p.N, p.K, p.P(), p.Q()}, 44);
    const Vec acc = conv_ref(bf ? rounded(x) : to_double(x), bf ? rounded(w) : to_double(w), {}, p), bd = to_double(b),
              zd = to_double(z);
    Tensor y = Tensor::empty(z.shape());
    conv2d_forward_add(y, x, w, b, z, p, true);
    const std::vector<float> got = y.to_vector();
    const int64_t PQ = static_cast<int64_t>(p.P()) * p.Q();
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double want = std::max(acc[i] + bd[(i / PQ) % p.K] + zd[i], 0.0);
      bad += !(std::fabs(got[i] - want) <= (bf ? 4.5e-3 : 1e-5) * std::fabs(acc[i]) + 1e-5);
    }
    CHECK(bad == 0);
    Tensor plain = Tensor::empty(z.shape());
    conv2d_forward(plain, x, w, Tensor(), p, false);
    size_t wide = 0;
    for (float v : plain.to_vector()) wide += (kern::float_bits(v) & 0xffffu) != 0;
    CHECK((wide == 0) == bf);  // bf16 values exactly where the emulation applies
    Tensor g = randn_t(z.shape(), 45), dx = Tensor::empty(x.shape());
    conv2d_backward_data(dx, g, w, p);
    wide = 0;
    for (float v : dx.to_vector()) wide += (kern::float_bits(v) & 0xffffu) != 0;
    CHECK((wide == 0) == bf);
  }
}

TEST_CASE("linear forward and backward") {
  for (const int N : {1, 3, 11}) {  // up to 8 rows: the kernels of a few rows; 11: OpenBLAS
  CAPTURE(N);
  const int F = 7, O = 5;
  Tensor x = randn_t({N, F}, 5), w = randn_t({O, F}, 6), b = randn_t({O}, 7), g = randn_t({N, O}, 8);
  auto ref = [&](const Vec& xv, const Vec& wv, const Vec& bv) {
    Vec y(N * O);
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < O; ++o) {
        double a = bv[o];
        for (int f = 0; f < F; ++f) a += xv[n * F + f] * wv[o * F + f];
        y[n * O + o] = a;
      }
    return y;
  };
  Vec xd = to_double(x), wd = to_double(w), bd = to_double(b), gd = to_double(g);
  Tensor y = Tensor::empty({N, O});
  linear_forward(y, x, w, b);
  check_close("linear forward", y.to_vector(), ref(xd, wd, bd), 1e-6);
  linear_forward(y, x, w, b, /*relu=*/true);
  Vec r = ref(xd, wd, bd);
  for (auto& v : r) v = std::max(v, 0.0);
  check_close("linear+relu forward", y.to_vector(), r, 1e-6);
  Tensor dx = Tensor::empty({N, F}), dw = Tensor::empty({O, F}), db = Tensor::empty({O});
  linear_backward_data(dx, g, w);
  linear_backward_weight(dw, db, g, x);
  check_close("linear dx", dx.to_vector(), numeric_grad([&](const Vec& v) { return ref(v, wd, bd); }, xd, gd), 1e-6);
  check_close("linear dw", dw.to_vector(), numeric_grad([&](const Vec& v) { return ref(xd, v, bd); }, wd, gd), 1e-6);
  check_close("linear db", db.to_vector(), numeric_grad([&](const Vec& v) { return ref(xd, wd, v); }, bd, gd), 1e-6);
  }
}

TEST_CASE("linear layers of a few rows: double sums, and each row's bits whatever its batch or the threads") {
  // The few-row kernels (up to 8 rows, CPUs with AVX2/FMA): F across the forward's chunks of
  // 1024 columns with a tail of F % 16, O across the data gradient's groups of 16 rows of W, odd
  // N and O (tiles of 2 x 4 rows repeat their last rows).
  struct Shape {
    int F, O;
  };
  const auto restore = lcam::test::on_exit([] { lcam::cpu::set_num_threads(0); });
  for (const Shape s : {Shape{7, 5}, Shape{16, 3}, Shape{33, 37}, Shape{2100, 6}, Shape{1077, 9}}) {
    CAPTURE(s.F);
    CAPTURE(s.O);
    const int F = s.F, O = s.O, NMAX = 8;
    const Tensor x = randn_t({NMAX, F}, 41), w = randn_t({O, F}, 42), g = randn_t({NMAX, O}, 43);
    const Vec xd = to_double(x), wd = to_double(w), gd = to_double(g);
    Vec y_ref(NMAX * O, 0.0), dx_ref(static_cast<size_t>(NMAX) * F, 0.0);
    for (int n = 0; n < NMAX; ++n)
      for (int o = 0; o < O; ++o)
        for (int f = 0; f < F; ++f) {
          y_ref[n * O + o] += xd[n * F + f] * wd[o * F + f];
          dx_ref[static_cast<size_t>(n) * F + f] += gd[n * O + o] * wd[o * F + f];
        }
    std::vector<float> rows_y[NMAX + 1], rows_dx[NMAX + 1];  // by batch size, all rows in order
    for (int N = 1; N <= NMAX; ++N) {
      CAPTURE(N);
      const std::vector<float> xv = x.to_vector(), gv = g.to_vector();
      const Tensor xn = Tensor::from_vector(std::vector<float>(xv.begin(), xv.begin() + static_cast<size_t>(N) * F), {N, F});
      const Tensor gn = Tensor::from_vector(std::vector<float>(gv.begin(), gv.begin() + N * O), {N, O});
      Tensor y = Tensor::empty({N, O}), dx = Tensor::empty({N, F});
      linear_forward(y, xn, w, Tensor());
      linear_backward_data(dx, gn, w);
      rows_y[N] = y.to_vector();
      rows_dx[N] = dx.to_vector();
      check_close("few-row linear forward", rows_y[N], Vec(y_ref.begin(), y_ref.begin() + N * O), 1e-6);
      check_close("few-row linear dx", rows_dx[N], Vec(dx_ref.begin(), dx_ref.begin() + static_cast<size_t>(N) * F), 1e-6);
    }
    if (lcam::cpu::uses_linear_rows(NMAX)) {  // the documented order of the sums, to the bit
      const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), gv = g.to_vector();
      std::vector<float> y_bits(NMAX * O), dx_bits(static_cast<size_t>(NMAX) * F);
      for (int n = 0; n < NMAX; ++n) {
        for (int o = 0; o < O; ++o) {
          float lanes[16] = {};
          for (int f = 0; f < F; ++f) lanes[f % 16] = std::fma(xv[n * F + f], wv[o * F + f], lanes[f % 16]);
          for (int half = 8; half >= 1; half /= 2)
            for (int l = 0; l < half; ++l) lanes[l] += lanes[l + half];
          y_bits[n * O + o] = lanes[0];
        }
        for (int f = 0; f < F; ++f) {
          float acc = 0.f;
          for (int o = 0; o < O; ++o) acc = std::fma(gv[n * O + o], wv[o * F + f], acc);
          dx_bits[static_cast<size_t>(n) * F + f] = acc;
        }
      }
      CHECK(rows_y[NMAX] == y_bits);
      CHECK(rows_dx[NMAX] == dx_bits);
      // Row n of a batch of N is row n of the batch of 8, and one thread gives two threads' bits.
      for (int N = 1; N < NMAX; ++N) {
        CAPTURE(N);
        CHECK(std::equal(rows_y[N].begin(), rows_y[N].end(), rows_y[NMAX].begin()));
        CHECK(std::equal(rows_dx[N].begin(), rows_dx[N].end(), rows_dx[NMAX].begin()));
      }
      lcam::cpu::set_num_threads(1);
      Tensor y1 = Tensor::empty({NMAX, O}), dx1 = Tensor::empty({NMAX, F});
      linear_forward(y1, x, w, Tensor());
      linear_backward_data(dx1, g, w);
      CHECK(y1.to_vector() == rows_y[NMAX]);
      CHECK(dx1.to_vector() == rows_dx[NMAX]);
    } else {
      MESSAGE("linear layers of a few rows: not taken on this CPU (no AVX2/FMA), OpenBLAS is checked");
    }
    lcam::cpu::set_num_threads(0);
  }
}

TEST_CASE("ReLU as torch.relu: NaN and -0 pass, a NaN output passes the gradient") {
  // torch 1.13: relu([nan, -0, 0, -1, 1, inf, -inf]) = [nan, -0, 0, 0, 1, inf, 0], and the
  // gradient of ones through it [1, 0, 0, 0, 1, 1, 0].
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = Tensor::from_vector({nan, -0.f, 0.f, -1.f, 1.f, inf, -inf}, {7});
  Tensor y = Tensor::empty({7}), dx = Tensor::empty({7}), dxm = Tensor::empty({7});
  relu_forward(y, x);
  const std::vector<float> yv = y.to_vector();
  CHECK(std::isnan(yv[0]));
  CHECK((std::signbit(yv[1]) && yv[1] == 0.f));
  CHECK((!std::signbit(yv[2]) && yv[2] == 0.f));
  CHECK((!std::signbit(yv[3]) && yv[3] == 0.f));
  CHECK(yv[4] == 1.f);
  CHECK(yv[5] == inf);
  CHECK((!std::signbit(yv[6]) && yv[6] == 0.f));
  const Tensor ones = Tensor::from_vector(std::vector<float>(7, 1.f), {7});
  relu_backward(dx, ones, y);
  CHECK(dx.to_vector() == std::vector<float>{1.f, 0.f, 0.f, 0.f, 1.f, 1.f, 0.f});
  relu_mask_backward(dxm, ones, relu_mask_pack(y));
  CHECK(dxm.to_vector() == dx.to_vector());
  // Every convolution schedule and the linear layers apply that ReLU: with a NaN in the input,
  // the fused ReLU's output is the unfused output through relu_forward, NaNs included (all
  // NaNs are NaN, the rest the same bits). Direct kernel (16 outputs), Winograd (128 channels),
  // im2col + GEMM (3 -> 96), GEMM over images side by side (deep, few pixels).
  for (const ConvParams p : {ConvParams{2, 8, 9, 11, 16, 3, 3, 1, 1, 1, 1}, ConvParams{2, 128, 12, 12, 128, 3, 3, 1, 1, 1, 1},
                             ConvParams{2, 3, 9, 11, 96, 3, 3, 1, 1, 1, 1}, ConvParams{4, 96, 3, 3, 160, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.C);
    std::vector<float> xv = randn_t({p.N, p.C, p.H, p.W}, 61).to_vector();
    xv[xv.size() / 2 + 3] = nan;
    const Tensor xt = Tensor::from_vector(xv, {p.N, p.C, p.H, p.W}), w = randn_t({p.K, p.C, p.R, p.S}, 62, 0.3f);
    const Tensor b = randn_t({p.K}, 63);
    Tensor plain = Tensor::empty({p.N, p.K, p.P(), p.Q()}), fused = Tensor::empty(plain.shape()), want = Tensor::empty(plain.shape());
    conv2d_forward(plain, xt, w, b, p, false);
    conv2d_forward(fused, xt, w, b, p, true);
    relu_forward(want, plain);
    const std::vector<float> f = fused.to_vector(), r = want.to_vector();
    CHECK(std::count_if(r.begin(), r.end(), [](float v) { return std::isnan(v); }) > 0);
    for (size_t i = 0; i < f.size(); ++i) REQUIRE((std::isnan(r[i]) ? std::isnan(f[i]) : std::memcmp(&f[i], &r[i], 4) == 0));
  }
  for (const int64_t rows : {3, 11}) {  // the few-row kernel where the CPU has it, and OpenBLAS
    std::vector<float> xv = randn_t({rows, 40}, 64).to_vector();
    xv[7] = nan;
    const Tensor xt = Tensor::from_vector(xv, {rows, 40}), w = randn_t({24, 40}, 65), b = randn_t({24}, 66);
    Tensor plain = Tensor::empty({rows, 24}), fused = Tensor::empty({rows, 24}), want = Tensor::empty({rows, 24});
    linear_forward(plain, xt, w, b, false);
    linear_forward(fused, xt, w, b, true);
    relu_forward(want, plain);
    const std::vector<float> f = fused.to_vector(), r = want.to_vector();
    CHECK(std::isnan(f[0]));
    for (size_t i = 0; i < f.size(); ++i) REQUIRE((std::isnan(r[i]) ? std::isnan(f[i]) : std::memcmp(&f[i], &r[i], 4) == 0));
  }
}

TEST_CASE("relu, add, channel affine, normalize") {
  Tensor x = randn_t({2, 3, 4, 5}, 9), a = randn_t({2, 3, 4, 5}, 10), g = randn_t({2, 3, 4, 5}, 11);
  Vec xd = to_double(x), ad = to_double(a), gd = to_double(g);
  auto relu_ref = [](Vec v) {
    for (auto& e : v) e = std::max(e, 0.0);
    return v;
  };
  Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
  relu_forward(y, x);
  check_close("relu", y.to_vector(), relu_ref(xd), 0);
  relu_backward(dx, g, y);
  check_close("relu backward", dx.to_vector(), numeric_grad(relu_ref, xd, gd), 1e-6);
  // The packed mask: 120 elements -> 4 words, the last one partial; same gradient, bit for bit,
  // and in place.
  const Tensor bits = relu_mask_pack(y);
  CHECK(bits.shape() == std::vector<int64_t>{4});
  for (int64_t i = 0; i < y.numel(); ++i)
    CHECK(((static_cast<uint32_t>(bits.data_i32()[i / 32]) >> (i % 32)) & 1u) == (y.data()[i] <= 0.f ? 0u : 1u));
  CHECK((static_cast<uint32_t>(bits.data_i32()[3]) >> 24) == 0u);  // past the end: zero bits
  Tensor dxm = Tensor::empty(x.shape());
  relu_mask_backward(dxm, g, bits);
  check_close("relu backward from the packed mask", dxm.to_vector(), to_double(dx), 0);
  Tensor gi = g.clone();
  relu_mask_backward(gi, gi, bits);
  check_close("packed-mask backward in place", gi.to_vector(), to_double(dx), 0);
  CHECK_THROWS_AS(relu_mask_backward(dxm, g, relu_mask_pack(randn_t({2, 3, 4, 6}, 12))), InternalError);

  Vec sum(xd.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = xd[i] + ad[i];
  add_forward(y, x, a);
  check_close("add", y.to_vector(), sum, 1e-7);
  add_forward(y, x, a, /*relu=*/true);
  check_close("add+relu", y.to_vector(), relu_ref(sum), 1e-7);
  Tensor acc = x.clone();
  add_inplace(acc, a);
  check_close("add_inplace", acc.to_vector(), sum, 1e-7);

  Tensor scale = randn_t({3}, 12), shift = randn_t({3}, 13);
  Vec sd = to_double(scale), hd = to_double(shift);
  auto aff = [&](const Vec& v) {
    Vec o(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const size_t c = (i / 20) % 3;
      o[i] = v[i] * sd[c] + hd[c];
    }
    return o;
  };
  channel_affine_forward(y, x, scale, shift);
  check_close("channel affine", y.to_vector(), aff(xd), 1e-6);
  channel_affine_backward(dx, g, scale);
  check_close("channel affine backward", dx.to_vector(), numeric_grad(aff, xd, gd), 1e-6);

  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  normalize_forward(y, x, mean, stdv);
  Vec nv(xd.size());
  for (size_t i = 0; i < nv.size(); ++i) {
    const size_t c = (i / 20) % 3;
    nv[i] = (xd[i] - mean[c]) / stdv[c];
  }
  check_close("normalize", y.to_vector(), nv, 1e-6);
}

TEST_CASE("max-pool forward (first maximum) and backward") {
  struct Case {
    const char* name;
    PoolParams p;
  };
  const Case cases[] = {{"3x3 s2 p1 (ResNet stem)", {2, 2, 9, 8, 3, 3, 2, 2, 1, 1}},
                        {"2x2 s2 (VGG)", {1, 3, 6, 7, 2, 2, 2, 2, 0, 0}}};
  for (const auto& cs : cases) {
    SUBCASE(cs.name) {
      const PoolParams p = cs.p;
      const int P = p.P(), Q = p.Q();
      auto ref = [&](const Vec& x) {
        Vec y(static_cast<size_t>(p.N) * p.C * P * Q);
        for (int nc = 0; nc < p.N * p.C; ++nc)
          for (int a = 0; a < P; ++a)
            for (int b = 0; b < Q; ++b) {
              double m = -std::numeric_limits<double>::infinity();
              for (int r = 0; r < p.R; ++r)
                for (int s = 0; s < p.S; ++s) {
                  const int h = a * p.stride_h - p.pad_h + r, w = b * p.stride_w - p.pad_w + s;
                  if (h >= 0 && h < p.H && w >= 0 && w < p.W) m = std::max(m, x[(static_cast<size_t>(nc) * p.H + h) * p.W + w]);
                }
              y[(static_cast<size_t>(nc) * P + a) * Q + b] = m;
            }
        return y;
      };
      Tensor x = randn_t({p.N, p.C, p.H, p.W}, 14), g = randn_t({p.N, p.C, P, Q}, 15);
      Tensor y = Tensor::empty({p.N, p.C, P, Q}), am = maxpool2d_argmax_for(y);
      maxpool2d_forward(y, am, x, p);
      check_close("maxpool forward", y.to_vector(), ref(to_double(x)), 0);
      Tensor dx = Tensor::empty(x.shape());
      maxpool2d_backward(dx, g, am, p);
      check_close("maxpool backward", dx.to_vector(), numeric_grad(ref, to_double(x), to_double(g), 1e-6), 1e-6);
    }
  }
  SUBCASE("ties go to the first element in row-major window order") {
    PoolParams p{1, 1, 2, 2, 2, 2, 2, 2, 0, 0};
    Tensor x = Tensor::from_vector({1, 3, 3, 2}, {1, 1, 2, 2});
    Tensor y = Tensor::empty({1, 1, 1, 1}), am = maxpool2d_argmax_for(y);
    maxpool2d_forward(y, am, x, p);
    CHECK(maxpool2d_argmax_at(am, 0) == 1);  // offset (0, 1) in the window
    // A NaN wins wherever it is (PyTorch propagates it), on the 2x2/2 path and the general one.
    Tensor xn = Tensor::from_vector({1, 3, NAN, 2}, {1, 1, 2, 2});
    maxpool2d_forward(y, am, xn, p);
    CHECK(std::isnan(y.data()[0]));
    CHECK(maxpool2d_argmax_at(am, 0) == 2);
    PoolParams p3{1, 1, 2, 2, 3, 3, 2, 2, 1, 1};
    maxpool2d_forward(y, am, xn, p3);
    CHECK(std::isnan(y.data()[0]));
    CHECK(maxpool2d_argmax_at(am, 0) == 7);  // (1, 1) in the 3x3 window that starts at (-1, -1)
    Tensor wrong = Tensor::empty({1, 1, 1, 1}, Device::CPU, DType::I32);
    CHECK_THROWS_AS(maxpool2d_forward(y, wrong, Tensor::from_vector({1, 3, 3, 2, 0, 0}, {1, 1, 2, 3}), PoolParams{1, 1, 2, 3, 2, 2, 2, 2, 0, 0}), InternalError);
  }
}

TEST_CASE("adaptive average pool (PyTorch bins) forward and backward") {
  struct Case {
    int H, W, P, Q;
  };
  for (Case c : {Case{10, 9, 7, 7}, Case{3, 2, 7, 7}, Case{14, 14, 7, 7}, Case{7, 7, 1, 1}}) {
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.P);
    auto ref = [&](const Vec& x) {
      Vec y(2 * 3 * c.P * c.Q);
      for (int nc = 0; nc < 6; ++nc)
        for (int a = 0; a < c.P; ++a)
          for (int b = 0; b < c.Q; ++b) {
            const int h0 = a * c.H / c.P, h1 = ((a + 1) * c.H + c.P - 1) / c.P;
            const int w0 = b * c.W / c.Q, w1 = ((b + 1) * c.W + c.Q - 1) / c.Q;
            double s = 0;
            for (int h = h0; h < h1; ++h)
              for (int w = w0; w < w1; ++w) s += x[(static_cast<size_t>(nc) * c.H + h) * c.W + w];
            y[(static_cast<size_t>(nc) * c.P + a) * c.Q + b] = s / ((h1 - h0) * (w1 - w0));
          }
      return y;
    };
    Tensor x = randn_t({2, 3, c.H, c.W}, 16), g = randn_t({2, 3, c.P, c.Q}, 17);
    Tensor y = Tensor::empty({2, 3, c.P, c.Q}), dx = Tensor::empty(x.shape());
    adaptive_avgpool2d_forward(y, x);
    check_close("avgpool forward", y.to_vector(), ref(to_double(x)), 1e-6);
    adaptive_avgpool2d_backward(dx, g);
    check_close("avgpool backward", dx.to_vector(), numeric_grad(ref, to_double(x), to_double(g)), 1e-6);
  }
}

TEST_CASE("softmax, log-softmax, cross-entropy") {
  const int N = 4, O = 6;
  Tensor x = randn_t({N, O}, 18, 3.f);
  Vec xd = to_double(x);
  Vec sm(N * O), lsm(N * O);
  for (int n = 0; n < N; ++n) {
    double m = -1e300, s = 0;
    for (int o = 0; o < O; ++o) m = std::max(m, xd[n * O + o]);
    for (int o = 0; o < O; ++o) s += std::exp(xd[n * O + o] - m);
    for (int o = 0; o < O; ++o) {
      lsm[n * O + o] = xd[n * O + o] - m - std::log(s);
      sm[n * O + o] = std::exp(lsm[n * O + o]);
    }
  }
  Tensor y = Tensor::empty({N, O});
  softmax_forward(y, x);
  check_close("softmax", y.to_vector(), sm, 1e-6);
  log_softmax_forward(y, x);
  check_close("log_softmax", y.to_vector(), lsm, 1e-6);

  Tensor labels = Tensor::empty({N}, Device::CPU, DType::I32);
  const int lab[N] = {0, 5, 2, 2};
  for (int n = 0; n < N; ++n) labels.data_i32()[n] = lab[n];
  auto ce = [&](const Vec& v) {
    double loss = 0;
    for (int n = 0; n < N; ++n) {
      double m = -1e300, s = 0;
      for (int o = 0; o < O; ++o) m = std::max(m, v[n * O + o]);
      for (int o = 0; o < O; ++o) s += std::exp(v[n * O + o] - m);
      loss -= v[n * O + lab[n]] - m - std::log(s);
    }
    return Vec{loss / N};
  };
  Tensor dl = Tensor::empty({N, O});
  const float loss = cross_entropy(dl, x, labels);
  CHECK(std::fabs(loss - ce(xd)[0]) <= 1e-6 * std::fabs(ce(xd)[0]));
  check_close("cross-entropy gradient", dl.to_vector(), numeric_grad(ce, xd, {1.0}), 1e-6);
  // The per-row form leaves the values on the tensor's device; their mean is the loss.
  Tensor rows = Tensor::empty({N}), dl2 = Tensor::empty({N, O});
  cross_entropy_rows(rows, dl2, x, labels);
  CHECK(mean_of(rows.to_vector()) == loss);
  CHECK(dl2.to_vector() == dl.to_vector());
  labels.data_i32()[1] = O;
  Tensor none;
  CHECK_THROWS_AS(cross_entropy(none, x, labels), InputError);
  CHECK_THROWS_AS(cross_entropy_rows(rows, none, x, labels), InputError);
  // The kernel body itself, as the GPU runs it on labels nobody could check: NaN loss, zero
  // gradient, nothing read outside the row.
  cpu::cross_entropy(rows.data(), dl2.data(), x.data(), labels.data_i32(), N, O, 1.f);
  CHECK(std::isnan(rows.to_vector()[1]));
  for (int o = 0; o < O; ++o) CHECK(dl2.to_vector()[O + o] == 0.f);
  CHECK(rows.to_vector()[0] > 0.f);
}

TEST_CASE("host tensors: PendingRead reads at once, to_async is a plain copy") {
  Tensor t = Tensor::from_vector({1, 2, 3}, {3});
  PendingRead r(t);
  t.fill_zero();  // the read took its copy when it was made
  CHECK(r.valid());
  CHECK(r.wait() == std::vector<float>{1, 2, 3});
  PendingRead moved = std::move(r);
  CHECK(moved.wait() == std::vector<float>{1, 2, 3});
  CHECK_THROWS_AS(PendingRead().wait(), InternalError);
  Tensor u = Tensor::from_vector({4, 5}, {2});
  Tensor c = u.to_async(Device::CPU);
  u.fill_zero();
  CHECK(c.to_vector() == std::vector<float>{4, 5});
}

TEST_CASE("argmax of rows: the first maximum, as top1 and torch.argmax") {
  Tensor x = Tensor::from_vector({1, 3, 3, 0, /**/ -2, -1, -5, -1, /**/ 7, 7, 7, 7}, {3, 4});
  Tensor idx = Tensor::empty({3});
  argmax_rows(idx, x);
  CHECK(idx.to_vector() == std::vector<float>{1.f, 1.f, 0.f});
  Tensor wrong = Tensor::empty({2});
  CHECK_THROWS_AS(argmax_rows(wrong, x), InternalError);
}

TEST_CASE("row gathers and scatters: out-of-range rows gather zeros and are skipped") {
  // The host checks reject them (device index tensors are not read back: ops.h).
  Tensor table = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor rows = Tensor::empty({3}, Device::CPU, DType::I32);
  rows.data_i32()[0] = 2, rows.data_i32()[1] = 0, rows.data_i32()[2] = 3;
  Tensor out = Tensor::empty({3, 2});
  CHECK_THROWS_AS(take_rows(out, table, rows), InternalError);
  cpu::gather_rows(out.data(), table.data(), rows.data_i32(), 3, 2, 3);
  CHECK(out.to_vector() == std::vector<float>{5, 6, 1, 2, 0, 0});
  rows.data_i32()[2] = -1;
  cpu::scatter_add_rows(table.data(), out.data(), rows.data_i32(), 3, 2, 3);
  CHECK(table.to_vector() == std::vector<float>{2, 4, 3, 4, 10, 12});
}

TEST_CASE("shape checks reject mismatched outputs") {
  Tensor x = randn_t({1, 2, 3, 3}, 19);
  Tensor y = Tensor::empty({1, 2, 3, 4});
  CHECK_THROWS_AS(relu_forward(y, x), InternalError);
}

}  // TEST_SUITE

TEST_CASE("convolution algorithm choice: the least workspace within 5% of the fastest, deterministic ones when asked") {
  const size_t MiB = 1 << 20;
  using C = AlgoCandidate;
  // The fastest needs 900 MiB; one 3% slower needs 10 MiB: that one.
  CHECK(choose_algo({C{true, 1.00f, 900 * MiB}, C{true, 1.03f, 10 * MiB}, C{true, 2.0f, 0}}, 1024 * MiB, 0.05) == 1);
  // 10% slower is not close enough, whatever it saves.
  CHECK(choose_algo({C{true, 1.00f, 900 * MiB}, C{true, 1.10f, 0}}, 1024 * MiB, 0.05) == 0);
  // Deterministic: the nondeterministic fastest does not count.
  CHECK(choose_algo({C{true, 1.00f, 0, false}, C{true, 1.2f, 0}}, 1024 * MiB, 0.05, true) == 1);
  CHECK(choose_algo({C{true, 1.00f, 0, false}, C{true, 1.2f, 0}}, 1024 * MiB, 0.05) == 0);
  CHECK(choose_algo({C{true, 1.00f, 0, false}}, 1024 * MiB, 0.05, true) == -1);
  // The untimed rule (a heuristic's list, taken in order): supported, fits, deterministic if asked.
  CHECK(usable(C{true, 0, 8 * MiB, false}, 1024 * MiB, false));
  CHECK(!usable(C{true, 0, 8 * MiB, false}, 1024 * MiB, true));
  CHECK(!usable(C{true, 0, 2048 * MiB}, 1024 * MiB, false));
  CHECK(!usable(C{false, 0, 0}, 1024 * MiB, false));
  // Failed runs and workspaces over the limit never count, even when fastest.
  CHECK(choose_algo({C{false, 0.1f, 0}, C{true, 0.5f, 2048 * MiB}, C{true, 1.0f, 64 * MiB}}, 1024 * MiB, 0.05) == 2);
  // Equal workspaces: the faster.
  CHECK(choose_algo({C{true, 1.04f, 0}, C{true, 1.00f, 0}}, MiB, 0.05) == 1);
  CHECK(choose_algo({C{false, 1.f, 0}, C{true, 1.f, 2 * MiB}}, MiB, 0.05) == -1);
  CHECK(choose_algo({}, MiB, 0.05) == -1);
}

TEST_CASE("range profiler: nested ranges summed per path, self times, first-seen order") {
  using lcam::cuda::TraceRange;
  auto busy = [](double ms) {  // host work of about `ms`
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  { TraceRange before("not timed"); }  // before start(): not recorded
  lcam::prof::start(Device::CPU);
  for (int it = 0; it < 3; ++it) {
    TraceRange step("step");
    {
      TraceRange a("a");
      busy(2);
    }
    {
      TraceRange b("b");
      TraceRange a("a");  // another path than step/a
      busy(1);
    }
    busy(1);
  }
  { TraceRange other("after the loop"); }
  std::thread([] { TraceRange t("on another thread"); }).join();  // not the profiled thread
  lcam::prof::stop();
  { TraceRange after("after stop"); }
  const std::vector<lcam::prof::Row> r = lcam::prof::rows();
  REQUIRE(r.size() == 5);
  CHECK(r[0].name == "step");
  CHECK(r[0].depth == 0);
  CHECK(r[1].name == "a");
  CHECK(r[1].depth == 1);
  CHECK(r[2].name == "b");
  CHECK(r[3].name == "a");
  CHECK(r[3].depth == 2);
  CHECK(r[4].name == "after the loop");
  for (int i = 0; i < 4; ++i) CHECK(r[i].calls == 3);
  CHECK(r[1].total_ms >= 3 * 2.0);
  CHECK(r[3].total_ms >= 3 * 1.0);
  CHECK(r[2].self_ms == doctest::Approx(r[2].total_ms - r[3].total_ms));
  CHECK(r[0].self_ms == doctest::Approx(r[0].total_ms - r[1].total_ms - r[2].total_ms));
  CHECK(r[0].self_ms >= 3 * 1.0);  // the step's own busy time
  CHECK(r[0].total_ms >= r[1].total_ms + r[2].total_ms);
  lcam::prof::start(Device::CPU);  // start() clears
  lcam::prof::stop();
  CHECK(lcam::prof::rows().empty());
}

TEST_CASE("CPU loops over planes give the shared bodies' values to the bit") {
  namespace cpu = lcam::cpu;
  namespace kern = lcam::kern;
  auto same = [](const Tensor& a, const std::vector<float>& b) {  // to the bit, NaNs included
    const std::vector<float> v = a.to_vector();
    return v.size() == b.size() && std::memcmp(v.data(), b.data(), sizeof(float) * v.size()) == 0;
  };
  SUBCASE("upsampling backward with tabulated weights, and the adaptive pool's backward window") {
    struct Shape {
      int NC, H, W, P, Q;
    };
    for (const Shape s : {Shape{3, 14, 14, 112, 112}, Shape{2, 7, 5, 224, 96}, Shape{2, 5, 6, 3, 4}, Shape{1, 1, 2, 4, 3},
                          Shape{2, 7, 7, 7, 7}, Shape{2, 13, 9, 7, 7}, Shape{1, 4, 3, 7, 7}}) {
      CAPTURE(s.H);
      CAPTURE(s.P);
      const Tensor dy = randn_t({s.NC, s.P, s.Q}, 5);
      Tensor dx = Tensor::empty({s.NC, s.H, s.W});
      cpu::upsample_bilinear_backward(dx.data(), dy.data(), s.NC, s.H, s.W, s.P, s.Q);
      std::vector<float> ref(static_cast<size_t>(dx.numel()));
      for (int64_t i = 0; i < dx.numel(); ++i) kern::upsample_bwd_at(ref.data(), dy.data(), s.H, s.W, s.P, s.Q, i);
      CHECK(same(dx, ref));
      // Adaptive average pool [H,W] -> [P,Q]: every bin tested against every pixel, in order.
      cpu::adaptive_avgpool2d_backward(dx.data(), dy.data(), s.NC, s.H, s.W, s.P, s.Q);
      for (int64_t i = 0; i < dx.numel(); ++i) {
        const int w = static_cast<int>(i % s.W), h = static_cast<int>((i / s.W) % s.H);
        const float* d = dy.data() + (i / (s.H * s.W)) * s.P * s.Q;
        float acc = 0.f;
        for (int a = 0; a < s.P; ++a)
          for (int b = 0; b < s.Q; ++b) {
            const int h0 = kern::bin_start(a, s.H, s.P), h1 = kern::bin_end(a, s.H, s.P);
            const int w0 = kern::bin_start(b, s.W, s.Q), w1 = kern::bin_end(b, s.W, s.Q);
            if (h >= h0 && h < h1 && w >= w0 && w < w1) acc += d[a * s.Q + b] / static_cast<float>((h1 - h0) * (w1 - w0));
          }
        ref[i] = acc;
      }
      CHECK(same(dx, ref));
    }
  }
  SUBCASE("packed ReLU masks: blocks of words, a partial word, NaN, -0 and in place") {
    const int64_t L = 3 * 256 * 32 + 2 * 32 + 7;  // three full blocks of words, a partial block and word
    Tensor y = randn_t({L}, 13);
    for (int64_t i = 0; i < L; i += 5) y.data()[i] = 0.f;
    for (int64_t i = 1; i < L; i += 37) y.data()[i] = NAN;
    for (int64_t i = 2; i < L; i += 41) y.data()[i] = -0.f;
    std::vector<uint32_t> bits(static_cast<size_t>((L + 31) / 32)), ref(bits.size());
    cpu::relu_mask_pack(bits.data(), y.data(), L);
    for (int64_t w = 0; w < static_cast<int64_t>(ref.size()); ++w) kern::relu_mask_pack_at(ref.data(), y.data(), L, w);
    CHECK(bits == ref);
    Tensor dy = randn_t({L}, 14), dx = Tensor::empty({L});
    dy.data()[3] = NAN;
    cpu::relu_mask_backward(dx.data(), dy.data(), bits.data(), L);
    std::vector<float> dref(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) kern::relu_mask_bwd_at(dref.data(), dy.data(), bits.data(), i);
    CHECK(same(dx, dref));
    cpu::relu_mask_backward(dy.data(), dy.data(), bits.data(), L);
    CHECK(same(dy, dref));
  }
  SUBCASE("max-pool: the forward's paths and the backward as a scatter, overlapping windows and ties included") {
    for (const lcam::PoolParams p : {lcam::PoolParams{2, 3, 17, 16, 3, 3, 2, 2, 1, 1}, lcam::PoolParams{2, 3, 16, 16, 2, 2, 2, 2, 0, 0},
                                     lcam::PoolParams{1, 2, 9, 11, 3, 3, 1, 1, 1, 1}, lcam::PoolParams{1, 2, 12, 13, 3, 3, 2, 3, 0, 0},
                                     lcam::PoolParams{1, 1, 3, 2, 3, 3, 1, 1, 0, 1}, lcam::PoolParams{1, 1, 1, 1, 3, 3, 2, 2, 1, 1}}) {
      CAPTURE(p.R);
      CAPTURE(p.stride_h);
      CAPTURE(p.H);
      Tensor x = randn_t({p.N, p.C, p.H, p.W}, 9);
      for (int64_t i = 0; i < x.numel(); i += 3) x.data()[i] = 0.f;  // ties, as after a ReLU
      for (int64_t i = 5; i < x.numel(); i += 23) x.data()[i] = NAN;  // a NaN wins its windows
      for (int64_t i = 7; i < x.numel(); i += 61) x.data()[i] = -INFINITY;
      Tensor y = Tensor::empty({p.N, p.C, p.P(), p.Q()}), dx = Tensor::empty(x.shape());
      std::vector<uint8_t> am(static_cast<size_t>(y.numel()));
      cpu::maxpool2d_forward(y.data(), am.data(), x.data(), p);
      {  // the forward's 2x2/2 path against the body
        std::vector<float> yr(static_cast<size_t>(y.numel()));
        std::vector<uint8_t> ar(am.size());
        for (int64_t i = 0; i < y.numel(); ++i) kern::maxpool_fwd_at(yr.data(), ar.data(), x.data(), p, i);
        CHECK(same(y, yr));
        CHECK(am == ar);
      }
      const Tensor dy = randn_t(y.shape(), 10);
      cpu::maxpool2d_backward(dx.data(), dy.data(), am.data(), p);
      std::vector<float> ref(static_cast<size_t>(dx.numel()));
      for (int64_t i = 0; i < dx.numel(); ++i) kern::maxpool_bwd_at(ref.data(), dy.data(), am.data(), p, i);
      CHECK(same(dx, ref));
    }
    // Global average pooling's backward (ResNet-50's 7x7 -> 1x1).
    const Tensor dy = randn_t({6, 1, 1}, 11);
    Tensor dx = Tensor::empty({6, 7, 5});
    cpu::adaptive_avgpool2d_backward(dx.data(), dy.data(), 6, 7, 5, 1, 1);
    std::vector<float> ref(static_cast<size_t>(dx.numel()));
    for (int64_t i = 0; i < dx.numel(); ++i) kern::adaptive_avgpool_bwd_at(ref.data(), dy.data(), 7, 5, 1, 1, i);
    CHECK(same(dx, ref));
  }
  SUBCASE("normalize, channel scale backward, mask product and its mask gradient") {
    const int N = 3, C = 3;
    const int64_t L = 37 * 41;
    const Tensor x = randn_t({N, C, L}, 6), m = randn_t({N, 1, L}, 7), s = randn_t({C}, 8);
    Tensor y = Tensor::empty({N, C, L}), dm = Tensor::empty({N, 1, L});
    std::vector<float> ref(static_cast<size_t>(N * C * L));
    cpu::normalize_forward(y.data(), x.data(), N, L, 0.4f, 0.5f, 0.6f, 0.2f, 0.3f, 0.25f);
    for (int64_t i = 0; i < y.numel(); ++i) kern::normalize_at(ref.data(), x.data(), L, 0.4f, 0.5f, 0.6f, 0.2f, 0.3f, 0.25f, i);
    CHECK(same(y, ref));
    cpu::channel_affine_backward(y.data(), x.data(), s.data(), N, C, L);
    for (int64_t i = 0; i < y.numel(); ++i) kern::channel_affine_bwd_at(ref.data(), x.data(), s.data(), C, L, i);
    CHECK(same(y, ref));
    for (bool shared : {false, true}) {
      cpu::mask_mul_forward(y.data(), x.data(), m.data(), N, C, L, shared);
      for (int64_t i = 0; i < y.numel(); ++i) kern::mask_mul_at(ref.data(), x.data(), m.data(), C, L, shared, i);
      CHECK(same(y, ref));
    }
    cpu::mask_mul_backward_mask(dm.data(), y.data(), x.data(), N, C, L);
    std::vector<float> ref_m(static_cast<size_t>(N * L));
    for (int64_t i = 0; i < dm.numel(); ++i) kern::mask_mul_bwd_mask_at(ref_m.data(), y.data(), x.data(), C, L, i);
    CHECK(same(dm, ref_m));
  }
}

TEST_CASE("Winograd F(2x2, 3x3) and F(4x4, 3x3): forward and data gradient against naive loops") {
  const auto restore = lcam::test::on_exit([] {
    lcam::cpu::set_winograd(true);
    lcam::cpu::set_winograd_tile(0);
  });
  // Measured: F(2x2) 5-7e-7 of the largest value, F(4x4) up to 5.4e-6 (its transforms' factors
  // up to 8 and G's thirds and fifteenths), against 3e-7 for im2col + GEMM.
  // 256 channels in and out (and 144 -> 128); odd output widths (a half tile at the edge); pads 0, 1, 2; two
  // images (tiles of both in one chunk); bias, residual and ReLU in the output transform; three
  // images of 195 tiles, more than one F(2x2) chunk (512 tiles at 512 channels) holds, so that a
  // chunk ends inside an image and inside a tile row; for F(4x4) (896 tiles a chunk at 128
  // channels) four images of 225 tiles, the chunk ending in the fourth image's last tile row.
  for (const ConvParams p : {ConvParams{2, 256, 16, 17, 256, 3, 3, 1, 1, 1, 1}, ConvParams{1, 256, 18, 19, 256, 3, 3, 1, 1, 0, 0},
                             ConvParams{1, 256, 16, 17, 288, 3, 3, 1, 1, 2, 2}, ConvParams{3, 256, 26, 29, 256, 3, 3, 1, 1, 1, 1},
                             ConvParams{1, 144, 12, 13, 128, 3, 3, 1, 1, 1, 1}, ConvParams{4, 128, 60, 57, 128, 3, 3, 1, 1, 1, 1},
                             ConvParams{2, 64, 14, 15, 128, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.pad_h);
    CAPTURE(p.N);
    const bool c64 = p.C == 64;  // 64 input channels: F(4x4) only, and not the data gradient's 64 outputs
    if (!c64) {
      CHECK(lcam::cpu::uses_winograd(p));
      // The data gradient's transposed convolution (K and C swapped, pad 2 - pad, enough
      // pixels) takes it too.
      CHECK(lcam::cpu::uses_winograd(ConvParams{p.N, p.K, p.P(), p.Q(), p.C, 3, 3, 1, 1, 2 - p.pad_h, 2 - p.pad_w}));
    }
    const bool big = p.N == 4;  // the F(4x4) chunk shape: its forward only (the naive loops are slow)
    const Tensor x = randn_t({p.N, p.C, p.H, p.W}, 41), w = randn_t({p.K, p.C, 3, 3}, 42, 0.05f), b = randn_t({p.K}, 43);
    const Tensor z = randn_t({p.N, p.K, p.P(), p.Q()}, 44), dy = randn_t({p.N, p.K, p.P(), p.Q()}, 45);
    const Vec xd = to_double(x), wd = to_double(w), conv = conv_ref(xd, wd, to_double(b), p), zd = to_double(z);
    Vec want(conv.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = std::max(conv[i] + zd[i], 0.0);
    const Vec conv0 = big ? Vec() : conv_ref(xd, wd, {}, p);
    const Vec dx_want = big ? Vec() : conv_dx_ref(to_double(dy), wd, p);
    for (const int tile : {2, 4}) {
      CAPTURE(tile);
      lcam::cpu::set_winograd_tile(tile);
      CHECK(lcam::cpu::winograd_tile_of(p) == (c64 && tile == 2 ? 0 : tile));
      if (c64 && tile == 2) continue;
      const double tol = tile == 2 ? 2e-6 : 1e-5;
      Tensor y = Tensor::empty(z.shape());
      conv2d_forward_add(y, x, w, b, z, p, true);
      check_close("Winograd conv + residual + relu", y.to_vector(), want, tol);
      if (big) continue;
      Tensor y0 = Tensor::empty(z.shape());
      conv2d_forward(y0, x, w, Tensor(), p);
      check_close("Winograd conv without bias", y0.to_vector(), conv0, tol);
      Tensor dx = Tensor::empty(x.shape());
      conv2d_backward_data(dx, dy, w, p);
      check_close("Winograd conv dx", dx.to_vector(), dx_want, tol);
    }
    lcam::cpu::set_winograd_tile(0);
    if (big) continue;
    // Switched off, the same shapes take im2col + GEMM: results within float32 rounding.
    lcam::cpu::set_winograd(false);
    CHECK_FALSE(lcam::cpu::uses_winograd(p));
    Tensor yg = Tensor::empty(z.shape()), dxg = Tensor::empty(x.shape());
    conv2d_forward_add(yg, x, w, b, z, p, true);
    conv2d_backward_data(dxg, dy, w, p);
    check_close("im2col conv + residual + relu", yg.to_vector(), want, 2e-6);
    check_close("im2col conv dx", dxg.to_vector(), dx_want, 2e-6);
    lcam::cpu::set_winograd(true);
  }
  // Too few channels or pixels (tiles), or strided: not taken.
  CHECK_FALSE(lcam::cpu::uses_winograd(ConvParams{1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1}));
  CHECK_FALSE(lcam::cpu::uses_winograd(ConvParams{1, 128, 56, 56, 64, 3, 3, 1, 1, 1, 1}));
  CHECK_FALSE(lcam::cpu::uses_winograd(ConvParams{1, 512, 14, 14, 512, 3, 3, 1, 1, 1, 1}));  // 49 tiles
  CHECK_FALSE(lcam::cpu::uses_winograd(ConvParams{2, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1}));    // 32 tiles
  CHECK_FALSE(lcam::cpu::uses_winograd(ConvParams{1, 256, 56, 56, 256, 3, 3, 2, 2, 1, 1}));
  CHECK(lcam::cpu::uses_winograd(ConvParams{1, 128, 56, 56, 128, 3, 3, 1, 1, 1, 1}));
  CHECK(lcam::cpu::uses_winograd(ConvParams{1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1}));  // ResNet-50's layer2
  CHECK(lcam::cpu::uses_winograd(ConvParams{1, 512, 28, 28, 512, 3, 3, 1, 1, 1, 1}));
  CHECK(lcam::cpu::uses_winograd(ConvParams{2, 512, 14, 14, 512, 3, 3, 1, 1, 1, 1}));  // 98 tiles
  CHECK(lcam::cpu::uses_winograd(ConvParams{4, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1}));    // 64 tiles
  CHECK(lcam::cpu::uses_winograd(ConvParams{8, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1}));
  // F(4x4) from 128 tiles of 4x4 where they waste little: VGG-16's 56x56 layers at batch 1,
  // 28x28 ones from batch 3; never 14x14 (16x16 under 4x4 tiles); not taken without Winograd.
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{1, 256, 56, 56, 256, 3, 3, 1, 1, 1, 1}) == 4);
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{1, 128, 112, 112, 128, 3, 3, 1, 1, 1, 1}) == 4);
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{2, 512, 28, 28, 512, 3, 3, 1, 1, 1, 1}) == 2);  // 98 tiles
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{3, 512, 28, 28, 512, 3, 3, 1, 1, 1, 1}) == 4);  // 147 tiles
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{64, 512, 14, 14, 512, 3, 3, 1, 1, 1, 1}) == 2);
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{64, 512, 30, 30, 512, 3, 3, 1, 1, 1, 1}) == 2);  // 8x8 tiles cover 32x32
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{64, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1}) == 0);
  // 64 input channels with F(4x4) only: VGG-16's features.5 at 112x112, not at 28x28 and batch 1.
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{1, 64, 112, 112, 128, 3, 3, 1, 1, 1, 1}) == 4);
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{1, 64, 28, 28, 128, 3, 3, 1, 1, 1, 1}) == 0);
  CHECK(lcam::cpu::winograd_tile_of(ConvParams{1, 32, 112, 112, 128, 3, 3, 1, 1, 1, 1}) == 0);
}

TEST_CASE("direct convolution over many images and wide rows against naive loops") {
  // Each thread walks its output rows keeping R input rows per channel: rows taken over from
  // the previous output row, a new image (its rows must not be taken over), the rows above and
  // below the image, a one-row window, padding wider than the window's half; rows wide enough
  // for several blocks of 32 columns and a tail; 64 channels from 64 (direct with the AVX-512
  // rows only). Forward and data gradient (the transposed convolution runs the same kernel when
  // the input has 8 to 32 channels, or 64 or 3 (an image's gradient) with the AVX-512 rows; 3
  // outputs go the same way in the forward pass).
  for (const ConvParams p : {ConvParams{3, 8, 9, 75, 16, 3, 3, 1, 1, 1, 1}, ConvParams{4, 3, 6, 40, 8, 5, 5, 1, 1, 2, 2},
                             ConvParams{3, 8, 5, 33, 8, 1, 3, 1, 1, 0, 1}, ConvParams{5, 16, 4, 20, 8, 3, 3, 1, 1, 0, 0},
                             ConvParams{2, 8, 6, 18, 24, 3, 3, 1, 1, 2, 2}, ConvParams{2, 64, 5, 20, 64, 3, 3, 1, 1, 1, 1},
                             ConvParams{3, 3, 7, 150, 8, 3, 3, 1, 1, 1, 1}, ConvParams{2, 8, 5, 70, 3, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.W);
    CAPTURE(p.R);
    if (!lcam::cpu::uses_direct(p)) MESSAGE("direct convolution: not taken on this CPU (no AVX2/FMA), the GEMM path is checked");
    const Tensor x = randn_t({p.N, p.C, p.H, p.W}, 31), w = randn_t({p.K, p.C, p.R, p.S}, 32, 0.3f), b = randn_t({p.K}, 33);
    const Vec xd = to_double(x), wd = to_double(w);
    Tensor y = Tensor::empty({p.N, p.K, p.P(), p.Q()});
    conv2d_forward(y, x, w, b, p, /*relu=*/false);
    check_close("direct conv forward", y.to_vector(), conv_ref(xd, wd, to_double(b), p), 1e-5);
    const Tensor dy = randn_t({p.N, p.K, p.P(), p.Q()}, 34);
    const Vec want = conv_dx_ref(to_double(dy), wd, p);
    Tensor dx = Tensor::empty(x.shape());
    conv2d_backward_data(dx, dy, w, p);
    check_close("direct conv dx", dx.to_vector(), want, 1e-5);
  }
}

TEST_CASE("data gradient through a fused ReLU: the mask's bits, then the data gradient, to the bit") {
  // The direct kernel masks dy's rows as it copies them: rows whose first element sits anywhere
  // in a 32-bit word of the mask (widths 75, 37, 20), padding (the copy starts past column 0),
  // masked-out NaNs (must become 0), several images; then a layer the direct kernel does not run
  // (128 channels: mask, then the GEMM path).
  for (const ConvParams p : {ConvParams{3, 8, 9, 75, 16, 3, 3, 1, 1, 1, 1}, ConvParams{2, 16, 7, 37, 8, 3, 3, 1, 1, 1, 1},
                             ConvParams{2, 64, 5, 20, 64, 3, 3, 1, 1, 1, 1}, ConvParams{2, 3, 6, 29, 8, 3, 3, 1, 1, 1, 1},
                             ConvParams{2, 8, 5, 33, 8, 5, 5, 1, 1, 2, 2}, ConvParams{1, 128, 4, 6, 128, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.C);
    CAPTURE(p.W);
    const std::vector<int64_t> ys{p.N, p.K, p.P(), p.Q()};
    const Tensor w = randn_t({p.K, p.C, p.R, p.S}, 51, 0.3f), bits = relu_mask_pack(randn_t(ys, 52));
    std::vector<float> dyv = randn_t(ys, 53).to_vector();
    const std::vector<float> yv = randn_t(ys, 52).to_vector();
    for (size_t i = 0; i < dyv.size(); i += 7)
      if (!(yv[i] > 0.f)) dyv[i] = std::numeric_limits<float>::quiet_NaN();  // masked out
    const Tensor dy = Tensor::from_vector(dyv, ys);
    Tensor g = Tensor::empty(ys), want = Tensor::empty({p.N, p.C, p.H, p.W}), got = Tensor::empty(want.shape());
    relu_mask_backward(g, dy, bits);
    conv2d_backward_data(want, g, w, p);
    conv2d_backward_data_relu(got, dy, bits, w, p);
    if (p.C == 128) CHECK_FALSE(lcam::cpu::fuses_relu_data(p));
    else if (!lcam::cpu::uses_direct(ConvParams{p.N, p.K, p.P(), p.Q(), p.C, p.R, p.S, 1, 1, p.R - 1 - p.pad_h, p.S - 1 - p.pad_w}))
      MESSAGE("fused ReLU mask: the direct kernel does not run here (no AVX2/FMA, or 64/3 channels without AVX-512)");
    else CHECK(lcam::cpu::fuses_relu_data(p));
    const std::vector<float> a = want.to_vector(), b = got.to_vector();
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(std::all_of(b.begin(), b.end(), [](float v) { return std::isfinite(v); }));
  }
}

TEST_CASE("convolution, ReLU and 2x2 max-pool in one pass: the two ops' bits") {
  // The direct kernel pools each pair of output rows in a buffer: odd output sizes (the pool
  // drops the last row and column), widths of several blocks, 64 and 3 -> 8 channels, a NaN in
  // the input, and a layer the direct kernel does not run (128 channels: the two ops).
  for (const ConvParams p : {ConvParams{3, 8, 9, 75, 16, 3, 3, 1, 1, 1, 1}, ConvParams{2, 3, 10, 37, 8, 3, 3, 1, 1, 1, 1},
                             ConvParams{2, 64, 6, 20, 64, 3, 3, 1, 1, 1, 1}, ConvParams{2, 8, 7, 33, 8, 5, 5, 1, 1, 2, 2},
                             ConvParams{1, 128, 4, 6, 128, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.C);
    CAPTURE(p.W);
    std::vector<float> xv = randn_t({p.N, p.C, p.H, p.W}, 61).to_vector();
    xv[xv.size() / 3] = std::numeric_limits<float>::quiet_NaN();
    const Tensor x = Tensor::from_vector(xv, {p.N, p.C, p.H, p.W});
    const Tensor w = randn_t({p.K, p.C, p.R, p.S}, 62, 0.3f), b = randn_t({p.K}, 63);
    Tensor c = Tensor::empty({p.N, p.K, p.P(), p.Q()}), none;
    Tensor want = Tensor::empty({p.N, p.K, p.P() / 2, p.Q() / 2}), got = Tensor::empty(want.shape());
    conv2d_forward(c, x, w, b, p, /*relu=*/true);
    maxpool2d_forward(want, none, c, PoolParams{p.N, p.K, p.P(), p.Q(), 2, 2, 2, 2, 0, 0});
    conv2d_relu_maxpool2_forward(got, x, w, b, p);
    CHECK(lcam::cpu::fuses_conv_pool(p) == lcam::cpu::uses_direct(p));
    const std::vector<float> a = want.to_vector(), g = got.to_vector();
    CHECK(std::memcmp(a.data(), g.data(), a.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("direct convolution: the AVX-512 rows give the AVX2 rows' bits") {
  if (!lcam::cpu::direct_avx512()) {
    MESSAGE("direct convolution AVX-512: skipped (this CPU has no AVX-512F)");
    return;
  }
  const auto restore = lcam::test::on_exit([] { lcam::cpu::set_direct_avx512(true); });
  // First layers (3 inputs), 8-32 channels, widths that are not multiples of 16 (masked tails),
  // one of several blocks of 32 columns.
  for (const ConvParams p : {ConvParams{2, 3, 37, 37, 8, 3, 3, 1, 1, 1, 1}, ConvParams{2, 16, 23, 29, 32, 3, 3, 1, 1, 1, 1},
                             ConvParams{1, 8, 17, 40, 16, 3, 3, 1, 1, 1, 1}, ConvParams{2, 8, 12, 19, 8, 5, 5, 1, 1, 2, 2},
                             ConvParams{2, 8, 7, 75, 16, 3, 3, 1, 1, 1, 1}}) {
    CAPTURE(p.C);
    CAPTURE(p.W);
    const Tensor x = randn_t({p.N, p.C, p.H, p.W}, 21), w = randn_t({p.K, p.C, p.R, p.S}, 22), b = randn_t({p.K}, 23);
    const Tensor dy = randn_t({p.N, p.K, p.P(), p.Q()}, 24);
    std::vector<float> got[2][2];
    for (int wide = 0; wide < 2; ++wide) {
      lcam::cpu::set_direct_avx512(wide == 1);
      CHECK(lcam::cpu::direct_avx512() == (wide == 1));
      Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape());
      conv2d_forward(y, x, w, b, p, true);
      conv2d_backward_data(dx, dy, w, p);
      got[wide][0] = y.to_vector();
      got[wide][1] = dx.to_vector();
    }
    CHECK(got[0][0] == got[1][0]);
    if (p.C % 8 == 0) CHECK(got[0][1] == got[1][1]);  // a 3-channel gradient is direct with AVX-512 only
  }
}
