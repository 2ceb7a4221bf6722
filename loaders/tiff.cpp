// tiff.cpp — TIFF images (the first page) decoded as Pillow 13's TiffImagePlugin reads them, then
// convert("RGB"): Pillow's own steps, mirrored so that damaged files are read or refused as
// Pillow reads or refuses them, and libtiff where Pillow calls libtiff.
// - The directory: Pillow's parser (ImageFileDirectory_v2.load), not libtiff's. The first entry
//   of a tag wins; unknown types are skipped; out-of-line data past the file's size in all is
//   skipped; a read that comes up short ends the directory there, keeping the tags before it.
//   Values keep Python's types: a tag of one value gives its first, BYTE data stays bytes,
//   rationals and floats compare equal to the integers they equal (a Compression of 5.0 is
//   LZW), and where Pillow needs an int (sizes, offsets) anything else refuses the file.
// - The mode: Pillow's table of (byte order, photometric, sample format, fill order, bits per
//   sample, extra samples) -> (mode, raw mode), with its adjustments (unspecified extra planes
//   dropped, one bits value repeated, too many cut); a combination it lacks is refused.
// - Uncompressed data: Pillow's raw reading. One tile per strip or tile offset (planes take one
//   letter of the raw mode each), sorted by offset, consecutive tiles of the same place and raw
//   mode reduced to the last, each unpacked row by row from its offset with the stride Pillow
//   gives tiles past the right edge; data ending early refuses the file. Where Image.open(path)
//   maps the file (one tile whose raw mode is the mode: L, P, RGBA, CMYK, I;16, I;16B), the
//   pixels are read straight from the file at the size Pillow gives the image (for Orientation
//   5-8 already transposed), as Pillow maps them.
// - Compressed data: libtiff, called as Pillow's TiffDecode.c calls it (strips or tiles, planes
//   through per-band unpackers, YCbCr through libjpeg or libtiff's RGBA interface, its size
//   checks), the rows unpacked with the raw mode Pillow picks (fill order 1, 16-bit samples in
//   native order).
// - Pillow's unpackers (bits, inversion, bit reversal, 2- and 4-bit scaling, 12-bit grey, the
//   high byte of 16-bit samples, associated alpha divided out: v * 255 / a truncated) and its
//   conversions to RGB (I and F clipped, CMYK with its rounding, palettes from the colour map's
//   high bytes, missing entries black, LAB through littleCMS), then the Orientation tag (or XMP's tiff:Orientation)
//   applied as exif_transpose applies it.
// Deliberately omits: pages after the first; sub-IFDs (Exif, GPS) Pillow reads while loading,
// whose damage could make it fail; and refuses, naming the reason, what Pillow reads but lcam
// does not: uncompressed YCbCr (Pillow ignores its subsampling), old-style JPEG (libtiff's
// OJPEG), images of no pixels (Pillow returns an empty image), and the WebP compression the
// libtiff of Pillow's wheels lacks. Where lcam and Pillow can still part is inside libtiff and its
// codecs: on damaged compressed data or directories libtiff alone reads, Debian's libtiff 4.5
// (with libdeflate, zlib and zstd) and the libtiff 4.7 of Pillow's wheels (with zlib-ng) may
// refuse or decode differently.
#include <tiffio.h>  // libtiff

#include <algorithm>  // std::min, std::max, std::stable_sort
#include <cmath>      // NAN
#include <cstdarg>    // va_list
#include <cstdint>    // uint8_t, uint16_t, uint32_t, int64_t
#include <cstdio>     // std::vsnprintf
#include <cstdlib>    // std::calloc, std::free
#include <new>        // std::bad_alloc
#include <cstring>    // std::memcmp, std::memcpy
#include <map>        // std::map
#include <memory>     // std::unique_ptr
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, the declarations implemented here

namespace lcam {
namespace {

// ---- libtiff on the file in memory ----------------------------------------------------------

struct MemFile {
  const uint8_t* data;
  toff_t size;
  toff_t pos = 0;
  std::string error;  // libtiff's first error message
};

tsize_t mem_read(thandle_t h, tdata_t buf, tsize_t n) {
  auto* f = static_cast<MemFile*>(h);
  const toff_t left = f->pos < f->size ? f->size - f->pos : 0;
  const toff_t k = std::min<toff_t>(left, static_cast<toff_t>(n));
  if (k) std::memcpy(buf, f->data + f->pos, k);
  f->pos += k;
  return static_cast<tsize_t>(k);
}
tsize_t mem_write(thandle_t, tdata_t, tsize_t) { return 0; }
toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  auto* f = static_cast<MemFile*>(h);
  if (whence == SEEK_CUR) off += f->pos;
  else if (whence == SEEK_END) off += f->size;
  f->pos = off;
  return off;
}
int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return static_cast<MemFile*>(h)->size; }
int mem_map(thandle_t h, tdata_t* base, toff_t* size) {
  auto* f = static_cast<MemFile*>(h);
  *base = const_cast<uint8_t*>(f->data);
  *size = f->size;
  return 1;
}
void mem_unmap(thandle_t, tdata_t, toff_t) {}
int keep_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* f = static_cast<MemFile*>(user);
  if (f->error.empty()) {
    char msg[256];
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    f->error = (module && *module ? std::string(module) + ": " : std::string()) + msg;
  }
  return 1;
}
int ignore_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// ---- Pillow's tag values ---------------------------------------------------------------------

// One value as Python holds it: an int, a float, an IFDRational, bytes or a str.
struct Value {
  enum Kind : uint8_t { Int, Float, Ratio, Bytes, Str } kind = Int;
  int64_t i = 0, den = 1;  // Int; Ratio's numerator and denominator
  double f = 0;            // Float
  std::string s;           // Bytes, Str
  bool numeric() const { return kind == Int || kind == Float || kind == Ratio; }
  bool is_int() const { return kind == Int; }
  // Python's `self == k` (and so dict lookups: equal numbers hash alike).
  bool operator==(int64_t k) const {
    if (kind == Int) return i == k;
    if (kind == Float) return f == static_cast<double>(k);
    if (kind == Ratio) return den != 0 && i == k * den;
    return false;
  }
  double number() const {  // for ordering; NaN for a zero denominator
    if (kind == Int) return static_cast<double>(i);
    if (kind == Float) return f;
    return den == 0 ? NAN : static_cast<double>(i) / static_cast<double>(den);
  }
};

// A tag as TiffImageFile.tag_v2 returns it: absent, one value, or a tuple. `is_bytes` marks
// BYTE data, a bytes object: indexing gives ints, but it never equals a tuple.
struct Py {
  bool present = false, single = false, is_bytes = false;
  Value one;
  std::vector<Value> items;  // a tuple's items, or a bytes object's bytes as ints
};

struct Entry {
  uint16_t type;
  std::string data;
};

// The tags Pillow's _setup reads, with TiffTags' "length": 1 gives one value, 0 a tuple.
bool single_valued(uint16_t tag) {
  switch (tag) {
    case 256: case 257: case 259: case 262: case 266: case 274: case 277: case 278: case 282: case 283:
    case 284: case 296: case 322: case 323: return true;
    default: return false;
  }
}

class Directory {
 public:
  Directory(const uint8_t* d, size_t n, bool little, bool big) : d_(d), n_(n), little_(little), big_(big) {}

  // ImageFileDirectory_v2.load at `offset`, with its tag data budget (the file's size).
  void load(uint64_t offset) {
    uint64_t pos = offset;
    unsigned __int128 total = 0;
    auto read = [&](size_t k, std::string& out) {
      if (pos > n_ || n_ - pos < k) return false;
      out.assign(reinterpret_cast<const char*>(d_ + pos), k);
      pos += k;
      return true;
    };
    std::string buf;
    if (!read(big_ ? 8 : 2, buf)) return;
    const uint64_t count = uint_of(buf);
    for (uint64_t e = 0; e < count; ++e) {
      if (!read(big_ ? 20 : 12, buf)) return;
      const uint16_t tag = static_cast<uint16_t>(uint_of(buf.substr(0, 2))), type = static_cast<uint16_t>(uint_of(buf.substr(2, 2)));
      const uint64_t n = uint_of(buf.substr(4, big_ ? 8 : 4));
      const std::string inline_data = buf.substr(big_ ? 12 : 8);
      if (tags_.count(tag)) continue;
      const int unit = unit_size(type);
      if (unit == 0) continue;  // a type Pillow does not load
      const unsigned __int128 size128 = static_cast<unsigned __int128>(n) * unit;
      std::string data;
      if (size128 > static_cast<unsigned>(big_ ? 8 : 4)) {
        const uint64_t at = uint_of(inline_data.substr(0, big_ ? 8 : 4));
        if (at >= (uint64_t{1} << 63)) continue;
        total += size128;
        if (total > n_) continue;  // "Tag data larger than file. Skipping tag"
        const uint64_t size = static_cast<uint64_t>(size128);
        if (at > n_ || n_ - at < size) return;  // _safe_read's "Truncated File Read" ends the directory
        data.assign(reinterpret_cast<const char*>(d_ + at), size);
      } else {
        data = inline_data.substr(0, static_cast<size_t>(size128));
      }
      if (data.empty()) continue;
      tags_[tag] = {type, data};
    }
  }

  bool has(uint16_t tag) const { return tags_.count(tag) > 0; }

  // tag_v2[tag]: the data decoded by its type, then stored as _setitem stores it.
  Py get(uint16_t tag) const {
    Py p;
    auto it = tags_.find(tag);
    if (it == tags_.end()) return p;
    const Entry& e = it->second;
    std::vector<Value> values;
    bool bytes_object = false;
    if (e.type == 1 || e.type == 7 || e.type == 2) {
      Value v;
      v.kind = e.type == 2 ? Value::Str : Value::Bytes;
      v.s = e.data;
      if (e.type == 2 && !v.s.empty() && v.s.back() == '\0') v.s.pop_back();
      values.push_back(v);
      bytes_object = e.type == 1;
    } else {
      const int unit = unit_size(e.type);
      for (size_t k = 0; k + unit <= e.data.size(); k += unit) values.push_back(decode(e.type, e.data.substr(k, unit)));
    }
    p.present = true;
    if (single_valued(tag) || e.type == 1) {
      if (values.size() != 1 && tag == 262) return Py{};  // Pillow stores no photometric then
      p.single = true;
      p.one = values[0];
      if (bytes_object) {
        p.is_bytes = true;
        for (unsigned char c : e.data) p.items.push_back(int_value(c));
      }
      return p;
    }
    p.items = values;
    return p;
  }

  uint64_t uint_of(const std::string& b) const {
    uint64_t v = 0;
    for (size_t k = 0; k < b.size(); ++k) {
      const uint64_t byte = static_cast<unsigned char>(b[little_ ? b.size() - 1 - k : k]);
      v = v << 8 | byte;
    }
    return v;
  }

 private:
  static int unit_size(uint16_t type) {
    switch (type) {
      case 1: case 2: case 6: case 7: return 1;
      case 3: case 8: return 2;
      case 4: case 9: case 11: case 13: return 4;
      case 5: case 10: case 12: case 16: return 8;
      default: return 0;
    }
  }
  static Value int_value(int64_t x) {
    Value v;
    v.i = x;
    return v;
  }
  Value decode(uint16_t type, const std::string& b) const {
    const uint64_t u = uint_of(b);
    Value v;
    switch (type) {
      case 3: case 4: case 13: case 16: v.i = static_cast<int64_t>(u); break;  // LONG8 values past 2^63 stay huge offsets
      case 6: v.i = static_cast<int8_t>(u); break;
      case 8: v.i = static_cast<int16_t>(u); break;
      case 9: v.i = static_cast<int32_t>(u); break;
      case 11: {
        const uint32_t w = static_cast<uint32_t>(u);
        float x;
        std::memcpy(&x, &w, 4);
        v.kind = Value::Float, v.f = x;
        break;
      }
      case 12: v.kind = Value::Float, std::memcpy(&v.f, &u, 8); break;
      case 5: case 10: {
        const uint64_t a = uint_of(b.substr(0, 4)), c = uint_of(b.substr(4, 4));
        v.kind = Value::Ratio;
        v.i = type == 5 ? static_cast<int64_t>(a) : static_cast<int32_t>(a);
        v.den = type == 5 ? static_cast<int64_t>(c) : static_cast<int32_t>(c);
        break;
      }
    }
    return v;
  }
  const uint8_t* d_;
  size_t n_;
  bool little_, big_;
  std::map<uint16_t, Entry> tags_;
};

// ---- Pillow's modes, raw modes and unpackers -------------------------------------------------

// OPEN_INFO as (photometric, sample format, fill order, bits..., extras...) rows; a row matches
// when every number equals. `endian` 0 both byte orders, 1 little only, 2 big only.
struct ModeRow {
  int endian, photo, format, fill;
  std::vector<int> bits, extras;
  const char *mode, *raw;
};
const std::vector<ModeRow>& open_info() {
  static const std::vector<ModeRow> rows = {
      {0, 0, 1, 1, {1}, {}, "1", "1;I"}, {0, 0, 1, 2, {1}, {}, "1", "1;IR"}, {0, 1, 1, 1, {1}, {}, "1", "1"},
      {0, 1, 1, 2, {1}, {}, "1", "1;R"}, {0, 0, 1, 1, {2}, {}, "L", "L;2I"}, {0, 0, 1, 2, {2}, {}, "L", "L;2IR"},
      {0, 1, 1, 1, {2}, {}, "L", "L;2"}, {0, 1, 1, 2, {2}, {}, "L", "L;2R"}, {0, 0, 1, 1, {4}, {}, "L", "L;4I"},
      {0, 0, 1, 2, {4}, {}, "L", "L;4IR"}, {0, 1, 1, 1, {4}, {}, "L", "L;4"}, {0, 1, 1, 2, {4}, {}, "L", "L;4R"},
      {0, 0, 1, 1, {8}, {}, "L", "L;I"}, {0, 0, 1, 2, {8}, {}, "L", "L;IR"}, {0, 1, 1, 1, {8}, {}, "L", "L"},
      {0, 1, 2, 1, {8}, {}, "L", "L"}, {0, 1, 1, 2, {8}, {}, "L", "L;R"}, {1, 1, 1, 1, {12}, {}, "I;16", "I;12"},
      {1, 0, 1, 1, {16}, {}, "I;16", "I;16"}, {1, 1, 1, 1, {16}, {}, "I;16", "I;16"}, {2, 1, 1, 1, {16}, {}, "I;16B", "I;16B"},
      {1, 1, 1, 2, {16}, {}, "I;16", "I;16R"}, {1, 1, 2, 1, {16}, {}, "I", "I;16S"}, {2, 1, 2, 1, {16}, {}, "I", "I;16BS"},
      {1, 0, 3, 1, {32}, {}, "F", "F;32F"}, {2, 0, 3, 1, {32}, {}, "F", "F;32BF"}, {1, 1, 1, 1, {32}, {}, "I", "I;32N"},
      {1, 1, 2, 1, {32}, {}, "I", "I;32S"}, {2, 1, 2, 1, {32}, {}, "I", "I;32BS"}, {1, 1, 3, 1, {32}, {}, "F", "F;32F"},
      {2, 1, 3, 1, {32}, {}, "F", "F;32BF"}, {0, 1, 1, 1, {8, 8}, {0}, "L", "LX"}, {0, 1, 1, 1, {8, 8}, {1}, "La", "La"},
      {0, 1, 1, 1, {8, 8}, {2}, "LA", "LA"}, {0, 2, 1, 1, {8, 8, 8}, {}, "RGB", "RGB"}, {0, 2, 1, 2, {8, 8, 8}, {}, "RGB", "RGB;R"},
      {0, 2, 1, 1, {8, 8, 8, 8}, {}, "RGBA", "RGBA"}, {0, 2, 1, 1, {8, 8, 8, 8}, {0}, "RGB", "RGBX"},
      {0, 2, 1, 1, {8, 8, 8, 8, 8}, {0, 0}, "RGB", "RGBXX"}, {0, 2, 1, 1, {8, 8, 8, 8, 8, 8}, {0, 0, 0}, "RGB", "RGBXXX"},
      {0, 2, 1, 1, {8, 8, 8, 8}, {1}, "RGBA", "RGBa"}, {0, 2, 1, 1, {8, 8, 8, 8, 8}, {1, 0}, "RGBA", "RGBaX"},
      {0, 2, 1, 1, {8, 8, 8, 8, 8, 8}, {1, 0, 0}, "RGBA", "RGBaXX"}, {0, 2, 1, 1, {8, 8, 8, 8}, {2}, "RGBA", "RGBA"},
      {0, 2, 1, 1, {8, 8, 8, 8, 8}, {2, 0}, "RGBA", "RGBAX"}, {0, 2, 1, 1, {8, 8, 8, 8, 8, 8}, {2, 0, 0}, "RGBA", "RGBAXX"},
      {0, 2, 1, 1, {8, 8, 8, 8}, {999}, "RGBA", "RGBA"}, {1, 2, 1, 1, {16, 16, 16}, {}, "RGB", "RGB;16L"},
      {2, 2, 1, 1, {16, 16, 16}, {}, "RGB", "RGB;16B"}, {1, 2, 1, 1, {16, 16, 16, 16}, {}, "RGBA", "RGBA;16L"},
      {2, 2, 1, 1, {16, 16, 16, 16}, {}, "RGBA", "RGBA;16B"}, {1, 2, 1, 1, {16, 16, 16, 16}, {0}, "RGB", "RGBX;16L"},
      {2, 2, 1, 1, {16, 16, 16, 16}, {0}, "RGB", "RGBX;16B"}, {1, 2, 1, 1, {16, 16, 16, 16}, {1}, "RGBA", "RGBa;16L"},
      {2, 2, 1, 1, {16, 16, 16, 16}, {1}, "RGBA", "RGBa;16B"}, {1, 2, 1, 1, {16, 16, 16, 16}, {2}, "RGBA", "RGBA;16L"},
      {2, 2, 1, 1, {16, 16, 16, 16}, {2}, "RGBA", "RGBA;16B"}, {0, 3, 1, 1, {1}, {}, "P", "P;1"},
      {0, 3, 1, 2, {1}, {}, "P", "P;1R"}, {0, 3, 1, 1, {2}, {}, "P", "P;2"}, {0, 3, 1, 2, {2}, {}, "P", "P;2R"},
      {0, 3, 1, 1, {4}, {}, "P", "P;4"}, {0, 3, 1, 2, {4}, {}, "P", "P;4R"}, {0, 3, 1, 1, {8}, {}, "P", "P"},
      {0, 3, 1, 1, {8, 8}, {0}, "P", "PX"}, {0, 3, 1, 1, {8, 8}, {2}, "PA", "PA"}, {0, 3, 1, 2, {8}, {}, "P", "P;R"},
      {0, 5, 1, 1, {8, 8, 8, 8}, {}, "CMYK", "CMYK"}, {0, 5, 1, 1, {8, 8, 8, 8, 8}, {0}, "CMYK", "CMYKX"},
      {0, 5, 1, 1, {8, 8, 8, 8, 8, 8}, {0, 0}, "CMYK", "CMYKXX"}, {1, 5, 1, 1, {16, 16, 16, 16}, {}, "CMYK", "CMYK;16L"},
      {2, 5, 1, 1, {16, 16, 16, 16}, {}, "CMYK", "CMYK;16B"}, {0, 6, 1, 1, {8}, {}, "L", "L"},
      {0, 6, 1, 1, {8, 8, 8}, {}, "YCbCr", "YCbCr"}, {0, 8, 1, 1, {8, 8, 8}, {}, "LAB", "LAB"},
  };
  return rows;
}

// Bytes per pixel of lcam's copy of a Pillow mode: one for 1, L and P; the value of I;16 and
// I;16B (host order); int32 I; float F; four bytes (Pillow's layout) for the rest.
int pixel_bytes(const std::string& mode) {
  if (mode == "1" || mode == "L" || mode == "P") return 1;
  if (mode == "I;16" || mode == "I;16B") return 2;
  return 4;
}

uint8_t reverse8(uint8_t b) {
  b = static_cast<uint8_t>((b & 0xF0) >> 4 | (b & 0x0F) << 4);
  b = static_cast<uint8_t>((b & 0xCC) >> 2 | (b & 0x33) << 2);
  return static_cast<uint8_t>((b & 0xAA) >> 1 | (b & 0x55) << 1);
}

// Pillow's unpacker for (mode, raw mode): its bits per pixel and the row function. `band`
// (-1 for whole pixels) is the byte a one-letter planar raw mode writes.
struct Unpacker {
  int bits = 0;
  std::string raw;
  int band = -1;
  bool found() const { return bits > 0; }
};

Unpacker find_unpacker(const std::string& mode, const std::string& raw) {
  static const std::map<std::string, std::map<std::string, int>> table = {
      {"1", {{"1", 1}, {"1;I", 1}, {"1;R", 1}, {"1;IR", 1}}},
      {"L", {{"L", 8}, {"L;I", 8}, {"L;R", 8}, {"L;2", 2}, {"L;2I", 2}, {"L;2R", 2}, {"L;2IR", 2}, {"L;4", 4}, {"L;4I", 4},
             {"L;4R", 4}, {"L;4IR", 4}, {"LX", 16}}},
      {"P", {{"P", 8}, {"P;R", 8}, {"P;1", 1}, {"P;2", 2}, {"P;4", 4}, {"PX", 16}}},
      {"I;16", {{"I;16", 16}, {"I;16N", 16}, {"I;16R", 16}, {"I;12", 12}}},
      {"I;16B", {{"I;16B", 16}, {"I;16N", 16}}},
      {"I", {{"I;16S", 16}, {"I;16BS", 16}, {"I;32N", 32}, {"I;32S", 32}, {"I;32BS", 32}, {"I", 32}, {"I;16", 16}, {"I;16N", 16}}},
      {"F", {{"F;32F", 32}, {"F;32BF", 32}, {"F", 32}}},
      {"LA", {{"LA", 16}}},
      {"La", {{"La", 16}}},
      {"PA", {{"PA", 16}}},
      {"RGB", {{"RGB", 24}, {"RGB;R", 24}, {"RGBX", 32}, {"RGBXX", 40}, {"RGBXXX", 48}, {"RGB;16L", 48}, {"RGB;16B", 48},
               {"RGB;16N", 48}, {"RGBX;16L", 64}, {"RGBX;16B", 64}, {"RGBX;16N", 64}}},
      {"RGBA", {{"RGBA", 32}, {"RGBa", 32}, {"RGBaX", 40}, {"RGBaXX", 48}, {"RGBAX", 40}, {"RGBAXX", 48}, {"RGBA;16L", 64},
                {"RGBA;16B", 64}, {"RGBA;16N", 64}, {"RGBa;16L", 64}, {"RGBa;16B", 64}, {"RGBa;16N", 64}}},
      {"CMYK", {{"CMYK", 32}, {"CMYKX", 40}, {"CMYKXX", 48}, {"CMYK;16L", 64}, {"CMYK;16B", 64}, {"CMYK;16N", 64}}},
      {"LAB", {{"LAB", 24}}},
  };
  Unpacker u;
  u.raw = raw;
  auto m = table.find(mode);
  if (m != table.end()) {
    auto r = m->second.find(raw);
    if (r != m->second.end()) {
      u.bits = r->second;
      return u;
    }
  }
  // One band of a four-byte pixel: R, G, B, A (RGB, RGBA) and C, M, Y, K (CMYK).
  static const std::string rgba = "RGBA", cmyk = "CMYK";
  if (raw.size() == 1 && (mode == "RGB" || mode == "RGBA") && rgba.find(raw[0]) != std::string::npos &&
      !(mode == "RGB" && raw[0] == 'A')) {
    u.bits = 8, u.band = static_cast<int>(rgba.find(raw[0]));
  } else if (raw.size() == 1 && mode == "CMYK" && cmyk.find(raw[0]) != std::string::npos) {
    u.bits = 8, u.band = static_cast<int>(cmyk.find(raw[0]));
  }
  return u;
}

// libtiff's planar unpackers: Pillow asks for the RGBA-mode band unpackers whatever the image's
// mode (R, G, B, A, or their ;16N forms taking the high byte of native samples).
Unpacker band_unpacker(int band, bool sixteen) {
  Unpacker u;
  u.band = band;
  u.bits = sixteen ? 16 : 8;
  u.raw = sixteen ? "band;16N" : "band";
  return u;
}

inline uint8_t clip8(int64_t v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

// Unpacks n pixels of one row from `in` into `out` (pixels of `mode`).
void unpack(const Unpacker& u, const std::string& mode, const uint8_t* in, uint8_t* out, int n) {
  const std::string& r = u.raw;
  if (u.band >= 0) {
    const int step = u.bits / 8, hi = step == 2 ? 1 : 0;
    for (int x = 0; x < n; ++x) out[4 * x + u.band] = in[step * x + hi];
    return;
  }
  auto bit_row = [&](int bits, bool invert, bool rev, auto put) {
    for (int x = 0; x < n; ++x) {
      uint8_t byte = in[x * bits / 8];
      if (rev) byte = reverse8(byte);
      int v = byte >> (8 - bits - (x * bits) % 8) & ((1 << bits) - 1);
      put(x, v, invert);
    }
  };
  if (mode == "1") {
    const bool inv = r == "1;I" || r == "1;IR", rev = r == "1;R" || r == "1;IR";
    bit_row(1, inv, rev, [&](int x, int v, bool i) { out[x] = (v != 0) != i ? 255 : 0; });
    return;
  }
  if (mode == "L" || mode == "P") {
    if (u.bits < 8) {
      const bool inv = r.find('I') != std::string::npos, rev = r.back() == 'R';
      const int scale = mode == "P" ? 1 : u.bits == 2 ? 0x55 : 0x11;
      bit_row(u.bits, inv, rev, [&](int x, int v, bool i) { out[x] = static_cast<uint8_t>(i ? 255 - v * scale : v * scale); });
      return;
    }
    const int step = u.bits / 8;
    for (int x = 0; x < n; ++x) {
      uint8_t v = in[step * x];
      if (r == "L;I") v = static_cast<uint8_t>(~v);
      else if (r == "L;R" || r == "P;R") v = reverse8(v);
      out[x] = v;
    }
    return;
  }
  if (mode == "I;16" || mode == "I;16B") {
    auto* o = reinterpret_cast<uint16_t*>(out);
    if (r == "I;12") {
      int x = 0;
      for (; x + 1 < n; x += 2, in += 3) {
        o[x] = static_cast<uint16_t>(in[0] << 4 | in[1] >> 4);
        o[x + 1] = static_cast<uint16_t>((in[1] & 0x0F) << 8 | in[2]);
      }
      if (x == n - 1) o[x] = static_cast<uint16_t>(in[0] << 4 | in[1] >> 4);
      return;
    }
    for (int x = 0; x < n; ++x) {
      uint8_t a = in[2 * x], b = in[2 * x + 1];
      if (r == "I;16R") a = reverse8(a), b = reverse8(b);
      o[x] = static_cast<uint16_t>(r == "I;16B" ? a << 8 | b : b << 8 | a);
    }
    return;
  }
  if (mode == "I" || mode == "F") {
    const bool big = r.find('B') != std::string::npos;
    const int bytes = u.bits / 8;
    for (int x = 0; x < n; ++x) {
      uint32_t v = 0;
      for (int k = 0; k < bytes; ++k) v |= static_cast<uint32_t>(in[bytes * x + k]) << 8 * (big ? bytes - 1 - k : k);
      if (mode == "I") {
        const int32_t s = bytes == 2 ? (r.find('S') != std::string::npos ? static_cast<int16_t>(v) : static_cast<int32_t>(v))
                                     : static_cast<int32_t>(v);
        std::memcpy(out + 4 * x, &s, 4);
      } else {
        std::memcpy(out + 4 * x, &v, 4);
      }
    }
    return;
  }
  // Four-byte pixels: LA/La/PA (value and alpha), RGB, RGBA, CMYK.
  const int stride = u.bits / 8;
  if (mode == "LA" || mode == "La" || mode == "PA") {
    for (int x = 0; x < n; ++x) out[4 * x] = in[2 * x], out[4 * x + 1] = out[4 * x + 2] = in[2 * x], out[4 * x + 3] = in[2 * x + 1];
    return;
  }
  if (r == "RGB") {
    for (int x = 0; x < n; ++x) out[4 * x] = in[3 * x], out[4 * x + 1] = in[3 * x + 1], out[4 * x + 2] = in[3 * x + 2], out[4 * x + 3] = 255;
    return;
  }
  if (r == "LAB") {  // a and b are signed in the file (ImagingUnpackLAB)
    for (int x = 0; x < n; ++x)
      out[4 * x] = in[3 * x], out[4 * x + 1] = in[3 * x + 1] ^ 128, out[4 * x + 2] = in[3 * x + 2] ^ 128, out[4 * x + 3] = 255;
    return;
  }
  if (r == "RGBA" || r == "CMYK" || (mode == "RGB" && r == "RGBX")) {
    std::memcpy(out, in, static_cast<size_t>(n) * 4);
    if (mode == "RGB")
      for (int x = 0; x < n; ++x) out[4 * x + 3] = 255;
    return;
  }
  const bool sixteen = r.find(";16") != std::string::npos;
  const int hi = sixteen && r.back() != 'B' ? 1 : 0;  // L and N (little-endian hosts): the second byte
  const int sample = sixteen ? 2 : 1;
  const bool has_alpha = mode == "RGBA" || mode == "CMYK";
  const bool premultiplied = r.rfind("RGBa", 0) == 0;
  for (int x = 0; x < n; ++x) {
    const uint8_t* p = in + stride * x;
    uint8_t c[4];
    for (int k = 0; k < 4; ++k) c[k] = (k < 3 || has_alpha) ? p[sample * k + hi] : 255;
    if (mode == "RGB") c[3] = 255;
    if (r == "RGB;R") c[0] = reverse8(c[0]), c[1] = reverse8(c[1]), c[2] = reverse8(c[2]);
    if (premultiplied) {
      const int a = c[3];
      for (int k = 0; k < 3; ++k) c[k] = a == 0 ? 0 : a == 255 ? c[k] : clip8(c[k] * 255 / a);
    }
    std::memcpy(out + 4 * x, c, 4);
  }
}

// ---- the image in Pillow's mode, then RGB ----------------------------------------------------

struct ModeImage {
  std::string mode;
  int w = 0, h = 0, px = 1;
  // calloc'd, as Pillow's image memory is: pages a damaged file never reaches cost nothing.
  std::unique_ptr<uint8_t, void (*)(void*)> data{nullptr, std::free};
  void allocate() {
    data.reset(static_cast<uint8_t*>(std::calloc(static_cast<size_t>(w) * h, static_cast<size_t>(px))));
    if (!data) throw std::bad_alloc();
  }
  uint8_t* row(int y) { return data.get() + static_cast<size_t>(y) * w * px; }
};

// convert("RGB") of each mode, one loop per mode.
ImageU8 to_rgb(const ModeImage& m, const std::vector<uint8_t>& palette) {
  ImageU8 img;
  img.width = m.w, img.height = m.h;
  const size_t n = static_cast<size_t>(m.w) * m.h;
  img.rgb.resize(n * 3);
  const uint8_t* p = m.data.get();
  uint8_t* o = img.rgb.data();
  const std::string& mode = m.mode;
  if (mode == "1" || mode == "L" || mode == "LA") {
    for (size_t i = 0; i < n; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = p[i * m.px];
  } else if (mode == "P" || mode == "PA") {
    for (size_t i = 0; i < n; ++i) std::memcpy(o + 3 * i, &palette[3 * p[i * m.px]], 3);
  } else if (mode == "I;16" || mode == "I;16B") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = clip8(v);
    }
  } else if (mode == "I") {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = clip8(v);
    }
  } else if (mode == "F") {
    for (size_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = static_cast<uint8_t>(v >= 255.f ? 255 : v > 0.f ? static_cast<int>(v) : 0);
    }
  } else if (mode == "LAB") {
    lab_to_rgb(p, n, o);
  } else if (mode == "CMYK") {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* q = p + 4 * i;
      const int nk = 255 - q[3];
      o[3 * i] = cmyk_to_rgb_channel(q[0], nk), o[3 * i + 1] = cmyk_to_rgb_channel(q[1], nk), o[3 * i + 2] = cmyk_to_rgb_channel(q[2], nk);
    }
  } else {  // RGB, RGBA
    for (size_t i = 0; i < n; ++i) std::memcpy(o + 3 * i, p + 4 * i, 3);
  }
  return img;
}

// ImageOps.exif_transpose for Orientation 2-8.
ImageU8 apply_orientation(ImageU8 img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int w = img.width, h = img.height;
  ImageU8 out;
  out.width = orientation >= 5 ? h : w;
  out.height = orientation >= 5 ? w : h;
  out.rgb.resize(img.rgb.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                  // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;  // ROTATE_180
        case 4: sy = h - 1 - y; break;                  // FLIP_TOP_BOTTOM
        case 5: sx = y, sy = x; break;                  // TRANSPOSE
        case 6: sx = y, sy = h - 1 - x; break;          // ROTATE_270
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;  // TRANSVERSE
        case 8: sx = w - 1 - y, sy = x; break;          // ROTATE_90
      }
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * out.width + x) * 3], &img.rgb[(static_cast<size_t>(sy) * w + sx) * 3], 3);
    }
  return out;
}

[[noreturn]] void refuse(const std::string& name, const std::string& why) { fail_decode(name, "TIFF " + why); }

// ---- _setup: the mode, the palette and the size from the first directory ---------------------

// A tag's value, or `dflt` where the directory lacks it (Pillow's tag_v2.get(tag, dflt)).
Value tag_or(const Directory& dir, uint16_t tag, int64_t dflt) {
  Py p = dir.get(tag);
  if (p.present) return p.one;
  Value v;
  v.i = dflt;
  return v;
}

// Whether a tag is a tuple (or bytes) of numbers only, as OPEN_INFO's keys need.
bool all_numeric(const Py& p) {
  if (p.single && !p.is_bytes) return false;
  for (const Value& v : p.items)
    if (!v.numeric()) return false;
  return true;
}

// What TiffImageFile._setup decides: the tags it reads, Pillow's mode and raw mode, the palette.
struct Setup {
  bool little = false;
  int64_t compression = 1;
  Value planar, photo, fill, orientation;
  int64_t xsize = 0, ysize = 0;
  Py sample_format, bps, extras;
  int bps_count = 1;  // the planes a tile's stride divides by
  std::string mode, rawmode;
  std::vector<uint8_t> palette = std::vector<uint8_t>(256 * 3, 0);

  bool turned() const { return orientation == 5 || orientation == 6 || orientation == 7 || orientation == 8; }

  // OPEN_INFO's row for these tags with the given fill order, or null.
  const ModeRow* lookup(const Value& fill_value) const {
    if (sample_format.is_bytes || bps.is_bytes || extras.is_bytes) return nullptr;
    if (sample_format.items.size() != 1 || !all_numeric(sample_format) || !all_numeric(bps) || !all_numeric(extras)) return nullptr;
    for (const ModeRow& row : open_info()) {
      if ((row.endian == 1 && !little) || (row.endian == 2 && little)) continue;
      if (!(photo == row.photo) || !(sample_format.items[0] == row.format) || !(fill_value == row.fill)) continue;
      if (bps.items.size() != row.bits.size() || extras.items.size() != row.extras.size()) continue;
      bool eq = true;
      for (size_t k = 0; k < row.bits.size(); ++k) eq = eq && bps.items[k] == row.bits[k];
      for (size_t k = 0; k < row.extras.size(); ++k) eq = eq && extras.items[k] == row.extras[k];
      if (eq) return &row;
    }
    return nullptr;
  }
};

// Sample format, bits per sample, extra samples and samples per pixel, adjusted as _setup does
// (unspecified extra planes dropped, one bits value repeated, too many cut).
void read_samples(const Directory& dir, Setup& s, const std::string& name) {
  s.sample_format = dir.get(339);
  if (!s.sample_format.present) s.sample_format.present = true, s.sample_format.items = {Value{}}, s.sample_format.items[0].i = 1;
  std::vector<Value>& formats = s.sample_format.items;
  bool formats_numeric = true;
  for (const Value& v : formats) formats_numeric = formats_numeric && v.numeric();
  if (formats.size() > 1 && formats_numeric) {
    bool same = true;
    for (const Value& v : formats) same = same && v.number() == formats[0].number();
    if (same) formats.resize(1), s.sample_format.is_bytes = false;
  }
  Py& bps = s.bps;
  bps = dir.get(258);
  if (!bps.present) bps.present = true, bps.items = {Value{}}, bps.items[0].i = 1;
  s.extras = dir.get(338);
  if (!s.extras.present) s.extras.present = true;
  const bool ycbcr_jpeg_default = s.compression == 6 && (s.photo == 2 || s.photo == 6);
  Value spp = tag_or(dir, 277, ycbcr_jpeg_default ? 3 : 1);
  s.bps_count = (s.photo == 2 || s.photo == 6 || s.photo == 8) ? 3 : s.photo == 5 ? 4 : 1;
  if (!spp.numeric()) refuse(name, "of a samples-per-pixel value that is not a number");
  if (s.planar == 2 && !s.extras.items.empty()) {
    if (!all_numeric(s.extras)) refuse(name, "of extra samples that are not numbers");
    double mx = s.extras.items[0].number();
    for (const Value& v : s.extras.items) mx = std::max(mx, v.number());
    if (mx == 0) {
      const int64_t k = static_cast<int64_t>(s.extras.items.size());
      bps.items.resize(bps.items.size() >= static_cast<size_t>(k) ? bps.items.size() - k : 0);
      if (spp.kind == Value::Float) spp.f -= static_cast<double>(k);
      else spp.i -= spp.kind == Value::Ratio ? k * spp.den : k;
      s.extras = Py{};
      s.extras.present = true;
    }
  }
  s.bps_count += static_cast<int>(s.extras.items.size());
  const size_t bps_actual = bps.items.size();
  const double spp_num = spp.number();
  if (spp_num > 6) refuse(name, "of more samples per pixel than Pillow decodes");
  if (spp_num < static_cast<double>(bps_actual)) {
    if (!spp.is_int()) refuse(name, "of a samples-per-pixel value that is not an integer");
    bps.items.resize(static_cast<size_t>(std::max<int64_t>(0, spp.i)));
  } else if (spp_num > static_cast<double>(bps_actual) && bps_actual == 1) {
    if (!spp.is_int()) refuse(name, "of a samples-per-pixel value that is not an integer");
    bps.items.assign(static_cast<size_t>(spp.i), bps.items[0]);
  }
  if (!(spp == static_cast<int64_t>(bps.items.size()))) refuse(name, "of an unknown data organization");
}

// The palette of P and PA: the colour map's high bytes as an "RGB;L" palette.
void read_palette(const Directory& dir, Setup& s, const std::string& name) {
  Py cmap = dir.get(320);
  if (!cmap.present) refuse(name, "palette image without a colour map");
  std::vector<int64_t> vals;
  auto floor_div = [](int64_t a, int64_t b) {  // Python's //, b > 0
    return a >= 0 ? a / b : -((-a + b - 1) / b);
  };
  for (const Value& v : cmap.items) {
    // b // 256: ints stay ints, rationals floor exactly (Fraction's //), floats give floats,
    // which array("B", ...) refuses.
    int64_t q;
    if (v.is_int()) q = floor_div(v.i, 256);
    else if (v.kind == Value::Ratio && v.den != 0) q = v.den > 0 ? floor_div(v.i, v.den * 256) : floor_div(-v.i, -v.den * 256);
    else refuse(name, "of a colour map that is not integers");
    if (q < 0 || q > 255) refuse(name, "of a colour map out of range");
    vals.push_back(q);
  }
  if (vals.size() / 3 > 256) refuse(name, "of an invalid palette size");
  const size_t entries = vals.size() / 3;
  for (size_t k = 0; k < entries; ++k)
    for (int c = 0; c < 3; ++c) s.palette[3 * k + c] = static_cast<uint8_t>(vals[k + c * entries]);
}

Setup read_setup(const Directory& dir, bool little, const std::string& name) {
  if (dir.has(0xBC01)) refuse(name, "of Windows Media Photo data");
  Setup s;
  s.little = little;
  const Value compression = tag_or(dir, 259, 1);
  static const int64_t known[] = {1, 2, 3, 4, 5, 6, 7, 8, 32771, 32773, 32809, 32946, 34676, 34677, 34925, 50000, 50001};
  s.compression = -1;
  for (int64_t k : known)
    if (compression == k) s.compression = k;
  if (s.compression < 0) refuse(name, "of an unknown compression");
  s.planar = tag_or(dir, 284, 1);
  s.photo = tag_or(dir, 262, 0);
  if (s.compression == 6) s.photo = Value{}, s.photo.i = 6;  // old-style JPEG: Pillow assumes YCbCr
  s.fill = tag_or(dir, 266, 1);
  Py width = dir.get(256), height = dir.get(257);
  if (!width.present || !height.present) refuse(name, "without its image size");
  if (!width.one.is_int() || !height.one.is_int()) refuse(name, "of an image size that is not an integer");
  s.xsize = width.one.i, s.ysize = height.one.i;
  s.orientation = tag_or(dir, 274, 1);
  read_samples(dir, s, name);

  const ModeRow* row = s.lookup(s.fill);
  if (!row) {
    // A value as text: an int as it is, anything else (a float, a ratio, even NaN) as %g.
    auto text = [](const Value& v) {
      if (v.is_int()) return std::to_string(v.i);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", v.number());
      return std::string(buf);
    };
    std::string bits_text;
    for (const Value& v : s.bps.items) bits_text += (bits_text.empty() ? "" : ",") + text(v);
    fail_decode(name, "TIFF of an unknown pixel mode (photometric " + text(s.photo) +
                          ", bits per sample " + (bits_text.empty() ? "none" : bits_text) + ", " +
                          std::to_string(s.extras.items.size()) + " extra samples)");
  }
  s.mode = row->mode, s.rawmode = row->raw;

  // Resolution: Pillow multiplies centimetres into inches, which fails on bytes and text.
  {
    Py xres = dir.get(282), yres = dir.get(283), unit = dir.get(296);
    auto truthy = [](const Py& p) {
      if (!p.present) return true;  // the default 1
      const Value& v = p.one;
      return v.kind == Value::Bytes || v.kind == Value::Str ? !v.s.empty() : v.number() != 0;
    };
    if (truthy(xres) && truthy(yres) && unit.present && unit.one == 3)
      for (const Py* p : {&xres, &yres})
        if (p->present && !p->one.numeric()) refuse(name, "of a resolution that is not a number");
  }
  if (s.mode == "YCbCr" && s.compression == 1) refuse(name, "of uncompressed YCbCr (Pillow ignores its subsampling) (lcam does not read it)");
  if (s.compression == 6) refuse(name, "of old-style JPEG compression (lcam does not read it)");
  if (s.compression == 50001) refuse(name, "of WebP compression (the libtiff of Pillow's wheels does not decode it, nor does lcam)");
  if (s.mode == "P" || s.mode == "PA") read_palette(dir, s, name);

  // Sizes: Image.open's decompression-bomb check, then a new image of the file's size.
  const int64_t wide = std::max<int64_t>(1, s.xsize), tall = std::max<int64_t>(1, s.ysize);
  if (wide > kMaxImagePixels || tall > kMaxImagePixels || wide * tall > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(s.xsize) + "x" + std::to_string(s.ysize) + " pixels)");
  if (s.xsize < 0 || s.ysize < 0) refuse(name, "of a negative size");
  if (s.xsize == 0 || s.ysize == 0)
    refuse(name, "of " + std::to_string(s.xsize) + "x" + std::to_string(s.ysize) + " pixels (lcam does not read empty images)");
  if (s.mode == "La") refuse(name, "of grey with premultiplied alpha (Pillow's mode La has no RGB conversion)");
  return s;
}

// ---- uncompressed data: Pillow's raw reading ---------------------------------------------------

// A tile of Pillow's raw reading: extents, file offset, raw mode, stride.
struct RawTile {
  int64_t x0, y0, x1, y1;
  int64_t offset;
  std::string raw;
  int64_t stride;
};

// Python's int(x) of the float `w * sum(bits) / 8` (and `/ count` for planes).
// -1 where it does not fit the C int Pillow's raw decoder takes it as (an OverflowError).
int64_t py_stride(int64_t w, double bits_sum, int planes_divisor) {
  double s = static_cast<double>(w) * bits_sum / 8.0;
  if (planes_divisor > 0) s /= planes_divisor;
  if (!(s > -2147483649.0 && s < 2147483648.0)) return -1;
  return static_cast<int64_t>(s);
}

// The tiles _setup builds from the strip or tile offsets. `fractional` is set for a
// rows-per-strip that is no int: tiles Pillow cannot place, but a mapped file never uses them.
std::vector<RawTile> raw_tiles(const Directory& dir, const Setup& s, bool& fractional, const std::string& name) {
  Py offsets;
  int64_t w = 0, h = 0;
  fractional = false;
  if (dir.has(273)) {
    offsets = dir.get(273);
    const Value hv = tag_or(dir, 278, s.ysize);
    if (!hv.numeric()) refuse(name, "of a rows-per-strip value that is not a number");
    if (hv.is_int()) {
      h = hv.i;
    } else {
      // A float or rational: the first strip's rows end at min(0 + h, ysize), an int only where
      // h > ysize, and then every strip starts at row 0 again; otherwise the tiles' places are
      // floats, which Pillow's decoder refuses.
      const double f = hv.number();
      if (f > static_cast<double>(s.ysize)) {
        h = s.ysize + 1;
      } else {
        fractional = true;
        h = f == f && f > -9e18 ? static_cast<int64_t>(f) : 0;
      }
    }
    w = s.xsize;
  } else if (dir.has(324)) {
    offsets = dir.get(324);
    Py tw = dir.get(322), th = dir.get(323);
    if (!tw.present || !th.present || !tw.one.is_int() || !th.one.is_int()) refuse(name, "of invalid tile dimensions");
    w = tw.one.i, h = th.one.i;
  } else {
    refuse(name, "of an unknown data organization (no strip or tile offsets)");
  }
  std::vector<Value> offs = offsets.single && !offsets.is_bytes ? std::vector<Value>{offsets.one} : offsets.items;
  if (w == s.xsize && h == s.ysize && !(s.planar == 2) && !offs.empty()) offs.erase(offs.begin(), offs.end() - 1);
  double bits_sum = 0;
  for (const Value& v : s.bps.items) bits_sum += v.number();
  std::vector<RawTile> tiles;
  int64_t x = 0, y = 0;
  size_t layer = 0;
  for (const Value& off : offs) {
    if (!off.is_int()) refuse(name, "of a strip or tile offset that is not an integer");
    int64_t stride = 0;
    std::string tile_raw = s.rawmode;
    const bool past_edge = x + w > s.xsize;
    if (s.planar == 2) {
      if (layer >= s.rawmode.size()) refuse(name, "of more planes than its raw mode has letters");
      tile_raw = std::string(1, s.rawmode[layer]);
      stride = past_edge ? py_stride(w, bits_sum, s.bps_count) : 0;
    } else {
      stride = past_edge ? py_stride(w, bits_sum, 0) : 0;
    }
    tiles.push_back({x, y, std::min(x + w, s.xsize), std::min(y + h, s.ysize), off.i, tile_raw, stride});
    x += w;
    if (x >= s.xsize) {
      x = 0, y += h;
      if (y >= s.ysize) y = 0, ++layer;
    }
  }
  return tiles;
}

// Image.open(path)'s mapping of a single tile whose raw mode is the mode: the pixels straight from
// the file, at the size Pillow gives the image (under Orientation 5-8 already transposed).
// False where Pillow does not map it (the file is too short for it).
bool read_mapped(const Setup& s, const RawTile& t, const uint8_t* data, size_t size, ModeImage& img, const std::string& name) {
  const std::string& mode = s.mode;
  if (t.offset < 0) refuse(name, "of a negative tile offset");
  if (t.stride < 0) refuse(name, "of a tile stride past a C int (Pillow's raw decoder refuses it)");
  const int pix = mode == "L" || mode == "P" ? 1 : mode[0] == 'I' ? 2 : 4;
  const int64_t mw = s.turned() ? s.ysize : s.xsize, mh = s.turned() ? s.xsize : s.ysize;  // Pillow's size
  const int64_t stride = std::max(t.stride, mw * pix);
  if (t.offset + static_cast<__int128>(mh) * stride > static_cast<__int128>(size)) return false;
  const int64_t map_stride = t.stride > 0 ? t.stride : mw * pix;
  img.w = static_cast<int>(mw), img.h = static_cast<int>(mh);
  for (int64_t yy = 0; yy < mh; ++yy) {
    const uint8_t* src = data + t.offset + yy * map_stride;
    uint8_t* dst = img.row(static_cast<int>(yy));
    if (mode == "I;16B")
      for (int64_t xx = 0; xx < mw; ++xx) {
        const uint16_t v = static_cast<uint16_t>(src[2 * xx] << 8 | src[2 * xx + 1]);
        std::memcpy(dst + 2 * xx, &v, 2);
      }
    else
      std::memcpy(dst, src, static_cast<size_t>(mw * pix));
  }
  return true;
}

// ImageFile.load: the mapped file, or the tiles in order of offset.
void read_raw(const Directory& dir, const Setup& s, const uint8_t* data, size_t size, ModeImage& img, const std::string& name) {
  const std::string& mode = s.mode;
  img.mode = mode, img.w = static_cast<int>(s.xsize), img.h = static_cast<int>(s.ysize), img.px = pixel_bytes(mode);
  img.allocate();
  bool fractional = false;
  std::vector<RawTile> tiles = raw_tiles(dir, s, fractional, name);
  if (tiles.size() == 1 && tiles[0].raw == mode &&
      (mode == "L" || mode == "P" || mode == "RGBA" || mode == "CMYK" || mode == "I;16" || mode == "I;16B") &&
      read_mapped(s, tiles[0], data, size, img, name))
    return;
  if (fractional) refuse(name, "of a rows-per-strip value that is not an integer (tiles Pillow cannot place)");
  std::stable_sort(tiles.begin(), tiles.end(), [](const RawTile& a, const RawTile& b) { return a.offset < b.offset; });
  std::vector<RawTile> kept;
  for (size_t k = 0; k < tiles.size(); ++k) {
    const RawTile& t = tiles[k];
    const bool same_next = k + 1 < tiles.size() && tiles[k + 1].x0 == t.x0 && tiles[k + 1].y0 == t.y0 &&
                           tiles[k + 1].x1 == t.x1 && tiles[k + 1].y1 == t.y1 && tiles[k + 1].raw == t.raw &&
                           tiles[k + 1].stride == t.stride;
    if (!same_next) kept.push_back(t);
  }
  int last_error = 0;
  for (const RawTile& t : kept) {
    const Unpacker u = find_unpacker(mode, t.raw);
    if (!u.found()) refuse(name, "whose raw mode " + t.raw + " has no unpacker for mode " + mode + " (unknown raw mode)");
    if (t.offset < 0) refuse(name, "of a negative strip or tile offset");
    if (t.stride < 0) refuse(name, "of a tile stride past a C int (Pillow's raw decoder refuses it)");
    int64_t tx0 = t.x0, ty0 = t.y0, tw = t.x1 - t.x0, th = t.y1 - t.y0;
    if (t.x0 == 0 && t.x1 == 0) tx0 = 0, ty0 = 0, tw = s.xsize, th = s.ysize;
    if (tw <= 0 || tx0 + tw > s.xsize || th <= 0 || ty0 + th > s.ysize) refuse(name, "of a strip or tile outside the image");
    const int64_t bytes = (tw * u.bits + 7) / 8;
    if (t.stride && t.stride < bytes) {  // the raw decoder's configuration error, kept as this tile's error
      last_error = -8;
      continue;
    }
    last_error = 0;
    const int64_t step = t.stride ? t.stride : bytes;
    if (t.offset > static_cast<int64_t>(size) ||
        static_cast<__int128>(t.offset) + (th - 1) * static_cast<__int128>(step) + bytes > static_cast<__int128>(size))
      refuse(name, "truncated (the image file is truncated)");
    for (int64_t r = 0; r < th; ++r)
      unpack(u, mode, data + t.offset + r * step, img.row(static_cast<int>(ty0 + r)) + tx0 * img.px, static_cast<int>(tw));
  }
  if (last_error < 0) refuse(name, "whose strips are narrower than their stride (decoder error)");
}

// ---- compressed data: _load_libtiff and TiffDecode.c -------------------------------------------

// libtiff open on the file in memory, at its first directory.
struct LibTiff {
  MemFile file;
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif{nullptr, TIFFClose};
  std::string name;
  TIFF* get() const { return tif.get(); }
  [[noreturn]] void broken(const char* what) const {
    fail_decode(name, std::string("corrupt or truncated TIFF (") + (file.error.empty() ? what : "libtiff: " + file.error) + ")");
  }
};

void open_libtiff(LibTiff& lt, const uint8_t* data, size_t size, uint64_t first, const Setup& s) {
  lt.file = MemFile{data, static_cast<toff_t>(size), 0, {}};
  std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> options(TIFFOpenOptionsAlloc(), TIFFOpenOptionsFree);
  if (!options) fail_decode(lt.name, "libtiff: out of memory");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), keep_error, &lt.file);
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), ignore_warning, nullptr);
  lt.tif.reset(TIFFClientOpenExt("tiff", "rC", &lt.file, mem_read, mem_write, mem_seek, mem_close, mem_size, mem_map, mem_unmap,
                                 options.get()));
  if (!lt.tif) lt.broken("libtiff cannot read its header or first directory");
  if (!TIFFSetSubDirectory(lt.get(), first)) lt.broken("libtiff cannot read its first directory");
  uint32_t lw = 0, lh = 0;
  TIFFGetField(lt.get(), TIFFTAG_IMAGEWIDTH, &lw);
  TIFFGetField(lt.get(), TIFFTAG_IMAGELENGTH, &lh);
  if (static_cast<int64_t>(lw) != s.xsize || static_cast<int64_t>(lh) != s.ysize) lt.broken("libtiff reads another image size");
  // Deflate through zlib, as the libtiff of Pillow's wheels inflates (Debian's libtiff prefers
  // libdeflate, which leaves a strip unfilled when its data inflate to more than the strip).
  if (s.compression == COMPRESSION_ADOBE_DEFLATE || s.compression == COMPRESSION_DEFLATE)
    TIFFSetField(lt.get(), TIFFTAG_DEFLATE_SUBCODEC, DEFLATE_SUBCODEC_ZLIB);
}

// _decodeAsRGBA: blocks of a strip or a tile row through TIFFRGBAImage, unpacked from RGBA.
void decode_as_rgba(const LibTiff& lt, const Unpacker& shuffle, ModeImage& img) {
  const int64_t H = img.h;
  uint32_t block = 0;
  const int got = TIFFIsTiled(lt.get()) ? TIFFGetFieldDefaulted(lt.get(), TIFFTAG_TILELENGTH, &block)
                                        : TIFFGetFieldDefaulted(lt.get(), TIFFTAG_ROWSPERSTRIP, &block);
  if (got != 1 || block == static_cast<uint32_t>(-1)) block = static_cast<uint32_t>(H);
  char emsg[1024] = "";
  TIFFRGBAImage rgba;
  if (!TIFFRGBAImageOK(lt.get(), emsg) || !TIFFRGBAImageBegin(&rgba, lt.get(), 0, emsg))
    fail_decode(lt.name, std::string("corrupt TIFF (libtiff cannot convert it to RGB: ") + emsg + ")");
  std::unique_ptr<TIFFRGBAImage, void (*)(TIFFRGBAImage*)> end(&rgba, TIFFRGBAImageEnd);
  rgba.orientation = ORIENTATION_TOPLEFT;
  rgba.req_orientation = ORIENTATION_TOPLEFT;
  rgba.col_offset = 0;
  if (block == 0) lt.broken("blocks of no rows");
  if (INT32_MAX / 4 < rgba.width || INT32_MAX / (rgba.width * 4u) < block) lt.broken("blocks too large for Pillow's buffer");
  std::vector<uint32_t> raster(static_cast<size_t>(rgba.width) * block);
  for (int64_t y = 0; y < H; y += block) {
    rgba.row_offset = static_cast<int>(y);
    const uint32_t rows = static_cast<uint32_t>(std::min<int64_t>(block, static_cast<int64_t>(rgba.height) - y));
    if (!TIFFRGBAImageGet(&rgba, raster.data(), rgba.width, rows)) lt.broken("a block cannot be decoded");
    for (int64_t r = 0; r < std::min<int64_t>(block, H - y); ++r)
      unpack(shuffle, img.mode, reinterpret_cast<const uint8_t*>(raster.data() + r * rgba.width), img.row(static_cast<int>(y + r)),
             img.w);
  }
}

// _decodeTile: each tile of each plane through the plane's unpacker.
void decode_tiles(const LibTiff& lt, const std::vector<Unpacker>& unpackers, int bits_per_pixel, ModeImage& img) {
  const int64_t W = img.w, H = img.h;
  const int planes = static_cast<int>(unpackers.size());
  const tmsize_t tile_size = TIFFTileSize(lt.get()), tile_row = TIFFTileRowSize(lt.get());
  if (tile_size == 0 || tile_row == 0 || tile_row > tile_size) lt.broken("tiles of no size");
  if (tile_size > INT32_MAX - 1) fail_decode(lt.name, "TIFF of tiles larger than Pillow allocates (decoder error -9)");
  uint32_t tw = 0, th = 0;
  TIFFGetField(lt.get(), TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField(lt.get(), TIFFTAG_TILELENGTH, &th);
  if (static_cast<uint64_t>(tile_size) > ((static_cast<uint64_t>(th) * bits_per_pixel / planes + 7) / 8) * static_cast<uint64_t>(tw))
    lt.broken("tiles larger than Pillow expects");
  if (tw == 0 || th == 0) lt.broken("tiles of no size");
  // Pillow's buffer holds one tile; rows of a raw mode wider than libtiff's run past it there,
  // and into zeros here.
  if (tw > static_cast<uint32_t>(INT32_MAX) || th > static_cast<uint32_t>(INT32_MAX))
    fail_decode(lt.name, "TIFF of tiles larger than Pillow allocates (decoder error -9)");
  std::vector<uint8_t> buf(std::max<size_t>(static_cast<size_t>(tile_size), static_cast<size_t>(tile_row) * std::min<int64_t>(th, H)) +
                           8 * W + 8);
  for (int64_t y = 0; y < H; y += th)
    for (int p = 0; p < planes; ++p)
      for (int64_t x = 0; x < W; x += tw) {
        if (TIFFReadTile(lt.get(), buf.data(), static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0, static_cast<uint16_t>(p)) == -1)
          lt.broken("a tile cannot be decoded");
        const int64_t cw = std::min<int64_t>(tw, W - x), ch = std::min<int64_t>(th, H - y);
        for (int64_t r = 0; r < ch; ++r)
          unpack(unpackers[p], img.mode, buf.data() + r * tile_row, img.row(static_cast<int>(y + r)) + x * img.px, static_cast<int>(cw));
      }
}

// _decodeStrip: each strip of each plane through the plane's unpacker.
void decode_strips(const LibTiff& lt, const std::vector<Unpacker>& unpackers, int bits_per_pixel, ModeImage& img) {
  const int64_t W = img.w, H = img.h;
  const int planes = static_cast<int>(unpackers.size());
  uint32_t per_strip = 0;
  if (TIFFGetField(lt.get(), TIFFTAG_ROWSPERSTRIP, &per_strip) != 1 || per_strip == static_cast<uint32_t>(-1))
    per_strip = static_cast<uint32_t>(H);
  if (per_strip > static_cast<uint32_t>(INT32_MAX))
    fail_decode(lt.name, "TIFF of more rows per strip than Pillow allocates (decoder error -9)");
  const tmsize_t strip_size = TIFFStripSize(lt.get());
  if (strip_size > INT32_MAX - 1) fail_decode(lt.name, "TIFF of strips larger than Pillow allocates (decoder error -9)");
  const int64_t unpacker_row = (W * bits_per_pixel / planes + 7) / 8;
  if (static_cast<__int128>(strip_size) > static_cast<__int128>(unpacker_row) * per_strip) lt.broken("strips larger than Pillow expects");
  const tmsize_t scanline = TIFFScanlineSize(lt.get());
  if (scanline == 0 || unpacker_row > scanline) lt.broken("rows shorter than Pillow expects");
  if (per_strip == 0) lt.broken("strips of no rows");
  if (strip_size <= 0) lt.broken("strips of no bytes");
  const int64_t rows_read = std::min<int64_t>(per_strip, H);
  std::vector<uint8_t> buf(std::max<size_t>(static_cast<size_t>(strip_size), static_cast<size_t>(scanline) * rows_read) + 8);
  for (int64_t y = 0; y < H; y += per_strip)
    for (int p = 0; p < planes; ++p) {
      const uint32_t strip = TIFFComputeStrip(lt.get(), static_cast<uint32_t>(y), static_cast<uint16_t>(p));
      if (TIFFReadEncodedStrip(lt.get(), strip, buf.data(), strip_size) == -1) lt.broken("a strip cannot be decoded");
      for (int64_t r = 0; r < std::min<int64_t>(per_strip, H - y); ++r)
        unpack(unpackers[p], img.mode, buf.data() + r * scanline, img.row(static_cast<int>(y + r)), static_cast<int>(W));
    }
}

// _load_libtiff: libtiff reads the file, its rows unpacked with the raw mode Pillow picks.
void read_libtiff(const Setup& s, uint64_t first, const uint8_t* data, size_t size, ModeImage& img, const std::string& name) {
  if (!TIFFIsCODECConfigured(static_cast<uint16_t>(s.compression)))
    refuse(name, "of compression " + std::to_string(s.compression) + ", which this build's libtiff cannot decode");
  std::string mode = s.mode, rawmode = s.rawmode;
  if (s.fill == 2) {
    Value one;
    one.i = 1;
    const ModeRow* r1 = s.lookup(one);
    if (!r1) refuse(name, "of an unknown pixel mode (fill order 1)");
    mode = r1->mode, rawmode = r1->raw;
  }
  if (s.photo == 6) {
    mode = "RGB";
    rawmode = s.compression == 7 && s.planar == 1 ? "RGB" : "RGBX";
  } else if (rawmode == "I;16") {
    rawmode = "I;16N";
  } else if (rawmode.size() > 4 && (rawmode.compare(rawmode.size() - 4, 4, ";16B") == 0 || rawmode.compare(rawmode.size() - 4, 4, ";16L") == 0)) {
    rawmode = rawmode.substr(0, rawmode.size() - 1) + "N";
  }
  img.mode = mode, img.w = static_cast<int>(s.xsize), img.h = static_cast<int>(s.ysize), img.px = pixel_bytes(mode);
  img.allocate();
  const Unpacker shuffle = find_unpacker(mode, rawmode);
  if (!shuffle.found()) refuse(name, "whose raw mode " + rawmode + " has no unpacker for mode " + mode + " (unknown raw mode)");

  LibTiff lt;
  lt.name = name;
  open_libtiff(lt, data, size, first, s);
  uint16_t lphoto = 0, lcomp = 0, lplanar = 0;
  TIFFGetField(lt.get(), TIFFTAG_PHOTOMETRIC, &lphoto);
  TIFFGetField(lt.get(), TIFFTAG_COMPRESSION, &lcomp);
  TIFFGetFieldDefaulted(lt.get(), TIFFTAG_PLANARCONFIG, &lplanar);
  bool as_rgba = lphoto == PHOTOMETRIC_YCBCR;
  if (as_rgba && lcomp == COMPRESSION_JPEG && lplanar == PLANARCONFIG_CONTIG) {
    TIFFSetField(lt.get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    as_rgba = false;
  }
  if (as_rgba) return decode_as_rgba(lt, shuffle, img);

  // _pickUnpackers: separate planes through the RGBA bands, 8 or 16 bits.
  std::vector<Unpacker> unpackers{shuffle};
  const int bands = mode == "RGB" ? 3 : mode == "RGBA" || mode == "CMYK" ? 4 : mode == "LA" || mode == "PA" ? 2 : 1;
  if (lplanar == PLANARCONFIG_SEPARATE && bands > 1) {
    uint16_t b = 8;
    TIFFGetFieldDefaulted(lt.get(), TIFFTAG_BITSPERSAMPLE, &b);
    if (b != 8 && b != 16) lt.broken("separate planes of other than 8 or 16 bits");
    unpackers.clear();
    for (int k = 0; k < bands; ++k) unpackers.push_back(band_unpacker(k, b == 16));
  }
  if (TIFFIsTiled(lt.get())) decode_tiles(lt, unpackers, shuffle.bits, img);
  else decode_strips(lt, unpackers, shuffle.bits, img);

  // Associated (or unspecified) alpha read as separate planes: divided out afterwards.
  if (unpackers.size() > 3 && mode == "RGBA") {
    uint16_t n_extra = 0;
    uint16_t* info = nullptr;
    TIFFGetFieldDefaulted(lt.get(), TIFFTAG_EXTRASAMPLES, &n_extra, &info);
    if (n_extra >= 1 && info && (info[0] == EXTRASAMPLE_UNSPECIFIED || info[0] == EXTRASAMPLE_ASSOCALPHA)) {
      Unpacker un;
      un.bits = 32, un.raw = "RGBa";
      for (int y = 0; y < img.h; ++y) {
        std::vector<uint8_t> copy(img.row(y), img.row(y) + static_cast<size_t>(img.w) * 4);
        unpack(un, mode, copy.data(), img.row(y), img.w);
      }
    }
  }
}

// ---- load_end: exif_transpose's orientation ----------------------------------------------------

// The turn exif_transpose applies: the Orientation tag, or where it is absent XMP's
// tiff:Orientation (info["xmp"], a 1-tuple unwrapped). Searching XMP, and scrubbing it of the
// orientation after a turn, both fail on anything but bytes or text.
int turn_to_apply(const Directory& dir, const Setup& s, const std::string& name) {
  int turn = 1;
  for (int o = 2; o <= 8; ++o)
    if (s.orientation == o) turn = o;
  Py xmp = dir.get(700);
  const bool xmp_tuple = xmp.present && !xmp.single && xmp.items.size() != 1;
  const Value xmp_value = !xmp.present ? Value{} : xmp.single ? xmp.one : xmp.items.size() == 1 ? xmp.items[0] : Value{};
  const bool xmp_text = xmp.present && !xmp_tuple && (xmp_value.kind == Value::Bytes || xmp_value.kind == Value::Str);
  if (!dir.has(274) && xmp.present) {
    const Value& v = xmp_value;
    const bool falsy = !xmp_tuple && v.numeric() && v.number() == 0;
    if (v.kind == Value::Bytes && !xmp_tuple) {
      const std::string& t = v.s;
      for (size_t at = t.find("tiff:Orientation"); at != std::string::npos; at = t.find("tiff:Orientation", at + 1)) {
        const size_t k = at + 16;
        size_t digit = std::string::npos;
        if (k + 2 < t.size() && t.compare(k, 2, "=\"") == 0) digit = k + 2;
        else if (k < t.size() && t[k] == '>') digit = k + 1;
        if (digit != std::string::npos && digit < t.size() && t[digit] >= '0' && t[digit] <= '9') {
          const int o = t[digit] - '0';
          turn = o >= 2 && o <= 8 ? o : 1;
          break;
        }
      }
    } else if (!falsy) {
      refuse(name, "whose XMP data is not bytes (Pillow fails searching it for an orientation)");
    }
  }
  if (turn != 1 && xmp.present && !xmp_text) refuse(name, "whose XMP data is not bytes (Pillow fails removing the orientation from it)");
  return turn;
}

}  // namespace

bool is_tiff(const uint8_t* d, size_t n) {
  if (n < 4) return false;
  static const char* prefixes[] = {"MM\x00\x2a", "II\x2a\x00", "MM\x2a\x00", "II\x00\x2a", "MM\x00\x2b", "II\x2b\x00"};
  for (const char* p : prefixes)
    if (std::memcmp(d, p, 4) == 0) return true;
  return false;
}

ImageU8 decode_tiff_memory(const uint8_t* data, size_t size, const std::string& name) {
  // TiffImageFile._open and _seek(0): the header and the first directory.
  const bool little = data[0] == 'I';
  const bool big = size >= 3 && data[2] == 43;  // Pillow's test, so "MM\0+" is classic TIFF to it
  if (size < (big ? 16u : 8u)) refuse(name, "header cut short");
  Directory dir(data, size, little, big);
  const uint64_t first = big ? dir.uint_of(std::string(reinterpret_cast<const char*>(data + 8), 8))
                             : dir.uint_of(std::string(reinterpret_cast<const char*>(data + 4), 4));
  if (first == 0) refuse(name, "with no image (its first directory offset is 0)");
  if (first >= (uint64_t{1} << 63)) refuse(name, "whose first directory offset is past 2^63");
  dir.load(first);

  const Setup s = read_setup(dir, little, name);
  ModeImage img;
  if (s.compression == 1) read_raw(dir, s, data, size, img, name);
  else read_libtiff(s, first, data, size, img, name);
  // load_end: exif_transpose, then convert("RGB").
  const int turn = turn_to_apply(dir, s, name);
  return apply_orientation(to_rgb(img, s.palette), turn);
}

}  // namespace lcam
