// yuv.cpp — YUV to RGB as libavif 1.4's avifImageYUVToRGB converts a picture for Pillow 13 (8
// bits a channel; RGBA when there is alpha, GRAY for 4:0:0, RGB otherwise; libavif's default
// chroma upsampling; libavif built with libyuv, as in Pillow's wheels), then convert("RGB").
// Rules, mirrored here:
// - refused (libavif's AVIF_RESULT_REFORMAT_FAILED): matrix coefficients 3, 10, 11, 13, 14 and
//   18 up, YCgCo and YCgCo-R at limited range, YCgCo-Re other than at 10 bits, YCgCo-Ro, the
//   identity matrix with 4:2:2 or 4:2:0 chroma;
// - grey (4:0:0 without alpha): each sample's (s - bias) / range, clamped, times 255, rounded
//   half up; the matrix plays no part;
// - libyuv, where it has constants for the matrix (BT.601, BT.709, BT.2020 and unspecified, and
//   the chromaticity-derived matrix over primaries 1, 2, 5, 6 or 9; grey with the identity matrix
//   as BT.601): its fixed-point pixel (luma expanded to 16 bits, times YG, high half, plus YB;
//   chroma less 128 times UB, UG, VG, VR; >> 6, clamped), chroma upsampled as its Filter
//   functions do (4:2:2 linear 3:1 along rows; 4:2:0 bilinear 9:3:3:1, the first row and an even
//   picture's last row along the row only, the first and last columns along the column only).
//   RGB at 10 or 12 bits is cut to 8 bits first (v >> 2, v >> 4); RGBA at 10 bits keeps 10-bit
//   luma (chroma upsampled at 10 bits, then >> 2); RGBA at 12 bits cuts all planes to 8 bits
//   for 4:4:4 and 4:2:2, and converts 4:2:0 at 12 bits with the nearest chroma sample; 4:0:0
//   with alpha takes libyuv's grey pixel on luma cut to 8 bits;
// - otherwise libavif's own single-precision code: per pixel for 4:4:4 and grey (the identity
//   matrix at 8 bits, full range, copied), else its slow path with chroma weighted 9/16, 3/16,
//   3/16, 1/16 from the nearest samples; YCgCo, YCgCo-Re; out = (uint8_t)(0.5f + c * 255.0f);
// - premultiplied alpha undone after libyuv and the per-pixel path as libyuv's x86 ARGBUnattenuate
//   does it (((c * 257) * ia) >> 16, ia = 65536 / a), in the slow path in floating point; the
//   alpha is libyuv's (copied, or >> 2, >> 4 where its functions cut it) or libavif's
//   (a * 255 / max rounded half up).
// Every float expression is evaluated in libavif's order, without contraction into FMAs (the
// build's -ffp-contract=off), so every CPU gives the bytes of Pillow's x86-64 wheels. Its
// aarch64 wheels differ on some files (tests/fixtures/image/formats/index.aarch64.txt): libyuv
// has no Arm unattenuate (its C formula, (c * ia) >> 8, is 1 lower on some pixels), GCC fuses
// libavif's float arithmetic there, and libyuv's Arm grey-with-alpha row at limited range
// writes 255 into green.
#include "loaders/yuv.h"

#include <algorithm>  // std::min, std::max, std::clamp, std::copy
#include <atomic>     // std::atomic (the SIMD switch)
#include <cmath>      // std::floor
#include <cstdint>    // uint8_t, uint16_t, uint32_t
#include <vector>     // std::vector

namespace lcam {
namespace {

enum class Mode { kCoefficients, kIdentity, kYCgCo, kYCgCoRe };

constexpr int kIdentity = 0, kBt709 = 1, kUnspecified = 2, kFcc = 4, kBt470bg = 5, kBt601 = 6,
              kSmpte240 = 7, kYCgCo = 8, kBt2020Ncl = 9, kChromaDerivedNcl = 12, kYCgCoRe = 16,
              kYCgCoRo = 17, kMatrixLast = 18;

// avifColorPrimariesGetValues: rX, rY, gX, gY, bX, bY, wX, wY; BT.709's for primaries it does not
// know.
void primaries_values(int cp, float v[8]) {
  static const struct {
    int cp;
    float v[8];
  } table[] = {
      {1, {0.64f, 0.33f, 0.30f, 0.60f, 0.15f, 0.06f, 0.3127f, 0.3290f}},
      {4, {0.67f, 0.33f, 0.21f, 0.71f, 0.14f, 0.08f, 0.310f, 0.316f}},
      {5, {0.64f, 0.33f, 0.29f, 0.60f, 0.15f, 0.06f, 0.3127f, 0.3290f}},
      {6, {0.630f, 0.340f, 0.310f, 0.595f, 0.155f, 0.070f, 0.3127f, 0.3290f}},
      {7, {0.630f, 0.340f, 0.310f, 0.595f, 0.155f, 0.070f, 0.3127f, 0.3290f}},
      {8, {0.681f, 0.319f, 0.243f, 0.692f, 0.145f, 0.049f, 0.310f, 0.316f}},
      {9, {0.708f, 0.292f, 0.170f, 0.797f, 0.131f, 0.046f, 0.3127f, 0.3290f}},
      {10, {1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.3333f, 0.3333f}},
      {11, {0.680f, 0.320f, 0.265f, 0.690f, 0.150f, 0.060f, 0.314f, 0.351f}},
      {12, {0.680f, 0.320f, 0.265f, 0.690f, 0.150f, 0.060f, 0.3127f, 0.3290f}},
      {22, {0.630f, 0.340f, 0.295f, 0.605f, 0.155f, 0.077f, 0.3127f, 0.3290f}},
  };
  const float* found = table[0].v;
  for (const auto& row : table) {
    if (row.cp == cp) found = row.v;
  }
  std::copy(found, found + 8, v);
}

// avifCalcYUVCoefficients: kr and kb from the matrix's table entry or, for the
// chromaticity-derived matrix, from the primaries (H.273 equations 32 to 37); BT.601's otherwise.
void coefficients(int mc, int cp, float& kr, float& kg, float& kb) {
  kr = 0.299f;
  kb = 0.114f;
  if (mc == kChromaDerivedNcl) {
    float p[8];
    primaries_values(cp, p);
    const float rX = p[0], rY = p[1], gX = p[2], gY = p[3], bX = p[4], bY = p[5], wX = p[6], wY = p[7];
    const float rZ = 1.0f - (rX + rY), gZ = 1.0f - (gX + gY), bZ = 1.0f - (bX + bY);
    const float wZ = 1.0f - (wX + wY);
    const float den = wY * (rX * (gY * bZ - bY * gZ) + gX * (bY * rZ - rY * bZ) + bX * (rY * gZ - gY * rZ));
    if (den != 0.0f) {
      kr = rY * (wX * (gY * bZ - bY * gZ) + wY * (bX * gZ - gX * bZ) + wZ * (gX * bY - bX * gY)) / den;
      kb = bY * (wX * (rY * gZ - gY * rZ) + wY * (gX * rZ - rX * gZ) + wZ * (rX * gY - gX * rY)) / den;
    }
  } else if (mc == kBt709) {
    kr = 0.2126f, kb = 0.0722f;
  } else if (mc == kFcc) {
    kr = 0.30f, kb = 0.11f;
  } else if (mc == kSmpte240) {
    kr = 0.212f, kb = 0.087f;
  } else if (mc == kBt2020Ncl) {
    kr = 0.2627f, kb = 0.0593f;
  }
  kg = 1.0f - kr - kb;
}

// libyuv's YuvConstants: YG, YB, UB, UG, VG, VR.
struct Constants {
  int yg, yb, ub, ug, vg, vr;
};
constexpr Constants kI601{18997, -1160, 128, 25, 52, 102}, kJpeg{16320, 32, 113, 22, 46, 90},
    kH709{18997, -1160, 128, 14, 34, 115}, kF709{16320, 32, 119, 12, 30, 101},
    kBt2020{19003, -1160, 128, 12, 42, 107}, kV2020{16320, 32, 120, 11, 37, 94};

// libavif's getLibYUVConstants: the table for the picture, or nullptr (libavif converts it).
const Constants* libyuv_constants(const YuvPicture& p) {
  const int mc = p.format == YuvPicture::k400 && p.matrix == kIdentity ? kBt601 : p.matrix;
  const Constants* bt709 = p.full_range ? &kF709 : &kH709;
  const Constants* bt601 = p.full_range ? &kJpeg : &kI601;
  const Constants* bt2020 = p.full_range ? &kV2020 : &kBt2020;
  switch (mc) {
    case kBt709: return bt709;
    case kUnspecified: case kBt470bg: case kBt601: return bt601;
    case kBt2020Ncl: return bt2020;
    case kChromaDerivedNcl:
      switch (p.primaries) {
        case 1: case 2: return bt709;
        case 5: case 6: return bt601;
        case 9: return bt2020;
        default: return nullptr;
      }
    default: return nullptr;
  }
}

uint8_t clamp255(int v) { return static_cast<uint8_t>(std::min(255, std::max(0, v))); }

// libyuv's pixel on 16-bit luma (y * 257 at 8 bits, (y << 6) | (y >> 4) at 10, (y << 4) |
// (y >> 8) at 12) and 8-bit chroma.
void libyuv_pixel(const Constants& k, uint32_t y32, int u, int v, uint8_t* rgb) {
  const int y1 = static_cast<int>((y32 * static_cast<uint32_t>(k.yg)) >> 16) + k.yb;
  rgb[0] = clamp255((y1 + k.vr * (v - 128)) >> 6);
  rgb[1] = clamp255((y1 - (k.ug * (u - 128) + k.vg * (v - 128))) >> 6);
  rgb[2] = clamp255((y1 + k.ub * (u - 128)) >> 6);
}

uint32_t expand_luma(uint32_t y, int depth) {
  if (depth == 8) return y * 0x0101u;
  if (depth == 10) return (y << 6) | (y >> 4);
  return (y << 4) | (y >> 8);
}

// A plane of 8- or 16-bit samples.
template <typename T>
struct View {
  const T* data;
  size_t stride;
  const T* row(int j) const { return data + static_cast<size_t>(j) * stride; }
};

// An owned 8-bit or 16-bit plane.
template <typename T>
struct Plane {
  int w = 0, h = 0;
  std::vector<T> s;
  View<T> view() const { return {s.data(), static_cast<size_t>(w)}; }
};

// libyuv's Convert16To8Plane with scale 1 << (24 - depth): v >> (depth - 8), at most 255.
Plane<uint8_t> downshift(View<uint16_t> in, int w, int h, int depth) {
  Plane<uint8_t> out{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h)};
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i) out.s[static_cast<size_t>(j) * w + i] = clamp255(in.row(j)[i] >> (depth - 8));
  }
  return out;
}

// libyuv's ScaleRowUp2_Linear_Any: a chroma row of (w + 1) / 2 samples to w.
template <typename T>
void up_linear(const T* s, int w, T* d) {
  d[0] = s[0];
  const int work = (w - 1) & ~1;
  for (int x = 0; x < work / 2; ++x) {
    d[1 + 2 * x] = static_cast<T>((3 * s[x] + s[x + 1] + 2) >> 2);
    d[2 + 2 * x] = static_cast<T>((s[x] + 3 * s[x + 1] + 2) >> 2);
  }
  d[w - 1] = s[(w - 1) / 2];
}

// One of the two luma rows libyuv's ScaleRowUp2_Bilinear_Any makes between chroma rows: the
// one nearer `n` (weights 9, 3, 3, 1 over n, its neighbour, f, its neighbour; the first and
// last columns 3, 1 along the column only).
template <typename T>
void up_bilinear(const T* n, const T* f, int w, T* d) {
  d[0] = static_cast<T>((3 * n[0] + f[0] + 2) >> 2);
  const int work = (w - 1) & ~1;
  for (int x = 0; x < work / 2; ++x) {
    d[1 + 2 * x] = static_cast<T>((n[x] * 9 + n[x + 1] * 3 + f[x] * 3 + f[x + 1] + 8) >> 4);
    d[2 + 2 * x] = static_cast<T>((n[x] * 3 + n[x + 1] * 9 + f[x] + f[x + 1] * 3 + 8) >> 4);
  }
  const int i = (w - 1) / 2;
  d[w - 1] = static_cast<T>((3 * n[i] + f[i] + 2) >> 2);
}

// Luma row j's chroma, as libyuv's Filter functions give it: 4:2:2 linear along the row; 4:2:0
// bilinear between chroma rows (j - 1) / 2 and (j + 1) / 2 for odd j, j / 2 and j / 2 - 1 for
// even j, except the first row and an even height's last, which are linear along their row.
template <typename T>
const T* chroma_row(View<T> c, YuvPicture::Format format, int j, int w, int h, T* buf) {
  if (format == YuvPicture::k444) return c.row(j);
  if (format == YuvPicture::k422 || j == 0 || (h % 2 == 0 && j == h - 1)) {
    up_linear(c.row(format == YuvPicture::k422 ? j : j / 2), w, buf);
  } else if (j % 2 != 0) {
    up_bilinear(c.row((j - 1) / 2), c.row((j + 1) / 2), w, buf);
  } else {
    up_bilinear(c.row(j / 2), c.row(j / 2 - 1), w, buf);
  }
  return buf;
}

// Luma row j's chroma as libyuv's unfiltered functions take it: the sample at (i / 2, j / 2)
// for 4:2:0.
template <typename T>
const T* chroma_row_nearest(View<T> c, int j, int w, T* buf) {
  const T* s = c.row(j / 2);
  for (int i = 0; i < w; ++i) buf[i] = s[i / 2];
  return buf;
}

// libyuv's pixel over a row: luma expanded from `depth` bits, chroma cut to 8.
template <int depth, typename T>
[[gnu::always_inline]] inline void pixel_row_body(const Constants& k, const T* yr, const T* ur, const T* vr, int w,
                                                  uint8_t* rgb) {
  constexpr int shift = depth - 8;
  for (int i = 0; i < w; ++i, rgb += 3) {
    libyuv_pixel(k, expand_luma(yr[i], depth), std::min(255, ur[i] >> shift), std::min(255, vr[i] >> shift), rgb);
  }
}

#if defined(__x86_64__) || defined(__i386__)
// The same integer arithmetic compiled for AVX2, whose 32-bit multiplies let the compiler
// vectorize it (SSE2 has none); the same bytes, chosen at run time.
template <int depth, typename T>
__attribute__((target("avx2"))) void pixel_row_avx2(const Constants& k, const T* yr, const T* ur, const T* vr,
                                                    int w, uint8_t* rgb) {
  pixel_row_body<depth>(k, yr, ur, vr, w, rgb);
}
#endif

std::atomic<bool> g_simd{true};

template <int depth, typename T>
void pixel_row(const Constants& k, const T* yr, const T* ur, const T* vr, int w, uint8_t* rgb) {
#if defined(__x86_64__) || defined(__i386__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2 && g_simd.load(std::memory_order_relaxed)) return pixel_row_avx2<depth>(k, yr, ur, vr, w, rgb);
#endif
  pixel_row_body<depth>(k, yr, ur, vr, w, rgb);
}

// libyuv with constants k, row by row: luma at `depth` (8; 10 or 12 in 16-bit samples), chroma
// upsampled as its Filter functions do (or taken nearest) at its own depth, then cut to 8 bits.
template <int depth, typename T>
void libyuv_convert(const Constants& k, View<T> y, View<T> u, View<T> v, bool filter,
                    YuvPicture::Format format, int w, int h, uint8_t* rgb) {
  std::vector<T> ub(static_cast<size_t>(w)), vb(static_cast<size_t>(w));
  for (int j = 0; j < h; ++j) {
    const T* yr = y.row(j);
    const T* ur = filter ? chroma_row(u, format, j, w, h, ub.data()) : chroma_row_nearest(u, j, w, ub.data());
    const T* vr = filter ? chroma_row(v, format, j, w, h, vb.data()) : chroma_row_nearest(v, j, w, vb.data());
    pixel_row<depth>(k, yr, ur, vr, w, rgb);
    rgb += static_cast<size_t>(3) * w;
  }
}

// libyuv's grey pixel (I400ToARGB) on 8-bit luma.
void libyuv_grey(const Constants& k, View<uint8_t> y, int w, int h, uint8_t* rgb) {
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i, rgb += 3) libyuv_pixel(k, expand_luma(y.row(j)[i], 8), 128, 128, rgb);
  }
}

// q * 255 / range rounded half up, for q in [0, range]: what libavif's single-precision
// (uint8_t)(0.5f + q / range * 255.0f) gives at every depth and range (checked exhaustively).
uint8_t scale_to_255(uint32_t q, uint32_t range) { return static_cast<uint8_t>((q * 510 + range) / (2 * range)); }

// Sample (i, j) of plane `plane`, 8- or 16-bit by the picture's depth.
uint32_t sample(const YuvPicture& p, int plane, int i, int j) {
  const size_t at = static_cast<size_t>(j) * p.strides[plane] + i;
  return p.depth == 8 ? static_cast<const uint8_t*>(p.planes[plane])[at] : static_cast<const uint16_t*>(p.planes[plane])[at];
}

// libavif's alpha at 8 bits (avifReformatAlpha): copied, or a * 255 / max rounded half up.
uint8_t alpha_to_8(uint32_t a, int depth) {
  if (depth == 8) return static_cast<uint8_t>(a);
  const uint32_t max = (1u << depth) - 1;
  return scale_to_255(std::min(a, max), max);
}

// libyuv's x86 ARGBUnattenuate (what Pillow's x86 wheels run): ((c * 257) * ia) >> 16 with
// ia = 65536 / a (0 for a = 0, 65535 for 1, 256 for 255), packed with signed saturation.
uint8_t unattenuate(uint8_t c, uint8_t a) {
  const uint32_t ia = a == 0 ? 0 : a == 1 ? 65535 : a == 255 ? 256 : 65536 / a;
  const uint32_t t = (c * 257u * ia) >> 16;
  return t >= 32768 ? 0 : static_cast<uint8_t>(std::min<uint32_t>(t, 255));
}

struct State {
  Mode mode;
  float kr, kg, kb;
  int depth;
  uint32_t max;
  float bias_y, bias_uv, range_y, range_uv;
};

// avifGetYUVColorSpaceInfo and avifPrepareReformatState at 8 bits out: the state, or the
// refusal.
std::string prepare(const YuvPicture& p, State& st) {
  const int mc = p.matrix;
  if (p.depth != 8 && p.depth != 10 && p.depth != 12) return "unsupported depth " + std::to_string(p.depth);
  const bool ycgco = mc == kYCgCo || mc == kYCgCoRe || mc == kYCgCoRo;
  if (mc == 3 || mc == 10 || mc == 11 || mc == 13 || mc == 14 || mc >= kMatrixLast || (ycgco && !p.full_range)) {
    return "matrix coefficients " + std::to_string(mc) + (ycgco ? " at limited range" : "") + " are not converted";
  }
  if (mc == kIdentity && p.format != YuvPicture::k444 && p.format != YuvPicture::k400) {
    return "the identity matrix with subsampled chroma is not converted";
  }
  if ((mc == kYCgCoRe && p.depth != 10) || mc == kYCgCoRo) {
    return "YCgCo-R at " + std::to_string(p.depth) + " bits does not give 8-bit RGB";
  }
  st.mode = mc == kIdentity ? Mode::kIdentity : mc == kYCgCo ? Mode::kYCgCo : mc == kYCgCoRe ? Mode::kYCgCoRe : Mode::kCoefficients;
  coefficients(mc, p.primaries, st.kr, st.kg, st.kb);
  if (st.mode != Mode::kCoefficients) st.kr = st.kg = st.kb = 0.0f;
  st.depth = p.depth;
  st.max = (1u << p.depth) - 1;
  const bool limited = !p.full_range;
  st.bias_y = limited ? static_cast<float>(16 << (p.depth - 8)) : 0.0f;
  st.bias_uv = static_cast<float>(1 << (p.depth - 1));
  st.range_y = static_cast<float>(limited ? (219 << (p.depth - 8)) : static_cast<int>(st.max));
  st.range_uv = static_cast<float>(limited ? (224 << (p.depth - 8)) : static_cast<int>(st.max));
  return "";
}

float clamp01(float v) { return v < 0.0f ? 0.0f : (1.0f < v ? 1.0f : v); }
uint8_t to_byte(float c) { return static_cast<uint8_t>(0.5f + (c * 255.0f)); }

// R, G, B from Y, Cb, Cr by the matrix's coefficients, in libavif's order of operations.
void coefficients_rgb(const State& st, float y, float cb, float cr, float& r, float& g, float& b) {
  r = y + (2 * (1 - st.kr)) * cr;
  b = y + (2 * (1 - st.kb)) * cb;
  g = y - ((2 * ((st.kr * (1 - st.kr) * cr) + (st.kb * (1 - st.kb) * cb))) / st.kg);
}

// libavif's built-in conversion: the per-pixel path for 4:4:4 and 4:0:0, else the slow path.
// Returns whether premultiplication is still to be undone (the slow path undoes it itself).
template <typename T>
bool builtin(const YuvPicture& p, const State& st, bool unmultiply, uint8_t* rgb) {
  const int w = p.width, h = p.height;
  const View<T> Y{static_cast<const T*>(p.planes[0]), p.strides[0]};
  const View<T> U{static_cast<const T*>(p.planes[1]), p.strides[1]};
  const View<T> V{static_cast<const T*>(p.planes[2]), p.strides[2]};
  const View<T> A{static_cast<const T*>(p.planes[3]), p.strides[3]};
  const bool color = p.format != YuvPicture::k400;
  std::vector<float> ty(st.max + 1), tuv(st.max + 1);
  for (uint32_t c = 0; c <= st.max; ++c) {
    ty[c] = (static_cast<float>(c) - st.bias_y) / st.range_y;
    tuv[c] = st.mode == Mode::kIdentity ? ty[c] : (static_cast<float>(c) - st.bias_uv) / st.range_uv;
  }
  auto unorm = [&](T s) { return std::min<uint32_t>(s, st.max); };
  if ((!color || p.format == YuvPicture::k444) && st.mode != Mode::kYCgCo && st.mode != Mode::kYCgCoRe) {
    if (st.mode == Mode::kIdentity && st.depth == 8 && p.format == YuvPicture::k444 && p.full_range) {
      for (int j = 0; j < h; ++j) {
        for (int i = 0; i < w; ++i, rgb += 3) {
          rgb[0] = static_cast<uint8_t>(V.row(j)[i]);
          rgb[1] = static_cast<uint8_t>(Y.row(j)[i]);
          rgb[2] = static_cast<uint8_t>(U.row(j)[i]);
        }
      }
      return unmultiply;
    }
    if (st.mode == Mode::kCoefficients) {
      for (int j = 0; j < h; ++j) {
        for (int i = 0; i < w; ++i, rgb += 3) {
          const float y = ty[unorm(Y.row(j)[i])];
          const float cb = color ? tuv[unorm(U.row(j)[i])] : 0.0f;
          const float cr = color ? tuv[unorm(V.row(j)[i])] : 0.0f;
          float r, g, b;
          coefficients_rgb(st, y, cb, cr, r, g, b);
          rgb[0] = to_byte(clamp01(r));
          rgb[1] = to_byte(clamp01(g));
          rgb[2] = to_byte(clamp01(b));
        }
      }
      return unmultiply;
    }
  }
  // avifImageYUVAnyToRGBAnySlow.
  const int sx = p.format == YuvPicture::k444 ? 0 : 1, sy = p.format == YuvPicture::k420 ? 1 : 0;
  const float max_f = static_cast<float>(st.max);
  for (int j = 0; j < h; ++j) {
    const int uv_j = j >> sy;
    for (int i = 0; i < w; ++i, rgb += 3) {
      const uint32_t uy = unorm(Y.row(j)[i]);
      const float y = ty[uy];
      float cb = 0.5f, cr = 0.5f;
      if (color) {
        const int uv_i = i >> sx;
        if (p.format == YuvPicture::k444) {
          cb = tuv[unorm(U.row(uv_j)[uv_i])];
          cr = tuv[unorm(V.row(uv_j)[uv_i])];
        } else {
          const int adj_i = (i == 0 || (i == w - 1 && (i % 2) != 0)) ? uv_i : ((i % 2) != 0 ? uv_i + 1 : uv_i - 1);
          const int adj_j = (j == 0 || (j == h - 1 && (j % 2) != 0) || p.format == YuvPicture::k422)
                                ? uv_j : ((j % 2) != 0 ? uv_j + 1 : uv_j - 1);
          auto weigh = [&](View<T> c) {
            return (tuv[unorm(c.row(uv_j)[uv_i])] * (9.0f / 16.0f)) + (tuv[unorm(c.row(uv_j)[adj_i])] * (3.0f / 16.0f)) +
                   (tuv[unorm(c.row(adj_j)[uv_i])] * (3.0f / 16.0f)) + (tuv[unorm(c.row(adj_j)[adj_i])] * (1.0f / 16.0f));
          };
          cb = weigh(U);
          cr = weigh(V);
        }
      }
      float r, g, b;
      if (!color) {
        r = g = b = y;
      } else if (st.mode == Mode::kIdentity) {
        g = y, b = cb, r = cr;
      } else if (st.mode == Mode::kYCgCo) {
        const float t = y - cb;
        g = y + cb, b = t - cr, r = t + cr;
      } else if (st.mode == Mode::kYCgCoRe) {
        const int yy = static_cast<int>(uy);
        const int cg = static_cast<int>(std::floor(cb * max_f + 0.5f));
        const int co = static_cast<int>(std::floor(cr * max_f + 0.5f));
        const int t = yy - (cg >> 1);
        g = static_cast<float>(std::clamp(t + cg, 0, 255));
        b = static_cast<float>(std::clamp(t - (co >> 1), 0, 255));
        r = b + static_cast<float>(co);
        r = r < 0.0f ? 0.0f : (255.0f < r ? 255.0f : r);
        g /= 255.0f, b /= 255.0f, r /= 255.0f;
      } else {
        coefficients_rgb(st, y, cb, cr, r, g, b);
      }
      r = clamp01(r), g = clamp01(g), b = clamp01(b);
      if (unmultiply) {
        const float a = clamp01(static_cast<float>(unorm(A.row(j)[i])) / max_f);
        if (a == 0.0f) {
          r = g = b = 0.0f;
        } else if (a < 1.0f) {
          r = std::min(r / a, 1.0f), g = std::min(g / a, 1.0f), b = std::min(b / a, 1.0f);
        }
      }
      rgb[0] = to_byte(r);
      rgb[1] = to_byte(g);
      rgb[2] = to_byte(b);
    }
  }
  return false;
}

// libyuv's 8-bit Filter functions on Y, U and V, cut to 8 bits first where deeper (libavif's
// avifImageDownshiftTo8bpc): libavif's RGB at any depth, and its RGBA at 8 bits and at 12 bits
// for 4:4:4 and 4:2:2.
void libyuv_8bit(const YuvPicture& p, const Constants& k, uint8_t* rgb) {
  const int w = p.width, h = p.height;
  if (p.depth == 8) {
    return libyuv_convert<8>(k, View<uint8_t>{static_cast<const uint8_t*>(p.planes[0]), p.strides[0]},
                             View<uint8_t>{static_cast<const uint8_t*>(p.planes[1]), p.strides[1]},
                             View<uint8_t>{static_cast<const uint8_t*>(p.planes[2]), p.strides[2]}, true, p.format, w,
                             h, rgb);
  }
  const int cw = p.format == YuvPicture::k444 ? w : (w + 1) / 2, ch = p.format == YuvPicture::k420 ? (h + 1) / 2 : h;
  auto cut = [&](int i, int pw, int ph) {
    return downshift({static_cast<const uint16_t*>(p.planes[i]), p.strides[i]}, pw, ph, p.depth);
  };
  const Plane<uint8_t> y8 = cut(0, w, h), u8 = cut(1, cw, ch), v8 = cut(2, cw, ch);
  libyuv_convert<8>(k, y8.view(), u8.view(), v8.view(), true, p.format, w, h, rgb);
}

// libavif's RGBA through libyuv: colour into rgb, the 8-bit alpha its functions give into alpha.
void libyuv_rgba(const YuvPicture& p, const Constants& k, uint8_t* rgb, std::vector<uint8_t>& alpha) {
  const int w = p.width, h = p.height;
  alpha.resize(static_cast<size_t>(w) * h);
  auto fill_alpha = [&](auto a_view, auto to8) {
    for (int j = 0; j < h; ++j) {
      for (int i = 0; i < w; ++i) alpha[static_cast<size_t>(j) * w + i] = to8(a_view.row(j)[i]);
    }
  };
  if (p.depth == 8) {
    const View<uint8_t> Y{static_cast<const uint8_t*>(p.planes[0]), p.strides[0]};
    const View<uint8_t> A{static_cast<const uint8_t*>(p.planes[3]), p.strides[3]};
    fill_alpha(A, [](uint8_t a) { return a; });
    if (p.format == YuvPicture::k400) return libyuv_grey(k, Y, w, h, rgb);
    return libyuv_8bit(p, k, rgb);
  }
  const View<uint16_t> Y{static_cast<const uint16_t*>(p.planes[0]), p.strides[0]};
  const View<uint16_t> U{static_cast<const uint16_t*>(p.planes[1]), p.strides[1]};
  const View<uint16_t> V{static_cast<const uint16_t*>(p.planes[2]), p.strides[2]};
  const View<uint16_t> A{static_cast<const uint16_t*>(p.planes[3]), p.strides[3]};
  const int depth = p.depth;
  if (p.format == YuvPicture::k400) {  // grey on luma cut to 8 bits; libavif's alpha
    fill_alpha(A, [depth](uint16_t a) { return alpha_to_8(a, depth); });
    return libyuv_grey(k, downshift(Y, w, h, depth).view(), w, h, rgb);
  }
  if (depth == 10) {  // I410/I210/I010 with alpha: 10-bit luma, chroma upsampled at 10 bits
    fill_alpha(A, [](uint16_t a) { return clamp255(a >> 2); });
    return libyuv_convert<10>(k, Y, U, V, true, p.format, w, h, rgb);
  }
  if (p.format == YuvPicture::k420) {  // I012ToARGB: nearest chroma at 12 bits; libavif's alpha
    fill_alpha(A, [depth](uint16_t a) { return alpha_to_8(a, depth); });
    return libyuv_convert<12>(k, Y, U, V, false, p.format, w, h, rgb);
  }
  // 12-bit 4:4:4 and 4:2:2: every plane, alpha too, cut to 8 bits, then the 8-bit alpha functions.
  fill_alpha(A, [](uint16_t a) { return clamp255(a >> 4); });
  libyuv_8bit(p, k, rgb);
}

// libavif's alpha for an RGBA destination it converts itself (avifReformatAlpha).
std::vector<uint8_t> reformat_alpha(const YuvPicture& p) {
  std::vector<uint8_t> alpha(static_cast<size_t>(p.width) * p.height);
  for (int j = 0; j < p.height; ++j) {
    for (int i = 0; i < p.width; ++i) {
      alpha[static_cast<size_t>(j) * p.width + i] = alpha_to_8(sample(p, 3, i, j), p.depth);
    }
  }
  return alpha;
}

}  // namespace

bool set_yuv_simd(bool enabled) { return g_simd.exchange(enabled); }

std::string yuv_to_rgb(const YuvPicture& p, ImageU8& out, std::vector<uint8_t>* alpha_out) {
  State st;
  if (std::string why = prepare(p, st); !why.empty()) return why;
  const int w = p.width, h = p.height;
  out.width = w;
  out.height = h;
  out.rgb.assign(static_cast<size_t>(3) * w * h, 0);
  uint8_t* rgb = out.rgb.data();
  const bool has_alpha = p.planes[3] != nullptr;
  if (alpha_out) alpha_out->clear();
  if (p.format == YuvPicture::k400 && !has_alpha) {  // GRAY: clamp((s - bias) / range), to 8 bits
    const int bias = static_cast<int>(st.bias_y), range = static_cast<int>(st.range_y);
    for (int j = 0; j < h; ++j) {
      for (int i = 0; i < w; ++i, rgb += 3) {
        const int s = static_cast<int>(std::min(sample(p, 0, i, j), st.max));
        rgb[0] = rgb[1] = rgb[2] = scale_to_255(static_cast<uint32_t>(std::clamp(s - bias, 0, range)), range);
      }
    }
    return "";
  }
  bool unmultiply = has_alpha && p.alpha_premultiplied;
  std::vector<uint8_t> alpha;
  if (const Constants* k = libyuv_constants(p)) {
    if (has_alpha) {
      libyuv_rgba(p, *k, rgb, alpha);
    } else {
      libyuv_8bit(p, *k, rgb);
    }
  } else {
    if (has_alpha) alpha = reformat_alpha(p);
    unmultiply = p.depth == 8 ? builtin<uint8_t>(p, st, unmultiply, rgb) : builtin<uint16_t>(p, st, unmultiply, rgb);
  }
  if (unmultiply) {
    for (size_t px = 0; px < alpha.size(); ++px) {
      for (int c = 0; c < 3; ++c) out.rgb[px * 3 + c] = unattenuate(out.rgb[px * 3 + c], alpha[px]);
    }
  }
  if (alpha_out) *alpha_out = std::move(alpha);
  return "";
}

}  // namespace lcam
