// psd.cpp — Photoshop files (the merged image) decoded as Pillow 13's PsdImagePlugin reads them,
// then convert("RGB"): the same pixels and the same refusals. Pillow's rules, mirrored here:
// - the header: "8BPS", version 1, and a (colour mode, depth) Pillow knows: bitmap 1-bit,
//   grey, duotone and multichannel 8-bit (as grey), indexed, RGB, CMYK and LAB 8-bit; at least the
//   channels the mode needs (RGB with exactly four is RGBA, other extra channels are ignored);
// - the colour mode data (a palette where it is 768 bytes and the mode indexed: 256 reds, then
//   greens, then blues), the image resources walked entry by entry, the layer section skipped
//   by its lengths: a length field cut short fails (the data they announce may be);
// - the merged image: raw, each channel w * h bytes after the previous (bitmaps: rows of
//   (w + 7) / 8 bytes), or PackBits with a table of row lengths, each channel's rows after the
//   previous channel's; channels decoded in the order of their offsets, what a run or literal
//   puts past its row's end dropped; data ending before a channel's last row fails; any other
//   compression leaves no image to load;
// - convert("RGB"): bitmap 0/255, grey, palettes (none or a short one: black past it), CMYK
//   stored inverted and converted as Pillow converts it, LAB through littleCMS as Pillow's
//   ImageCms transform converts it, alpha dropped.
// Deliberately omits: layers (Pillow reads the merged image).
#include <algorithm>  // std::min, std::stable_sort
#include <cstdint>    // uint8_t, uint32_t, uint64_t
#include <cstring>    // std::memcmp, std::memcpy
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, cmyk_to_rgb_channel, be16/be32, the declarations implemented here

namespace lcam {
namespace {

// The file as Pillow's fp reads it: a read past the end returns what there is.
struct File {
  const uint8_t* d;
  size_t n;
  uint64_t pos = 0;  // may lie past the end after a seek
  const std::string& name;
  uint64_t left() const { return pos < n ? n - pos : 0; }
  void skip(uint64_t k) { pos += std::min(k, left()); }
  // i16(read(2)) / i32(read(4)): a short read is a struct.error.
  uint32_t u16(const char* what) {
    if (left() < 2) fail_decode(name, std::string("truncated PSD (") + what + ")");
    pos += 2;
    return be16(d + pos - 2);
  }
  uint32_t u32(const char* what) {
    if (left() < 4) fail_decode(name, std::string("truncated PSD (") + what + ")");
    pos += 4;
    return be32(d + pos - 4);
  }
};

// A channel's tile: where its data starts and which band of the image it fills.
struct Tile {
  uint64_t offset;
  int band;
};

}  // namespace

bool is_psd(const uint8_t* d, size_t n) { return n >= 4 && std::memcmp(d, "8BPS", 4) == 0; }

ImageU8 decode_psd_memory(const uint8_t* d, size_t n, const std::string& name) {
  // ---- PsdImageFile._open ----
  if (n < 26) fail_decode(name, "truncated PSD (its header)");
  if (be16(d + 4) != 1) fail_decode(name, "PSD of version " + std::to_string(be16(d + 4)) + " (not a PSD file Pillow reads)");
  const uint32_t bits = be16(d + 22), file_channels = be16(d + 12), colour = be16(d + 24);
  enum class Mode { k1, kL, kP, kRGB, kCMYK, kLAB } mode;
  int channels;
  if (colour == 0 && bits == 1) mode = Mode::k1, channels = 1;
  else if ((colour == 0 || colour == 1 || colour == 7 || colour == 8) && bits == 8) mode = Mode::kL, channels = 1;
  else if (colour == 2 && bits == 8) mode = Mode::kP, channels = 1;
  else if (colour == 3 && bits == 8) mode = Mode::kRGB, channels = 3;
  else if (colour == 4 && bits == 8) mode = Mode::kCMYK, channels = 4;
  else if (colour == 9 && bits == 8) mode = Mode::kLAB, channels = 3;
  else
    fail_decode(name, "PSD of colour mode " + std::to_string(colour) + " at " + std::to_string(bits) +
                          " bits (Pillow reads 1-bit bitmaps and 8-bit grey, indexed, RGB, CMYK and LAB)");
  if (static_cast<uint32_t>(channels) > file_channels)
    fail_decode(name, "PSD of " + std::to_string(file_channels) + " channels, fewer than its colour mode needs (not enough channels)");
  if (mode == Mode::kRGB && file_channels == 4) channels = 4;  // RGBA
  const uint64_t w = be32(d + 18), h = be32(d + 14);
  File f{d, n, 26, name};
  // Colour mode data: the palette of an indexed image.
  std::vector<uint8_t> palette;
  if (const uint32_t size = f.u32("its colour mode data length")) {
    const uint64_t got = std::min<uint64_t>(size, f.left());
    if (mode == Mode::kP && size == 768) palette.assign(d + f.pos, d + f.pos + got);
    f.skip(size);
  }
  // Image resources, walked entry by entry as Pillow walks them.
  if (const uint32_t size = f.u32("its image resources length")) {
    const uint64_t end = f.pos + size;
    while (f.pos < end) {
      f.skip(4);  // signature
      f.u16("an image resource's id");
      if (f.left() < 1) fail_decode(name, "truncated PSD (an image resource's name)");
      const uint32_t name_len = d[f.pos++];
      const uint64_t got = std::min<uint64_t>(name_len, f.left());
      f.skip(name_len);
      if (!(got & 1)) f.skip(1);  // padding
      const uint32_t data_len = f.u32("an image resource's length");
      const uint64_t data_got = std::min<uint64_t>(data_len, f.left());
      f.skip(data_len);
      if (data_got & 1) f.skip(1);
    }
  }
  // Layer and mask information: skipped by its length.
  if (const uint32_t size = f.u32("its layer section length")) {
    const uint64_t end = f.pos + size;
    f.u32("its layer info length");
    f.pos = end;
  }
  // _maketile: the merged image's channels.
  const uint32_t compression = f.u16("its image data compression");
  std::vector<Tile> tiles;
  const uint64_t row_bytes = mode == Mode::k1 ? (w + 7) / 8 : w;
  if (compression == 0) {
    uint64_t offset = f.pos;
    for (int c = 0; c < channels; ++c) tiles.push_back({offset, c}), offset += w * h;
  } else if (compression == 1) {
    const uint64_t table = static_cast<uint64_t>(channels) * h * 2;
    if (table > f.left()) fail_decode(name, "truncated PSD (its table of row lengths)");
    uint64_t offset = f.pos + table;
    for (int c = 0; c < channels; ++c) {
      tiles.push_back({offset, c});
      for (uint64_t y = 0; y < h; ++y) offset += be16(d + f.pos + 2 * (c * h + y));
    }
  }
  // ImageFile: a size of 0 is no image Pillow identifies; then the decompression-bomb check.
  if (w == 0 || h == 0) fail_decode(name, "PSD of " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  if (w > static_cast<uint64_t>(kMaxImagePixels) || h > static_cast<uint64_t>(kMaxImagePixels) || w * h > static_cast<uint64_t>(kMaxImagePixels))
    fail_decode(name, "image too large (" + std::to_string(w) + "x" + std::to_string(h) + " pixels)");
  if (tiles.empty()) fail_decode(name, "PSD of compression " + std::to_string(compression) + " (cannot load this image)");

  // ---- ImageFile.load: each channel from its offset, in the order of the offsets ----
  std::stable_sort(tiles.begin(), tiles.end(), [](const Tile& a, const Tile& b) { return a.offset < b.offset; });
  const size_t pixels = static_cast<size_t>(w * h);
  // One plane per channel: bits 0/255, grey, indices or colour samples.
  std::vector<std::vector<uint8_t>> planes(static_cast<size_t>(channels));
  std::vector<uint8_t> line(static_cast<size_t>(row_bytes));
  for (const Tile& t : tiles) {
    std::vector<uint8_t>& plane = planes[static_cast<size_t>(t.band)];
    plane.assign(pixels, 0);
    uint64_t at = t.offset;
    auto put_row = [&](uint64_t y, const uint8_t* row) {
      uint8_t* out = plane.data() + y * w;
      if (mode == Mode::k1)
        for (uint64_t x = 0; x < w; ++x) out[x] = (row[x >> 3] >> (7 - (x & 7))) & 1 ? 255 : 0;
      else
        std::memcpy(out, row, static_cast<size_t>(w));
    };
    if (compression == 0) {
      if (at > n || (n - at) / row_bytes < h) fail_decode(name, "truncated PSD (image file is truncated)");
      for (uint64_t y = 0; y < h; ++y) put_row(y, d + at + y * row_bytes);
      continue;
    }
    // PackbitsDecode.c: runs and literals into the row, what passes its end dropped (Pillow's
    // overrun error is commented out), a row done when full.
    uint64_t x = 0, y = 0;
    while (y < h) {
      if (at >= n) fail_decode(name, "truncated PSD (image file is truncated)");
      const uint8_t c = d[at];
      if (c == 0x80) {
        ++at;
        continue;
      }
      if (c & 0x80) {
        if (n - at < 2) fail_decode(name, "truncated PSD (image file is truncated)");
        for (int k = 257 - c; k > 0 && x < row_bytes; --k) line[x++] = d[at + 1];
        at += 2;
      } else {
        const uint64_t k = uint64_t{c} + 1;
        if (n - at < k + 1) fail_decode(name, "truncated PSD (image file is truncated)");
        for (uint64_t i = 1; i <= k && x < row_bytes; ++i) line[x++] = d[at + i];
        at += k + 1;
      }
      if (x >= row_bytes) {
        put_row(y++, line.data());
        x = 0;
      }
    }
  }

  // ---- convert("RGB") ----
  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(pixels * 3);
  uint8_t* o = img.rgb.data();
  if (mode == Mode::kRGB) {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = planes[0][i], o[3 * i + 1] = planes[1][i], o[3 * i + 2] = planes[2][i];
  } else if (mode == Mode::kCMYK) {
    // Stored inverted (Pillow's C;I ... K;I), then Convert.c's cmyk2rgb.
    for (size_t i = 0; i < pixels; ++i) {
      const int nk = planes[3][i];  // 255 - k, as k is stored inverted
      for (int c = 0; c < 3; ++c) o[3 * i + c] = cmyk_to_rgb_channel(255 - planes[static_cast<size_t>(c)][i], nk);
    }
  } else if (mode == Mode::kLAB) {
    // Bands L, A and B as they are (a and b unsigned, offset by 128), through littleCMS.
    std::vector<uint8_t> labx(pixels * 4, 0);
    for (size_t i = 0; i < pixels; ++i) labx[4 * i] = planes[0][i], labx[4 * i + 1] = planes[1][i], labx[4 * i + 2] = planes[2][i];
    lab_to_rgb(labx.data(), pixels, o);
  } else if (mode == Mode::kP) {
    // "RGB;L": len // 3 entries, all reds, then greens, then blues; black past them.
    uint8_t lut[256][3] = {};
    const size_t entries = palette.size() / 3;
    for (size_t i = 0; i < entries; ++i)
      for (int c = 0; c < 3; ++c) lut[i][c] = palette[i + c * entries];
    for (size_t i = 0; i < pixels; ++i) std::memcpy(o + 3 * i, lut[planes[0][i]], 3);
  } else {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = planes[0][i];
  }
  return img;
}

}  // namespace lcam
