// tiff.cpp — TIFF images (the first page) decoded as Pillow 13's TiffImagePlugin reads them, then
// convert("RGB"). Strips and tiles are decoded by libtiff, the library Pillow hands every
// compressed TIFF to (its own raw reader gives the same bytes for uncompressed strips); the pixel
// modes, their unpacking and the conversion to RGB are Pillow's:
// - the mode comes from Pillow's table of (byte order, photometric, sample format, fill order,
//   bits per sample, extra samples); a combination it lacks is refused ("unknown pixel mode").
//   Fill order 2 reverses the bits of every byte, as Pillow's ";R" raw modes and libtiff do.
// - bilevel and 2-, 4- and 8-bit grey (min-is-white inverted), 16-bit grey clipped to 255 as
//   Pillow's I;16 and I modes convert (min-is-white not inverted at 16 bits, as in Pillow's
//   table), grey with an extra sample (alpha or unspecified) dropped;
// - RGB of 8 or 16 bits (16-bit samples keep their high byte) with up to three extra samples:
//   unassociated alpha and unspecified extras are dropped, associated alpha is divided out
//   (v * 255 / a, truncated, clipped to 255; 0 where a is 0) as Pillow's RGBa unpacker does;
// - palette images of 1, 2, 4 or 8 bits, the colour map's high bytes as the palette;
// - CMYK of 8 or 16 bits with Pillow's CMYK -> RGB arithmetic;
// - YCbCr: JPEG-compressed contiguous data converted by libjpeg (JPEGCOLORMODE_RGB), other
//   compressed data through libtiff's RGBA interface, in blocks of a strip or a tile row;
// - the Orientation tag applied afterwards (Pillow 13 transposes TIFFs as exif_transpose does).
// Pillow's own raw reading (uncompressed data) has quirks lcam follows:
// - separate planes are read one letter of the raw mode each: "L;I" as "L" (min-is-white not
//   inverted), "RGB;R" as "R", "G", "B" (fill order 2 not reversed); letters with no unpacker
//   ("X", "a", the "A" of LA and PA, a plane beyond the mode's letters) make Pillow refuse;
// - fill order 2 has no unpacker for 1-, 2- and 4-bit palettes or 8-bit min-is-white;
// - Image.open(path) maps one strip or tile whose raw mode is the image's mode (L, P, RGBA,
//   CMYK, I;16, I;16B) at the size it gives before loading, which for Orientation 5-8 is already
//   transposed: the file's pixels in file order, read as rows of the image's height, then turned;
// - the swapped version fields "MM*\0" and "II\0*" pass as classic TIFF; libtiff refuses them, so
//   compressed files with them are refused; big-endian BigTIFF, which Pillow takes for classic
//   TIFF, is refused.
// Deliberately omits: pages after the first; and refuses, naming the reason, what Pillow reads
// but decodes to pixels that do not describe the image or cannot convert to RGB: uncompressed
// YCbCr (Pillow ignores the subsampling there), old-style JPEG, LAB, floating-point and 32-bit
// samples, 12-bit grey, grey with premultiplied alpha (Pillow's La mode has no RGB conversion),
// 2-, 4- and 16-bit samples stored as separate uncompressed planes (Pillow's raw reader unpacks
// those planes as 8-bit ones), a single tile wider than the image under Orientation 5-8; and
// WebP compression, which the libtiff of Pillow's wheels does not decode. Damaged files: the
// directory is libtiff's reading, not Pillow's own parser, so a damaged directory may be read
// where Pillow refuses it, or the other way round.
#include <tiffio.h>  // libtiff

#include <algorithm>  // std::min, std::swap
#include <cstdarg>    // va_list
#include <cstdint>    // uint8_t, uint16_t, uint32_t
#include <cstdio>     // std::vsnprintf
#include <cstring>    // std::memcmp, std::memcpy
#include <memory>     // std::unique_ptr
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, the declarations implemented here

namespace lcam {
namespace {

// The file in memory, as libtiff's client procedures see it.
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

// What the samples of one pixel are, after Pillow's table.
enum class Kind { Bilevel, Grey, Grey16, Rgb, Palette, Cmyk, YcbcrJpeg, YcbcrRgba };

struct Layout {
  Kind kind = Kind::Grey;
  bool invert = false;     // min-is-white grey (1 to 8 bits)
  bool big_endian = false;  // 16-bit samples' byte order in the file
  bool is_signed = false;   // 16-bit grey of sample format 2
  int alpha = -1;           // extra sample holding alpha (RGB), -1 for none
  bool premultiplied = false;
};

[[noreturn]] void unknown_mode(const std::string& name, int photo, int bits, int spp, int format, int fill) {
  fail_decode(name, "TIFF of an unknown pixel mode (photometric " + std::to_string(photo) + ", " + std::to_string(spp) +
                        " samples of " + std::to_string(bits) + " bits, sample format " + std::to_string(format) +
                        ", fill order " + std::to_string(fill) + ")");
}

// Pillow's OPEN_INFO, as far as lcam reads it. `extras` are the ExtraSamples values.
Layout choose_layout(const std::string& name, bool big_endian, int photo, int format, int fill, int bits, int spp,
                     const std::vector<uint16_t>& extras, int compression, int planar) {
  Layout L;
  L.big_endian = big_endian;
  const size_t ne = extras.size();
  auto refuse = [&](const std::string& why) { fail_decode(name, "TIFF " + why + " (lcam does not read it)"); };
  if (photo == 0 || photo == 1) {
    L.invert = photo == 0;
    if (spp == 1 && ne == 0 && format == 1 && (bits == 1 || bits == 2 || bits == 4 || bits == 8)) {
      L.kind = bits == 1 ? Kind::Bilevel : Kind::Grey;
      return L;
    }
    if (spp == 1 && ne == 0 && photo == 1 && format == 2 && bits == 8 && fill == 1) return L;  // read as unsigned
    if (spp == 1 && ne == 0 && bits == 16 && fill == 1 && format == 1 && (photo == 1 || !big_endian)) {
      L.kind = Kind::Grey16, L.invert = false;
      return L;
    }
    if (spp == 1 && ne == 0 && bits == 16 && fill == 2 && format == 1 && photo == 1 && !big_endian) {
      L.kind = Kind::Grey16;
      return L;
    }
    if (spp == 1 && ne == 0 && bits == 16 && fill == 1 && format == 2 && photo == 1) {
      L.kind = Kind::Grey16, L.is_signed = true;
      return L;
    }
    if (spp == 2 && ne == 1 && photo == 1 && format == 1 && fill == 1 && bits == 8) {
      if (extras[0] == 1) refuse("grey with premultiplied alpha (Pillow's mode La, which has no RGB conversion)");
      if (extras[0] == 0 || extras[0] == 2) return L;  // LX, LA: the grey sample
    }
    if (spp == 1 && ne == 0 && bits == 12 && photo == 1 && format == 1 && fill == 1 && !big_endian) refuse("of 12-bit grey");
    if (bits == 32 && spp == 1 && (format == 3 || (photo == 1 && format <= 2))) refuse("of 32-bit samples");
    unknown_mode(name, photo, bits, spp, format, fill);
  }
  if (photo == 2 && format == 1) {
    L.kind = Kind::Rgb;
    if (bits == 8 && spp == 3 && ne == 0) return L;  // RGB, and RGB;R for fill order 2
    if (fill == 1 && bits == 8 && spp >= 4 && spp <= 6 && ne == static_cast<size_t>(spp - 3)) {
      bool rest_unspecified = true;
      for (size_t i = 1; i < ne; ++i) rest_unspecified = rest_unspecified && extras[i] == 0;
      if (rest_unspecified && (extras[0] <= 2 || (spp == 4 && extras[0] == 999))) {
        if (extras[0] != 0) L.alpha = 3, L.premultiplied = extras[0] == 1;
        return L;
      }
    }
    if (fill == 1 && bits == 8 && spp == 4 && ne == 0) return L;  // RGBA without ExtraSamples
    if (fill == 1 && bits == 16 && spp == 3 && ne == 0) return L;
    if (fill == 1 && bits == 16 && spp == 4 && ne <= 1 && (ne == 0 || extras[0] <= 2)) {
      if (ne == 1 && extras[0] == 1) L.alpha = 3, L.premultiplied = true;
      return L;
    }
    unknown_mode(name, photo, bits, spp, format, fill);
  }
  if (photo == 3 && format == 1) {
    L.kind = Kind::Palette;
    if (spp == 1 && ne == 0 && (bits == 1 || bits == 2 || bits == 4 || bits == 8)) return L;
    if (spp == 2 && ne == 1 && fill == 1 && bits == 8 && (extras[0] == 0 || extras[0] == 2)) return L;  // PX, PA
    unknown_mode(name, photo, bits, spp, format, fill);
  }
  if (photo == 5 && format == 1 && fill == 1) {
    L.kind = Kind::Cmyk;
    bool unspecified = true;
    for (uint16_t e : extras) unspecified = unspecified && e == 0;
    if (bits == 8 && spp >= 4 && spp <= 6 && ne == static_cast<size_t>(spp - 4) && unspecified) return L;
    if (bits == 16 && spp == 4 && ne == 0) return L;
    unknown_mode(name, photo, bits, spp, format, fill);
  }
  if (photo == 6 && format == 1 && fill == 1 && bits == 8 && spp == 3 && ne == 0) {
    if (compression == COMPRESSION_NONE) refuse("of uncompressed YCbCr (Pillow ignores its subsampling)");
    L.kind = compression == COMPRESSION_JPEG && planar == PLANARCONFIG_CONTIG ? Kind::YcbcrJpeg : Kind::YcbcrRgba;
    return L;
  }
  if (photo == 6 && format == 1 && fill == 1 && bits == 8 && spp == 1 && ne == 0) refuse("of one-sample YCbCr");
  if (photo == 8 && format == 1 && fill == 1 && bits == 8 && spp == 3 && ne == 0) refuse("in the CIE L*a*b* colour space");
  unknown_mode(name, photo, bits, spp, format, fill);
}

// Pillow's MULDIV255 and its CMYK -> RGB: 255 - k less c scaled by 255 - k.
inline uint8_t cmyk_channel(int c, int nk) {
  const int t = c * nk + 128;
  const int v = nk - (((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : v);
}

// The transposition of ImageOps.exif_transpose for Orientation 2-8.
ImageU8 apply_orientation(ImageU8 img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int w = img.width, h = img.height;
  const bool swap = orientation >= 5;
  ImageU8 out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(img.rgb.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                 // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;  // ROTATE_180
        case 4: sy = h - 1 - y; break;                 // FLIP_TOP_BOTTOM
        case 5: sx = y, sy = x; break;                 // TRANSPOSE
        case 6: sx = y, sy = h - 1 - x; break;         // ROTATE_270 (90 degrees clockwise)
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;  // TRANSVERSE
        case 8: sx = w - 1 - y, sy = x; break;         // ROTATE_90 (90 degrees counter-clockwise)
      }
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * out.width + x) * 3], &img.rgb[(static_cast<size_t>(sy) * w + sx) * 3], 3);
    }
  return out;
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
  // Pillow tells BigTIFF by the third byte, 43: big-endian BigTIFF ("MM\0+") passes for classic
  // TIFF there, and its header for a directory beyond the first 512 KiB.
  if (size >= 4 && std::memcmp(data, "MM\x00\x2b", 4) == 0)
    fail_decode(name, "big-endian BigTIFF (Pillow reads its header as classic TIFF's; lcam does not read it)");
  // Pillow takes the two swapped version fields ("MM*\0", "II\0*") for classic TIFF; libtiff
  // refuses them, so it reads a copy with the field in order.
  std::vector<uint8_t> fixed;
  if (size >= 4 && (std::memcmp(data, "MM\x2a\x00", 4) == 0 || std::memcmp(data, "II\x00\x2a", 4) == 0)) {
    fixed.assign(data, data + size);
    std::swap(fixed[2], fixed[3]);
    data = fixed.data();
  }
  MemFile file{data, static_cast<toff_t>(size), 0, {}};
  std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> options(TIFFOpenOptionsAlloc(), TIFFOpenOptionsFree);
  if (!options) fail_decode(name, "libtiff: out of memory");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), keep_error, &file);
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), ignore_warning, nullptr);
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(
      TIFFClientOpenExt("tiff", "rc", &file, mem_read, mem_write, mem_seek, mem_close, mem_size, mem_map, mem_unmap, options.get()),
      TIFFClose);
  auto corrupt = [&](const char* what) {
    fail_decode(name, std::string("corrupt or truncated TIFF (") + (file.error.empty() ? what : "libtiff: " + file.error) + ")");
  };
  if (!tif) corrupt("no readable first directory");

  uint32_t w = 0, h = 0;
  if (!TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h))
    fail_decode(name, "TIFF without its image size");
  if (w == 0 || h == 0) fail_decode(name, "TIFF of " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  if (static_cast<long long>(w) * h > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(w) + "x" + std::to_string(h) + " pixels)");
  uint16_t compression = 1, photo = 0, planar = 1, fill = 1, bits = 1, spp = 1, format = 1, orientation = 1;
  TIFFGetField(tif.get(), TIFFTAG_COMPRESSION, &compression);
  TIFFGetField(tif.get(), TIFFTAG_PHOTOMETRIC, &photo);
  TIFFGetField(tif.get(), TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetField(tif.get(), TIFFTAG_FILLORDER, &fill);
  TIFFGetField(tif.get(), TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetField(tif.get(), TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetField(tif.get(), TIFFTAG_ORIENTATION, &orientation);
  uint16_t n_extra = 0;
  uint16_t* extra_values = nullptr;
  TIFFGetField(tif.get(), TIFFTAG_EXTRASAMPLES, &n_extra, &extra_values);
  std::vector<uint16_t> extras(extra_values, extra_values + (extra_values ? n_extra : 0));
  switch (compression) {
    case COMPRESSION_NONE: case COMPRESSION_CCITTRLE: case COMPRESSION_CCITTFAX3: case COMPRESSION_CCITTFAX4:
    case COMPRESSION_LZW: case COMPRESSION_JPEG: case COMPRESSION_ADOBE_DEFLATE: case COMPRESSION_PACKBITS:
    case COMPRESSION_DEFLATE: case COMPRESSION_LZMA: case COMPRESSION_ZSTD:
      break;
    case COMPRESSION_WEBP: fail_decode(name, "TIFF of WebP compression (Pillow's libtiff does not decode it, nor does lcam)");
    case COMPRESSION_OJPEG: fail_decode(name, "TIFF of old-style JPEG compression (lcam does not read it)");
    default: fail_decode(name, "TIFF of compression " + std::to_string(compression) + " (lcam does not read it)");
  }
  if (!fixed.empty() && compression != COMPRESSION_NONE)
    fail_decode(name, "compressed TIFF whose header has its version field swapped (Pillow decodes compressed data with libtiff, which refuses the header)");
  if (!TIFFIsCODECConfigured(compression))
    fail_decode(name, "TIFF of compression " + std::to_string(compression) + ", which this build's libtiff cannot decode");
  if (planar != PLANARCONFIG_CONTIG && planar != PLANARCONFIG_SEPARATE)
    fail_decode(name, "TIFF of planar configuration " + std::to_string(planar));
  // Pillow drops unspecified extra samples stored as separate planes.
  bool dropped_extras = false;
  if (planar == PLANARCONFIG_SEPARATE && !extras.empty() && *std::max_element(extras.begin(), extras.end()) == 0) {
    spp = static_cast<uint16_t>(spp - extras.size());
    extras.clear();
    dropped_extras = true;
  }
  const bool big_endian = TIFFIsBigEndian(tif.get());
  Layout L = choose_layout(name, big_endian, photo, format, fill, bits, spp, extras, compression, planar);
  // Uncompressed separate planes are Pillow's own raw reading, one plane per letter of the raw
  // mode: "L;I" reads its plane as "L" (min-is-white not inverted), "RGB;R" as "R", "G", "B"
  // (fill order 2 not reversed); letters with no unpacker of their own ("X", "a", the "A" of LA
  // and PA) make Pillow refuse the file, and 16-bit or 2- and 4-bit samples are unpacked as 8-bit
  // ones, which lcam refuses.
  const bool raw_planes = compression == COMPRESSION_NONE && planar == PLANARCONFIG_SEPARATE;
  // Pillow's raw reading has no unpacker for fill order 2 of 1-, 2- and 4-bit palettes ("P;1R",
  // "P;2R", "P;4R") nor of 8-bit min-is-white ("L;IR"); libtiff's reading (compressed data) has
  // no need of one.
  if (compression == COMPRESSION_NONE && !raw_planes && fill == FILLORDER_LSB2MSB &&
      ((L.kind == Kind::Palette && bits < 8) || (L.kind == Kind::Grey && photo == 0 && bits == 8)))
    fail_decode(name, "uncompressed TIFF of fill order 2 that Pillow has no unpacker for (unknown raw mode)");
  if (raw_planes) {
    if (bits == 16 || bits == 2 || bits == 4)
      fail_decode(name, "TIFF of uncompressed " + std::to_string(bits) + "-bit samples in separate planes (Pillow unpacks them as 8-bit ones; lcam does not read it)");
    if (dropped_extras)
      fail_decode(name, "TIFF of uncompressed separate planes with unspecified extra samples (Pillow's raw mode has no letter for their planes)");
    if (L.premultiplied || ((L.kind == Kind::Grey || L.kind == Kind::Palette) && spp == 2) || ((L.kind == Kind::Rgb || L.kind == Kind::Cmyk) && spp > 4))
      fail_decode(name, "TIFF of uncompressed separate planes whose extra samples Pillow cannot unpack (unknown raw mode)");
    L.invert = false;
  }

  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(static_cast<size_t>(w) * h * 3);

  if (L.kind == Kind::YcbcrRgba) {
    uint32_t block = 0;
    if (TIFFIsTiled(tif.get())) TIFFGetFieldDefaulted(tif.get(), TIFFTAG_TILELENGTH, &block);
    else TIFFGetFieldDefaulted(tif.get(), TIFFTAG_ROWSPERSTRIP, &block);
    if (block == 0 || block > h) block = h;
    char emsg[1024] = "";
    TIFFRGBAImage rgba;
    if (!TIFFRGBAImageOK(tif.get(), emsg) || !TIFFRGBAImageBegin(&rgba, tif.get(), 0, emsg))
      fail_decode(name, std::string("TIFF libtiff cannot convert to RGB (") + emsg + ")");
    std::unique_ptr<TIFFRGBAImage, void (*)(TIFFRGBAImage*)> end(&rgba, TIFFRGBAImageEnd);
    rgba.orientation = ORIENTATION_TOPLEFT;
    rgba.req_orientation = ORIENTATION_TOPLEFT;
    rgba.col_offset = 0;
    std::vector<uint32_t> raster(static_cast<size_t>(w) * block);
    for (uint32_t y = 0; y < h; y += block) {
      rgba.row_offset = static_cast<int>(y);
      const uint32_t rows = std::min(block, h - y);
      if (!TIFFRGBAImageGet(&rgba, raster.data(), w, rows)) corrupt("a block cannot be decoded");
      for (size_t i = 0; i < static_cast<size_t>(w) * rows; ++i) {
        const uint32_t p = raster[i];
        uint8_t* o = &img.rgb[(static_cast<size_t>(y) * w) * 3 + 3 * i];
        o[0] = TIFFGetR(p), o[1] = TIFFGetG(p), o[2] = TIFFGetB(p);
      }
    }
    return apply_orientation(std::move(img), orientation);
  }
  if (L.kind == Kind::YcbcrJpeg) TIFFSetField(tif.get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);

  // The samples, as rows of packed samples: one plane (contiguous) or one per sample (separate).
  const int planes = planar == PLANARCONFIG_SEPARATE ? spp : 1;
  const int plane_spp = planes == 1 ? spp : 1;
  const size_t row_bytes = (static_cast<size_t>(w) * bits * plane_spp + 7) / 8;
  std::vector<std::vector<uint8_t>> rows(planes, std::vector<uint8_t>(row_bytes * h));
  if (TIFFIsTiled(tif.get())) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif.get(), TIFFTAG_TILELENGTH, &th);
    const tmsize_t tile_size = TIFFTileSize(tif.get()), tile_row = TIFFTileRowSize(tif.get());
    if (tw == 0 || th == 0 || tile_size <= 0 || tile_row <= 0 || tile_row > tile_size ||
        static_cast<uint64_t>(tile_row) * th > static_cast<uint64_t>(tile_size))
      corrupt("tiles of no size");
    std::vector<uint8_t> buf(static_cast<size_t>(tile_size));
    for (uint32_t y = 0; y < h; y += th)
      for (int p = 0; p < planes; ++p)
        for (uint32_t x = 0; x < w; x += tw) {
          if (TIFFReadTile(tif.get(), buf.data(), x, y, 0, static_cast<uint16_t>(p)) < 0) corrupt("a tile cannot be decoded");
          const size_t x0 = static_cast<size_t>(x) * bits * plane_spp / 8;
          const size_t n = std::min<size_t>(static_cast<size_t>(tile_row), row_bytes - x0);
          for (uint32_t r = 0; r < th && y + r < h; ++r)
            std::memcpy(&rows[p][(y + r) * row_bytes + x0], &buf[r * static_cast<size_t>(tile_row)], n);
        }
  } else {
    uint32_t per_strip = h;
    if (!TIFFGetField(tif.get(), TIFFTAG_ROWSPERSTRIP, &per_strip) || per_strip == 0 || per_strip > h) per_strip = h;
    const tmsize_t strip_size = TIFFStripSize(tif.get()), scanline = TIFFScanlineSize(tif.get());
    if (strip_size <= 0 || scanline <= 0 || static_cast<size_t>(scanline) < row_bytes ||
        static_cast<uint64_t>(strip_size) > static_cast<uint64_t>(row_bytes) * per_strip)
      corrupt("strips of an unexpected size");
    // Strips go straight to their rows where libtiff's rows are lcam's (every mode but YCbCr's).
    const bool direct = static_cast<size_t>(scanline) == row_bytes;
    std::vector<uint8_t> buf(direct ? 0 : static_cast<size_t>(strip_size));
    for (uint32_t y = 0; y < h; y += per_strip)
      for (int p = 0; p < planes; ++p) {
        const uint32_t strip = TIFFComputeStrip(tif.get(), y, static_cast<uint16_t>(p));
        const uint32_t n = std::min(per_strip, h - y);
        if (direct) {
          if (TIFFReadEncodedStrip(tif.get(), strip, &rows[p][y * row_bytes], static_cast<tmsize_t>(n * row_bytes)) < 0)
            corrupt("a strip cannot be decoded");
          continue;
        }
        if (TIFFReadEncodedStrip(tif.get(), strip, buf.data(), strip_size) < 0) corrupt("a strip cannot be decoded");
        for (uint32_t r = 0; r < n; ++r)
          std::memcpy(&rows[p][(y + r) * row_bytes], &buf[r * static_cast<size_t>(scanline)], row_bytes);
      }
  }

  if (raw_planes && fill == FILLORDER_LSB2MSB)
    for (auto& plane : rows) TIFFReverseBits(plane.data(), static_cast<tmsize_t>(plane.size()));

  // Sample s of pixel x in row y (8-bit view: the high byte of 16-bit samples).
  // libtiff returns 16-bit samples in the host's order; lcam's hosts are little-endian.
  const int step = bits == 16 ? 2 : 1, high = bits == 16 ? 1 : 0;
  auto sample8 = [&](uint32_t y, uint32_t x, int s) -> uint8_t {
    if (planes == 1) return rows[0][y * row_bytes + (static_cast<size_t>(x) * spp + s) * step + high];
    return rows[s][y * row_bytes + static_cast<size_t>(x) * step + high];
  };
  std::vector<uint8_t> palette(256 * 3, 0);
  if (L.kind == Kind::Palette) {
    uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
    if (!TIFFGetField(tif.get(), TIFFTAG_COLORMAP, &r, &g, &b)) fail_decode(name, "TIFF palette image without a colour map");
    const int n = 1 << bits;
    for (int i = 0; i < n; ++i) palette[3 * i] = r[i] >> 8, palette[3 * i + 1] = g[i] >> 8, palette[3 * i + 2] = b[i] >> 8;
  }
  if ((L.kind == Kind::Rgb || L.kind == Kind::YcbcrJpeg) && bits == 8 && planes == 1 && !L.premultiplied) {
    for (size_t i = 0, n = static_cast<size_t>(w) * h; i < n; ++i) std::memcpy(&img.rgb[3 * i], &rows[0][i * spp], 3);
  } else {
    for (uint32_t y = 0; y < h; ++y) {
      const uint8_t* row = rows[0].data() + y * row_bytes;
      uint8_t* o = &img.rgb[static_cast<size_t>(y) * w * 3];
      for (uint32_t x = 0; x < w; ++x, o += 3) {
        int r = 0, g = 0, b = 0;
        switch (L.kind) {
          case Kind::Bilevel: case Kind::Grey: case Kind::Palette: {
            int v;
            if (bits == 8) v = planes == 1 ? row[static_cast<size_t>(x) * spp] : row[x];
            else v = row[x * bits / 8] >> (8 - bits - (x * bits) % 8) & ((1 << bits) - 1);
            if (L.kind == Kind::Palette) {
              r = palette[3 * v], g = palette[3 * v + 1], b = palette[3 * v + 2];
              break;
            }
            if (bits == 1) v = v ? 255 : 0;
            else if (bits == 2) v *= 0x55;
            else if (bits == 4) v *= 0x11;
            if (L.invert) v = 255 - v;
            r = g = b = v;
            break;
          }
          case Kind::Grey16: {
            const uint8_t* p = row + 2 * static_cast<size_t>(x);
            const int u = p[0] | p[1] << 8;  // host order
            const int v = L.is_signed ? static_cast<int16_t>(u) : u;
            r = g = b = v < 0 ? 0 : v > 255 ? 255 : v;
            break;
          }
          case Kind::Rgb: case Kind::YcbcrJpeg: {
            r = sample8(y, x, 0), g = sample8(y, x, 1), b = sample8(y, x, 2);
            if (L.premultiplied) {
              const int a = sample8(y, x, 3);
              auto un = [a](int v) { return a == 0 ? 0 : std::min(255, v * 255 / a); };
              r = un(r), g = un(g), b = un(b);
            }
            break;
          }
          case Kind::Cmyk: {
            const int nk = 255 - sample8(y, x, 3);
            r = cmyk_channel(sample8(y, x, 0), nk), g = cmyk_channel(sample8(y, x, 1), nk), b = cmyk_channel(sample8(y, x, 2), nk);
            break;
          }
          case Kind::YcbcrRgba: break;
        }
        o[0] = static_cast<uint8_t>(r), o[1] = static_cast<uint8_t>(g), o[2] = static_cast<uint8_t>(b);
      }
    }
  }
  // Image.open(path) maps an uncompressed image of one strip or tile whose raw mode is its mode
  // (8-bit L, P, RGBA and CMYK, I;16, I;16B) straight from the file, at the size Pillow gives the
  // image before loading: for Orientation 5-8 that size is already transposed, so the mapped
  // pixels are the file's in file order, read as rows of the image's height; then Pillow
  // transposes them.
  if (compression == COMPRESSION_NONE && orientation >= 5 && orientation <= 8) {
    const bool one_piece = TIFFIsTiled(tif.get()) ? TIFFNumberOfTiles(tif.get()) == 1 : TIFFNumberOfStrips(tif.get()) == 1;
    bool mapped = false;
    if (L.kind == Kind::Grey || L.kind == Kind::Palette)
      mapped = bits == 8 && spp == 1 && (raw_planes || (fill == 1 && (L.kind == Kind::Palette || photo == 1)));
    else if (L.kind == Kind::Rgb)
      mapped = bits == 8 && spp == 4 && fill == 1 && planar == PLANARCONFIG_CONTIG && !L.premultiplied &&
               (extras.empty() || extras[0] == 2 || extras[0] == 999);
    else if (L.kind == Kind::Cmyk)
      mapped = bits == 8 && spp == 4 && planar == PLANARCONFIG_CONTIG;
    else if (L.kind == Kind::Grey16)
      mapped = fill == 1 && !L.is_signed && (photo == 1 || !big_endian);
    if (mapped && one_piece) {
      uint32_t tile_width = w;
      if (TIFFIsTiled(tif.get())) TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tile_width);
      if (tile_width != w)
        fail_decode(name, "TIFF of one tile wider than the image with Orientation " + std::to_string(orientation) +
                              " (Pillow maps rows of the tile's width; lcam does not read it)");
      std::swap(img.width, img.height);
    }
  }
  return apply_orientation(std::move(img), orientation);
}

}  // namespace lcam
