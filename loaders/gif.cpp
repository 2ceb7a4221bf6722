// gif.cpp — the first frame of a GIF decoded as Pillow 13's GifImagePlugin and its LZW decoder
// (src/libImaging/GifDecode.c) read it, then convert("RGB"): the same pixels and the same
// refusals. Pillow's rules, mirrored here:
// - signature GIF87a or GIF89a; the screen's size; a global colour table when the flag says so.
// - blocks up to the first image: '!' extensions (label, then sub-blocks up to an empty one; a
//   graphic control extension's first sub-block must hold 3 bytes, 4 when its transparency flag
//   is set, whose index it records), ',' the image descriptor, ';' or the file's end: no image.
//   Any other byte is skipped.
// - the picture is the screen, grown to hold the frame where the frame reaches past it; outside
//   the frame it holds the transparent index, or index 0. A frame of no pixels is refused.
// - colours: the local table, else the global one; a table that is the grey ramp (entry i =
//   i,i,i) counts as none, and without one the indices are grey levels (Pillow's mode L). Other
//   indices past the table are black. Transparency keeps its palette colour in convert("RGB").
// - LZW, as GifDecode.c: no clear code needed first; the first code after a clear must be a
//   literal; a code past the next free entry, a string past the decoder's buffer, or a minimum
//   code size over 12 is a broken stream; the table stops growing at 4096 entries (deferred
//   clear) while codes stay 12 bits; literals are stored as bytes (a code size over 8 wraps).
// - data sub-blocks are taken whole: codes run on through empty sub-blocks, terminators and
//   whatever follows, until the frame's last pixel is written (then the file is read, whatever
//   comes after). Pillow feeds the decoder 64 KiB reads (ImageFile.load): a sub-block that is
//   not whole in the file, or an end code with nothing more to read, ends it as "truncated";
//   after an end code with more to read, decoding goes on with the codes that follow.
// - interlaced rows in Pillow's order (8k, 8k+4, 4k+2, 2k+1), ending with the last pass.
// Deliberately omits: every frame after the first, as Pillow's Image.open does until seek().
#include <algorithm>  // std::max, std::min, std::fill
#include <cstdint>    // uint8_t, int64_t
#include <cstring>    // std::memcmp, std::memcpy
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, le16, the declarations implemented here

namespace lcam {
namespace {

// Whether a colour table of `bytes` bytes is Pillow's "not needed" case: entry i is (i, i, i).
bool grey_ramp(const uint8_t* p, size_t bytes) {
  for (size_t i = 0; i + 2 < bytes; i += 3)
    if (p[i] != i / 3 || p[i + 1] != i / 3 || p[i + 2] != i / 3) return false;
  return true;
}

// The first frame's indices: Pillow's GifDecode.c over the file's bytes from `at` (the first
// data sub-block), as ImageFile.load feeds it: 64 KiB reads from `at`, each sub-block decoded only
// once it is whole in what has been read. Writes w x h indices (row-major; interlaced rows in
// their place) and returns "" once the last pixel is written, or why Pillow gives up.
std::string lzw_frame(const uint8_t* d, size_t n, size_t at, int bits, bool interlaced, int w, int h, uint8_t* out) {
  constexpr size_t kRead = 65536;  // ImageFile.load's decodermaxblock
  constexpr int kTable = 4096, kBuffer = 4096;
  if (bits < 0 || bits > 12) return "broken data stream (LZW code size " + std::to_string(bits) + ")";
  const int clear = 1 << bits, end = clear + 1;
  std::vector<uint8_t> data(kTable), string(kBuffer);
  std::vector<uint16_t> link(kTable);
  int next = 0, codesize = 0, codemask = 0, lastcode = 0;
  uint8_t lastdata = 0;
  int state = 1;  // 1: reset the table; 2: the first code after a clear; 3: decoding
  uint32_t bitbuffer = 0;
  int bitcount = 0;
  size_t pos = at, blocksize = 0;
  size_t have = std::min(n, at + kRead);  // what ImageFile.load has read so far
  // Pillow's interlace walk: the row after y, or -1 after the last.
  int x = 0, y = 0, step = interlaced ? 8 : 1, pass = interlaced ? 1 : 0;
  auto newline = [&]() {
    x = 0;
    y += step;
    while (y >= h) {
      switch (pass) {
        case 1: y = 4, pass = 2; break;
        case 2: step = 4, y = 2, pass = 3; break;
        case 3: step = 2, y = 1, pass = 0; break;
        default: return false;
      }
    }
    return true;
  };
  for (;;) {
    if (state == 1) {
      next = clear + 2;
      codesize = bits + 1;
      codemask = (1 << codesize) - 1;
      state = 2;
    }
    while (bitcount < codesize) {
      if (blocksize > 0) {
        bitbuffer |= static_cast<uint32_t>(d[pos++]) << bitcount;
        bitcount += 8;
        --blocksize;
        continue;
      }
      // A new sub-block, taken once it is whole in what has been read; else read on.
      while (pos >= have || pos + 1 + d[pos] > have) {
        if (have >= n) return "truncated image (the first frame's data ends before its last pixel)";
        have = std::min(n, have + kRead);
      }
      blocksize = d[pos++];
    }
    int c = static_cast<int>(bitbuffer & static_cast<uint32_t>(codemask));
    bitbuffer >>= codesize;
    bitcount -= codesize;
    if (c == clear) {
      if (state != 2) state = 1;
      continue;
    }
    if (c == end) {  // the decoder returns; ImageFile.load reads on, and calls it again
      if (have >= n) return "truncated image (the first frame's codes end before its last pixel)";
      have = std::min(n, have + kRead);
      continue;
    }
    int index = kBuffer;  // the rest of the string, after its first byte: string[index, kBuffer)
    if (state == 2) {
      if (c > clear) return "broken data stream (a code before the first literal)";
      lastdata = static_cast<uint8_t>(c);
      lastcode = c;
      state = 3;
    } else {
      const int thiscode = c;
      if (c > next) return "broken data stream (a code past the LZW table)";
      if (c == next) {
        string[--index] = lastdata;
        c = lastcode;
      }
      while (c >= clear) {
        if (index <= 0 || c >= kTable) return "broken data stream (an LZW string too long)";
        string[--index] = data[c];
        c = link[c];
      }
      lastdata = static_cast<uint8_t>(c);
      if (next < kTable) {
        data[next] = static_cast<uint8_t>(c);
        link[next] = static_cast<uint16_t>(lastcode);
        if (next == codemask && codesize < 12) {
          ++codesize;
          codemask = (1 << codesize) - 1;
        }
        ++next;
      }
      lastcode = thiscode;
    }
    // The string's first byte, then the rest (Pillow returns the rest on its next turn).
    out[static_cast<size_t>(y) * w + x] = lastdata;
    if (++x >= w && !newline()) return "";
    for (; index < kBuffer; ++index) {
      out[static_cast<size_t>(y) * w + x] = string[index];
      if (++x >= w && !newline()) return "";
    }
  }
}

}  // namespace

bool is_gif(const uint8_t* d, size_t n) {
  return n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0);
}

ImageU8 decode_gif_memory(const uint8_t* d, size_t n, const std::string& name) {
  if (!is_gif(d, n)) fail_decode(name, "not a GIF");
  if (n < 13) fail_decode(name, "truncated GIF (its header)");
  int screen_w = le16(d + 6), screen_h = le16(d + 8);
  size_t i = 13;
  const uint8_t* table = nullptr;  // the colour table in use, null for grey levels
  size_t table_bytes = 0;
  if (d[10] & 0x80) {
    table_bytes = size_t{3} << ((d[10] & 7) + 1);
    if (table_bytes > n - i) fail_decode(name, "truncated GIF (its colour table)");
    if (!grey_ramp(d + i, table_bytes)) table = d + i;
    i += table_bytes;
  }
  // Pillow's data(): one sub-block, its length byte and what the file holds of its bytes; -1
  // (None) for the empty one that ends a run of sub-blocks, and at the file's end.
  size_t got = 0;
  auto data = [&]() -> long {
    if (i >= n) return -1;
    const size_t len = d[i++];
    if (len == 0) return -1;
    got = std::min(len, n - i);
    i += got;
    return static_cast<long>(got);
  };
  int transparent = -1;
  if (i >= n || d[i] == 0x3b) fail_decode(name, "no image in the GIF");
  for (;;) {
    if (i >= n || d[i] == 0x3b) fail_decode(name, "no image in the GIF (image not found in GIF frame)");
    const uint8_t tag = d[i++];
    if (tag == 0x21) {  // an extension: its label, then sub-blocks
      if (i >= n) fail_decode(name, "no image in the GIF");
      const uint8_t label = d[i++];
      const size_t at = i + 1;
      long block = data();
      if (label == 0xf9 && block >= 0) {  // graphic control: flags, delay, transparent index
        if (block < 3 || ((d[at] & 1) && block < 4)) fail_decode(name, "truncated or corrupt GIF (a graphic control extension)");
        if (d[at] & 1) transparent = d[at + 3];
      } else if (label == 0xfe) {  // a comment: its sub-blocks, up to the empty one
        while (block > 0) block = data();
        continue;
      } else if (label == 0xff && block >= 11 && std::memcmp(d + at, "NETSCAPE2.0", 11) == 0) {
        data();  // the looping sub-block, or (without one) the empty one
      }
      // Pillow then skips sub-blocks up to an empty one: after a first data() that met the empty
      // one already, this takes the bytes that follow for sub-blocks.
      while (data() > 0) {
      }
    } else if (tag == 0x2c) {
      break;
    }
    // Any other byte is skipped.
  }
  if (n - i < 9) fail_decode(name, "truncated GIF (its image descriptor)");
  const int x0 = le16(d + i), y0 = le16(d + i + 2), w = le16(d + i + 4), h = le16(d + i + 6);
  const uint8_t flags = d[i + 8];
  i += 9;
  if (flags & 0x80) {
    const size_t bytes = size_t{3} << ((flags & 7) + 1);
    if (bytes > n - i) fail_decode(name, "truncated GIF (its local colour table)");
    table = grey_ramp(d + i, bytes) ? nullptr : d + i;
    table_bytes = bytes;
    i += bytes;
  }
  if (i >= n) fail_decode(name, "truncated GIF (before its image data)");
  const int bits = d[i++];
  const long long pic_w = std::max(screen_w, x0 + w), pic_h = std::max(screen_h, y0 + h);
  if (pic_w * pic_h > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(pic_w) + "x" + std::to_string(pic_h) + " pixels)");
  if (w <= 0 || h <= 0) fail_decode(name, "GIF frame of " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  // No code writes more than 4096 pixels, and each takes at least one bit: a frame larger than
  // that allows for the bytes there are is truncated (refused before its pixels are allocated).
  if (static_cast<long long>(w) * h > 8LL * 4096 * static_cast<long long>(n - i))
    fail_decode(name, "truncated image (the first frame's data ends before its last pixel)");
  std::vector<uint8_t> index(static_cast<size_t>(w) * h);
  const std::string why = lzw_frame(d, n, i, bits, (flags & 0x40) != 0, w, h, index.data());
  if (!why.empty()) fail_decode(name, why);
  // The colour of each index: the table's entry, black past it; grey levels without a table.
  uint8_t rgb[256][3];
  for (int k = 0; k < 256; ++k) {
    const size_t at = static_cast<size_t>(k) * 3;
    for (int ch = 0; ch < 3; ++ch) rgb[k][ch] = !table ? static_cast<uint8_t>(k) : at + 2 < table_bytes ? table[at + ch] : 0;
  }
  ImageU8 img;
  img.width = static_cast<int>(pic_w);
  img.height = static_cast<int>(pic_h);
  img.rgb.resize(static_cast<size_t>(pic_w) * pic_h * 3);
  const uint8_t* fill = rgb[transparent >= 0 ? transparent : 0];
  if (x0 > 0 || y0 > 0 || w < pic_w || h < pic_h)
    for (size_t p = 0; p < img.rgb.size(); p += 3) std::memcpy(&img.rgb[p], fill, 3);
  for (int y = 0; y < h; ++y) {
    uint8_t* row = &img.rgb[(static_cast<size_t>(y0 + y) * img.width + x0) * 3];
    const uint8_t* src = &index[static_cast<size_t>(y) * w];
    for (int x = 0; x < w; ++x) std::memcpy(row + 3 * x, rgb[src[x]], 3);
  }
  return img;
}

}  // namespace lcam
