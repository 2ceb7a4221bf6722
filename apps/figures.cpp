// figures.cpp — see figures.h.
#include "apps/figures.h"

#include <algorithm>  // std::clamp
#include <cmath>      // std::fabs, std::lround

namespace lcam::app {

void jet(float v, uint8_t rgb[3]) {
  v = std::clamp(v, 0.f, 1.f);
  auto ch = [&](float center) { return std::clamp(1.5f - std::fabs(4.f * v - center), 0.f, 1.f); };
  rgb[0] = static_cast<uint8_t>(std::lround(255.f * ch(3.f)));
  rgb[1] = static_cast<uint8_t>(std::lround(255.f * ch(2.f)));
  rgb[2] = static_cast<uint8_t>(std::lround(255.f * ch(1.f)));
}

ImageU8 to_image(const float* chw, int h, int w) {
  ImageU8 img;
  img.width = w, img.height = h;
  img.rgb.resize(static_cast<size_t>(3) * w * h);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < h * w; ++i)
      img.rgb[static_cast<size_t>(i) * 3 + c] =
          static_cast<uint8_t>(std::lround(255.f * std::clamp(chw[static_cast<size_t>(c) * h * w + i], 0.f, 1.f)));
  return img;
}

ImageU8 overlay(const ImageU8& img, const float* sm, float alpha) {
  ImageU8 out = img;
  for (int i = 0; i < img.width * img.height; ++i) {
    uint8_t heat[3];
    jet(sm[i], heat);
    for (int c = 0; c < 3; ++c) {
      const float v = alpha * heat[c] + (1.f - alpha) * img.rgb[static_cast<size_t>(i) * 3 + c];
      out.rgb[static_cast<size_t>(i) * 3 + c] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.f, 255.f)));
    }
  }
  return out;
}

}  // namespace lcam::app
