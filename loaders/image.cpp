// image.cpp — stb_image decoding with one-line errors, Pillow's antialiased bilinear resampling
// re-derived for 8-bit RGB, and the torchvision eval transforms (Resize, CenterCrop, ToTensor).
// Deliberately omits: Pillow's other filters and box (region) argument, the `reducing_gap`
// shortcut (torchvision does not use it), modes other than RGB, and any threading: callers decode
// different images on different threads (stb_image keeps its failure reason thread-local).

#include "loaders/image.h"

#include <stb_image.h>        // stbi_info_from_memory, stbi_load_from_memory, stbi_failure_reason
#include <stb_image_write.h>  // stbi_write_png_to_func

#include <algorithm>     // std::min, std::max, std::copy_n, std::fill
#include <cerrno>        // errno after a failed open
#include <cmath>         // std::ceil
#include <cstdio>        // std::rename, std::remove
#include <filesystem>    // std::filesystem::status, is_directory
#include <fstream>       // std::ifstream, std::ofstream
#include <system_error>  // std::error_code, std::generic_category

#include "engine/common.h"  // InputError, LCAM_REQUIRE

namespace lcam {
namespace {

// Pillow's Image.MAX_IMAGE_PIXELS is 89478485 and it refuses images of more than twice that.
constexpr long long kMaxPixels = 2LL * 89478485LL;

[[noreturn]] void fail(const std::string& name, const std::string& reason) {
  throw InputError(name + ": " + reason);
}

// ---- Pillow's resampling (src/libImaging/Resample.c), bilinear filter, 8 bits per channel ----

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Per output position: the first input index, the number of taps, and `ksize` fixed-point
// weights (unused tail zero).
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

// Weights for resampling in_size samples to out_size over the whole input (Pillow's box from 0 to
// in_size; both are floats there, exact for any realistic size).
Coeffs precompute_coeffs(int in_size, int out_size) {
  const double support_base = 1.0;  // bilinear
  double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = support_base * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;  // Pillow adds the box origin, 0 here
    double ss = 1.0 / filterscale;
    // C casts truncate toward zero; a negative xmin is clamped to 0 anyway.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
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
    int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      double scaled = v * (1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t ss) {
  int32_t v = ss >> kPrecisionBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Horizontal pass over every row: in (in_w x h) -> out (out_w x h).
ImageU8 resample_horizontal(const ImageU8& in, int out_w) {
  const Coeffs c = precompute_coeffs(in.width, out_w);
  ImageU8 out;
  out.width = out_w;
  out.height = in.height;
  out.rgb.resize(static_cast<size_t>(out_w) * in.height * 3);
  const size_t in_stride = static_cast<size_t>(in.width) * 3;
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.rgb.data() + y * in_stride;
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(y) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      const uint8_t* p = src + static_cast<size_t>(c.first[xx]) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < c.count[xx]; ++x) {
        s0 += p[3 * x + 0] * k[x];
        s1 += p[3 * x + 1] * k[x];
        s2 += p[3 * x + 2] * k[x];
      }
      dst[3 * xx + 0] = clip8(s0);
      dst[3 * xx + 1] = clip8(s1);
      dst[3 * xx + 2] = clip8(s2);
    }
  }
  return out;
}

// Vertical pass: in (w x in_h) -> out (w x out_h). Accumulates whole rows so the inner loop runs
// over contiguous samples; the sum per sample is the same as Pillow's tap-by-tap order (integer
// arithmetic, no overflow: weights are non-negative and sum to about 2^22).
ImageU8 resample_vertical(const ImageU8& in, int out_h) {
  const Coeffs c = precompute_coeffs(in.height, out_h);
  ImageU8 out;
  out.width = in.width;
  out.height = out_h;
  const size_t row = static_cast<size_t>(in.width) * 3;
  out.rgb.resize(row * out_h);
  std::vector<int32_t> acc(row);
  for (int yy = 0; yy < out_h; ++yy) {
    std::fill(acc.begin(), acc.end(), int32_t{1} << (kPrecisionBits - 1));
    const int32_t* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.rgb.data() + static_cast<size_t>(c.first[yy] + y) * row;
      const int32_t ky = k[y];
      for (size_t i = 0; i < row; ++i) acc[i] += src[i] * ky;
    }
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(yy) * row;
    for (size_t i = 0; i < row; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

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

ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "empty file, not an image");
  if (size > static_cast<size_t>(INT32_MAX)) fail(name, "file too large to decode");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    fail(name, std::string("not a decodable image (") + (why ? why : "unknown format") + ")");
  }
  if (static_cast<long long>(w) * h > kMaxPixels)
    fail(name, "image too large (" + std::to_string(w) + "x" + std::to_string(h) + " pixels)");
  unsigned char* px = stbi_load_from_memory(data, len, &w, &h, &comp, 3);
  if (!px) {
    const char* why = stbi_failure_reason();
    fail(name, std::string("corrupt or truncated image (") + (why ? why : "decode failed") + ")");
  }
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.assign(px, px + static_cast<size_t>(w) * h * 3);
  stbi_image_free(px);
  return img;
}

ImageU8 decode_image(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::string reason;
  if (!read_file(path, bytes, reason)) fail(path, reason);
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

ImageU8 resize_bilinear_pil(const ImageU8& img, int out_w, int out_h) {
  check_image(img, "resize_bilinear_pil");
  LCAM_REQUIRE(out_w > 0 && out_h > 0,
               "resize to " + std::to_string(out_w) + "x" + std::to_string(out_h));
  // Pillow: same size -> copy; otherwise horizontal pass if the width changes, then vertical
  // pass if the height changes. (Pillow runs the horizontal pass only over the rows the vertical
  // pass reads; rows are independent, so that is the same as doing them all.)
  if (out_w == img.width && out_h == img.height) return img;
  if (out_w == img.width) return resample_vertical(img, out_h);
  ImageU8 tmp = resample_horizontal(img, out_w);
  if (out_h == img.height) return tmp;
  return resample_vertical(tmp, out_h);
}

ImageU8 resize_shorter_side(const ImageU8& img, int size) {
  check_image(img, "resize_shorter_side");
  LCAM_REQUIRE(size > 0, "resize_shorter_side to " + std::to_string(size));
  const int w = img.width, h = img.height;
  const long long shorter = std::min(w, h), longer = std::max(w, h);
  // Python: int(size * long / short), a true division in double precision, then truncation.
  const int new_long =
      static_cast<int>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return w <= h ? resize_bilinear_pil(img, size, new_long) : resize_bilinear_pil(img, new_long, size);
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
    out[i] = img.rgb[3 * i + 0] / 255.f;
    out[plane + i] = img.rgb[3 * i + 1] / 255.f;
    out[2 * plane + i] = img.rgb[3 * i + 2] / 255.f;
  }
}

void load_eval_image(const std::string& path, float* out, int resize, int crop_size) {
  ImageU8 img = decode_image(path);
  img = resize_shorter_side(img, resize);
  img = center_crop(img, crop_size);
  to_chw_float(img, out);
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
    fail(path, "PNG encoding failed");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(path, "cannot open " + tmp + " for writing");
    f.write(reinterpret_cast<const char*>(encoded.data()),
            static_cast<std::streamsize>(encoded.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      fail(path, "write error on " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename " + tmp + " to the final name");
  }
}

}  // namespace lcam
