// bmp.cpp — Windows bitmaps, icons and cursors decoded as Pillow 13's BmpImagePlugin,
// IcoImagePlugin and CurImagePlugin read them (the raw decoder with its unpackers, or its RLE
// decoder), then convert("RGB"): the same pixels and the same refusals. Pillow's rules, mirrored
// here:
// - "BM", the data offset, an info header of 12 (OS/2: 16-bit sizes, 3-byte palette entries),
//   40, 52, 56, 64, 108 or 124 bytes. Rows run bottom-up unless the height's top byte is 0xFF
//   (then the height is 2^32 minus it, top-down). Widths are unsigned.
// - depths 1, 4, 8 (palette), 16 (5-5-5), 24, 32 (the fourth byte ignored); compression none,
//   RLE8 or RLE4 (palette depths), or bitfields: 16-bit 5-6-5 or 5-5-5, 24-bit BGR, and seven
//   32-bit byte layouts (masks read after a 40-byte header, or from it when it holds them).
//   Anything else is refused, as Pillow refuses it.
// - the palette (colours from the header, or 2^depth) is read after the header; a data offset
//   that points right after the header is moved past it. A palette that is the grey ramp
//   (black and white for 2 colours) makes the image mode 1 (at most 2 colours) or L, whose raw
//   rows Pillow then reads as bits (1) or bytes (L) whatever the file's depth. More than 256
//   entries is refused ("invalid palette size"); indices past the palette are black.
// - 5-bit and 6-bit channels scale as v * 255 / 31 and v * 255 / 63 (integer division).
// - raw rows are ((width * depth + 31) / 32) * 4 bytes apart; the last row needs no padding,
//   a shorter file is truncated. A row stride shorter than the unpacker's row is refused, but
//   where Image.open(path) maps the file (modes L and P, whose rows are bytes): then rows of
//   `width` bytes are read one after the other.
// - RLE as Pillow's Python decoder: runs clipped to the row, end of line pads the row with
//   index 0, a delta skips with index 0, absolute runs are padded to an even file offset; the
//   end of bitmap or of the file before the last pixel is refused ("not enough image data").
// - Windows icons (IcoImagePlugin): the largest entry (of equal areas, the least colour depth),
//   a PNG frame through loaders/png.cpp, a bitmap frame by the rules above from the entry's
//   offset (no file header: the data follows the palette) at half the header's height, never
//   mapped, with the bounds of Pillow's alpha read (32 bits) and AND mask read.
// - Windows cursors (CurImagePlugin): the first entry, replaced by any later one both wider and
//   taller; its bitmap by the rules above from the entry's offset (or, where that is 0, from
//   after the directory) at half the header's height, mapped as a BMP; black-and-white and grey
//   ones read whole (an odd height is refused), their top half inverted masking the bottom one
//   pasted on black. A directory or bitmap header cut short, no entries or a size of 0 make
//   Pillow try its other formats: TGA then reads the file where it can.
// Deliberately omits: headerless DIB files, JPEG and PNG inside BMP, which Pillow refuses too.
#include <algorithm>  // std::min, std::stable_sort
#include <array>      // std::array
#include <cmath>      // std::ceil, std::log (an icon entry's colour depth)
#include <cstdint>    // uint8_t, uint32_t, int64_t
#include <cstring>    // std::memcpy
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, le16/le32, the declarations implemented here

namespace lcam {
namespace {

// How each raw row becomes pixels: Pillow's unpacker for the image's mode and raw mode.
enum class Unpack { kBits1, kIndex1, kIndex4, kByte, kBgr15, kBgr16, kBgr, kFour };

struct Layout {
  Unpack unpack;
  int bits;                 // bits per pixel the unpacker reads
  int r = 0, g = 0, b = 0;  // kFour: the byte holding each channel
};

// What an icon's directory entry says of its bitmap (IcoFile.frame's own rules).
struct IcoEntry {
  uint32_t bpp, size, offset;
};

// A cursor's header that Pillow's CUR reader gives up on with an error Image.open catches (a
// struct.error reading the header, a size of 0): Pillow then tries its other formats.
struct NotThisFormat {
  std::string why;
};

// CurImageFile.load_end for black-and-white and grey cursors: the decoded image's top half (the
// AND mask, read at the image's depth) inverted masks its bottom half pasted on black, each
// grey level v under mask m = 255 - and becoming (v * m + 128) / 255 as Pillow's paste rounds.
ImageU8 cur_mask(ImageU8 full) {
  const size_t w = static_cast<size_t>(full.width), half = static_cast<size_t>(full.height) / 2;
  ImageU8 img;
  img.width = full.width;
  img.height = static_cast<int>(half);
  img.rgb.resize(w * half * 3);
  for (size_t i = 0; i < w * half; ++i) {
    const uint32_t m = 255u - full.rgb[3 * i], v = full.rgb[3 * (i + w * half)];
    const uint32_t t = v * m + 128;
    img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
  }
  return img;
}

// The bitmap whose info header starts at `at` (BmpImageFile._bitmap): in a BMP (`ico` null,
// `cur` false) at 14 with the file header's data offset, in an icon at its entry's offset with
// none (the data then follows the palette), half the header's height (the other half is the
// AND mask), and the file never mapped (Pillow decodes an icon's bitmap from the open file). In
// a cursor (`cur`), from its entry's offset: half the height too, mapped as a BMP, unless the
// image is black and white or a grey ramp: then all of it is read, the top half (the AND mask
// read at the image's depth) masking the bottom one (CurImageFile.load_end).
ImageU8 decode_dib(const uint8_t* d, size_t n, size_t at, uint64_t offset, const IcoEntry* ico, const std::string& name,
                   bool cur = false) {
  const std::string kind = ico ? "ICO bitmap" : cur ? "CUR bitmap" : "BMP";
  if (at > n || n - at < 4) {
    if (cur) throw NotThisFormat{"truncated CUR (its bitmap's info header)"};
    fail_decode(name, "truncated " + kind + " (its info header)");
  }
  const uint32_t header = le32(d + at);
  if (header != 12 && header != 40 && header != 52 && header != 56 && header != 64 && header != 108 && header != 124)
    fail_decode(name, "unsupported " + kind + " header type (" + std::to_string(header) + ")");
  if (n - at - 4 < header - 4) fail_decode(name, "truncated " + kind + " (its info header)");
  const uint8_t* h = d + at + 4;  // the header after its size
  size_t pos = at + header;       // where the file is read next
  uint64_t width, height;
  uint32_t bits, compression = 0, colors = 0;
  int direction = -1;  // -1: the first row in the file is the bottom one
  int padding;         // bytes per palette entry
  uint32_t masks[4] = {0, 0, 0, 0};
  if (header == 12) {
    width = le16(h), height = le16(h + 2), bits = le16(h + 6);
    padding = 3;
  } else {
    const bool flip = h[7] == 0xff;
    direction = flip ? 1 : -1;
    width = le32(h);
    height = flip ? (uint64_t{1} << 32) - le32(h + 4) : le32(h + 4);
    bits = le16(h + 10), compression = le32(h + 12), colors = le32(h + 28);
    padding = 4;
    if (compression == 3) {
      if (header >= 52) {
        for (int k = 0; k < 3; ++k) masks[k] = le32(h + 36 + 4 * k);
        masks[3] = header >= 56 ? le32(h + 48) : 0;
      } else {
        if (n - pos < 12) {
          if (cur) throw NotThisFormat{"truncated CUR (its bitmap's bitfield masks)"};
          fail_decode(name, "truncated " + kind + " (its bitfield masks)");
        }
        for (int k = 0; k < 3; ++k) masks[k] = le32(d + pos + 4 * k);
        pos += 12;
      }
    }
  }
  if (colors == 0 && bits < 32) colors = uint32_t{1} << bits;
  if (offset == at + header && bits <= 8) offset += static_cast<uint64_t>(padding) * colors;
  Layout layout{Unpack::kIndex1, 1};
  bool palette_mode = false;
  switch (bits) {
    case 1: layout = {Unpack::kIndex1, 1}, palette_mode = true; break;
    case 4: layout = {Unpack::kIndex4, 4}, palette_mode = true; break;
    case 8: layout = {Unpack::kByte, 8}, palette_mode = true; break;
    case 16: layout = {Unpack::kBgr15, 16}; break;
    case 24: layout = {Unpack::kBgr, 24}; break;
    case 32: layout = {Unpack::kFour, 32, 2, 1, 0}; break;
    default: fail_decode(name, "unsupported " + kind + " pixel depth (" + std::to_string(bits) + ")");
  }
  bool rle = false, rle4 = false;
  if (compression == 3) {
    const uint32_t r = masks[0], g = masks[1], b = masks[2], a = masks[3];
    auto is = [&](uint32_t mr, uint32_t mg, uint32_t mb) { return r == mr && g == mg && b == mb; };
    if (bits == 32) {
      // The byte of each channel for the seven layouts Pillow reads (BGRX, XBGR, BGXR, ABGR,
      // RGBA, BGRA, BGAR) and all-zero masks (read as BGRA).
      struct Known {
        uint32_t r, g, b, a;
        int rb, gb, bb;
      };
      static const Known kKnown[] = {
          {0xff0000, 0xff00, 0xff, 0, 2, 1, 0},          {0xff000000, 0xff0000, 0xff00, 0, 3, 2, 1},
          {0xff000000, 0xff00, 0xff, 0, 3, 1, 0},        {0xff000000, 0xff0000, 0xff00, 0xff, 3, 2, 1},
          {0xff, 0xff00, 0xff0000, 0xff000000, 0, 1, 2}, {0xff0000, 0xff00, 0xff, 0xff000000, 2, 1, 0},
          {0xff000000, 0xff00, 0xff, 0xff0000, 3, 1, 0}, {0, 0, 0, 0, 2, 1, 0}};
      bool found = false;
      for (const Known& k : kKnown)
        if (is(k.r, k.g, k.b) && a == k.a) layout = {Unpack::kFour, 32, k.rb, k.gb, k.bb}, found = true;
      if (!found) fail_decode(name, "unsupported " + kind + " bitfields layout");
    } else if (bits == 24 && is(0xff0000, 0xff00, 0xff)) {
      layout = {Unpack::kBgr, 24};
    } else if (bits == 16 && (is(0xf800, 0x7e0, 0x1f) || is(0x7c00, 0x3e0, 0x1f))) {
      layout = {r == 0xf800 ? Unpack::kBgr16 : Unpack::kBgr15, 16};
    } else {
      fail_decode(name, "unsupported " + kind + " bitfields layout");
    }
  } else if (compression == 1 || compression == 2) {
    rle = true, rle4 = compression == 2;
  } else if (compression != 0) {
    fail_decode(name, "unsupported " + kind + " compression (" + std::to_string(compression) + ")");
  }
  // The palette, and Pillow's mode: 1 or L for a grey ramp, else P.
  std::array<std::array<uint8_t, 3>, 256> palette{};  // entries past the file's are black
  enum class Mode { kRgb, kP, kL, k1 } mode = Mode::kRgb;
  if (palette_mode) {
    if (colors == 0 || colors > 65536) fail_decode(name, "unsupported " + kind + " palette size (" + std::to_string(colors) + ")");
    const size_t want = static_cast<size_t>(padding) * colors;
    const size_t got = pos < n ? std::min(want, n - pos) : 0;
    const uint8_t* p = d + std::min(pos, n);
    pos += got;
    bool grey = true;
    for (uint32_t i = 0; i < colors && grey; ++i) {
      const uint32_t val = colors == 2 ? (i ? 255 : 0) : i & 255;
      const size_t at = static_cast<size_t>(i) * padding;
      grey = at + 3 <= got && p[at] == val && p[at + 1] == val && p[at + 2] == val;
    }
    if (grey) {
      mode = colors <= 2 ? Mode::k1 : Mode::kL;
      if (!rle) layout = {mode == Mode::k1 ? Unpack::kBits1 : Unpack::kByte, mode == Mode::k1 ? 1 : 8};
    } else {
      mode = Mode::kP;
      const size_t entries = got / static_cast<size_t>(padding);
      if (entries > 256) fail_decode(name, "invalid " + kind + " palette size (" + std::to_string(entries) + " colours, at most 256)");
      for (size_t i = 0; i < entries; ++i)  // stored as blue, green, red
        palette[i] = {p[i * padding + 2], p[i * padding + 1], p[i * padding]};
    }
  } else if (rle) {
    fail_decode(name, "unsupported " + kind + ": RLE compression at " + std::to_string(bits) + " bits per pixel");
  }
  const bool masked = cur && (mode == Mode::k1 || mode == Mode::kL);
  const uint64_t full_height = height;
  if (cur) {
    // CurImageFile: the size is (width, height // 2); Image.open checks it, then its bomb limit.
    if (width == 0 || height / 2 == 0) throw NotThisFormat{"CUR of " + std::to_string(width) + "x" + std::to_string(height / 2) + " pixels"};
    height /= 2;
  }
  if (width > static_cast<uint64_t>(kMaxImagePixels) || height > static_cast<uint64_t>(kMaxImagePixels) ||
      width * height > static_cast<uint64_t>(kMaxImagePixels))
    fail_decode(name, "image too large (" + std::to_string(width) + "x" + std::to_string(height) + " pixels)");
  if (ico) height /= 2;  // the XOR bitmap; the AND mask follows it
  if (width == 0 || height == 0) fail_decode(name, kind + " of " + std::to_string(width) + "x" + std::to_string(height) + " pixels");
  if (masked) {
    // The whole bitmap, read into an image of twice the halved height: an odd height leaves
    // the tile a row outside it ("tile cannot extend outside image").
    if (full_height % 2) fail_decode(name, "CUR bitmap of an odd height (tile cannot extend outside image)");
    height = full_height;
  }
  const size_t w = static_cast<size_t>(width), rows = static_cast<size_t>(height);
  const size_t start = offset ? static_cast<size_t>(std::min<uint64_t>(offset, n)) : pos;
  if (ico && ico->bpp == 32) {
    // The alpha channel, read as every fourth byte of w * h * 4 from the data: frombuffer
    // refuses fewer bytes than pixels.
    if (n - start < 4 * w * rows) fail_decode(name, "truncated ICO (its 32-bit bitmap's alpha data)");
  } else if (ico) {
    // The AND mask: rows padded to 32 pixels, at the end of the entry's data, read by the raw
    // decoder (the last row needs its own bytes only).
    const uint64_t stride = (w + 31) / 32 * 4, mask_bytes = stride * rows;
    const int64_t mask_at = static_cast<int64_t>(ico->offset) + ico->size - static_cast<int64_t>(mask_bytes);
    if (mask_at < 0 || static_cast<uint64_t>(mask_at) > n || n - static_cast<uint64_t>(mask_at) < (rows - 1) * stride + (w + 7) / 8)
      fail_decode(name, "truncated or corrupt ICO (its bitmap's AND mask lies outside the file)");
  }
  // Each row's values: palette indices or grey levels (one byte per pixel), or RGB.
  std::vector<uint8_t> values;
  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(rows);
  img.rgb.resize(w * rows * 3);
  auto put_indexed = [&](size_t y, const uint8_t* v) {  // one row of indices or grey levels
    uint8_t* out = &img.rgb[y * w * 3];
    for (size_t x = 0; x < w; ++x, out += 3) {
      if (mode == Mode::kP) std::memcpy(out, palette[v[x]].data(), 3);
      else out[0] = out[1] = out[2] = mode == Mode::k1 ? (v[x] ? 255 : 0) : v[x];
    }
  };
  if (rle) {
    // Pillow's BmpRleDecoder, reading the file from the data offset.
    const size_t dest = w * rows;
    std::vector<uint8_t> data;
    data.reserve(dest);
    size_t at = start, x = 0;
    auto read = [&](size_t k, const uint8_t** p) {  // up to k bytes; how many there were
      const size_t got = std::min(k, n - std::min(at, n));
      *p = d + std::min(at, n);
      at += got;
      return got;
    };
    while (data.size() < dest) {
      const uint8_t* p;
      if (read(2, &p) < 2) break;
      const size_t count = p[0];
      const uint8_t byte = p[1];
      if (count) {
        const size_t run = x + count > w ? (w > x ? w - x : 0) : count;
        for (size_t i = 0; i < run; ++i) data.push_back(rle4 ? (i % 2 ? byte & 15 : byte >> 4) : byte);
        x += run;
      } else if (byte == 0) {  // end of line
        while (data.size() % w) data.push_back(0);
        x = 0;
      } else if (byte == 1) {  // end of bitmap
        break;
      } else if (byte == 2) {  // delta: right, up
        if (read(2, &p) < 2) break;
        data.resize(data.size() + std::min(dest - data.size(), p[0] + static_cast<size_t>(p[1]) * w), 0);
        x = data.size() % w;
      } else {  // an absolute run of `byte` indices
        const size_t want = std::min(dest - data.size(), static_cast<size_t>(byte));
        const size_t bytes = rle4 ? (want + 1) / 2 : want;
        const size_t got = read(bytes, &p);
        for (size_t i = 0; i < got; ++i) {
          if (rle4) {
            data.push_back(p[i] >> 4);
            if (i * 2 + 1 < want) data.push_back(p[i] & 15);
          } else {
            data.push_back(p[i]);
          }
        }
        if (got < bytes || data.size() == dest) break;
        x += byte;
        if (at % 2) ++at;  // to an even offset in the file
      }
    }
    if (data.size() < dest) fail_decode(name, "truncated or corrupt " + kind + " (its RLE data ends before the last pixel)");
    for (size_t r = 0; r < rows; ++r) put_indexed(direction < 0 ? rows - 1 - r : r, &data[r * w]);
    return masked ? cur_mask(std::move(img)) : img;
  }
  const uint64_t stride = ((width * bits + 31) >> 3) & ~uint64_t{3};
  const uint64_t row_bytes = (width * static_cast<uint64_t>(layout.bits) + 7) / 8;
  // Image.open of a path maps the file for byte rows read as they are (modes L and P), with
  // rows the longer of the stride and the width apart, when the file holds that many. Where the
  // stride is shorter (a grey ramp at 1 or 4 bits) rows are then `width` bytes apart, and
  // Pillow's raw decoder refuses the file when it is too short to map.
  const bool mapped = !ico && !masked && layout.unpack == Unpack::kByte && stride < width && start <= n && rows * width <= n - start;
  if (stride < row_bytes && !mapped)
    fail_decode(name, "corrupt " + kind + " (rows of " + std::to_string(stride) + " bytes for " + std::to_string(row_bytes) + ")");
  if (!mapped && (start > n || (rows - 1) * stride + row_bytes > n - start))
    fail_decode(name, "truncated image (the data ends before the last pixel)");
  values.resize(w);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* in = d + start + r * (mapped ? width : stride);
    const size_t y = direction < 0 ? rows - 1 - r : r;
    uint8_t* out = &img.rgb[y * w * 3];
    switch (layout.unpack) {
      case Unpack::kBits1:
      case Unpack::kIndex1:
        for (size_t x = 0; x < w; ++x) values[x] = (in[x >> 3] >> (7 - (x & 7))) & 1;
        put_indexed(y, values.data());
        break;
      case Unpack::kIndex4:
        for (size_t x = 0; x < w; ++x) values[x] = x & 1 ? in[x >> 1] & 15 : in[x >> 1] >> 4;
        put_indexed(y, values.data());
        break;
      case Unpack::kByte:
        put_indexed(y, in);
        break;
      case Unpack::kBgr15:
      case Unpack::kBgr16:
        for (size_t x = 0; x < w; ++x, out += 3) {
          const uint32_t v = le16(in + 2 * x);
          const bool six = layout.unpack == Unpack::kBgr16;
          out[0] = static_cast<uint8_t>(((v >> (six ? 11 : 10)) & 31) * 255 / 31);
          out[1] = static_cast<uint8_t>(six ? ((v >> 5) & 63) * 255 / 63 : ((v >> 5) & 31) * 255 / 31);
          out[2] = static_cast<uint8_t>((v & 31) * 255 / 31);
        }
        break;
      case Unpack::kBgr:
        for (size_t x = 0; x < w; ++x, out += 3) out[0] = in[3 * x + 2], out[1] = in[3 * x + 1], out[2] = in[3 * x];
        break;
      case Unpack::kFour:
        for (size_t x = 0; x < w; ++x, out += 3)
          out[0] = in[4 * x + layout.r], out[1] = in[4 * x + layout.g], out[2] = in[4 * x + layout.b];
        break;
    }
  }
  return masked ? cur_mask(std::move(img)) : img;
}

}  // namespace

bool is_bmp(const uint8_t* d, size_t n) { return n >= 2 && d[0] == 'B' && d[1] == 'M'; }

ImageU8 decode_bmp_memory(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 18) fail_decode(name, "truncated BMP (its file header)");
  return decode_dib(d, n, 14, le32(d + 10), nullptr, name);
}

bool is_ico(const uint8_t* d, size_t n) { return n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 1 && d[3] == 0; }

ImageU8 decode_ico_memory(const uint8_t* d, size_t n, const std::string& name) {
  // IcoFile: the directory, then the entries sorted by colour depth, then (stably) by area,
  // largest first; the image is the first entry's (the first of that size). Where Pillow gives
  // up on an icon with a SyntaxError (a short directory, no entries, a header cut short), its
  // Image.open tries the formats after ICO, of which only TGA has no signature to check; but a
  // file starting 00 00 01 00 is to TGA a colour-mapped image without a colour map, which it
  // cannot load.
  if (n < 6) fail_decode(name, "truncated ICO (its header)");
  const size_t count = le16(d + 4);
  if ((n - 6) / 16 < count) fail_decode(name, "truncated ICO (its directory of " + std::to_string(count) + " entries)");
  if (count == 0) fail_decode(name, "ICO of no images");
  struct Entry {
    IcoEntry e;
    uint64_t area;
    int depth;
  };
  std::vector<Entry> entries;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* s = d + 6 + 16 * i;
    const uint64_t width = s[0] ? s[0] : 256, height = s[1] ? s[1] : 256;
    const uint32_t colors = s[2], bpp = le16(s + 6);
    // bpp or (colors != 0 and ceil(log(colors, 2))) or 256
    int depth = static_cast<int>(bpp);
    if (!depth && colors) depth = static_cast<int>(std::ceil(std::log(static_cast<double>(colors)) / std::log(2.0)));
    if (!depth) depth = 256;
    entries.push_back({{bpp, le32(s + 8), le32(s + 12)}, width * height, depth});
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.depth < b.depth; });
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.area > b.area; });
  const IcoEntry& e = entries[0].e;
  if (e.offset <= n && is_png(d + e.offset, n - e.offset))
    return decode_png_memory(d + e.offset, n - e.offset, name);  // the PNG, read to the file's end
  return decode_dib(d, n, e.offset, 0, &e, name);
}

bool is_cur(const uint8_t* d, size_t n) { return n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 2 && d[3] == 0; }

ImageU8 decode_cur_memory(const uint8_t* d, size_t n, const std::string& name) {
  // CurImageFile._open: the first entry, replaced by any later one both wider and taller (by
  // their bytes); each read 16 bytes at a time, a short read leaving what there was.
  try {
    if (n < 6) throw NotThisFormat{"truncated CUR (its header)"};
    const size_t count = le16(d + 4);
    size_t pos = 6, m_at = 0, m_len = 0;
    for (size_t i = 0; i < count; ++i) {
      const size_t got = std::min<size_t>(16, n - std::min(pos, n));
      const uint8_t* s = d + std::min(pos, n);
      pos += got;
      if (m_len == 0) {
        m_at = static_cast<size_t>(s - d), m_len = got;
        continue;
      }
      // s[0] > m[0] and s[1] > m[1]: an IndexError on a short entry
      if (got == 0 || m_len < 1) throw NotThisFormat{"truncated CUR (its directory)"};
      if (s[0] > d[m_at]) {
        if (got < 2 || m_len < 2) throw NotThisFormat{"truncated CUR (its directory)"};
        if (s[1] > d[m_at + 1]) m_at = static_cast<size_t>(s - d), m_len = got;
      }
    }
    if (m_len == 0) throw NotThisFormat{"CUR of no cursors"};
    if (m_len < 16) throw NotThisFormat{"truncated CUR (its directory)"};
    const uint64_t header = le32(d + m_at + 12);  // seek(header) where it is not 0
    return decode_dib(d, n, header ? static_cast<size_t>(std::min<uint64_t>(header, n + 1)) : std::min(pos, n), 0, nullptr, name, true);
  } catch (const NotThisFormat& e) {
    // Image.open goes on to the formats after CUR; of them only TGA can take such a file.
    if (is_tga(d, n)) return decode_tga_memory(d, n, name);
    fail_decode(name, e.why);
  }
}

}  // namespace lcam
