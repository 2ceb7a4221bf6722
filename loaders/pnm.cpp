// pnm.cpp — Netpbm images (P1–P6: PBM, PGM, PPM, plain and raw, every maxval) decoded as Pillow's
// PpmImagePlugin reads them, then convert("RGB"): the same pixels and the same refusals.
// Pillow's rules, mirrored here (Pillow 13; Pillow 9.4 reads the same files alike, except that it
// wraps a negative plain value to a byte where 13 refuses it, as lcam does, and reads a plain
// file's last value twice when no whitespace follows it):
// - header: the magic is the bytes up to the first whitespace (at most 6); then width, height and,
//   but for bitmaps, maxval, each a token of at most 10 bytes read as Python's int() reads it.
//   '#' anywhere in the header starts a comment that runs to CR or LF, and the token goes on after
//   it ("1#c\n3" is 13). Exactly one whitespace byte ends the last token; the data follows.
// - raw data: P4 rows of ceil(w / 8) bytes, bit set = black; P5/P6 with maxval 255 as bytes;
//   P5 with maxval 65535 as big-endian 16-bit grey (Pillow's mode I); any other maxval through
//   Pillow's "ppm" decoder: samples of 1 byte (maxval < 256) or 2, scaled to
//   min(out_max, round(v / maxval * out_max)), where out_max is 65535 for grey with maxval > 255
//   (mode I) and 255 otherwise. Data short of the last sample is refused (as "image file is
//   truncated" / "not enough image data"); bytes after it are ignored.
// - plain data: read in 1 MiB blocks as Pillow reads them (comments are cut out of each block
//   before it is split, so "1#c\n2" is the value 12; a token may span two blocks). P1 takes every
//   non-whitespace byte as one pixel, and the whole block it finishes in must hold only '0' and
//   '1'; P2/P3 values must be integers of at most 10 bytes within [0, maxval], scaled to
//   round(v / maxval * out_max). Too few values is refused.
// - mode I (grey with maxval > 255) becomes RGB by clipping to 255, as Pillow's convert does; mode
//   1 becomes 0 or 255. Python's round() is round half to even.
// Deliberately omits: Pillow's own PNM variants (P0CMYK, Pf float maps, PyP/PyRGBA/PyCMYK), which
// are refused by name, and PAM (P7), which Pillow does not read either. Sizes of 0 and images over
// Pillow's decompression-bomb limit are refused, as everywhere in lcam.
#include <algorithm>  // std::min
#include <cstdint>    // uint8_t, int64_t
#include <cstring>    // std::memchr
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, the declarations implemented here

namespace lcam {
namespace {

// Python's bytes.isspace() set: space, \t, \n, \v, \f, \r.
inline bool is_ws(uint8_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0d); }

// A byte string for messages: printable ASCII as itself, the rest as \xNN.
std::string shown(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Python's int(token) for a token without whitespace: an optional sign, then decimal digits with
// single underscores allowed between two digits. False when Python would raise.
bool python_int(const std::string& t, int64_t& value) {
  size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  if (i >= t.size()) return false;
  int64_t v = 0;
  bool digit_before = false;
  for (; i < t.size(); ++i) {
    const char c = t[i];
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');  // at most 10 digits: no overflow
      digit_before = true;
    } else if (c == '_' && digit_before && i + 1 < t.size() && t[i + 1] >= '0' && t[i + 1] <= '9') {
      digit_before = false;
    } else {
      return false;
    }
  }
  value = negative ? -v : v;
  return true;
}

// Python's round(x) for a finite x >= 0: to the nearest integer, halves to even.
int64_t round_half_even(double x) {
  const double f = static_cast<double>(static_cast<int64_t>(x));  // floor, x >= 0
  const double frac = x - f;                                       // exact
  int64_t r = static_cast<int64_t>(f);
  if (frac > 0.5 || (frac == 0.5 && (r & 1))) ++r;
  return r;
}

// Pillow's value / maxval * out_max, rounded, in double precision as Python computes it.
inline int64_t scaled(int64_t v, int64_t maxval, int64_t out_max) {
  return round_half_even(static_cast<double>(v) / static_cast<double>(maxval) * static_cast<double>(out_max));
}

// Reads the file as Pillow's PpmImageFile and its decoders do: a position, tokens, blocks.
class Reader {
 public:
  Reader(const uint8_t* d, size_t n, const std::string& name) : d_(d), n_(n), name_(name) {}

  // Skips the magic (`length` bytes) and the whitespace byte that ended it (none after 6 bytes).
  void skip_magic(size_t length) { pos_ = std::min(n_, length < 6 ? length + 1 : length); }

  // One header field (PpmImageFile._read_token, then int()).
  int64_t field(const char* what) {
    std::string token;
    while (token.size() <= 10) {
      if (pos_ >= n_) break;
      const uint8_t c = d_[pos_++];
      if (is_ws(c)) {
        if (token.empty()) continue;
        break;
      }
      if (c == '#') {  // to CR, LF or the end, then the token goes on
        while (pos_ < n_) {
          const uint8_t e = d_[pos_++];
          if (e == '\r' || e == '\n') break;
        }
        continue;
      }
      token += static_cast<char>(c);
    }
    if (token.empty()) fail_decode(name_, std::string("truncated PNM header (the file ends before its ") + what + ")");
    if (token.size() > 10) fail_decode(name_, std::string("corrupt PNM header (its ") + what + " '" + shown(token) + "...' is longer than 10 bytes)");
    int64_t v = 0;
    if (!python_int(token, v)) fail_decode(name_, std::string("corrupt PNM header (its ") + what + " '" + shown(token) + "' is not an integer)");
    return v;
  }

  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  const uint8_t* at() const { return d_ + pos_; }

  // The next block of at most 1 MiB (ImageFile.SAFEBLOCK), as the plain decoders read.
  std::string block() {
    constexpr size_t kBlock = size_t{1} << 20;
    const size_t k = std::min(kBlock, n_ - pos_);
    std::string b(reinterpret_cast<const char*>(d_ + pos_), k);
    pos_ += k;
    return b;
  }

  // PpmPlainDecoder._ignore_comments: a comment left open by the previous block is finished,
  // then every comment of this block is cut out (one still open at its end is noted).
  std::string without_comments(std::string b) {
    if (comment_open_) {
      while (!b.empty()) {
        const long long end = comment_end(b, 0);
        if (end != -1) {
          b.erase(0, static_cast<size_t>(end) + 1);
          break;
        }
        b = block();
      }
    }
    comment_open_ = false;
    // Pillow cuts one comment at a time, each search starting from the block's beginning, and
    // ends each at the first CR or LF after its '#' (with a '#' at or after index 1, the quirk
    // of comment_end cannot apply). One pass gives the same bytes in linear time.
    std::string out;
    out.reserve(b.size());
    for (size_t i = 0; i < b.size(); ++i) {
      if (b[i] != '#') {
        out += b[i];
        continue;
      }
      const size_t end = b.find_first_of("\r\n", i + 1);
      if (end == std::string::npos) {
        comment_open_ = true;
        break;
      }
      i = end;
    }
    return out;
  }

 private:
  // PpmPlainDecoder._find_comment_end, with its rule as written: the smaller of the first LF and
  // the first CR from `start` when their product is positive, else the larger (so a block that
  // starts with the LF ending a comment left open by the previous block, and holds a CR further
  // on, ends that comment at the CR).
  static long long comment_end(const std::string& b, size_t start) {
    const size_t lf = b.find('\n', start), cr = b.find('\r', start);
    const long long a = lf == std::string::npos ? -1 : static_cast<long long>(lf);
    const long long c = cr == std::string::npos ? -1 : static_cast<long long>(cr);
    return a * c > 0 ? std::min(a, c) : std::max(a, c);
  }

  const uint8_t* d_;
  size_t n_;
  std::string name_;
  size_t pos_ = 0;
  bool comment_open_ = false;
};

// Splits on Python's whitespace.
std::vector<std::string> split(const std::string& b) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < b.size()) {
    while (i < b.size() && is_ws(static_cast<uint8_t>(b[i]))) ++i;
    const size_t s = i;
    while (i < b.size() && !is_ws(static_cast<uint8_t>(b[i]))) ++i;
    if (i > s) out.push_back(b.substr(s, i - s));
  }
  return out;
}

// P1: every non-whitespace byte a pixel ('1' black, '0' white); each block read must hold only
// those (PpmPlainDecoder._decode_bitonal). Returns one byte per pixel, 0 or 255.
std::vector<uint8_t> plain_bitmap(Reader& r, size_t total, const std::string& name) {
  std::vector<uint8_t> px;
  px.reserve(total);
  while (px.size() != total) {
    std::string b = r.block();
    if (b.empty()) break;
    b = r.without_comments(std::move(b));
    for (unsigned char c : b) {
      if (is_ws(c)) continue;
      if (c != '0' && c != '1') fail_decode(name, "corrupt PBM data (byte '" + shown(std::string(1, static_cast<char>(c))) + "' where 0 or 1 was expected)");
      if (px.size() < total) px.push_back(c == '0' ? 255 : 0);
    }
  }
  if (px.size() != total) fail_decode(name, "truncated image (the data ends before the last pixel)");
  return px;
}

// P2/P3: integer tokens scaled to [0, out_max] (PpmPlainDecoder._decode_blocks).
std::vector<int64_t> plain_values(Reader& r, size_t total, int64_t maxval, int64_t out_max, const std::string& name) {
  constexpr size_t kMaxLen = 10;
  auto too_long = [&](const std::string& t) {
    fail_decode(name, "corrupt PNM data (a value '" + shown(t.substr(0, kMaxLen + 1)) + "...' longer than 10 bytes)");
  };
  std::vector<int64_t> values;
  values.reserve(total);
  std::string half;  // a token the block's end may have cut
  while (values.size() != total) {
    std::string b = r.block();
    if (b.empty()) {
      if (half.empty()) break;
      b.assign(1, ' ');  // flushes the cut token
    }
    b = r.without_comments(std::move(b));
    if (!half.empty()) {
      b = half + b;
      half.clear();
    }
    std::vector<std::string> tokens = split(b);
    if (!b.empty() && !is_ws(static_cast<uint8_t>(b.back()))) {
      half = tokens.back();
      tokens.pop_back();
      if (half.size() > kMaxLen) too_long(half);
    }
    for (const std::string& t : tokens) {
      if (t.size() > kMaxLen) too_long(t);
      int64_t v = 0;
      if (!python_int(t, v)) fail_decode(name, "corrupt PNM data ('" + shown(t) + "' is not an integer)");
      if (v < 0) fail_decode(name, "corrupt PNM data (negative value " + std::to_string(v) + ")");
      if (v > maxval) fail_decode(name, "corrupt PNM data (value " + std::to_string(v) + " above maxval " + std::to_string(maxval) + ")");
      values.push_back(scaled(v, maxval, out_max));
      if (values.size() == total) break;
    }
  }
  if (values.size() != total) fail_decode(name, "truncated image (the data ends before the last pixel)");
  return values;
}

[[noreturn]] void truncated(const std::string& name) { fail_decode(name, "truncated image (the data ends before the last pixel)"); }

}  // namespace

namespace {

// Pillow's own PPM-plugin magics beyond P1-P6, which lcam refuses by name.
bool is_variant(const std::string& magic) {
  return magic == "P0CMYK" || magic == "Pf" || magic == "PyP" || magic == "PyRGBA" || magic == "PyCMYK";
}

// The magic as Pillow reads it: the bytes before the first whitespace, at most 6.
std::string magic_of(const uint8_t* d, size_t n) {
  std::string m;
  for (size_t i = 0; i < std::min<size_t>(n, 6) && !is_ws(d[i]); ++i) m += static_cast<char>(d[i]);
  return m;
}

bool is_netpbm(const std::string& m) { return m.size() == 2 && m[0] == 'P' && m[1] >= '1' && m[1] <= '6'; }

}  // namespace

bool is_pnm(const uint8_t* d, size_t n) {
  if (n < 2 || d[0] != 'P') return false;
  const std::string m = magic_of(d, n);
  return is_netpbm(m) || is_variant(m);
}

ImageU8 decode_pnm_memory(const uint8_t* data, size_t size, const std::string& name) {
  const std::string magic = magic_of(data, size);
  Reader r(data, size, name);
  r.skip_magic(magic.size());
  if (is_variant(magic)) fail_decode(name, "unsupported PNM variant '" + magic + "' (lcam reads P1-P6)");
  if (!is_netpbm(magic)) fail_decode(name, "not a PNM image (magic '" + shown(magic) + "')");
  const char kind = magic[1];
  const bool bitmap = kind == '1' || kind == '4', plain = kind <= '3';
  const int bands = (kind == '3' || kind == '6') ? 3 : 1;
  const int64_t w = r.field("width"), h = r.field("height");
  const int64_t maxval = bitmap ? 1 : r.field("maxval");
  if (!bitmap && (maxval <= 0 || maxval >= 65536))
    fail_decode(name, "corrupt PNM header (maxval " + std::to_string(maxval) + ", expected 1 to 65535)");
  const std::string size_text = std::to_string(w) + "x" + std::to_string(h);
  if (w <= 0 || h <= 0) fail_decode(name, "image of " + size_text + " pixels");
  if (w > kMaxImagePixels || h > kMaxImagePixels || w * h > kMaxImagePixels) fail_decode(name, "image too large (" + size_text + " pixels)");
  const size_t pixels = static_cast<size_t>(w) * static_cast<size_t>(h);
  const size_t samples = pixels * static_cast<size_t>(bands);
  // Before anything is allocated: plain data needs a byte per sample, raw data its exact length.
  const size_t sample_bytes = maxval < 256 ? 1 : 2;
  const size_t raw_bytes = kind == '4' ? static_cast<size_t>((w + 7) / 8) * static_cast<size_t>(h) : samples * sample_bytes;
  if (r.left() < (plain ? samples : raw_bytes)) truncated(name);

  // The samples as Pillow's image holds them, then convert("RGB").
  const bool mode_i = bands == 1 && maxval > 255;  // Pillow's mode I: clipped to 255 by convert
  const int64_t out_max = mode_i ? 65535 : 255;
  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(pixels * 3);
  auto put = [&](size_t i, int64_t v) {  // sample i of the HW(C) layout
    const uint8_t b = static_cast<uint8_t>(std::min<int64_t>(v, 255));
    if (bands == 3) {
      img.rgb[i] = b;
    } else {
      img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = b;
    }
  };
  if (kind == '1') {
    const std::vector<uint8_t> px = plain_bitmap(r, pixels, name);
    for (size_t i = 0; i < pixels; ++i) put(i, px[i]);
  } else if (plain) {
    const std::vector<int64_t> v = plain_values(r, samples, maxval, out_max, name);
    for (size_t i = 0; i < samples; ++i) put(i, v[i]);
  } else if (kind == '4') {
    const uint8_t* p = r.at();
    const size_t row = static_cast<size_t>((w + 7) / 8);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        put(static_cast<size_t>(y * w + x), (p[static_cast<size_t>(y) * row + static_cast<size_t>(x >> 3)] >> (7 - (x & 7))) & 1 ? 0 : 255);
  } else {
    const uint8_t* p = r.at();
    const bool as_is = maxval == 255 || (bands == 1 && maxval == 65535);  // Pillow's raw decoder
    for (size_t i = 0; i < samples; ++i) {
      const int64_t v = sample_bytes == 1 ? p[i] : (int64_t{p[2 * i]} << 8 | p[2 * i + 1]);
      put(i, as_is ? v : std::min(out_max, scaled(v, maxval, out_max)));
    }
  }
  return img;
}

}  // namespace lcam
