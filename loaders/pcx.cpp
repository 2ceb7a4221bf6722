// pcx.cpp — PCX (ZSoft Paintbrush) images decoded as Pillow 13's PcxImagePlugin and PcxDecode.c
// decode them, then convert("RGB"). Pillow's rules, mirrored here:
// - the header: 68 bytes (a shorter file, or a box whose right or bottom edge is not past its
//   left or top, is not a PCX to Pillow, which then tries its other formats: TGA can take it),
//   the size from the box; 1 bit in 1 plane (black and white), 1 bit in 2 or 4 planes (16-colour
//   palette from the header), version 5 with 8 bits in 1 plane (grey, or a palette where the
//   file ends in byte 12 and 768 palette bytes that are not the grey ramp) or in 3 planes (RGB);
//   any other layout is refused; grey and 8-bit palettes need a file of 769 bytes or more;
// - the stride: (width * bits + 7) / 8 bytes a plane, made even where the header's own value
//   differs (Pillow does not trust it);
// - the data from byte 128: runs (a byte with its two top bits set, then the value) and
//   literals filling one line of all planes at a time; a run past the line's end is cut there,
//   and then the whole image is refused (Pillow's decoder reports the overrun at its end); data
//   ending before the last line is refused (Pillow's default for truncated files);
// - the line: planes packed to their own width, then unpacked: bits most significant first,
//   1-bit planes combined into 2- or 4-bit indices, 3 planes of R, G and B;
// - convert("RGB"): black and white 0/255, palettes of len // 3 entries (black past them).
// DCX (DcxImagePlugin): a directory of frame offsets ended by 0, read to its end; the first frame
// is a PCX at its offset (its data 128 bytes on, an 8-bit palette still 769 bytes before the end
// of the file), any error of it leaving the file unread.
#include <algorithm>  // std::min
#include <cstdint>    // uint8_t, uint32_t
#include <cstring>    // std::memcpy, std::memmove
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, le16, the declarations implemented here

namespace lcam {

bool is_pcx(const uint8_t* d, size_t n) { return n >= 2 && d[0] == 10 && (d[1] == 0 || d[1] == 2 || d[1] == 3 || d[1] == 5); }

bool pcx_header_rejected(const uint8_t* d, size_t n) {
  if (n < 68) return true;  // struct.error or IndexError reading the header
  return le16(d + 8) + 1 <= le16(d + 4) || le16(d + 10) + 1 <= le16(d + 6);  // "bad PCX image size"
}

namespace {

// The PCX whose header starts at `base` (0, or a DCX frame's offset): its data from base + 128,
// an 8-bit palette looked for 769 bytes before the end of the whole file.
ImageU8 decode_pcx_at(const uint8_t* d, size_t n, size_t base, const std::string& name) {
  if (base > n || !is_pcx(d + base, n - base) || pcx_header_rejected(d + base, n - base))
    fail_decode(name, "not a PCX file (a header of less than 68 bytes, or an empty box)");
  const uint8_t* hd = d + base;
  const int64_t width = static_cast<int64_t>(le16(hd + 8)) + 1 - le16(hd + 4);
  const int64_t height = static_cast<int64_t>(le16(hd + 10)) + 1 - le16(hd + 6);
  const int version = hd[1], bits = hd[3], planes = hd[65];
  const int64_t provided_stride = le16(hd + 66);

  enum class Kind { kBilevel, kPlanes, kGrey, kPalette, kRgb } kind;
  std::vector<uint8_t> palette;  // RGB triples as Pillow keeps them
  if (bits == 1 && planes == 1) {
    kind = Kind::kBilevel;
  } else if (bits == 1 && (planes == 2 || planes == 4)) {
    kind = Kind::kPlanes;
    palette.assign(hd + 16, hd + 64);
  } else if (version == 5 && bits == 8 && planes == 1) {
    if (n < 769) fail_decode(name, "PCX grey image in a file of less than 769 bytes (its palette is looked for 769 bytes from the end)");
    kind = Kind::kGrey;
    const uint8_t* s = d + n - 769;
    if (s[0] == 12) {
      for (int i = 0; i < 256 && kind == Kind::kGrey; ++i)
        if (s[3 * i + 1] != i || s[3 * i + 2] != i || s[3 * i + 3] != i) kind = Kind::kPalette;
      if (kind == Kind::kPalette) palette.assign(s + 1, s + 769);
    }
  } else if (version == 5 && bits == 8 && planes == 3) {
    kind = Kind::kRgb;
  } else {
    fail_decode(name, "unknown PCX mode (" + std::to_string(bits) + " bits in " + std::to_string(planes) + " planes, version " +
                          std::to_string(version) + ")");
  }
  if (width * height > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(width) + "x" + std::to_string(height) + " pixels)");

  int64_t stride = (width * bits + 7) / 8;
  if (provided_stride != stride) stride += stride % 2;
  const int64_t line_bytes = planes * stride;  // state->bytes
  // The unpacker's bits: 1 (bilevel), 2 or 4 (planes), 8 (grey, palette), 24 (RGB).
  const int unpack_bits = kind == Kind::kBilevel ? 1 : kind == Kind::kPlanes ? planes : kind == Kind::kRgb ? 24 : 8;
  if ((width * unpack_bits + 7) / 8 > line_bytes) fail_decode(name, "PCX lines longer than their planes (buffer overrun)");

  // Pillow's image in its mode: 0/255 (1), indices (P), grey (L), RGB.
  const size_t W = static_cast<size_t>(width), H = static_cast<size_t>(height);
  // Rows arrive top to bottom: the image is reserved and grown a row at a time, so that a small
  // damaged file declaring a huge image touches memory only for the rows it holds.
  const size_t pixel_bytes = kind == Kind::kRgb ? 3 : 1;
  std::vector<uint8_t> mode_image;
  mode_image.reserve(W * H * pixel_bytes);
  std::vector<uint8_t> line(static_cast<size_t>(line_bytes));
  bool overrun = false;
  size_t x = 0, y = 0, at = base + 128;
  auto unpack_line = [&] {
    const size_t plane_width = kind == Kind::kPlanes ? (W + 7) / 8 : W;  // PcxDecode.c's xsize
    const size_t bands = kind == Kind::kPlanes ? static_cast<size_t>(planes) : kind == Kind::kRgb ? 3 : 1;
    const size_t plane_stride = line.size() / bands;
    if (plane_stride > plane_width)
      for (size_t i = 1; i < bands; ++i) std::memmove(&line[i * plane_width], &line[i * plane_stride], plane_width);
    mode_image.resize((y + 1) * W * pixel_bytes);
    uint8_t* out = mode_image.data() + y * W * pixel_bytes;
    const uint8_t* in = line.data();
    switch (kind) {
      case Kind::kBilevel:
        for (size_t i = 0; i < W; ++i) out[i] = (in[i >> 3] >> (7 - (i & 7)) & 1) ? 255 : 0;
        break;
      case Kind::kPlanes: {
        const size_t s = (W + 7) / 8;
        for (size_t i = 0; i < W; ++i) {
          const int bit = 7 - static_cast<int>(i & 7);
          uint8_t v = 0;
          for (int p = 0; p < planes; ++p) v = static_cast<uint8_t>(v | ((in[(i >> 3) + static_cast<size_t>(p) * s] >> bit & 1) << p));
          out[i] = v;
        }
        break;
      }
      case Kind::kGrey:
      case Kind::kPalette:
        std::memcpy(out, in, W);
        break;
      case Kind::kRgb:
        for (size_t i = 0; i < W; ++i) out[3 * i] = in[i], out[3 * i + 1] = in[i + W], out[3 * i + 2] = in[i + 2 * W];
        break;
    }
  };
  // ImagingPcxDecode over the whole file from byte 128 (Pillow feeds it in blocks and keeps a run
  // cut by a block's end for the next one, so the blocks do not matter).
  while (y < H) {
    if (at >= n || ((d[at] & 0xc0) == 0xc0 && at + 1 >= n)) fail_decode(name, "truncated PCX (image file is truncated)");
    if ((d[at] & 0xc0) == 0xc0) {
      for (int k = d[at] & 0x3f; k > 0; --k) {
        if (x >= line.size()) {
          overrun = true;
          break;
        }
        line[x++] = d[at + 1];
      }
      at += 2;
    } else {
      line[x++] = d[at++];
    }
    if (x >= line.size()) {
      unpack_line();
      x = 0;
      ++y;
    }
  }
  if (overrun) fail_decode(name, "corrupt PCX (a run past the end of its line: buffer overrun when reading image file)");

  ImageU8 img;
  img.width = static_cast<int>(W);
  img.height = static_cast<int>(H);
  if (kind == Kind::kRgb) {
    img.rgb = std::move(mode_image);
    return img;
  }
  uint8_t lut[256][3] = {};
  if (kind == Kind::kBilevel || kind == Kind::kGrey) {
    for (int i = 0; i < 256; ++i) lut[i][0] = lut[i][1] = lut[i][2] = static_cast<uint8_t>(i);
  } else {
    for (size_t i = 0; i < palette.size() / 3; ++i) std::memcpy(lut[i], &palette[3 * i], 3);
  }
  img.rgb.resize(W * H * 3);
  for (size_t i = 0; i < W * H; ++i) std::memcpy(&img.rgb[3 * i], lut[mode_image[i]], 3);
  return img;
}

}  // namespace

ImageU8 decode_pcx_memory(const uint8_t* d, size_t n, const std::string& name) { return decode_pcx_at(d, n, 0, name); }

bool is_dcx(const uint8_t* d, size_t n) { return n >= 4 && le32(d) == 0x3ADE68B1u; }

ImageU8 decode_dcx_memory(const uint8_t* d, size_t n, const std::string& name) {
  // DcxImageFile: a directory of up to 1024 frame offsets ended by 0; the first frame is a PCX
  // read from its offset (any error of it, or of the directory, leaves the file unread).
  if (n < 8) fail_decode(name, "truncated DCX (its frame directory)");
  const uint32_t first = le32(d + 4);
  if (first == 0) fail_decode(name, "DCX of no frames (attempt to seek outside sequence)");
  for (size_t i = 1; i < 1024; ++i) {  // the directory is read to its 0 (a short read fails)
    if (n - 4 < 4 * (i + 1)) fail_decode(name, "truncated DCX (its frame directory)");
    if (le32(d + 4 + 4 * i) == 0) break;
  }
  return decode_pcx_at(d, n, first, name);
}

}  // namespace lcam
