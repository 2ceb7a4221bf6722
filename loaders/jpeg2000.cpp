// jpeg2000.cpp — JPEG 2000 images (JP2 files and raw J2K codestreams) decoded as Pillow 13's
// Jpeg2KImagePlugin and Jpeg2KDecode.c decode them, then convert("RGB"): through OpenJPEG, the
// library Pillow calls, called the same way. Pillow's rules, mirrored here:
// - opening: the JP2 boxes walked as its BoxReader walks them (the jp2h box found at the top
//   level, its ihdr/colr/pclr/res boxes read within their bounds; a box length under its header,
//   or past its parent, fails), the mode and size taken from ihdr (JP2) or the SIZ segment
//   (J2K: 1 component L, or I;16 above 8 bits; 2 LA; 3 RGB; 4 RGBA); colr 12 with four
//   components makes CMYK, a pclr box (unless colr says grey or bilevel) P or PA, its colours
//   put through Pillow's ImagePalette.getcolor (duplicates dropped); a JP2's own SIZ segment
//   checked where a jp2c box follows jp2h, then the marker segments walked to the first tile
//   (a length under 2 fails);
// - decoding: OpenJPEG fed from the file as Pillow feeds it (1 MiB reads; a skip answers the
//   new position, as Pillow's skip callback does; no seek), no reduction, all layers, tile by
//   tile into a buffer zeroed for each tile; the colour space a JP2's colr box gives in
//   OpenJPEG >= 2.5.1 (Pillow's), an unknown or unspecified one guessed from the component
//   count and the first subsampled component; Pillow's table of unpackers by (mode, colour
//   space, components, subsampling), the first that fits; each tile placed at its position less
//   the image offset, which must lie within the image;
// - the unpackers: each sample shifted to 8 bits (16 for I;16), rounded where it had more, a
//   signed component offset by half its range; subsampled components read at (x / dx, y / dy)
//   from rows of w / dx samples, as Pillow reads them; grey data in an RGB or RGBA image
//   written x0 bytes into its rows, not x0 pixels, as Pillow writes it; sYCC converted with
//   Pillow's fixed-point YCbCr -> RGB; then convert("RGB") (I;16 clipped at 255, palettes
//   looked up, CMYK converted, alpha dropped).
// Pixels no tile covers stay black, as in Pillow's zeroed image.
// Known to differ: damaged SIZ segments whose tile size is 2^31 or more, which Debian's OpenJPEG
// 2.5.0 refuses and the 2.5.4 of Pillow's wheel reads.
#include <algorithm>  // std::min
#include <array>      // std::array
#include <atomic>     // std::atomic (decodes in flight)
#include <cmath>      // std::trunc
#include <cstdint>    // uint8_t, uint32_t, uint64_t
#include <cstdlib>    // std::calloc, std::free
#include <cstring>    // std::memcmp, std::memcpy
#include <memory>     // std::unique_ptr
#include <map>        // std::map
#include <string>     // std::string
#include <string_view>  // std::string_view
#include <vector>     // std::vector

#include <openjpeg.h>  // opj_*: the decoder Pillow calls

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, be16/be32, the declarations implemented here

namespace lcam {
namespace {

constexpr uint8_t kJ2k[4] = {0xff, 0x4f, 0xff, 0x51};
constexpr uint8_t kJp2[12] = {0, 0, 0, 0x0c, 'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a};
constexpr uint64_t kMaxOffset = uint64_t{1} << 63;

// What Pillow's fp does: reads return what there is, seeks may pass the end.
struct File {
  const uint8_t* d;
  uint64_t n;
  uint64_t pos = 0;
  uint64_t left() const { return pos < n ? n - pos : 0; }
  const uint8_t* read(uint64_t k, uint64_t* got) {
    *got = std::min(k, left());
    const uint8_t* p = d + std::min(pos, n);
    pos += *got;
    return p;
  }
};

// Any exception of Pillow's header parsing: every one of them leaves the file unread.
struct Refused {
  const char* why;
};

// Pillow's BoxReader, over the file (top level, no length) or over a box's contents.
struct BoxReader {
  File f;
  bool has_length;
  int64_t remaining = -1;  // -1: between boxes
  BoxReader(File file, bool bounded) : f(file), has_length(bounded) {}

  bool can_read(uint64_t k) const {
    if (has_length && (f.pos > f.n || k > f.n - f.pos)) return false;  // tell() + k > length, without overflow
    if (remaining >= 0) return k <= static_cast<uint64_t>(remaining);
    return true;
  }
  const uint8_t* read_bytes(uint64_t k) {
    if (!can_read(k)) throw Refused{"not enough data in a JP2 header box"};
    if (k >= kMaxOffset || f.pos + k >= kMaxOffset) throw Refused{"a JP2 box length too large"};
    uint64_t got = 0;
    const uint8_t* p = f.read(k, &got);
    if (got < k) throw Refused{"a JP2 header box cut short by the end of the file"};
    if (remaining > 0) remaining -= static_cast<int64_t>(k);
    return p;
  }
  BoxReader read_boxes() {
    const uint64_t size = static_cast<uint64_t>(remaining);
    const uint8_t* p = read_bytes(size);
    return BoxReader(File{p, size}, true);
  }
  bool has_next_box() const { return !has_length || static_cast<int64_t>(f.pos) + remaining < static_cast<int64_t>(f.n); }
  std::string next_box_type() {
    if (remaining > 0) {
      if (f.pos + static_cast<uint64_t>(remaining) >= kMaxOffset) throw Refused{"a JP2 box length too large"};
      f.pos += static_cast<uint64_t>(remaining);
    }
    remaining = -1;
    const uint8_t* h = read_bytes(8);
    uint64_t lbox = be32(h), hlen = 8;
    const std::string tbox(reinterpret_cast<const char*>(h + 4), 4);
    if (lbox == 1) {
      const uint8_t* q = read_bytes(8);
      lbox = uint64_t{be32(q)} << 32 | be32(q + 4);
      hlen = 16;
    }
    if (lbox < hlen || !can_read(lbox - hlen)) throw Refused{"a JP2 box of an invalid length"};
    if (lbox - hlen >= kMaxOffset) throw Refused{"a JP2 box length too large"};
    remaining = static_cast<int64_t>(lbox - hlen);
    return tbox;
  }
};

// Pillow's ImagePalette as the pclr box fills it through getcolor(): each new colour appended
// (npc bytes) or, where the length is not a multiple of the mode's, written over the entry its
// index names, the colour table then rebuilt from the bytes; at most 256 entries.
struct PilPalette {
  size_t mode_len = 3;  // 3 (RGB) or 4 (RGBA, CMYK)
  std::string bytes;
  std::map<std::string, size_t> colours;
  bool colours_valid = true, dirty = false;
  std::map<std::string, size_t>& table() {
    if (!colours_valid) {
      colours.clear();
      for (size_t i = 0; i < bytes.size(); i += mode_len) colours.emplace(bytes.substr(i, mode_len), i / mode_len);
      colours_valid = true;
    }
    return colours;
  }
  void getcolor(const std::string& colour) {
    if (table().count(colour)) return;
    const size_t index = bytes.size() / mode_len;
    if (index >= 256) throw Refused{"a JP2 palette of more than 256 colours"};
    if (index * mode_len < bytes.size()) {
      bytes = bytes.substr(0, index * mode_len) + colour + (index * mode_len + mode_len < bytes.size() ? bytes.substr(index * mode_len + mode_len) : "");
      colours_valid = false;
    } else {
      bytes += colour;
    }
    table()[colour] = index;
    dirty = true;
  }
};

struct Header {
  uint64_t width = 0, height = 0;  // as Pillow's size; 0 where it came out <= 0
  std::string mode;                // "" where Pillow found none
  OPJ_CODEC_FORMAT codec = OPJ_CODEC_J2K;
  PilPalette palette;              // P and PA
};

// _parse_codestream: from just after the SOC marker. Returns (size, mode) of the SIZ segment.
void parse_codestream(File& f, Header* h) {
  uint64_t got = 0;
  const uint8_t* p = f.read(2, &got);
  if (got < 2) throw Refused{"JPEG 2000 codestream cut short before its SIZ segment"};
  const uint32_t lsiz = be16(p);
  if (lsiz < 38) throw Refused{"JPEG 2000 SIZ segment shorter than 38 bytes"};
  std::vector<uint8_t> siz(p, p + 2);
  const uint8_t* q = f.read(lsiz - 2, &got);
  siz.insert(siz.end(), q, q + got);
  if (siz.size() < 38) throw Refused{"JPEG 2000 SIZ segment cut short"};
  const int64_t xsiz = be32(&siz[4]), ysiz = be32(&siz[8]), xosiz = be32(&siz[12]), yosiz = be32(&siz[16]);
  const uint32_t csiz = be16(&siz[36]);
  std::string mode;
  if (csiz == 1) {
    if (siz.size() < 39) throw Refused{"JPEG 2000 SIZ segment cut short"};
    mode = (siz[38] & 0x7f) + 1 > 8 ? "I;16" : "L";
  } else if (csiz == 2) {
    mode = "LA";
  } else if (csiz == 3) {
    mode = "RGB";
  } else if (csiz == 4) {
    mode = "RGBA";
  } else {
    throw Refused{"JPEG 2000 codestream of other than 1 to 4 components"};
  }
  h->width = xsiz - xosiz > 0 ? static_cast<uint64_t>(xsiz - xosiz) : 0;
  h->height = ysiz - yosiz > 0 ? static_cast<uint64_t>(ysiz - yosiz) : 0;
  h->mode = mode;
}

// _parse_comment: the marker segments after SIZ, walked by their lengths to the first tile.
void parse_comment(File& f) {
  for (;;) {
    uint64_t got = 0;
    const uint8_t* m = f.read(2, &got);
    if (got == 0) return;
    if (got < 2) throw Refused{"JPEG 2000 marker cut short"};
    if (m[1] == 0x90 || m[1] == 0xd9) return;
    const uint8_t* l = f.read(2, &got);
    if (got < 2) throw Refused{"JPEG 2000 marker segment cut short"};
    const uint32_t length = be16(l);
    if (length < 2) throw Refused{"JPEG 2000 marker segment length under 2"};
    if (m[1] == 0x64) return;
    f.pos += length - 2;
  }
}

// _parse_jp2_header: the jp2h box's mode and size (the colour and palette boxes change the mode).
void parse_jp2_header(File& f, Header* h) {
  BoxReader reader(f, false);
  reader.f.pos = f.pos;
  bool found = false;
  BoxReader header(File{nullptr, 0}, true);
  while (reader.has_next_box()) {
    const std::string tbox = reader.next_box_type();
    if (tbox == "jp2h") {
      header = reader.read_boxes();
      found = true;
      break;
    }
    if (tbox == "ftyp") reader.read_bytes(4);
  }
  f.pos = reader.f.pos;
  if (!found) throw Refused{"JP2 file without a jp2h box"};
  bool have_size = false, have_nc = false;
  uint32_t nc = 0;
  std::string_view mode, colr;  // (string_view: GCC 12 warns falsely on std::string here)
  while (header.has_next_box()) {
    const std::string tbox = header.next_box_type();
    if (tbox == "ihdr") {
      const uint8_t* p = header.read_bytes(11);
      h->height = be32(p), h->width = be32(p + 4);
      nc = be16(p + 8), have_nc = true, have_size = true;
      const int bpc = p[10];
      if (nc == 1 && (bpc & 0x7f) > 8) mode = "I;16";
      else if (nc == 1) mode = "L";
      else if (nc == 2) mode = "LA";
      else if (nc == 3) mode = "RGB";
      else if (nc == 4) mode = "RGBA";
    } else if (tbox == "colr") {
      const uint8_t* p = header.read_bytes(7);
      const uint32_t enumcs = be32(p + 3);
      if (p[0] == 1) {
        if (enumcs == 0 || enumcs == 15) {
          colr = "1";
        } else if (enumcs == 12) {
          colr = "CMYK";
          if (have_nc && nc == 4) mode = "CMYK";
        } else if (enumcs == 17) {
          colr = "L";
        }
      }
    } else if (tbox == "pclr" && (mode == "L" || mode == "LA") && colr != "1" && colr != "L") {
      const uint8_t* p = header.read_bytes(3);
      const uint32_t ne = be16(p), npc = p[2];
      const uint8_t* depths = header.read_bytes(npc);
      int max_bitdepth = 0;
      for (uint32_t i = 0; i < npc; ++i) max_bitdepth = std::max<int>(max_bitdepth, depths[i]);
      if (max_bitdepth <= 8) {
        PilPalette palette;
        palette.mode_len = npc == 4 ? 4 : 3;
        for (uint32_t i = 0; i < ne; ++i) {
          const uint8_t* c = header.read_bytes(npc);
          palette.getcolor(std::string(reinterpret_cast<const char*>(c), npc));
        }
        h->palette = palette;
        mode = mode == "L" ? "P" : "PA";
      }
    } else if (tbox == "res ") {
      BoxReader res = header.read_boxes();
      while (res.has_next_box()) {
        if (res.next_box_type() == "resc") {
          res.read_bytes(10);
          break;
        }
      }
    }
  }
  if (!have_size || mode.empty()) throw Refused{"malformed JP2 header (no ihdr box, or one of other than 1 to 4 components)"};
  h->mode = std::string(mode);
}

// Jpeg2KImageFile._open, then ImageFile's size check.
Header open_header(const uint8_t* d, size_t n) {
  Header h;
  File f{d, n, 4};
  if (std::memcmp(d, kJ2k, 4) == 0) {
    h.codec = OPJ_CODEC_J2K;
    parse_codestream(f, &h);
    parse_comment(f);
  } else {
    h.codec = OPJ_CODEC_JP2;
    f.pos = 12;
    Header jp2;
    parse_jp2_header(f, &jp2);
    uint64_t got = 0;
    const uint8_t* p = f.read(12, &got);
    static const uint8_t kTail[8] = {'j', 'p', '2', 'c', 0xff, 0x4f, 0xff, 0x51};
    if (got >= 8 && std::memcmp(p + got - 8, kTail, 8) == 0) {
      Header unused;
      parse_codestream(f, &unused);
      parse_comment(f);
    }
    h.width = jp2.width, h.height = jp2.height, h.mode = jp2.mode, h.palette = jp2.palette;
  }
  if (h.width == 0 || h.height == 0) throw Refused{"JPEG 2000 image of no pixels (not identified by this driver)"};
  return h;
}

// The stream callbacks of Pillow's decoder: reads from the file's start, 1 MiB at a time.
struct Stream {
  const uint8_t* d;
  uint64_t n, pos = 0;
};
OPJ_SIZE_T stream_read(void* buffer, OPJ_SIZE_T k, void* user) {
  Stream* s = static_cast<Stream*>(user);
  const uint64_t got = s->pos < s->n ? std::min<uint64_t>(k, s->n - s->pos) : 0;
  if (got == 0) return static_cast<OPJ_SIZE_T>(-1);
  std::memcpy(buffer, s->d + s->pos, got);
  s->pos += got;
  return got;
}
OPJ_OFF_T stream_skip(OPJ_OFF_T k, void* user) {  // answers the new position, as Pillow's j2k_skip does
  Stream* s = static_cast<Stream*>(user);
  s->pos = static_cast<uint64_t>(static_cast<int64_t>(s->pos) + k);
  return s->pos ? static_cast<OPJ_OFF_T>(s->pos) : -1;
}
void on_error(const char* message, void* user) {  // keeps the first: the later ones say "failed" only
  std::string* first = static_cast<std::string*>(user);
  if (!first->empty()) return;
  *first = message;
  for (char& c : *first)
    if (c == '\n' || c == '\r') c = ' ';
  while (!first->empty() && first->back() == ' ') first->pop_back();
}

// Pillow's fixed-point YCbCr -> RGB (ConvertYCbCr.c): per channel a table of
// trunc(coefficient * 64 * (c - 128) + 0.5), summed, shifted down by 6, clipped.
struct YccTables {
  std::array<int, 256> r_cr, g_cb, g_cr, b_cb;
  YccTables() {
    for (int c = 0; c < 256; ++c) {
      auto t = [&](double k) { return static_cast<int>(std::trunc(k * 64 * (c - 128) + 0.5)); };
      r_cr[c] = t(1.402), g_cb[c] = t(-0.34414), g_cr[c] = t(-0.71414), b_cb[c] = t(1.772);
    }
  }
};
uint8_t clip8(int v) { return static_cast<uint8_t>(v <= 0 ? 0 : v >= 255 ? 255 : v); }

enum class Unpacker { kGrayL, kGrayI, kGrayRgb, kGrayaLa, kSrgbRgb, kSyccRgb, kSrgbaRgba, kSyccaRgba };

struct Row {
  const char* mode;
  OPJ_COLOR_SPACE space;
  uint32_t components;
  bool subsampling;  // whether it takes subsampled components
  Unpacker unpack;
};
constexpr Row kUnpackers[] = {  // Pillow 13's table, in its order: the first that fits is taken
    {"L", OPJ_CLRSPC_GRAY, 1, false, Unpacker::kGrayL},        {"P", OPJ_CLRSPC_SRGB, 1, false, Unpacker::kGrayL},
    {"P", OPJ_CLRSPC_CMYK, 1, false, Unpacker::kGrayL},        {"PA", OPJ_CLRSPC_SRGB, 2, false, Unpacker::kGrayaLa},
    {"I;16", OPJ_CLRSPC_GRAY, 1, false, Unpacker::kGrayI},     {"LA", OPJ_CLRSPC_GRAY, 2, false, Unpacker::kGrayaLa},
    {"RGB", OPJ_CLRSPC_GRAY, 1, false, Unpacker::kGrayRgb},    {"RGB", OPJ_CLRSPC_GRAY, 2, false, Unpacker::kGrayRgb},
    {"RGB", OPJ_CLRSPC_SRGB, 3, true, Unpacker::kSrgbRgb},     {"RGB", OPJ_CLRSPC_SYCC, 3, true, Unpacker::kSyccRgb},
    {"RGB", OPJ_CLRSPC_SRGB, 4, true, Unpacker::kSrgbRgb},     {"RGB", OPJ_CLRSPC_SYCC, 4, true, Unpacker::kSyccRgb},
    {"RGBA", OPJ_CLRSPC_GRAY, 1, false, Unpacker::kGrayRgb},   {"RGBA", OPJ_CLRSPC_GRAY, 2, false, Unpacker::kGrayaLa},
    {"RGBA", OPJ_CLRSPC_SRGB, 3, true, Unpacker::kSrgbRgb},    {"RGBA", OPJ_CLRSPC_SYCC, 3, true, Unpacker::kSyccRgb},
    {"RGBA", OPJ_CLRSPC_GRAY, 4, true, Unpacker::kSrgbaRgba},  {"RGBA", OPJ_CLRSPC_SRGB, 4, true, Unpacker::kSrgbaRgba},
    {"RGBA", OPJ_CLRSPC_SYCC, 4, true, Unpacker::kSyccaRgba},  {"CMYK", OPJ_CLRSPC_CMYK, 4, true, Unpacker::kSrgbaRgba},
};

// Bytes per sample in OpenJPEG's tile data: 1, 2, or 4 for 17-31 bits.
int sample_bytes(uint32_t prec) {
  const int size = static_cast<int>((prec + 7) >> 3);
  return size == 3 ? 4 : size;
}

// The components each unpacker reads.
uint32_t planes_read(Unpacker u) {
  switch (u) {
    case Unpacker::kGrayL:
    case Unpacker::kGrayI:
    case Unpacker::kGrayRgb: return 1;
    case Unpacker::kGrayaLa: return 2;
    case Unpacker::kSrgbRgb:
    case Unpacker::kSyccRgb: return 3;
    default: return 4;
  }
}

// One component's plane in a decoded tile, and its shift to `bits` bits as j2ku_shift does it
// (unsigned arithmetic: a signed sample wraps, then its offset brings it back).
// A subsampled component is read as Pillow reads it: rows of w / dx samples (rounded down, though
// OpenJPEG's planes are rounded up), sample (x / dx, y / dy).
struct Plane {
  const uint8_t* data;
  int size;  // bytes per sample: 1, 2 or 4
  uint32_t offset;
  int shift;
  unsigned dx, dy, stride;
  Plane(const opj_image_comp_t& c, const uint8_t* at, int bits, unsigned w) : data(at), dx(c.dx), dy(c.dy), stride(w / c.dx) {
    const int prec = static_cast<int>(c.prec);
    size = sample_bytes(c.prec);
    shift = bits - prec;
    offset = c.sgnd ? uint32_t{1} << (prec - 1) : 0;
    if (shift < 0) offset += uint32_t{1} << (-shift - 1);
  }
  uint32_t operator()(unsigned x, unsigned y) const {
    const size_t i = static_cast<size_t>(y / dy) * stride + x / dx;
    uint32_t word;
    if (size == 1) {
      word = data[i];
    } else if (size == 2) {
      uint16_t v;
      std::memcpy(&v, data + 2 * i, 2);
      word = v;
    } else {
      std::memcpy(&word, data + 4 * i, 4);
    }
    const uint32_t v = offset + word;
    return shift < 0 ? v >> -shift : v << shift;
  }
};


// The colour space OpenJPEG >= 2.5.1 (Pillow's) gives a JP2 in opj_read_header, from the first
// colour specification box of method 1 or 2 (a box of another method is ignored), read in jp2h
// or, after jp2h, misplaced at the top level. Debian's OpenJPEG 2.5.0 leaves it unspecified
// there, so it is read here: 16 sRGB, 17 grey, 18 sYCC, 24 e-sYCC, 12 CMYK, else unknown.
OPJ_COLOR_SPACE jp2_colour_space(const uint8_t* d, size_t n) {
  bool has_colr = false, seen_header = false;
  uint32_t enumcs = 0;
  auto colr = [&](const uint8_t* p, uint64_t len) {
    if (has_colr || len < 3) return;
    if (p[0] == 1 && len >= 7) enumcs = be32(p + 3), has_colr = true;
    else if (p[0] == 2) has_colr = true;
  };
  // Box headers: length, type, and an 8-byte length where the first is 1.
  auto walk = [&](const uint8_t* p, uint64_t size, auto&& on_box) {
    uint64_t at = 0;
    while (size - at >= 8) {
      uint64_t len = be32(p + at), head = 8;
      const uint8_t* type = p + at + 4;
      if (len == 1) {
        if (size - at < 16) return;
        len = uint64_t{be32(p + at + 8)} << 32 | be32(p + at + 12), head = 16;
      }
      if (len < head || len > size - at) return;
      if (!on_box(type, p + at + head, len - head)) return;
      at += len;
    }
  };
  walk(d, n, [&](const uint8_t* type, const uint8_t* body, uint64_t len) {
    if (std::memcmp(type, "jp2c", 4) == 0) return false;
    if (std::memcmp(type, "jp2h", 4) == 0) {
      seen_header = true;
      walk(body, len, [&](const uint8_t* t, const uint8_t* b, uint64_t l) {
        if (std::memcmp(t, "colr", 4) == 0) colr(b, l);
        return true;
      });
    } else if (std::memcmp(type, "colr", 4) == 0 && seen_header) {
      colr(body, len);
    }
    return true;
  });
  switch (enumcs) {
    case 16: return OPJ_CLRSPC_SRGB;
    case 17: return OPJ_CLRSPC_GRAY;
    case 18: return OPJ_CLRSPC_SYCC;
    case 24: return OPJ_CLRSPC_EYCC;
    case 12: return OPJ_CLRSPC_CMYK;
    default: return OPJ_CLRSPC_UNKNOWN;
  }
}

}  // namespace

bool is_jpeg2000(const uint8_t* d, size_t n) {
  return (n >= 4 && std::memcmp(d, kJ2k, 4) == 0) || (n >= 12 && std::memcmp(d, kJp2, 12) == 0);
}

ImageU8 decode_jpeg2000_memory(const uint8_t* d, size_t n, const std::string& name) {
  Header h;
  try {
    h = open_header(d, n);
  } catch (const Refused& r) {
    fail_decode(name, std::string("not a readable JPEG 2000 file (") + r.why + ")");
  }
  if (h.width * h.height > static_cast<uint64_t>(kMaxImagePixels) || h.width > static_cast<uint64_t>(kMaxImagePixels) ||
      h.height > static_cast<uint64_t>(kMaxImagePixels))
    fail_decode(name, "image too large (" + std::to_string(h.width) + "x" + std::to_string(h.height) + " pixels)");

  // j2k_decode_entry
  Stream src{d, n};
  std::unique_ptr<opj_stream_t, void (*)(opj_stream_t*)> stream(opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE), opj_stream_destroy);
  if (!stream) throw std::bad_alloc();
  opj_stream_set_read_function(stream.get(), stream_read);
  opj_stream_set_skip_function(stream.get(), stream_skip);
  opj_stream_set_user_data(stream.get(), &src, nullptr);
  opj_stream_set_user_data_length(stream.get(), n);
  std::unique_ptr<opj_codec_t, void (*)(opj_codec_t*)> codec(opj_create_decompress(h.codec), opj_destroy_codec);
  if (!codec) throw std::bad_alloc();
  std::string message;
  opj_set_error_handler(codec.get(), on_error, &message);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  opj_setup_decoder(codec.get(), &params);
  // OpenJPEG decodes a tile's code blocks on a pool of threads (the same pixels for any count):
  // the cores shared among the JPEG 2000 decodes running at the time, so that one image alone
  // gets them all and the batch loader's workers, decoding side by side, one each.
  static std::atomic<int> in_flight{0};
  const SharedCores cores(in_flight);
  if (cores.threads() > 1) opj_codec_set_threads(codec.get(), cores.threads());
  auto broken = [&](const char* what) {
    fail_decode(name, std::string("corrupt JPEG 2000 (") + what + (message.empty() ? "" : ": openjpeg: " + message) + ")");
  };
  opj_image_t* raw_image = nullptr;
  const bool header_ok = opj_read_header(stream.get(), codec.get(), &raw_image);
  std::unique_ptr<opj_image_t, void (*)(opj_image_t*)> image(raw_image, opj_image_destroy);
  if (!header_ok) broken("its main header cannot be read");
  if (image->numcomps < 1 || image->numcomps > 4) broken("other than 1 to 4 components");
  for (uint32_t c = 0; c < image->numcomps; ++c)  // OpenJPEG's own bounds, kept where the shifts rely on them
    if (image->comps[c].prec < 1 || image->comps[c].prec > 31 || image->comps[c].dx < 1 || image->comps[c].dy < 1)
      broken("a component of a precision or subsampling OpenJPEG does not allow");
  // The first subsampled component guesses an unspecified colour space: sYCC where it is
  // the second or third.
  int subsampled = -1;
  for (uint32_t c = 0; c < image->numcomps && subsampled < 0; ++c)
    if (image->comps[c].dx != 1 || image->comps[c].dy != 1) subsampled = static_cast<int>(c);
  // An unknown colour space is guessed as an unspecified one (Pillow >= 11).
  OPJ_COLOR_SPACE space = h.codec == OPJ_CODEC_JP2 ? jp2_colour_space(d, n) : image->color_space;
  if (space == OPJ_CLRSPC_UNSPECIFIED || space == OPJ_CLRSPC_UNKNOWN) {
    if (image->numcomps <= 2) space = OPJ_CLRSPC_GRAY;
    else space = subsampled == 1 || subsampled == 2 ? OPJ_CLRSPC_SYCC : OPJ_CLRSPC_SRGB;
  }
  const Row* row = nullptr;
  for (const Row& r : kUnpackers)
    if (!row && r.space == space && r.components == image->numcomps && (r.subsampling || subsampled < 0) && h.mode == r.mode) row = &r;
  if (!row) broken("its colour space, components and subsampling do not fit the header's mode");

  // Pillow's image in its mode: 1 byte a pixel (L, P), 2 (I;16) or 4 (LA, PA, RGB, RGBA, CMYK),
  // zeroed.
  const size_t W = static_cast<size_t>(h.width), H = static_cast<size_t>(h.height);
  const size_t ps = h.mode == "L" || h.mode == "P" ? 1 : h.mode == "I;16" ? 2 : 4;
  std::unique_ptr<uint8_t, void (*)(void*)> mem(static_cast<uint8_t*>(std::calloc(W * H, ps)), std::free);
  if (!mem) throw std::bad_alloc();
  static const YccTables ycc;
  std::vector<uint8_t> buffer;
  for (;;) {
    OPJ_UINT32 index = 0, data_size = 0, nb_comps = 0;
    OPJ_INT32 tx0 = 0, ty0 = 0, tx1 = 0, ty1 = 0;
    OPJ_BOOL more = OPJ_FALSE;
    if (!opj_read_tile_header(codec.get(), stream.get(), &index, &data_size, &tx0, &ty0, &tx1, &ty1, &nb_comps, &more))
      broken("a tile header cannot be read");
    if (!more) break;
    if (tx0 >= tx1 || ty0 >= ty1 || tx0 < 0 || ty0 < 0 || static_cast<OPJ_UINT32>(tx0) < image->x0 ||
        static_cast<OPJ_UINT32>(ty0) < image->y0 || static_cast<OPJ_INT32>(static_cast<OPJ_UINT32>(tx1) - image->x0) > static_cast<OPJ_INT32>(W) ||
        static_cast<OPJ_INT32>(static_cast<OPJ_UINT32>(ty1) - image->y0) > static_cast<OPJ_INT32>(H))
      broken("a tile outside the image");
    if (nb_comps != image->numcomps) broken("a tile of another number of components than the image");
    const unsigned w = static_cast<unsigned>(tx1 - tx0), th = static_cast<unsigned>(ty1 - ty0);
    // Pillow's bytes per pixel, summed over the components: they size the buffer (zeroed for
    // every tile) and bound the tile.
    unsigned widths = 0;
    for (uint32_t c = 0; c < nb_comps; ++c) widths += static_cast<unsigned>(sample_bytes(image->comps[c].prec));
    if (w > UINT32_MAX / widths || th > UINT32_MAX / widths || w > UINT32_MAX / (th * widths) || th > UINT32_MAX / (w * widths))
      broken("a tile too large");
    data_size = std::max<OPJ_UINT32>(data_size, w * th * widths);
    buffer.assign(data_size, 0);
    if (!opj_decode_tile_data(codec.get(), index, buffer.data(), data_size, stream.get())) broken("a tile cannot be decoded");

    // The unpacker: the planes one after the other, each (w / dx) * (th / dy) samples.
    const int bits = row->unpack == Unpacker::kGrayI ? 16 : 8;
    std::vector<Plane> planes;
    const uint8_t* at = buffer.data();
    for (uint32_t c = 0; c < planes_read(row->unpack); ++c) {
      planes.emplace_back(image->comps[c], at, bits, w);
      const Plane& p = planes.back();
      at += static_cast<size_t>(static_cast<unsigned>(p.size) * p.stride * (th / p.dy));
    }
    const size_t x0 = static_cast<size_t>(static_cast<OPJ_UINT32>(tx0) - image->x0);
    const size_t y0 = static_cast<size_t>(static_cast<OPJ_UINT32>(ty0) - image->y0);
    // Each unpacker gets a loop of its own: body(row of the mode image, x, y).
    auto each = [&](auto body) {
      for (unsigned y = 0; y < th; ++y) {
        uint8_t* line = mem.get() + (y0 + y) * W * ps;
        for (unsigned x = 0; x < w; ++x) body(line, x, y);
      }
    };
    auto byte = [&](int c, unsigned x, unsigned y) { return static_cast<uint8_t>(planes[static_cast<size_t>(c)](x, y)); };
    const bool alpha = row->unpack == Unpacker::kSrgbaRgba || row->unpack == Unpacker::kSyccaRgba;
    switch (row->unpack) {
      case Unpacker::kGrayL:
        each([&](uint8_t* line, unsigned x, unsigned y) { line[x0 + x] = byte(0, x, y); });
        break;
      case Unpacker::kGrayI:
        each([&](uint8_t* line, unsigned x, unsigned y) {
          const uint32_t v = planes[0](x, y);
          line[2 * (x0 + x)] = static_cast<uint8_t>(v), line[2 * (x0 + x) + 1] = static_cast<uint8_t>(v >> 8);
        });
        break;
      case Unpacker::kGrayRgb:  // Pillow starts these rows x0 bytes in, not x0 pixels
        each([&](uint8_t* line, unsigned x, unsigned y) {
          uint8_t* o = line + x0 + 4 * x;
          o[0] = o[1] = o[2] = byte(0, x, y), o[3] = 255;
        });
        break;
      case Unpacker::kGrayaLa:
        each([&](uint8_t* line, unsigned x, unsigned y) {
          uint8_t* o = line + 4 * (x0 + x);
          o[0] = o[1] = o[2] = byte(0, x, y), o[3] = byte(1, x, y);
        });
        break;
      case Unpacker::kSrgbRgb:
      case Unpacker::kSrgbaRgba:
        each([&](uint8_t* line, unsigned x, unsigned y) {
          uint8_t* o = line + 4 * (x0 + x);
          o[0] = byte(0, x, y), o[1] = byte(1, x, y), o[2] = byte(2, x, y), o[3] = alpha ? byte(3, x, y) : 255;
        });
        break;
      case Unpacker::kSyccRgb:
      case Unpacker::kSyccaRgba:
        each([&](uint8_t* line, unsigned x, unsigned y) {
          uint8_t* o = line + 4 * (x0 + x);
          const int yy = byte(0, x, y), cb = byte(1, x, y), cr = byte(2, x, y);
          o[0] = clip8(yy + (ycc.r_cr[cr] >> 6));
          o[1] = clip8(yy + ((ycc.g_cb[cb] + ycc.g_cr[cr]) >> 6));
          o[2] = clip8(yy + (ycc.b_cb[cb] >> 6));
          o[3] = alpha ? byte(3, x, y) : 255;
        });
        break;
    }
  }
  if (!opj_end_decompress(codec.get(), stream.get())) broken("the codestream does not end as it should");

  // convert("RGB"): L replicated, I;16 clipped at 255, P and PA through the palette Pillow put
  // (len // 3 RGB entries or len // 4 RGBA/CMYK ones, black past them; a CMYK entry's first
  // three bytes, as p2rgb copies them), CMYK converted, the first three bytes of the others.
  uint8_t lut[256][4] = {};
  if (h.mode == "P" || h.mode == "PA") {
    const PilPalette& pal = h.palette;
    const size_t k = pal.mode_len, entries = pal.dirty ? pal.bytes.size() / k : 0;
    if (entries > 256) fail_decode(name, "JP2 palette of more than 256 entries (wrong palette size)");
    for (size_t i = 0; i < entries; ++i) std::memcpy(lut[i], pal.bytes.data() + i * k, k);
  }
  ImageU8 img;
  img.width = static_cast<int>(W);
  img.height = static_cast<int>(H);
  img.rgb.resize(W * H * 3);
  const uint8_t* m = mem.get();
  uint8_t* o = img.rgb.data();
  const size_t pixels = W * H;
  if (h.mode == "L") {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = m[i];
  } else if (h.mode == "P" || h.mode == "PA") {
    const size_t step = h.mode == "P" ? 1 : 4;
    for (size_t i = 0; i < pixels; ++i) std::memcpy(o + 3 * i, lut[m[step * i]], 3);
  } else if (h.mode == "I;16") {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = m[2 * i + 1] ? 255 : m[2 * i];
  } else if (h.mode == "LA") {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = m[4 * i];
  } else if (h.mode == "CMYK") {
    for (size_t i = 0; i < pixels; ++i)
      for (int c = 0; c < 3; ++c) o[3 * i + c] = cmyk_to_rgb_channel(m[4 * i + c], 255 - m[4 * i + 3]);
  } else {
    for (size_t i = 0; i < pixels; ++i) o[3 * i] = m[4 * i], o[3 * i + 1] = m[4 * i + 1], o[3 * i + 2] = m[4 * i + 2];
  }
  return img;
}

}  // namespace lcam
