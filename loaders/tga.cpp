// tga.cpp — Targa images decoded as Pillow 13's TgaImagePlugin (the raw decoder, or
// TgaRleDecode.c) reads them, then convert("RGB"): the same pixels and the same refusals.
// Pillow's rules, mirrored here:
// - an 18-byte header: a colour map type of 0 or 1, a width and height above 0 and a depth of
//   1, 8, 16, 24 or 32, or the file is not a TGA. Image types 1/9 (colour-mapped), 2/10
//   (true colour) and 3/11 (grey; 9-11 run-length encoded); then the ID field.
// - pixel layouts: colour-mapped 8 bits; grey 1 (bits, most significant first), 8, or 16 (grey,
//   alpha); true colour 16 (5-5-5, each channel v * 255 / 31), 24 (BGR) or 32 (BGRA). Any other
//   pair of type and depth is refused ("cannot load this image"), as is a colour-mapped type
//   without a colour map.
// - a colour map (entries of 16, 24 or 32 bits; others refused) is preceded by `first index`
//   black entries, at most 256 in all. It colours grey and grey-alpha images as well (Pillow
//   puts the palette on them), and indices past it are black; a true-colour or 1-bit image with
//   a colour map is refused.
// - rows bottom-up unless bit 5 of the descriptor is set, then mirrored when bit 4 is set.
// - raw rows are contiguous, the last one whole; RLE as TgaRleDecode.c: a run may not cross the
//   end of a row ("buffer overrun"), a literal may; data after the last pixel is ignored, data
//   ending before it is truncated. 1-bit RLE is always refused (Pillow's decoder then advances
//   no pixel).
// - an RGBA image (true colour at 16 or 32 bits) in a file shorter than 26 bytes is refused:
//   Pillow seeks there for the TGA 2.0 footer.
// Deliberately omits: the footer's alpha attribute, which only concerns the alpha channel that
// convert("RGB") drops.
#include <algorithm>  // std::min
#include <array>      // std::array
#include <cstdint>    // uint8_t, uint32_t
#include <cstring>    // std::memcpy, std::memset
#include <string>     // std::string
#include <utility>    // std::swap
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, le16, the declarations implemented here

namespace lcam {
namespace {

// A 5-5-5 value (Pillow's BGR;15 / BGRA;15Z) as RGB.
void rgb555(uint32_t v, uint8_t* out) {
  out[0] = static_cast<uint8_t>(((v >> 10) & 31) * 255 / 31);
  out[1] = static_cast<uint8_t>(((v >> 5) & 31) * 255 / 31);
  out[2] = static_cast<uint8_t>((v & 31) * 255 / 31);
}

}  // namespace

bool is_tga(const uint8_t* d, size_t n) {
  if (n < 18) return false;
  const uint32_t depth = d[16];
  return d[1] <= 1 && le16(d + 12) > 0 && le16(d + 14) > 0 &&
         (depth == 1 || depth == 8 || depth == 16 || depth == 24 || depth == 32);
}

ImageU8 decode_tga_memory(const uint8_t* d, size_t n, const std::string& name) {
  if (!is_tga(d, n)) fail_decode(name, "not a TGA file");
  const int id_len = d[0], map_type = d[1], type = d[2], depth = d[16], flags = d[17];
  const size_t w = le16(d + 12), h = le16(d + 14);
  if (type != 1 && type != 2 && type != 3 && type != 9 && type != 10 && type != 11)
    fail_decode(name, "unknown TGA image type (" + std::to_string(type) + ")");
  enum class Kind { kIndex, kGrey, kGreyAlpha, kBits, kRgb15, kBgr, kBgra } kind;
  switch ((type & 7) * 100 + depth) {
    case 108: kind = Kind::kIndex; break;
    case 301: kind = Kind::kBits; break;
    case 308: kind = Kind::kGrey; break;
    case 316: kind = Kind::kGreyAlpha; break;
    case 216: kind = Kind::kRgb15; break;
    case 224: kind = Kind::kBgr; break;
    case 232: kind = Kind::kBgra; break;
    default:
      fail_decode(name, "cannot load this image (TGA image type " + std::to_string(type) + " at " + std::to_string(depth) +
                     " bits per pixel)");
  }
  const bool rle = (type & 8) != 0;
  if (w * h > static_cast<size_t>(kMaxImagePixels))
    fail_decode(name, "image too large (" + std::to_string(w) + "x" + std::to_string(h) + " pixels)");
  size_t pos = 18 + static_cast<size_t>(id_len);
  // The colour map: `first` black entries, then the file's.
  std::array<std::array<uint8_t, 3>, 256> palette{};
  const bool mapped = map_type == 1;
  if (mapped) {
    const size_t first = le16(d + 3), size = le16(d + 5), entry_bits = d[7];
    if (entry_bits != 16 && entry_bits != 24 && entry_bits != 32)
      fail_decode(name, "unknown TGA colour map depth (" + std::to_string(entry_bits) + ")");
    if (kind != Kind::kIndex && kind != Kind::kGrey && kind != Kind::kGreyAlpha)
      fail_decode(name, "a colour map on a TGA image without palette indices or grey levels (Pillow: unrecognized image mode)");
    const size_t bytes = entry_bits / 8;
    const size_t got = pos < n ? std::min(bytes * size, n - pos) / bytes : 0;  // whole entries in the file
    if (first + got > 256) fail_decode(name, "invalid TGA palette size (" + std::to_string(first + got) + " colours, at most 256)");
    for (size_t i = 0; i < got; ++i) {
      const uint8_t* e = d + pos + i * bytes;
      if (bytes == 2) rgb555(le16(e), palette[first + i].data());
      else palette[first + i] = {e[2], e[1], e[0]};
    }
    pos += bytes * size;
  } else if (kind == Kind::kIndex) {
    fail_decode(name, "a colour-mapped TGA without a colour map (Pillow: unknown raw mode)");
  }
  const int pixel_bits = kind == Kind::kBits ? 1 : kind == Kind::kIndex || kind == Kind::kGrey ? 8 : kind == Kind::kBgr ? 24
                         : kind == Kind::kBgra ? 32 : 16;
  const size_t row_bytes = (w * static_cast<size_t>(pixel_bits) + 7) / 8;
  // Before the pixels are allocated: raw data must hold every row; a run-length packet writes
  // at most 128 pixels from 2 bytes, so fewer than w * h / 64 bytes cannot finish the image.
  if (!rle && (pos > n || row_bytes * h > n - pos)) fail_decode(name, "truncated image (the data ends before the last pixel)");
  if (rle && (pos > n || w * h > 64 * (n - pos)))
    fail_decode(name, "truncated or corrupt image (" + std::to_string(w) + "x" + std::to_string(h) + " pixels in " + std::to_string(n) + " bytes)");
  // The rows as stored, top row first once placed.
  std::vector<uint8_t> rows(row_bytes * h);
  const bool top_down = (flags & 0x20) != 0;
  auto row_at = [&](size_t k) { return &rows[(top_down ? k : h - 1 - k) * row_bytes]; };  // the k-th row in the file
  if (!rle) {
    for (size_t k = 0; k < h; ++k) std::memcpy(row_at(k), d + pos + k * row_bytes, row_bytes);
  } else {
    if (kind == Kind::kBits) fail_decode(name, "truncated image (1-bit TGA run-length data, which Pillow never decodes)");
    const size_t px = static_cast<size_t>(pixel_bits) / 8;
    size_t k = 0, x = 0;  // the row being filled and its bytes so far
    auto full = [&]() {   // x reached the end of the row: the next row
      if (x < row_bytes) return false;
      x = 0;
      return ++k == h;
    };
    for (bool done = false; !done;) {
      if (pos >= n) fail_decode(name, "truncated image (the data ends before the last pixel)");
      const uint8_t head = d[pos];
      size_t count = px * ((head & 0x7f) + 1);
      if (head & 0x80) {  // a run: one pixel repeated, within the row
        if (n - pos < 1 + px) fail_decode(name, "truncated image (the data ends before the last pixel)");
        if (x + count > row_bytes) fail_decode(name, "corrupt TGA (a run crosses the end of a row: buffer overrun)");
        uint8_t* out = row_at(k);
        for (size_t i = 0; i < count; i += px) std::memcpy(out + x + i, d + pos + 1, px);
        pos += 1 + px;
        x += count;
        done = full();
      } else {  // a literal: may go on into the following rows
        if (n - pos < 1 + count) fail_decode(name, "truncated image (the data ends before the last pixel)");
        const uint8_t* src = d + pos + 1;
        pos += 1 + count;
        while (count > 0 && !done) {
          const size_t take = std::min(count, row_bytes - x);
          std::memcpy(row_at(k) + x, src, take);
          src += take, count -= take, x += take;
          done = full();
        }
      }
    }
  }
  // Pillow then looks for the TGA 2.0 footer of an RGBA image 26 bytes before the end of the
  // file: a shorter file fails that seek.
  if ((kind == Kind::kRgb15 || kind == Kind::kBgra) && n < 26)
    fail_decode(name, "truncated TGA (an RGBA image in fewer than 26 bytes, where Pillow looks for the footer)");
  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(w * h * 3);
  for (size_t y = 0; y < h; ++y) {
    const uint8_t* in = &rows[y * row_bytes];
    uint8_t* out = &img.rgb[y * w * 3];
    for (size_t x = 0; x < w; ++x, out += 3) {
      switch (kind) {
        case Kind::kIndex:
          std::memcpy(out, palette[in[x]].data(), 3);
          break;
        case Kind::kGrey:
        case Kind::kGreyAlpha: {
          const uint8_t v = in[kind == Kind::kGrey ? x : 2 * x];
          if (mapped) std::memcpy(out, palette[v].data(), 3);
          else out[0] = out[1] = out[2] = v;
          break;
        }
        case Kind::kBits:
          out[0] = out[1] = out[2] = (in[x >> 3] >> (7 - (x & 7))) & 1 ? 255 : 0;
          break;
        case Kind::kRgb15:
          rgb555(le16(in + 2 * x), out);
          break;
        case Kind::kBgr:
        case Kind::kBgra: {
          const size_t s = kind == Kind::kBgr ? 3 : 4;
          out[0] = in[s * x + 2], out[1] = in[s * x + 1], out[2] = in[s * x];
          break;
        }
      }
    }
    if (flags & 0x10) {  // right to left: mirrored
      uint8_t* row = &img.rgb[y * w * 3];
      for (size_t a = 0, b = w - 1; a < b; ++a, --b)
        for (int c = 0; c < 3; ++c) std::swap(row[3 * a + c], row[3 * b + c]);
    }
  }
  return img;
}

}  // namespace lcam
