// figures.cpp — see figures.h.
#include "apps/figures.h"

#include <algorithm>  // std::clamp
#include <cmath>      // std::fabs, std::lround
#include <cstring>    // std::memcpy (the font quads' corners)

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
  // It stops silently when the buffer is full: grow it until the last quad fits with room left.
  std::string t = text;
  std::vector<char> buf(static_cast<size_t>(text.size()) * 512 + 64);
  int quads = 0;
  for (;;) {
    quads = stb_easy_font_print(0, 0, t.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
    if (static_cast<size_t>(quads + 1) * 64 <= buf.size()) break;
    buf.resize(buf.size() * 2);
  }
  for (int q = 0; q < quads; ++q) {
    // A quad is 4 vertices of 16 bytes (x, y, z as floats, then a colour): corners 0 and 2.
    float v0[2], v2[2];
    std::memcpy(v0, buf.data() + q * 64, sizeof v0);
    std::memcpy(v2, buf.data() + q * 64 + 32, sizeof v2);
    const int x0 = x + static_cast<int>(v0[0] * scale), y0 = y + static_cast<int>(v0[1] * scale);
    const int x1 = x + static_cast<int>(v2[0] * scale), y1 = y + static_cast<int>(v2[1] * scale);
    for (int py = std::max(0, y0); py < std::min(img.height, y1); ++py)
      for (int px = std::max(0, x0); px < std::min(img.width, x1); ++px)
        for (int c = 0; c < 3; ++c) img.rgb[(static_cast<size_t>(py) * img.width + px) * 3 + c] = rgb[c];
  }
}

ImageU8 grid_figure(const std::vector<GridColumn>& columns, const std::vector<std::string>& methods) {
  // Cells smaller than 160 px (the demo's 112-px scenes) are enlarged by an integer factor,
  // nearest neighbour, so that the pixels stay what the network saw and captions fit.
  const int src = columns.empty() ? 224 : columns[0].image.width;
  const int zoom = std::max(1, (160 + src - 1) / src), cell = src * zoom;
  const int gap = 6, label_w = 130, caption_h = 34;
  const int cols = static_cast<int>(columns.size()), rows = static_cast<int>(methods.size());
  ImageU8 page;
  page.width = label_w + cols * (cell + gap) + gap;
  page.height = gap + cell + caption_h + rows * (cell + gap);
  page.rgb.assign(static_cast<size_t>(page.width) * page.height * 3, 255);
  const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
  auto put = [&](int x, int y, const uint8_t* c) {
    if (x >= 0 && y >= 0 && x < page.width && y < page.height)
      for (int k = 0; k < 3; ++k) page.rgb[(static_cast<size_t>(y) * page.width + x) * 3 + k] = c[k];
  };
  auto paste = [&](const ImageU8& im, int x0, int y0, const Box& box) {
    for (int y = 0; y < im.height * zoom; ++y)
      for (int x = 0; x < im.width * zoom; ++x) put(x0 + x, y0 + y, &im.rgb[(static_cast<size_t>(y / zoom) * im.width + x / zoom) * 3]);
    if (box.x1 <= box.x0 || box.y1 <= box.y0) return;
    const int bx0 = x0 + box.x0 * zoom, by0 = y0 + box.y0 * zoom, bx1 = x0 + box.x1 * zoom - 1, by1 = y0 + box.y1 * zoom - 1;
    for (int x = bx0; x <= bx1; ++x) put(x, by0, white), put(x, by1, white);
    for (int y = by0; y <= by1; ++y) put(bx0, y, white), put(bx1, y, white);
  };
  for (int j = 0; j < cols; ++j) {
    const int x0 = label_w + gap + j * (cell + gap);
    paste(columns[j].image, x0, gap, columns[j].box);
    std::string cap = columns[j].caption;
    const size_t fit = static_cast<size_t>(cell / 12);  // characters of about 12 px at scale 2
    if (cap.size() > fit) cap = cap.substr(0, fit - 1) + ".";
    draw_text(page, x0 + 2, gap + cell + 8, cap, 2, black);
    for (int i = 0; i < rows && i < static_cast<int>(columns[j].overlays.size()); ++i)
      paste(columns[j].overlays[i], x0, gap + cell + caption_h + i * (cell + gap), columns[j].box);
  }
  for (int i = 0; i < rows; ++i) draw_text(page, 8, gap + cell + caption_h + i * (cell + gap) + cell / 2 - 8, methods[i], 2, black);
  return page;
}

}  // namespace lcam::app
