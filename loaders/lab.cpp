// lab.cpp — CIE L*a*b* to RGB as Pillow's convert("RGB") does it for a LAB image: through
// littleCMS, with the transform Pillow builds (ImageCms.createProfile("LAB") — D50 — to
// createProfile("sRGB"), perceptual intent, no flags), reading Pillow's LAB pixels (L, a, b and a
// pad byte, a and b offset by 128: littleCMS's 8-bit Lab) and writing RGBA of which RGB is kept.
// Debian's littleCMS 2.14 and the 2.19 of Pillow 13's wheel give the same bytes for all 2^24
// Lab values.
#include <lcms2.h>  // cmsCreateTransform, cmsDoTransform

#include <algorithm>  // std::min
#include <cstdint>  // uint8_t
#include <new>      // std::bad_alloc
#include <vector>   // std::vector

#include "loaders/image.h"  // the declaration implemented here

namespace lcam {
namespace {

// One transform for the process: littleCMS transforms may be shared by threads.
cmsHTRANSFORM lab_transform() {
  static const cmsHTRANSFORM t = [] {
    cmsHPROFILE lab = cmsCreateLab2Profile(nullptr), srgb = cmsCreate_sRGBProfile();
    // Pillow's LAB format: "LabX", 8 bits, version 2 encoding (findLCMStype)
    const cmsUInt32Number labx = COLORSPACE_SH(PT_LabV2) | CHANNELS_SH(3) | BYTES_SH(1) | EXTRA_SH(1);
    cmsHTRANSFORM x = lab && srgb ? cmsCreateTransform(lab, labx, srgb, TYPE_RGBA_8, INTENT_PERCEPTUAL, 0) : nullptr;
    if (lab) cmsCloseProfile(lab);
    if (srgb) cmsCloseProfile(srgb);
    return x;
  }();
  if (!t) throw std::bad_alloc();
  return t;
}

}  // namespace

void lab_to_rgb(const uint8_t* labx, size_t pixels, uint8_t* rgb) {
  const cmsHTRANSFORM t = lab_transform();
  constexpr size_t kChunk = 1 << 16;
  std::vector<uint8_t> rgba(std::min(pixels, kChunk) * 4);
  for (size_t at = 0; at < pixels; at += kChunk) {
    const size_t k = std::min(kChunk, pixels - at);
    cmsDoTransform(t, labx + 4 * at, rgba.data(), static_cast<cmsUInt32Number>(k));
    for (size_t i = 0; i < k; ++i)
      rgb[3 * (at + i)] = rgba[4 * i], rgb[3 * (at + i) + 1] = rgba[4 * i + 1], rgb[3 * (at + i) + 2] = rgba[4 * i + 2];
  }
}

}  // namespace lcam
