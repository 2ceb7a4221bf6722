// scenes.cpp — see scenes.h.
#include "loaders/scenes.h"

#include <algorithm>  // std::clamp, std::min, std::max
#include <random>     // std::mt19937_64, distributions

#include "kernels/bodies.h"  // kern::splitmix64
#include "engine/common.h"  // InputError

namespace lcam {
namespace {


// One Fashion-MNIST item as an RGB image (grey ink replicated), resized with Pillow's filter.
ImageU8 item_image(const FashionMnist& fm, int64_t i, int side) {
  ImageU8 g;
  g.width = fm.cols, g.height = fm.rows;
  g.rgb.resize(static_cast<size_t>(3) * fm.rows * fm.cols);
  const uint8_t* src = fm.images.data() + i * fm.rows * fm.cols;
  for (int p = 0; p < fm.rows * fm.cols; ++p) g.rgb[3 * p] = g.rgb[3 * p + 1] = g.rgb[3 * p + 2] = src[p];
  return side == fm.cols && side == fm.rows ? g : resize_bilinear_pil(g, side, side);
}

// Alpha-composites ink (0..255, channel 0 of `ink`) tinted `color` onto `img` at (x, y), with
// the ink scaled by `opacity`.
void composite(ImageU8& img, const ImageU8& ink, int x, int y, const float color[3], float opacity) {
  for (int r = 0; r < ink.height; ++r)
    for (int c = 0; c < ink.width; ++c) {
      const int px = x + c, py = y + r;
      if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
      const float a = opacity * ink.rgb[3 * (static_cast<size_t>(r) * ink.width + c)] / 255.f;
      uint8_t* d = &img.rgb[3 * (static_cast<size_t>(py) * img.width + px)];
      for (int k = 0; k < 3; ++k) d[k] = static_cast<uint8_t>(std::clamp(d[k] * (1.f - a) + color[k] * a + 0.5f, 0.f, 255.f));
    }
}

}  // namespace

Scene make_scene(const FashionMnist& fm, int64_t index, const SceneOptions& o) {
  if (fm.count <= 0) throw InputError("scenes: no Fashion-MNIST items loaded");
  if (o.size < 16 || o.min_item < 8 || o.max_item < o.min_item || o.max_item > o.size)
    throw InputError("scenes: need 16 <= size, 8 <= min_item <= max_item <= size");
  std::mt19937_64 rng(kern::splitmix64(o.seed ^ kern::splitmix64(static_cast<uint64_t>(index) + 1)));
  std::uniform_real_distribution<float> u(0.f, 1.f);
  auto color = [&](float lo, float hi, float out[3]) {
    for (int k = 0; k < 3; ++k) out[k] = 255.f * (lo + (hi - lo) * u(rng));
  };
  Scene s;
  s.image.width = s.image.height = o.size;
  s.image.rgb.resize(static_cast<size_t>(3) * o.size * o.size);
  // Background: a linear gradient between two dull colours, in a random direction.
  float c0[3], c1[3];
  color(0.05f, 0.55f, c0);
  color(0.05f, 0.55f, c1);
  const bool vertical = u(rng) < 0.5f;
  for (int y = 0; y < o.size; ++y)
    for (int x = 0; x < o.size; ++x) {
      const float t = static_cast<float>(vertical ? y : x) / static_cast<float>(o.size - 1);
      for (int k = 0; k < 3; ++k) s.image.rgb[3 * (static_cast<size_t>(y) * o.size + x) + k] = static_cast<uint8_t>(c0[k] * (1 - t) + c1[k] * t + 0.5f);
    }
  // Clutter: thin lines and hollow rectangles.
  for (int i = 0; i < o.clutter; ++i) {
    float c[3];
    color(0.2f, 0.9f, c);
    ImageU8 ink;
    const int w = 4 + static_cast<int>(u(rng) * o.size / 2), h = 4 + static_cast<int>(u(rng) * o.size / 2);
    ink.width = w, ink.height = h;
    ink.rgb.assign(static_cast<size_t>(3) * w * h, 0);
    const bool line = u(rng) < 0.5f;
    for (int r = 0; r < h; ++r)
      for (int q = 0; q < w; ++q) {
        const bool on = line ? (std::abs(r * w - q * h) < std::max(w, h)) : (r == 0 || q == 0 || r == h - 1 || q == w - 1);
        if (on) ink.rgb[3 * (static_cast<size_t>(r) * w + q)] = 255;
      }
    composite(s.image, ink, static_cast<int>(u(rng) * (o.size - w)), static_cast<int>(u(rng) * (o.size - h)), c, 0.6f);
  }
  // Fragments of other items: a random quarter-to-half crop, scaled, fainter.
  for (int i = 0; i < o.fragments; ++i) {
    const int64_t j = static_cast<int64_t>(kern::splitmix64(rng()) % static_cast<uint64_t>(fm.count));
    const int side = std::max(12, static_cast<int>(o.min_item * (0.4f + 0.4f * u(rng))));
    const ImageU8 full = item_image(fm, j, side * 2);
    const ImageU8 part = crop(full, static_cast<int>(u(rng) * side), static_cast<int>(u(rng) * side), side, side);
    float c[3];
    color(0.3f, 1.f, c);
    composite(s.image, part, static_cast<int>(u(rng) * (o.size - side)), static_cast<int>(u(rng) * (o.size - side)), c, 0.7f);
  }
  // The main item, on top.
  s.item = static_cast<int64_t>(kern::splitmix64(rng()) % static_cast<uint64_t>(fm.count));
  s.label = fm.labels[s.item];
  const int side = o.min_item + static_cast<int>(u(rng) * (o.max_item - o.min_item + 1));
  const int sd = std::min(side, o.max_item);
  const ImageU8 ink = item_image(fm, s.item, sd);
  const int x = static_cast<int>(u(rng) * (o.size - sd + 1)), y = static_cast<int>(u(rng) * (o.size - sd + 1));
  float c[3];
  color(0.55f, 1.f, c);
  composite(s.image, ink, x, y, c, 1.f);
  s.x0 = s.y0 = o.size, s.x1 = s.y1 = 0;
  for (int r = 0; r < sd; ++r)
    for (int q = 0; q < sd; ++q)
      if (ink.rgb[3 * (static_cast<size_t>(r) * sd + q)] > 25) {
        s.x0 = std::min(s.x0, x + q), s.y0 = std::min(s.y0, y + r);
        s.x1 = std::max(s.x1, x + q + 1), s.y1 = std::max(s.y1, y + r + 1);
      }
  if (s.x1 <= s.x0) s.x0 = x, s.y0 = y, s.x1 = x + sd, s.y1 = y + sd;  // an (unlikely) inkless item
  // Sensor noise.
  std::normal_distribution<float> n(0.f, o.noise);
  if (o.noise > 0)
    for (auto& v : s.image.rgb) v = static_cast<uint8_t>(std::clamp(v + n(rng) + 0.5f, 0.f, 255.f));
  return s;
}

}  // namespace lcam
