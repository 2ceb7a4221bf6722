// image.cpp — image files to RGB (JPEG by content to jpeg_decode.cpp, the rest to stb_image) with
// one-line errors, Pillow's antialiased bilinear resampling re-derived for 8-bit RGB (portable
// loops plus AVX2 kernels chosen at run time, bit-identical), and the torchvision eval transforms
// (Resize, CenterCrop, ToTensor), including a fused eval transform that decodes and resamples only
// what the centre crop keeps.
// Deliberately omits: Pillow's other filters and box (region) argument, the `reducing_gap`
// shortcut (torchvision does not use it), modes other than RGB, and any threading: callers decode
// different images on different threads (stb_image keeps its failure reason thread-local).

#include "loaders/image.h"  // the declarations implemented here

#include <stb_image_write.h>  // stbi_write_png_to_func

#include <algorithm>     // std::min, std::max, std::copy_n, std::fill
#include <atomic>        // std::atomic switches: the SIMD kernels, the Pillow version
#include <cerrno>        // errno after a failed open
#include <chrono>        // std::chrono::steady_clock (EvalTimings)
#include <cmath>         // std::ceil
#include <cstdio>        // std::rename, std::remove
#include <cstring>       // std::memcpy
#include <filesystem>    // std::filesystem::status, is_directory
#include <fstream>       // std::ifstream, std::ofstream
#include <system_error>  // std::error_code, std::generic_category
#include <thread>        // std::thread::hardware_concurrency (SharedCores)

#include "engine/common.h"  // InputError, LCAM_REQUIRE

#if defined(__x86_64__) && defined(__GNUC__)
#define LCAM_IMAGE_X86 1
#include <immintrin.h>  // AVX2 intrinsics for the resampling kernels (run-time dispatch)
#else
#define LCAM_IMAGE_X86 0
#endif

namespace lcam {

void fail_decode(const std::string& name, const std::string& reason) { throw InputError(name + ": " + reason); }

namespace {

// ---- Pillow's resampling (src/libImaging/Resample.c), bilinear filter, 8 bits per channel ----

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Pillow's scale and filter support for resampling in_size samples to out_size over the whole
// input (Pillow's box from 0 to in_size; both are floats there, exact for any realistic size).
struct Support {
  double scale, filterscale, support;
};
Support support_of(int in_size, int out_size) {
  Support s;
  s.scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  s.filterscale = s.scale < 1.0 ? 1.0 : s.scale;
  s.support = 1.0 * s.filterscale;  // bilinear: support 1
  return s;
}

// First input index and tap count of output position xx (C casts truncate toward zero; a
// negative xmin is clamped to 0 anyway).
inline void taps_of(const Support& s, int in_size, int xx, int* first, int* count) {
  const double center = (xx + 0.5) * s.scale;  // Pillow adds the box origin, 0 here
  int xmin = static_cast<int>(center - s.support + 0.5);
  if (xmin < 0) xmin = 0;
  int xmax = static_cast<int>(center + s.support + 0.5);
  if (xmax > in_size) xmax = in_size;
  *first = xmin;
  *count = xmax - xmin;
}

// The input samples [*i0, *i1) that output positions [o0, o1) read (first and last taps grow
// with the position). Without a pass (same size) output position = input position.
void tap_range(int in_size, int out_size, int o0, int o1, int* i0, int* i1) {
  if (in_size == out_size) {
    *i0 = o0;
    *i1 = o1;
    return;
  }
  const Support s = support_of(in_size, out_size);
  int f = 0, n = 0;
  taps_of(s, in_size, o0, &f, &n);
  *i0 = f;
  taps_of(s, in_size, o1 - 1, &f, &n);
  *i1 = f + n;
}

// Per output position o0 + i: the first input index, the number of taps, and `ksize` fixed-point
// weights (unused tail zero). `at` holds, per output and tap, the input index the tap reads: the
// unused tail repeats the first index, so that every output can run exactly ksize taps (a zero
// weight adds exactly nothing in integer arithmetic).
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count, at;
  std::vector<int32_t> k;
};

// Weights of output positions [o0, o0 + n) when resampling in_size samples to out_size.
Coeffs precompute_coeffs(int in_size, int out_size, int o0, int n) {
  const Support s = support_of(in_size, out_size);
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(s.support)) * 2 + 1;
  c.first.resize(n);
  c.count.resize(n);
  c.k.assign(static_cast<size_t>(n) * c.ksize, 0);
  c.at.resize(static_cast<size_t>(n) * c.ksize);
  std::vector<double> w(c.ksize);
  const double ss = 1.0 / s.filterscale;
  for (int i = 0; i < n; ++i) {
    const int xx = o0 + i;
    const double center = (xx + 0.5) * s.scale;
    int xmin = 0, xmax = 0;
    taps_of(s, in_size, xx, &xmin, &xmax);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      // Pillow computes the weights in double precision without fused multiply-adds. The volatile
      // forces the product to be rounded before the filter's 1 - |t|: a compiler allowed to
      // contract across statements (GCC in GNU mode with FMA available) could otherwise fuse them
      // and change the last bit of a weight, and after fixed-point rounding an occasional pixel.
      volatile double t = (x + xmin - center + 0.5) * ss;
      double v = bilinear_filter(t);
      w[x] = v;
      ww += v;
    }
    int32_t* k = &c.k[static_cast<size_t>(i) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      double scaled = v * (1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.first[i] = xmin;
    c.count[i] = xmax;
    for (int x = 0; x < c.ksize; ++x) c.at[static_cast<size_t>(i) * c.ksize + x] = xmin + (x < xmax ? x : 0);
  }
  return c;
}

inline uint8_t clip8(int32_t ss) {
  int32_t v = ss >> kPrecisionBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// A read-only rectangle of a larger RGB image: full-image columns [x0, x0 + w) and rows
// [y0, y0 + h); px points at pixel (x0, y0), rows are `stride` bytes apart.
struct View {
  const uint8_t* px;
  size_t stride;
  int x0, y0, w, h;
  const uint8_t* row(int y) const { return px + static_cast<size_t>(y - y0) * stride; }
};

View view_of(const ImageU8& img, int x0 = 0, int y0 = 0) {
  return View{img.rgb.data(), static_cast<size_t>(img.width) * 3, x0, y0, img.width, img.height};
}

// ---- The two passes. The sums are exact integer arithmetic (non-negative terms, total below
// 2^31), so any order of the additions gives Pillow's result; the AVX2 kernels below (chosen at run
// time when the CPU has AVX2) are therefore bit-identical to the portable loops. ----

// One row of the horizontal pass, outputs [i0, i1): dst[i] = sum over the taps of
// src[at[i, t] - x0] * k[i, t], per channel, where src is the row from full column x0 on (KS
// known at compile time for the usual kernel sizes, so the taps unroll).
template <int KS>
void horizontal_row(const uint8_t* src, int x0, uint8_t* dst, int i0, int i1, const Coeffs& c) {
  const int ks = KS > 0 ? KS : c.ksize;
  for (int i = i0; i < i1; ++i) {
    const int* at = &c.at[static_cast<size_t>(i) * ks];
    const int32_t* k = &c.k[static_cast<size_t>(i) * ks];
    int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
    for (int t = 0; t < ks; ++t) {
      const uint8_t* p = src + 3 * (at[t] - x0);
      s0 += p[0] * k[t];
      s1 += p[1] * k[t];
      s2 += p[2] * k[t];
    }
    dst[3 * i + 0] = clip8(s0);
    dst[3 * i + 1] = clip8(s1);
    dst[3 * i + 2] = clip8(s2);
  }
}

void horizontal_row_any(const uint8_t* src, int x0, uint8_t* dst, int i0, int i1,
                        const Coeffs& c) {
  switch (c.ksize) {
    case 3: horizontal_row<3>(src, x0, dst, i0, i1, c); break;
    case 5: horizontal_row<5>(src, x0, dst, i0, i1, c); break;
    case 7: horizontal_row<7>(src, x0, dst, i0, i1, c); break;
    default: horizontal_row<0>(src, x0, dst, i0, i1, c); break;
  }
}

// One row of the vertical pass over n samples: dst[j] = sum over the taps of rows[t][j] * k[t].
// The taps run inside the sample loop, so the compiler vectorizes over j with the sums in
// registers.
template <int KS>
inline __attribute__((always_inline)) void vertical_row(const uint8_t* const* rows,
                                                        const int32_t* k,
                                                        uint8_t* __restrict dst, size_t n,
                                                        int ks_runtime) {
  if constexpr (KS > 0) {
    const uint8_t* r[KS];
    int32_t w[KS];
    for (int t = 0; t < KS; ++t) {
      r[t] = rows[t];
      w[t] = k[t];
    }
    for (size_t j = 0; j < n; ++j) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < KS; ++t) s += r[t][j] * w[t];
      dst[j] = clip8(s);
    }
  } else {
    for (size_t j = 0; j < n; ++j) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < ks_runtime; ++t) s += rows[t][j] * k[t];
      dst[j] = clip8(s);
    }
  }
}

// The same source compiled twice: for the baseline instruction set and, on x86-64, for AVX2
// (the compiler vectorizes the 32-bit multiply-adds eight samples at a time).
#define LCAM_VERTICAL_ROW_ANY(NAME, ATTR)                                                        \
  ATTR void NAME(const uint8_t* const* rows, const int32_t* k, uint8_t* dst, size_t n, int ks) { \
    switch (ks) {                                                                                \
      case 3: vertical_row<3>(rows, k, dst, n, 3); break;                                        \
      case 5: vertical_row<5>(rows, k, dst, n, 5); break;                                        \
      case 7: vertical_row<7>(rows, k, dst, n, 7); break;                                        \
      default: vertical_row<0>(rows, k, dst, n, ks); break;                                      \
    }                                                                                            \
  }
LCAM_VERTICAL_ROW_ANY(vertical_row_any, )

#if LCAM_IMAGE_X86
LCAM_VERTICAL_ROW_ANY(vertical_row_avx2, __attribute__((target("avx2"))))

std::atomic<bool> g_simd_allowed{true};

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes && g_simd_allowed.load(std::memory_order_relaxed);
}

// Horizontal pass over rows [y0, y1) with AVX2: per output pixel, two taps per step: the 6 bytes
// of two neighbouring pixels are spread over eight 32-bit lanes [R G B 0 R' G' B' 0], multiplied
// by that output's weights in the same layout (zero in lanes 3 and 7 and for taps past its count,
// so whatever those lanes read contributes nothing) and summed; the two halves are then added.
// Loads read up to 6 * NP + 2 bytes from the first tap, so an output whose read would pass `end`
// (the end of the image buffer) takes the portable loop instead. NP = ceil(ksize / 2), or 0 for
// "any" (then np at run time).
template <int NP>
__attribute__((target("avx2"))) void horizontal_rows_avx2(const View& in, const Coeffs& c,
                                                          int y0, int y1, ImageU8& out,
                                                          const uint8_t* end) {
  const int ks = c.ksize, np = NP > 0 ? NP : (ks + 1) / 2, ow = out.width;
  std::vector<int32_t> kv(static_cast<size_t>(ow) * np * 8, 0);
  for (int i = 0; i < ow; ++i)
    for (int t = 0; t < ks; ++t) {
      const int32_t w = c.k[static_cast<size_t>(i) * ks + t];
      int32_t* lanes = &kv[(static_cast<size_t>(i) * np + t / 2) * 8 + (t % 2) * 4];
      lanes[0] = lanes[1] = lanes[2] = w;
    }
  const __m128i spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  const size_t reach = static_cast<size_t>(6 * np + 2);
  for (int y = y0; y < y1; ++y) {
    const uint8_t* src = in.row(y);  // full column in.x0
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(y - y0) * ow * 3;
    for (int i = 0; i < ow; ++i) {
      const uint8_t* p = src + static_cast<size_t>(c.first[i] - in.x0) * 3;
      if (static_cast<size_t>(end - p) < reach) {
        horizontal_row_any(src, in.x0, dst, i, i + 1, c);
        continue;
      }
      const int32_t* w = &kv[static_cast<size_t>(i) * np * 8];
      __m256i acc = _mm256_setzero_si256();
      for (int j = 0; j < np; ++j) {
        __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 6 * j));
        __m256i v = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(b, spread));
        __m256i kj = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 8 * j));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, kj));
      }
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
      s = _mm_srai_epi32(_mm_add_epi32(s, half), kPrecisionBits);
      s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);  // clip8: saturate to int16, then to uint8
      const uint32_t rgb = static_cast<uint32_t>(_mm_cvtsi128_si32(s));
      std::memcpy(dst + 3 * i, &rgb, 3);  // little-endian: R, G, B are the low three bytes
    }
  }
}

void horizontal_rows_avx2_any(const View& in, const Coeffs& c, int y0, int y1, ImageU8& out,
                              const uint8_t* end) {
  switch ((c.ksize + 1) / 2) {
    case 2: horizontal_rows_avx2<2>(in, c, y0, y1, out, end); break;
    case 3: horizontal_rows_avx2<3>(in, c, y0, y1, out, end); break;
    case 4: horizontal_rows_avx2<4>(in, c, y0, y1, out, end); break;
    default: horizontal_rows_avx2<0>(in, c, y0, y1, out, end); break;
  }
}
#endif

// Horizontal pass: full-image rows [y0, y1) resampled from full_w to out_w columns, output
// columns [ox0, ox0 + ow) only. Result: ow x (y1 - y0).
void pass_horizontal(const View& in, int full_w, int out_w, int ox0, int ow, int y0, int y1,
                     ImageU8& out) {
  const Coeffs c = precompute_coeffs(full_w, out_w, ox0, ow);
  LCAM_REQUIRE(y0 >= in.y0 && y1 <= in.y0 + in.h && c.first[0] >= in.x0 &&
                   c.first[ow - 1] + c.count[ow - 1] <= in.x0 + in.w,
               "resize: the input window does not cover the taps of the output window");
  out.width = ow;
  out.height = y1 - y0;
  out.rgb.resize(static_cast<size_t>(ow) * out.height * 3);
#if LCAM_IMAGE_X86
  if (have_avx2()) {
    // The view's last byte: its last row, up to its right edge.
    const uint8_t* end = in.row(in.y0 + in.h - 1) + static_cast<size_t>(in.w) * 3;
    horizontal_rows_avx2_any(in, c, y0, y1, out, end);
    return;
  }
#endif
  for (int y = y0; y < y1; ++y)
    horizontal_row_any(in.row(y), in.x0, out.rgb.data() + static_cast<size_t>(y - y0) * ow * 3, 0,
                       ow, c);
}

// Vertical pass: all of the view's columns, rows resampled from full_h to out_h, output rows
// [oy0, oy0 + oh) only. Result: in.w x oh.
void pass_vertical(const View& in, int full_h, int out_h, int oy0, int oh, ImageU8& out) {
  const Coeffs c = precompute_coeffs(full_h, out_h, oy0, oh);
  LCAM_REQUIRE(c.first[0] >= in.y0 && c.first[oh - 1] + c.count[oh - 1] <= in.y0 + in.h,
               "resize: the input window does not cover the taps of the output window");
  out.width = in.w;
  out.height = oh;
  const size_t row = static_cast<size_t>(in.w) * 3;
  out.rgb.resize(row * oh);
  auto kernel = vertical_row_any;
#if LCAM_IMAGE_X86
  if (have_avx2()) kernel = vertical_row_avx2;
#endif
  std::vector<const uint8_t*> rows(c.ksize);
  for (int i = 0; i < oh; ++i) {
    const int32_t* k = &c.k[static_cast<size_t>(i) * c.ksize];
    const int* at = &c.at[static_cast<size_t>(i) * c.ksize];
    for (int t = 0; t < c.ksize; ++t) rows[t] = in.row(at[t]);
    kernel(rows.data(), k, out.rgb.data() + static_cast<size_t>(i) * row, row, c.ksize);
  }
}

std::atomic<PillowResize> g_pillow{PillowResize::k12};

// Whether Pillow 13 runs the vertical pass first (Resample.c: "If height is being scaled down
// more than twice the amount the width is"), given that both passes run.
bool vertical_first(int full_w, int full_h, int out_w, int out_h) {
  if (g_pillow.load(std::memory_order_relaxed) != PillowResize::k13) return false;
  const int dh = full_h - out_h, dw = full_w - out_w;
  return dh > 0 && dh > dw * 2;
}

// Pillow's resize of the full image (full_w x full_h -> out_w x out_h), computing only the output
// rectangle [ox0, ox0 + ow) x [oy0, oy0 + oh) from a view that covers the input it reads. Pillow
// copies at equal size and otherwise runs the horizontal pass if the width changes and the
// vertical pass if the height changes, through a uint8 image: the horizontal one first (Pillow
// 13: unless the height shrinks more than twice as much as the width, see vertical_first). The
// first pass covers only the rows (columns) the second one reads; rows and columns are
// independent, so any subset of them gives the same values.
// `tmp` receives the first pass's result when both passes run; `out` the result. Both are
// overwritten (their buffers reused).
void resize_view(const View& in, int full_w, int full_h, int out_w, int out_h, int ox0, int oy0,
                 int ow, int oh, ImageU8& tmp, ImageU8& out) {
  int ry0 = oy0, ry1 = oy0 + oh;  // input rows the vertical pass reads
  if (out_h != full_h) tap_range(full_h, out_h, oy0, oy0 + oh, &ry0, &ry1);
  if (out_w != full_w) {
    if (out_h == full_h) {
      pass_horizontal(in, full_w, out_w, ox0, ow, ry0, ry1, out);
      return;
    }
    if (vertical_first(full_w, full_h, out_w, out_h)) {
      int cx0 = 0, cx1 = 0;  // input columns the horizontal pass reads
      tap_range(full_w, out_w, ox0, ox0 + ow, &cx0, &cx1);
      LCAM_REQUIRE(cx0 >= in.x0 && cx1 <= in.x0 + in.w, "resize: the input window does not cover the output window");
      const View cols{in.px + static_cast<size_t>(cx0 - in.x0) * 3, in.stride, cx0, in.y0, cx1 - cx0, in.h};
      pass_vertical(cols, full_h, out_h, oy0, oh, tmp);
      pass_horizontal(view_of(tmp, cx0, oy0), full_w, out_w, ox0, ow, oy0, oy0 + oh, out);
      return;
    }
    pass_horizontal(in, full_w, out_w, ox0, ow, ry0, ry1, tmp);
    pass_vertical(view_of(tmp, ox0, ry0), full_h, out_h, oy0, oh, out);
    return;
  }
  // No horizontal pass: the vertical pass (or a copy) over columns [ox0, ox0 + ow).
  LCAM_REQUIRE(ox0 >= in.x0 && ox0 + ow <= in.x0 + in.w && ry0 >= in.y0 && ry1 <= in.y0 + in.h,
               "resize: the input window does not cover the output window");
  const View cols{in.px + static_cast<size_t>(ox0 - in.x0) * 3, in.stride, ox0, in.y0, ow, in.h};
  if (out_h != full_h) {
    pass_vertical(cols, full_h, out_h, oy0, oh, out);
    return;
  }
  out.width = ow;
  out.height = oh;
  out.rgb.resize(static_cast<size_t>(ow) * oh * 3);
  for (int y = 0; y < oh; ++y)
    std::copy_n(cols.row(oy0 + y), static_cast<size_t>(ow) * 3,
                out.rgb.data() + static_cast<size_t>(y) * ow * 3);
}

ImageU8 resize_view(const View& in, int full_w, int full_h, int out_w, int out_h, int ox0, int oy0,
                    int ow, int oh) {
  ImageU8 tmp, out;
  resize_view(in, full_w, full_h, out_w, out_h, ox0, oy0, ow, oh, tmp, out);
  return out;
}

// v / 255.f for every byte, the value ToTensor computes (a table lookup is faster than dividing).
struct UnitTable {
  float v[256];
  UnitTable() {
    for (int i = 0; i < 256; ++i) v[i] = static_cast<float>(i) / 255.f;
  }
  float operator[](uint8_t i) const { return v[i]; }
};
const UnitTable kUnit;

void check_image(const ImageU8& img, const char* what) {
  LCAM_REQUIRE(img.width > 0 && img.height > 0 &&
                   img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3,
               std::string(what) + ": malformed image (" + std::to_string(img.width) + "x" +
                   std::to_string(img.height) + ", " + std::to_string(img.rgb.size()) + " bytes)");
}

// Python's round(n / 2) for an int n >= 0 (round half to even).
int half_round_even(int n) {
  int q = n / 2;
  if (n % 2 == 1 && q % 2 == 1) ++q;
  return q;
}

// Offset of a centred window of length `size` in a side of length `side`, as torchvision's
// center_crop computes it (zero padding first when the side is shorter).
int centre_offset(int side, int size) {
  if (size > side) return -((size - side) / 2);
  return half_round_even(side - size);
}

bool read_file(const std::string& path, std::vector<uint8_t>& bytes, std::string& reason) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    reason = "no such file";
    return false;
  }
  if (std::filesystem::is_directory(st)) {
    reason = "is a directory, not an image file";
    return false;
  }
  errno = 0;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    const int err = errno;
    reason = "cannot open file for reading";
    if (err != 0) reason += " (" + std::generic_category().message(err) + ")";
    return false;
  }
  f.seekg(0, std::ios::end);
  std::streamoff n = f.tellg();
  if (n < 0) {
    reason = "cannot read file";
    return false;
  }
  f.seekg(0, std::ios::beg);
  bytes.resize(static_cast<size_t>(n));
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n)) {
    reason = "read error";
    return false;
  }
  return true;
}

}  // namespace

SharedCores::SharedCores(std::atomic<int>& in_flight) : in_flight_(in_flight) {
  const int running = ++in_flight_;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads_ = std::max(1, cores / std::max(1, running));
}

SharedCores::~SharedCores() { --in_flight_; }

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::string reason;
  if (!read_file(path, bytes, reason)) fail_decode(path, reason);
  return bytes;
}

ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail_decode(name, "empty file, not an image");
  if (is_jpeg(data, size)) return decode_jpeg_memory(data, size, name);
  if (is_pnm(data, size)) return decode_pnm_memory(data, size, name);
  if (is_gif(data, size)) return decode_gif_memory(data, size, name);
  if (is_bmp(data, size)) return decode_bmp_memory(data, size, name);
  if (is_webp(data, size)) return decode_webp_memory(data, size, name);
  if (is_tiff(data, size)) return decode_tiff_memory(data, size, name);
  if (is_png(data, size)) return decode_png_memory(data, size, name);
  std::string avif_declined;  // why AVIF gave up on the file, when it did
  if (is_avif(data, size)) {  // Pillow's next format after the five it loads first
    ImageU8 img;
    if (decode_avif_memory(data, size, name, img, avif_declined)) return img;
  }
  if (is_ico(data, size)) return decode_ico_memory(data, size, name);
  if (is_cur(data, size)) return decode_cur_memory(data, size, name);
  if (is_jpeg2000(data, size)) return decode_jpeg2000_memory(data, size, name);
  if (is_pcx(data, size) && !(pcx_header_rejected(data, size) && is_tga(data, size))) return decode_pcx_memory(data, size, name);
  if (is_dcx(data, size)) return decode_dcx_memory(data, size, name);
  if (is_tga(data, size)) return decode_tga_memory(data, size, name);
  if (is_psd(data, size)) return decode_psd_memory(data, size, name);
  fail_decode(name, avif_declined.empty() ? "not a decodable image (unknown image type)"
                                          : avif_declined + ", and no other format reads it");
}

ImageU8 decode_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

bool set_resize_simd(bool enabled) {
#if LCAM_IMAGE_X86
  return g_simd_allowed.exchange(enabled);
#else
  (void)enabled;
  return false;
#endif
}

PillowResize set_pillow_resize(PillowResize version) {
  return g_pillow.exchange(version);
}

ImageU8 resize_bilinear_pil(const ImageU8& img, int out_w, int out_h) {
  check_image(img, "resize_bilinear_pil");
  LCAM_REQUIRE(out_w > 0 && out_h > 0,
               "resize to " + std::to_string(out_w) + "x" + std::to_string(out_h));
  return resize_view(view_of(img), img.width, img.height, out_w, out_h, 0, 0, out_w, out_h);
}

ImageU8 resize_bilinear_pil_region(const ImageU8& img, int out_w, int out_h, int left, int top,
                                   int w, int h) {
  check_image(img, "resize_bilinear_pil_region");
  LCAM_REQUIRE(out_w > 0 && out_h > 0 && w > 0 && h > 0 && left >= 0 && top >= 0 &&
                   left + w <= out_w && top + h <= out_h,
               "resize to " + std::to_string(out_w) + "x" + std::to_string(out_h) + ", region " +
                   std::to_string(w) + "x" + std::to_string(h) + " at (" + std::to_string(left) +
                   ", " + std::to_string(top) + ")");
  return resize_view(view_of(img), img.width, img.height, out_w, out_h, left, top, w, h);
}

void shorter_side_size(int w, int h, int size, int* out_w, int* out_h) {
  LCAM_REQUIRE(w > 0 && h > 0 && size > 0, "shorter_side_size of " + std::to_string(w) + "x" +
                                               std::to_string(h) + " to " + std::to_string(size));
  const long long shorter = std::min(w, h), longer = std::max(w, h);
  // Python: int(size * long / short), a true division in double precision, then truncation.
  const int new_long =
      static_cast<int>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  *out_w = w <= h ? size : new_long;
  *out_h = w <= h ? new_long : size;
}

ImageU8 resize_shorter_side(const ImageU8& img, int size) {
  check_image(img, "resize_shorter_side");
  int w = 0, h = 0;
  shorter_side_size(img.width, img.height, size, &w, &h);
  return resize_bilinear_pil(img, w, h);
}

ImageU8 crop(const ImageU8& img, int top, int left, int h, int w) {
  check_image(img, "crop");
  LCAM_REQUIRE(h > 0 && w > 0, "crop to " + std::to_string(w) + "x" + std::to_string(h));
  ImageU8 out;
  out.width = w;
  out.height = h;
  out.rgb.assign(static_cast<size_t>(w) * h * 3, 0);
  const int x0 = std::max(left, 0), x1 = std::min(left + w, img.width);
  if (x1 <= x0) return out;
  for (int y = std::max(top, 0); y < std::min(top + h, img.height); ++y) {
    const uint8_t* src = img.rgb.data() + (static_cast<size_t>(y) * img.width + x0) * 3;
    uint8_t* dst = out.rgb.data() + (static_cast<size_t>(y - top) * w + (x0 - left)) * 3;
    std::copy_n(src, static_cast<size_t>(x1 - x0) * 3, dst);
  }
  return out;
}

ImageU8 center_crop(const ImageU8& img, int size) {
  check_image(img, "center_crop");
  LCAM_REQUIRE(size > 0, "center_crop to " + std::to_string(size));
  return crop(img, centre_offset(img.height, size), centre_offset(img.width, size), size, size);
}

ImageU8 hflip(const ImageU8& img) {
  check_image(img, "hflip");
  ImageU8 out;
  out.width = img.width;
  out.height = img.height;
  out.rgb.resize(img.rgb.size());
  const int w = img.width;
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* src = img.rgb.data() + static_cast<size_t>(y) * w * 3;
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) {
      dst[3 * x + 0] = src[3 * (w - 1 - x) + 0];
      dst[3 * x + 1] = src[3 * (w - 1 - x) + 1];
      dst[3 * x + 2] = src[3 * (w - 1 - x) + 2];
    }
  }
  return out;
}

void to_chw_float(const ImageU8& img, float* out) {
  check_image(img, "to_chw_float");
  const size_t plane = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < plane; ++i) {
    out[i] = kUnit[img.rgb[3 * i + 0]];
    out[plane + i] = kUnit[img.rgb[3 * i + 1]];
    out[2 * plane + i] = kUnit[img.rgb[3 * i + 2]];
  }
}

namespace {

// The eval transform on a W x H image, worked out before decoding: the size after Resize, the
// part of the resized image that CenterCrop keeps (clipped to it; the rest of the crop is zero
// padding), where that part lands in the crop, and the input pixels the resize reads for it.
struct EvalPlan {
  int rw = 0, rh = 0;                    // after Resize(resize)
  int ox0 = 0, oy0 = 0, ow = 0, oh = 0;  // kept part of the resized image
  int dx = 0, dy = 0;                    // its position in the crop
  int ix0 = 0, ix1 = 0, iy0 = 0, iy1 = 0;  // input columns and rows the resize reads
};

EvalPlan plan_eval(int W, int H, int resize, int crop_size) {
  EvalPlan p;
  shorter_side_size(W, H, resize, &p.rw, &p.rh);
  const int left = centre_offset(p.rw, crop_size), top = centre_offset(p.rh, crop_size);
  p.ox0 = std::max(left, 0);
  p.oy0 = std::max(top, 0);
  p.ow = std::min(left + crop_size, p.rw) - p.ox0;
  p.oh = std::min(top + crop_size, p.rh) - p.oy0;
  p.dx = p.ox0 - left;
  p.dy = p.oy0 - top;
  tap_range(W, p.rw, p.ox0, p.ox0 + p.ow, &p.ix0, &p.ix1);
  tap_range(H, p.rh, p.oy0, p.oy0 + p.oh, &p.iy0, &p.iy1);
  return p;
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void eval_transform_memory(const uint8_t* data, size_t size, const std::string& name, float* out,
                           int resize, int crop_size, EvalTimings* timings) {
  LCAM_REQUIRE(resize > 0 && crop_size > 0,
               "eval transform " + std::to_string(resize) + "/" + std::to_string(crop_size));
  const double t0 = timings ? seconds_now() : 0.0;
  // Per-thread buffers, reused from image to image (no allocation or zero-filling per image).
  thread_local ImageU8 img, tmp, part;
  EvalPlan plan;
  int W = 0, H = 0, x0 = 0, y0 = 0;
  if (is_jpeg(data, size)) {
    JpegWindow win;
    decode_jpeg_window(
        data, size, name,
        [&](int w, int h) {
          plan = plan_eval(w, h, resize, crop_size);
          return JpegWindow{plan.ix0, plan.ix1, plan.iy0, plan.iy1};
        },
        &img, &win, &x0, &W, &H);
    y0 = win.y0;
  } else {
    img = decode_image_memory(data, size, name);
    W = img.width;
    H = img.height;
    plan = plan_eval(W, H, resize, crop_size);
  }
  const double t1 = timings ? seconds_now() : 0.0;
  resize_view(view_of(img, x0, y0), W, H, plan.rw, plan.rh, plan.ox0, plan.oy0, plan.ow, plan.oh,
              tmp, part);
  const double t2 = timings ? seconds_now() : 0.0;
  // ToTensor, with CenterCrop's zero padding where the resized image is smaller than the crop.
  const size_t plane = static_cast<size_t>(crop_size) * crop_size;
  if (part.width != crop_size || part.height != crop_size) std::fill(out, out + 3 * plane, 0.f);
  for (int y = 0; y < part.height; ++y) {
    const uint8_t* src = part.rgb.data() + static_cast<size_t>(y) * part.width * 3;
    const size_t o = static_cast<size_t>(y + plan.dy) * crop_size + plan.dx;
    float* r = out + o;
    float* g = out + plane + o;
    float* b = out + 2 * plane + o;
    for (int x = 0; x < part.width; ++x) {
      r[x] = kUnit[src[3 * x + 0]];
      g[x] = kUnit[src[3 * x + 1]];
      b[x] = kUnit[src[3 * x + 2]];
    }
  }
  // Keep the per-thread buffers for the next image unless an unusually large one grew them.
  constexpr size_t kKeepBytes = size_t{32} << 20;
  for (ImageU8* b : {&img, &tmp, &part})
    if (b->rgb.capacity() > kKeepBytes) *b = ImageU8{};
  if (timings) {
    const double t3 = seconds_now();
    timings->decode += t1 - t0;
    timings->resize += t2 - t1;
    timings->to_float += t3 - t2;
  }
}

void load_eval_image(const std::string& path, float* out, int resize, int crop_size) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  eval_transform_memory(bytes.data(), bytes.size(), path, out, resize, crop_size);
}

void write_png(const std::string& path, const ImageU8& img) {
  check_image(img, "write_png");
  std::vector<uint8_t> encoded;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    v->insert(v->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(sink, &encoded, img.width, img.height, 3, img.rgb.data(),
                              img.width * 3))
    fail_decode(path, "PNG encoding failed");
  const std::string tmp = temp_path_for(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail_decode(path, "cannot open " + tmp + " for writing");
    f.write(reinterpret_cast<const char*>(encoded.data()),
            static_cast<std::streamsize>(encoded.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      fail_decode(path, "write error on " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail_decode(path, "cannot rename " + tmp + " to the final name");
  }
}

}  // namespace lcam
