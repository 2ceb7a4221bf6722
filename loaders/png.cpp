// png.cpp — PNG images (the first frame) decoded as Pillow 13's PngImagePlugin reads them, then
// convert("RGB"): Pillow's own steps, mirrored so that damaged files are read or refused as Pillow
// reads or refuses them, with zlib inflating as Pillow's ZipDecode.c calls it.
// - Opening (PngImageFile._open): chunks up to the first IDAT (or fdAT, or IEND). A chunk header
//   cut short or a type of other than four letters, digits or '_' is a SyntaxError; every chunk's
//   CRC is checked; a chunk whose data runs past the file ("Truncated File Read") and a known
//   chunk too short for its fields (IHDR, tRNS, gAMA, cHRM, sRGB, pHYs, acTL, fcTL, fdAT) fail;
//   compressed text (zTXt, iTXt, iCCP) that inflates past 1 MiB fails, data that does not
//   inflate is ignored; APNG frame controls check their sequence numbers and frame bounds, and
//   the first frame's bounds (fcTL before IDAT) place the image data; an IHDR of unknown bit
//   depth and colour type, a size of 0, or no IHDR fails.
// - The image data (ImageFile.load with PngImageFile.load_read): IDAT (or DDAT, fdAT) chunks
//   fed to inflate 64 KiB at a time and one row at a time, each row unfiltered (types 0-4, any
//   other fails) and unpacked (Adam7 pass by pass); the image is done as soon as its last row
//   is (or the zlib stream ends: rows not reached stay 0), so an adler-32 mismatch fails only
//   where its bytes came in the same read as the last row. Data ending early, a chunk other
//   than image data in the middle, or a zlib error fails.
// - After the image (load_end): the rest of the chunks up to IEND go through the same chunk
//   rules, CRCs unchecked; a header cut short ends the walk, a chunk cut short fails.
// - convert("RGB"): 1 and L as grey (2- and 4-bit samples scaled), 16-bit samples by their
//   high byte but grey (I;16), which is clipped to 255; palettes of len // 3 entries (more than
//   256 fail), indices past them black, no PLTE all black; alpha dropped.
// Where Pillow fails with a SyntaxError while opening, its Image.open goes on to the formats
// after PNG, none of which reads a file with PNG's signature (nor, in an icon, one starting
// 00 00 01 00: TGA takes that for a colour-mapped image without a colour map, and fails).
// Deliberately omits: frames after the first; gamma, colour profiles and transparency, which
// convert("RGB") ignores. Differences can remain where zlib and the zlib-ng of Pillow's wheels
// judge damaged deflate data differently.
#include <zlib.h>  // inflate

#include <algorithm>  // std::min, std::fill
#include <array>      // std::array (a frame's bounds)
#include <cctype>     // std::isalnum (chunk types)
#include <cstdint>    // uint8_t, uint32_t, uint64_t
#include <cstdlib>    // std::calloc, std::free, std::abs
#include <cstring>    // std::memcmp, std::memcpy
#include <memory>     // std::unique_ptr
#include <new>        // std::bad_alloc
#include <optional>   // std::optional
#include <string>     // std::string
#include <type_traits>  // std::integral_constant
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, be32, the declarations implemented here

namespace lcam {
namespace {

constexpr size_t kMaxText = 1 << 20;          // MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK)
constexpr uint64_t kMaxTextMemory = 64 << 20;  // MAX_TEXT_MEMORY
constexpr size_t kReadBlock = 65536;          // ImageFile.decodermaxblock

// The file as Python's fp sees it: reads return what there is.
struct Reader {
  const uint8_t* d;
  size_t n, pos;
  size_t left() const { return pos < n ? n - pos : 0; }
  // fp.read(k): up to k bytes from here.
  std::string read(uint64_t k) {
    const size_t got = static_cast<size_t>(std::min<uint64_t>(k, left()));
    std::string s(reinterpret_cast<const char*>(d + std::min(pos, n)), got);
    pos += got;
    return s;
  }
};

bool is_cid(const std::string& c) {
  if (c.size() < 4) return false;
  for (int i = 0; i < 4; ++i) {
    const unsigned char ch = static_cast<unsigned char>(c[i]);
    if (!(std::isalnum(ch) || ch == '_')) return false;
  }
  return true;
}

// Pillow's raw modes for PNG: how a row's bytes become pixels.
enum class Raw { k1, kL2, kL4, kL, kI16B, kRGB, kRGB16B, kP1, kP2, kP4, kP, kLA, kLA16B, kRGBA, kRGBA16B };

// Pillow's mode and raw mode for (bit depth, colour type), and the raw mode's bits per pixel.
struct Mode {
  std::string mode;
  Raw raw = Raw::kL;
  int bits = 0;
};
std::optional<Mode> png_mode(int depth, int colour) {
  struct Row {
    int depth, colour;
    const char* mode;
    Raw raw;
    int bits;
  };
  static const Row rows[] = {{1, 0, "1", Raw::k1, 1},          {2, 0, "L", Raw::kL2, 2},         {4, 0, "L", Raw::kL4, 4},
                             {8, 0, "L", Raw::kL, 8},          {16, 0, "I;16", Raw::kI16B, 16},  {8, 2, "RGB", Raw::kRGB, 24},
                             {16, 2, "RGB", Raw::kRGB16B, 48}, {1, 3, "P", Raw::kP1, 1},         {2, 3, "P", Raw::kP2, 2},
                             {4, 3, "P", Raw::kP4, 4},         {8, 3, "P", Raw::kP, 8},          {8, 4, "LA", Raw::kLA, 16},
                             {16, 4, "RGBA", Raw::kLA16B, 32}, {8, 6, "RGBA", Raw::kRGBA, 32},   {16, 6, "RGBA", Raw::kRGBA16B, 64}};
  for (const Row& r : rows)
    if (r.depth == depth && r.colour == colour) return Mode{r.mode, r.raw, r.bits};
  return std::nullopt;
}

// _safe_zlib_decompress: inflate at most 1 MiB. 1: text, 0: data zlib rejects (zlib.error),
// -1: more than 1 MiB (ValueError). Output grows as it comes, 64 KiB at a time, so that many
// small text chunks cost little.
int inflate_text(const std::string& in, std::string* out) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) throw std::bad_alloc();
  uint8_t buf[65536];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  size_t got = 0;
  int err = Z_OK;
  while (err == Z_OK && z.avail_in > 0 && got < kMaxText) {
    z.next_out = buf;
    z.avail_out = static_cast<uInt>(std::min(sizeof buf, kMaxText - got));
    err = inflate(&z, Z_NO_FLUSH);
    const size_t k = static_cast<size_t>(z.next_out - buf);
    if (out) out->append(reinterpret_cast<const char*>(buf), k);
    got += k;
  }
  const bool tail = z.avail_in > 0 && err == Z_OK;  // input left over once 1 MiB is out
  inflateEnd(&z);
  if (err == Z_DATA_ERROR || err == Z_NEED_DICT || err == Z_STREAM_ERROR) return 0;
  if (err == Z_MEM_ERROR) throw std::bad_alloc();
  return tail ? -1 : 1;
}

// Code points of valid UTF-8 (iTXt's text), or -1.
int64_t utf8_length(const std::string& s) {
  int64_t count = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || i + k > s.size()) return -1;
    uint32_t cp = k == 1 ? c : c & (0x7f >> k);
    for (int j = 1; j < k; ++j) {
      const unsigned char t = static_cast<unsigned char>(s[i + j]);
      if ((t >> 6) != 2) return -1;
      cp = cp << 6 | (t & 0x3f);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    i += k, ++count;
  }
  return count;
}

// PngStream: what the chunks said.
struct Stream {
  std::string name;
  Reader f{nullptr, 0, 0};
  uint32_t width = 0, height = 0;
  std::optional<Mode> mode;
  bool interlace = false;
  std::optional<std::string> palette;
  std::optional<std::array<uint64_t, 4>> bbox;  // fcTL's frame
  bool have_tile = false;
  std::array<uint64_t, 4> tile{};  // the image data's extents
  size_t tile_offset = 0;
  std::optional<uint32_t> n_frames, seq;
  uint64_t text_memory = 0;

  [[noreturn]] void fail(const std::string& why) const { fail_decode(name, why); }
  // ImageFile._safe_read: all `length` bytes, or "Truncated File Read" (OSError).
  std::string safe_read(uint64_t length) {
    if (length > f.left()) fail("truncated or corrupt PNG (a chunk's data runs past the end of the file)");
    return f.read(length);
  }
  void text_used(uint64_t k) {
    text_memory += k;
    if (text_memory > kMaxTextMemory) fail("PNG of more than 64 MiB of text (Pillow's MAX_TEXT_MEMORY)");
  }
  void too_short(const std::string& cid) const { fail("truncated or corrupt PNG (a " + cid + " chunk too short for its fields)"); }

  // ChunkStream.read: a chunk's type and length; false where the header is cut short (struct.error).
  bool header(std::string* cid, uint64_t* length) {
    const std::string s = f.read(8);
    if (s.size() < 4) return false;
    *cid = s.substr(4);
    *length = be32(reinterpret_cast<const uint8_t*>(s.data()));
    return true;
  }

  // PngStream.call: 1 where the handler raised EOFError (IDAT, fdAT, IEND), 0 otherwise; `s` the
  // data read. Unknown chunks (AttributeError) are read whole.
  int call(const std::string& cid, uint64_t length, std::string* s) {
    if (cid == "IHDR") {
      *s = safe_read(length);
      if (length < 13) too_short(cid);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(s->data());
      width = be32(p), height = be32(p + 4);
      if (std::optional<Mode> m = png_mode(p[8], p[9])) mode = m;
      if (p[12]) interlace = true;
      if (p[11]) fail("PNG of an unknown filter category");
    } else if (cid == "IDAT" || cid == "fdAT") {
      if (cid == "fdAT") {
        if (length < 4) too_short(cid);
        const std::string q = safe_read(4);
        const uint32_t n = be32(reinterpret_cast<const uint8_t*>(q.data()));
        if (!seq || *seq != n - 1u || n == 0) fail("APNG of frame sequence errors");
        seq = n;
      }
      if (bbox) {
        tile = *bbox;
      } else {
        tile = {0, 0, width, height};
      }
      have_tile = true;
      tile_offset = f.pos;
      return 1;
    } else if (cid == "IEND") {
      return 1;
    } else if (cid == "PLTE") {
      *s = safe_read(length);
      if (mode && mode->mode == "P") palette = *s;
    } else if (cid == "tRNS") {
      *s = safe_read(length);
      const std::string m = mode ? mode->mode : "";
      if ((m == "1" || m == "L" || m == "I;16" || m == "RGB") && length < (m == "RGB" ? 6u : 2u)) too_short(cid);
    } else if (cid == "gAMA" || cid == "cHRM" || cid == "sRGB" || cid == "pHYs" || cid == "acTL") {
      *s = safe_read(length);
      const uint64_t need = cid == "gAMA" ? 4 : cid == "cHRM" ? 32 : cid == "sRGB" ? 1 : cid == "pHYs" ? 9 : 8;
      if (length < need) too_short(cid);
      if (cid == "acTL") {
        const uint32_t frames = be32(reinterpret_cast<const uint8_t*>(s->data()));
        if (n_frames) n_frames.reset();
        else if (frames != 0 && frames <= 0x80000000u) n_frames = frames;
      }
    } else if (cid == "fcTL") {
      *s = safe_read(length);
      if (length < 26) too_short(cid);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(s->data());
      const uint32_t n = be32(p);
      if ((!seq && n != 0) || (seq && *seq != static_cast<uint64_t>(n) - 1)) fail("APNG of frame sequence errors");
      seq = n;
      const uint64_t w = be32(p + 4), h = be32(p + 8), x = be32(p + 12), y = be32(p + 16);
      if (x + w > width || y + h > height) fail("APNG of a frame outside the image");
      bbox = std::array<uint64_t, 4>{x, y, x + w, y + h};
    } else if (cid == "tEXt" || cid == "zTXt") {
      *s = safe_read(length);
      const size_t zero = s->find('\0');
      const std::string key = zero == std::string::npos ? *s : s->substr(0, zero);
      std::string value = zero == std::string::npos ? std::string() : s->substr(zero + 1);
      if (cid == "zTXt") {
        const int method = value.empty() ? 0 : static_cast<unsigned char>(value[0]);
        if (method != 0) fail("PNG of an unknown zTXt compression method");
        std::string text;
        const int r = inflate_text(value.empty() ? std::string() : value.substr(1), &text);
        if (r < 0) fail("PNG of a zTXt chunk of more than 1 MiB of text");
        value = r > 0 ? text : std::string();
      }
      if (!key.empty()) text_used(value.size());
    } else if (cid == "iTXt") {
      *s = safe_read(length);
      const size_t z1 = s->find('\0');
      if (z1 == std::string::npos || s->size() - z1 - 1 < 2) return 0;
      const unsigned char flag = static_cast<unsigned char>((*s)[z1 + 1]), method = static_cast<unsigned char>((*s)[z1 + 2]);
      const std::string rest = s->substr(z1 + 3);
      const size_t z2 = rest.find('\0');
      if (z2 == std::string::npos) return 0;
      const size_t z3 = rest.find('\0', z2 + 1);
      if (z3 == std::string::npos) return 0;
      std::string value = rest.substr(z3 + 1);
      if (flag != 0) {
        if (method != 0) return 0;
        std::string text;
        const int r = inflate_text(value, &text);
        if (r < 0) fail("PNG of an iTXt chunk of more than 1 MiB of text");
        if (r == 0) return 0;
        value = text;
      }
      const int64_t chars = utf8_length(value);
      if (chars < 0 || utf8_length(rest.substr(0, z2)) < 0 || utf8_length(rest.substr(z2 + 1, z3 - z2 - 1)) < 0) return 0;
      text_used(static_cast<uint64_t>(chars));
    } else if (cid == "iCCP") {
      *s = safe_read(length);
      const size_t z = s->find('\0');
      const size_t at = z == std::string::npos ? 0 : z + 1;  // s[i + 1] with find's -1
      if (at >= s->size()) fail("PNG of an iCCP chunk cut short");
      if ((*s)[at] != 0) fail("PNG of an unknown iCCP compression method");
      if (inflate_text(s->substr(at + 1), nullptr) < 0) fail("PNG of an iCCP profile of more than 1 MiB");
    } else if (cid == "eXIf") {
      *s = safe_read(length);
    } else {
      *s = safe_read(length);
    }
    return 0;
  }
};

// Pillow's unpacker from the raw mode into lcam's copy of the mode image (P indices, or RGB):
// `count` pixels, the first at bit `first_bit` of `in` where samples are under 8 bits.
void unpack(const Mode& m, const uint8_t* in, int64_t count, uint8_t* rgb, uint8_t* index, int64_t first_bit = 0) {
  auto grey = [&](auto value) {
    for (int64_t x = 0; x < count; ++x) rgb[3 * x] = rgb[3 * x + 1] = rgb[3 * x + 2] = value(x);
  };
  auto colour = [&](auto step, auto wide) {  // constants, so that each layout gets a loop of its own
    for (int64_t x = 0; x < count; ++x) {
      rgb[3 * x] = in[x * step];
      rgb[3 * x + 1] = in[x * step + wide];
      rgb[3 * x + 2] = in[x * step + 2 * wide];
    }
  };
  auto sample = [&](int64_t x) {  // a sample of m.bits < 8 bits, most significant first
    const int64_t bit = first_bit + x * m.bits;
    return (in[bit >> 3] >> (8 - m.bits - (bit & 7))) & ((1 << m.bits) - 1);
  };
  switch (m.raw) {
    case Raw::k1: grey([&](int64_t x) { return static_cast<uint8_t>(sample(x) ? 255 : 0); }); break;
    case Raw::kL2: grey([&](int64_t x) { return static_cast<uint8_t>(sample(x) * 0x55); }); break;
    case Raw::kL4: grey([&](int64_t x) { return static_cast<uint8_t>(sample(x) * 0x11); }); break;
    case Raw::kL: grey([&](int64_t x) { return in[x]; }); break;
    case Raw::kLA: grey([&](int64_t x) { return in[2 * x]; }); break;
    case Raw::kLA16B: grey([&](int64_t x) { return in[4 * x]; }); break;
    case Raw::kI16B: grey([&](int64_t x) { return static_cast<uint8_t>(std::min(in[2 * x] << 8 | in[2 * x + 1], 255)); }); break;
    case Raw::kRGB:
      std::memcpy(rgb, in, static_cast<size_t>(3 * count));
      break;
    case Raw::kRGB16B: colour(std::integral_constant<int, 6>(), std::integral_constant<int, 2>()); break;
    case Raw::kRGBA: colour(std::integral_constant<int, 4>(), std::integral_constant<int, 1>()); break;
    case Raw::kRGBA16B: colour(std::integral_constant<int, 8>(), std::integral_constant<int, 2>()); break;
    case Raw::kP1:
    case Raw::kP2:
    case Raw::kP4:
      for (int64_t x = 0; x < count; ++x) index[x] = static_cast<uint8_t>(sample(x));
      break;
    case Raw::kP:
      std::memcpy(index, in, static_cast<size_t>(count));
      break;
  }
}

constexpr int kStartCol[] = {0, 4, 0, 2, 0, 1, 0}, kStartRow[] = {0, 0, 4, 0, 2, 0, 1};
constexpr int kColStep[] = {8, 8, 4, 4, 2, 2, 1}, kRowStep[] = {8, 8, 8, 4, 4, 2, 2}, kOffset[] = {7, 3, 3, 1, 1, 0, 0};

// ImagingZipDecode for PNG: one row per inflate call, unfiltered and unpacked in place.
struct ZipDecoder {
  explicit ZipDecoder(const Mode& mode) : m(mode) {}
  const Mode& m;
  bool interlaced = false;
  int64_t xsize = 0, ysize = 0, x0 = 0, y0 = 0, width = 0;  // the tile, and the image's width
  uint8_t* rgb = nullptr;
  uint8_t* index = nullptr;
  std::vector<uint8_t>* grow = nullptr;  // rows in order: `rgb` is this reserved image, grown row by row
  z_stream z{};
  bool started = false, finished = false;
  int pass = 0;
  int64_t y = 0, bytes = 0, row_len = 0, last = 0;
  std::vector<uint8_t> row, previous;

  ~ZipDecoder() {
    if (started) inflateEnd(&z);
  }
  int64_t pass_len(int p) const { return ((xsize + kOffset[p]) / kColStep[p] * m.bits + 7) / 8; }
  // decode(): < 0 done (0 fine, -1 a zlib error, -2 an unknown filter), else bytes consumed.
  int decode(const uint8_t* in, size_t n) {
    if (!started) {
      bytes = (xsize * m.bits + 7) / 8;
      row.assign(static_cast<size_t>(bytes) + 1, 0);
      previous.assign(static_cast<size_t>(bytes) + 1, 0);
      if (inflateInit(&z) != Z_OK) throw std::bad_alloc();
      started = true;
      if (interlaced) pass = 0, y = kStartRow[0];
    }
    row_len = interlaced ? pass_len(pass) : bytes;
    z.next_in = const_cast<Bytef*>(in);
    z.avail_in = static_cast<uInt>(n);
    while (z.avail_in > 0) {
      z.next_out = row.data() + last;
      z.avail_out = static_cast<uInt>(row_len + 1 - last);
      const int err = inflate(&z, Z_NO_FLUSH);
      if (err < 0) return -1;
      const int64_t got = row_len + 1 - z.avail_out;
      if (got < row_len + 1) {
        last = got;
        break;
      }
      const int bpp = (m.bits + 7) / 8;
      uint8_t* __restrict b = row.data();
      const uint8_t* __restrict p = previous.data();
      switch (b[0]) {
        case 0: break;
        case 1:
          for (int64_t i = bpp + 1; i <= row_len; ++i) b[i] = static_cast<uint8_t>(b[i] + b[i - bpp]);
          break;
        case 2:
          for (int64_t i = 1; i <= row_len; ++i) b[i] = static_cast<uint8_t>(b[i] + p[i]);
          break;
        case 3: {
          int64_t i = 1;
          for (; i <= bpp && i <= row_len; ++i) b[i] = static_cast<uint8_t>(b[i] + p[i] / 2);
          for (; i <= row_len; ++i) b[i] = static_cast<uint8_t>(b[i] + (b[i - bpp] + p[i]) / 2);
          break;
        }
        case 4: {
          int64_t i = 1;
          for (; i <= bpp && i <= row_len; ++i) b[i] = static_cast<uint8_t>(b[i] + p[i]);
          for (; i <= row_len; ++i) {
            const int a = b[i - bpp], bb = p[i], c = p[i - bpp];
            const int pa = std::abs(bb - c), pb = std::abs(a - c), pc = std::abs(a + bb - 2 * c);
            const int near_bc = pb <= pc ? bb : c;  // the predictor, without branches
            b[i] = static_cast<uint8_t>(b[i] + ((pa <= pb) & (pa <= pc) ? a : near_bc));
          }
          break;
        }
        default: return -2;
      }
      if (interlaced) {
        // Pillow places an interlaced row at the image's own (column, row), not the frame's.
        const int64_t cols = (xsize + kOffset[pass]) / kColStep[pass];
        for (int64_t k = 0; k < cols; ++k) {
          const int64_t x = kStartCol[pass] + k * kColStep[pass];
          const size_t at = static_cast<size_t>(y * width + x);
          if (m.bits < 8) unpack(m, b + 1, 1, rgb ? rgb + 3 * at : nullptr, index ? index + at : nullptr, k * m.bits);
          else unpack(m, b + 1 + k * bpp, 1, rgb ? rgb + 3 * at : nullptr, index ? index + at : nullptr);
        }
        y += kRowStep[pass];
        while (y >= ysize || row_len <= 0) {
          if (++pass == 7) {
            y = ysize;
            break;
          }
          y = kStartRow[pass];
          row_len = pass_len(pass);
          std::fill(row.begin(), row.end(), 0);
        }
      } else {
        if (grow && grow->size() < static_cast<size_t>((y0 + y + 1) * width * 3)) grow->resize(static_cast<size_t>((y0 + y + 1) * width * 3));
        const size_t at = static_cast<size_t>((y0 + y) * width + x0);
        unpack(m, b + 1, xsize, rgb ? rgb + 3 * at : nullptr, index ? index + at : nullptr);
        ++y;
      }
      last = 0;
      if (y >= ysize || err == Z_STREAM_END) return 0;
      row.swap(previous);
    }
    return 1;
  }
};

}  // namespace

bool is_png(const uint8_t* d, size_t n) {
  static const uint8_t kMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return n >= 8 && std::memcmp(d, kMagic, 8) == 0;
}

ImageU8 decode_png_memory(const uint8_t* d, size_t n, const std::string& name) {
  if (!is_png(d, n)) fail_decode(name, "not a PNG file");
  Stream st;
  st.name = name;
  st.f = Reader{d, n, 8};
  // ---- _open: the chunks up to the image data ----
  std::string cid;
  uint64_t length = 0;
  uint64_t prepare = 0;  // the image data left in the first data chunk
  for (;;) {
    if (!st.header(&cid, &length)) fail_decode(name, "truncated PNG (a chunk header cut short)");
    if (!is_cid(cid)) fail_decode(name, "broken PNG file (a chunk type of other than letters and digits)");
    std::string s;
    if (st.call(cid, length, &s)) {
      prepare = cid == "fdAT" ? length - 4 : length;
      break;
    }
    // ChunkStream.crc
    const std::string crc = st.f.read(4);
    if (crc.size() < 4) fail_decode(name, "broken PNG file (incomplete checksum in " + cid + ")");
    uLong c = crc32(0, reinterpret_cast<const Bytef*>(cid.data()), 4);
    c = crc32(c, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size()));
    if (static_cast<uint32_t>(c) != be32(reinterpret_cast<const uint8_t*>(crc.data())))
      fail_decode(name, "broken PNG file (bad checksum in " + cid + ")");
  }
  if (!st.mode) fail_decode(name, "PNG of an unknown bit depth and colour type (or no IHDR)");
  if (st.width == 0 || st.height == 0) fail_decode(name, "PNG of " + std::to_string(st.width) + "x" + std::to_string(st.height) + " pixels");
  const Mode m = *st.mode;
  const std::optional<std::string> palette = st.palette;  // PngImageFile.palette, as _open leaves it
  const uint64_t W = st.width, H = st.height;
  if (W > static_cast<uint64_t>(kMaxImagePixels) || H > static_cast<uint64_t>(kMaxImagePixels) || W * H > static_cast<uint64_t>(kMaxImagePixels))
    fail_decode(name, "image too large (" + std::to_string(W) + "x" + std::to_string(H) + " pixels)");
  const bool animated = st.n_frames && *st.n_frames + (st.bbox ? 0 : 1) > 1;

  // ---- load: the image data, 64 KiB at a time ----
  if (!st.have_tile) fail_decode(name, "PNG without image data (IEND before any IDAT)");
  const bool palette_mode = m.mode == "P";
  size_t entries = 0;
  if (palette_mode && palette) {
    entries = palette->size() / 3;
    if (entries > 256) fail_decode(name, "PNG of an invalid palette size (" + std::to_string(entries) + " entries)");
  }
  const auto& t = st.tile;
  if (t[2] <= t[0] || t[3] <= t[1] || t[2] > W || t[3] > H) fail_decode(name, "PNG whose frame lies outside the image (tile cannot extend outside image)");
  const size_t pixels = static_cast<size_t>(W * H);
  // Memory is touched only where rows are decoded, as Pillow's calloc'd image memory is, so that
  // a small damaged file declaring a huge image costs little: rows that arrive in order go
  // straight into the RGB image, reserved and grown row by row; P indices and Adam7 passes go
  // into calloc'd memory first.
  ImageU8 img;
  img.width = static_cast<int>(W);
  img.height = static_cast<int>(H);
  const bool direct = !palette_mode && !st.interlace;
  if (direct) img.rgb.reserve(pixels * 3);
  std::unique_ptr<uint8_t, void (*)(void*)> mem(direct ? nullptr : static_cast<uint8_t*>(std::calloc(pixels, palette_mode ? 1 : 3)), std::free);
  if (!direct && !mem) throw std::bad_alloc();
  ZipDecoder dec(m);
  dec.interlaced = st.interlace;
  dec.xsize = static_cast<int64_t>(t[2] - t[0]), dec.ysize = static_cast<int64_t>(t[3] - t[1]);
  dec.x0 = static_cast<int64_t>(t[0]), dec.y0 = static_cast<int64_t>(t[1]), dec.width = static_cast<int64_t>(W);
  dec.rgb = palette_mode ? nullptr : direct ? img.rgb.data() : mem.get();
  dec.index = palette_mode ? mem.get() : nullptr;
  dec.grow = direct ? &img.rgb : nullptr;
  if ((t[2] - t[0]) > static_cast<uint64_t>(INT32_MAX / m.bits - 7)) fail_decode(name, "PNG rows too long for Pillow's decoder");
  Reader& f = st.f;
  f.pos = st.tile_offset;
  uint64_t idat = prepare;
  int result = 1;
  const char* truncated = nullptr;
  while (result > 0) {
    // PngImageFile.load_read
    while (idat == 0) {
      f.read(4);  // CRC
      std::string next;
      uint64_t len = 0;
      if (!st.header(&next, &len)) {
        truncated = "truncated PNG (image file is truncated)";
        break;
      }
      if (!is_cid(next)) fail_decode(name, "broken PNG file (a chunk type of other than letters and digits)");
      if (next != "IDAT" && next != "DDAT" && next != "fdAT") {
        truncated = "truncated PNG (image file is truncated: its image data ends before the last row)";
        break;
      }
      if (next == "fdAT") {
        std::string unused;
        st.call(next, len, &unused);
        idat = len - 4;
      } else {
        idat = len;
      }
    }
    if (truncated) break;
    const size_t k = static_cast<size_t>(std::min<uint64_t>(kReadBlock, idat));
    idat -= k;
    const size_t got = std::min(k, f.left());
    if (got == 0) {
      truncated = "truncated PNG (image file is truncated)";
      break;
    }
    const uint8_t* piece = d + f.pos;
    f.pos += got;
    result = dec.decode(piece, got);
  }
  if (truncated) fail_decode(name, truncated);

  // ---- load_end: the chunks after the image, CRCs unchecked ----
  f.read(idat);
  for (;;) {
    f.read(4);  // CRC
    std::string next;
    uint64_t len = 0;
    if (!st.header(&next, &len) || !is_cid(next)) break;
    if (next == "IEND") break;
    if (next == "fcTL" && animated) break;
    std::string s;
    if (st.call(next, len, &s)) st.safe_read(next == "fdAT" ? len - 4 : len);  // IDAT or fdAT: EOFError
  }
  if (result == -1) fail_decode(name, "corrupt PNG (broken data stream when reading image file)");
  if (result == -2) fail_decode(name, "corrupt PNG (a row of an unknown filter type)");

  // ---- convert("RGB") ----
  if (direct) {
    img.rgb.resize(pixels * 3);  // rows the data never reached stay black
    return img;
  }
  if (!palette_mode) {
    img.rgb.assign(mem.get(), mem.get() + pixels * 3);
    return img;
  }
  uint8_t lut[256][3] = {};
  for (size_t i = 0; i < entries; ++i)
    for (int c = 0; c < 3; ++c) lut[i][c] = static_cast<uint8_t>((*palette)[3 * i + c]);
  img.rgb.resize(pixels * 3);
  const uint8_t* idx = mem.get();
  for (size_t i = 0; i < pixels; ++i) std::memcpy(&img.rgb[3 * i], lut[idx[i]], 3);
  return img;
}

}  // namespace lcam
