// figures.cpp — see figures.h.
#include "apps/figures.h"

#include <algorithm>  // std::clamp
#include <cmath>      // std::fabs, std::lround

#include <stb_easy_font.h>  // stb_easy_font_print (quads of a bitmap font)

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

void draw_text(ImageU8& img, int x, int y, const std::string& text, int scale, const uint8_t rgb[3]) {
  // stb_easy_font emits axis-aligned quads: 4 vertices of (x, y, z, rgba), 16 bytes each.
  std::vector<char> buf(static_cast<size_t>(text.size()) * 270 + 64);
  std::string t = text;
  const int quads = stb_easy_font_print(0, 0, t.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
  for (int q = 0; q < quads; ++q) {
    const float* v0 = reinterpret_cast<const float*>(buf.data() + q * 64);
    const float* v2 = reinterpret_cast<const float*>(buf.data() + q * 64 + 32);
    const int x0 = x + static_cast<int>(v0[0] * scale), y0 = y + static_cast<int>(v0[1] * scale);
    const int x1 = x + static_cast<int>(v2[0] * scale), y1 = y + static_cast<int>(v2[1] * scale);
    for (int py = std::max(0, y0); py < std::min(img.height, y1); ++py)
      for (int px = std::max(0, x0); px < std::min(img.width, x1); ++px)
        for (int c = 0; c < 3; ++c) img.rgb[(static_cast<size_t>(py) * img.width + px) * 3 + c] = rgb[c];
  }
}

ImageU8 grid_figure(const std::vector<GridColumn>& columns, const std::vector<std::string>& methods) {
  const int cell = columns.empty() ? 224 : columns[0].image.width, gap = 6, label_w = 130, caption_h = 34;
  const int cols = static_cast<int>(columns.size()), rows = static_cast<int>(methods.size());
  ImageU8 page;
  page.width = label_w + cols * (cell + gap) + gap;
  page.height = gap + cell + caption_h + rows * (cell + gap);
  page.rgb.assign(static_cast<size_t>(page.width) * page.height * 3, 255);
  const uint8_t black[3] = {0, 0, 0};
  auto paste = [&](const ImageU8& im, int x0, int y0) {
    for (int y = 0; y < im.height && y0 + y < page.height; ++y)
      for (int x = 0; x < im.width && x0 + x < page.width; ++x)
        for (int c = 0; c < 3; ++c)
          page.rgb[(static_cast<size_t>(y0 + y) * page.width + x0 + x) * 3 + c] = im.rgb[(static_cast<size_t>(y) * im.width + x) * 3 + c];
  };
  for (int j = 0; j < cols; ++j) {
    const int x0 = label_w + gap + j * (cell + gap);
    paste(columns[j].image, x0, gap);
    std::string cap = columns[j].caption;
    const size_t fit = static_cast<size_t>(cell / 12);  // characters of about 12 px at scale 2
    if (cap.size() > fit) cap = cap.substr(0, fit - 1) + ".";
    draw_text(page, x0 + 2, gap + cell + 8, cap, 2, black);
    for (int i = 0; i < rows && i < static_cast<int>(columns[j].overlays.size()); ++i)
      paste(columns[j].overlays[i], x0, gap + cell + caption_h + i * (cell + gap));
  }
  for (int i = 0; i < rows; ++i) draw_text(page, 8, gap + cell + caption_h + i * (cell + gap) + cell / 2 - 8, methods[i], 2, black);
  return page;
}

}  // namespace lcam::app
