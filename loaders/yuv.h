// yuv.h — an AV1 picture's Y, U, V (and alpha) planes to 8-bit RGB as libavif 1.4 with libyuv
// converts them for Pillow 13 (avifImageYUVToRGB at 8 bits: RGBA when there is alpha, grey for
// 4:0:0, RGB otherwise), then convert("RGB"). loaders/yuv.cpp lists the rules. Kept apart from
// the AVIF container (loaders/avif.cpp) so that it does not depend on the libavif lcam runs with,
// whose own conversion differs by version.
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // uint8_t
#include <string>   // std::string
#include <vector>   // std::vector

#include "loaders/image.h"  // ImageU8

namespace lcam {

struct YuvPicture {
  enum Format { k444, k422, k420, k400 };
  int width = 0, height = 0;
  int depth = 8;  // 8, 10 or 12; samples of 10 and 12 bits are uint16_t
  Format format = k420;
  bool full_range = true;
  int matrix = 2, primaries = 2;  // ITU-T H.273 MatrixCoefficients and ColourPrimaries
  // Y, U, V, alpha: the first sample of each and the distance between rows, in samples. U and
  // V have (width + 1) / 2 columns for 4:2:2 and 4:2:0 and (height + 1) / 2 rows for 4:2:0; they
  // are unused for 4:0:0. Alpha (nullptr for none) is at the picture's size and depth.
  const void* planes[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t strides[4] = {0, 0, 0, 0};
  bool alpha_premultiplied = false;
};

// The RGB Pillow 13 gets from the picture. Returns an empty string, or libavif's reason for
// refusing the conversion (a matrix it does not convert: BT.2020 constant luminance, SMPTE 2085,
// chromaticity-derived constant luminance, ICtCp, reserved values, YCgCo at limited range or
// YCgCo-R at a depth it does not fit, the identity matrix with subsampled chroma).
// With `alpha`, also the 8-bit alpha of the RGBA output when the picture has alpha (empty
// otherwise).
std::string yuv_to_rgb(const YuvPicture& picture, ImageU8& out, std::vector<uint8_t>* alpha = nullptr);

// Whether the AVX2 build of libyuv's pixel row may run where the CPU has it (default true; the
// same bytes either way). Returns the previous setting; for tests that compare the two.
bool set_yuv_simd(bool enabled);

}  // namespace lcam
