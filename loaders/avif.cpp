// avif.cpp — AVIF images decoded as Pillow 13's AvifImagePlugin and _avif.c decode them, then
// convert("RGB"): the container parsed and the AV1 data decoded by libavif, the library Pillow
// calls, set up the same way; the conversion to RGB is libavif 1.4's (loaders/yuv.cpp), which
// Pillow's wheels carry, not the one of the libavif found here. Pillow's rules, mirrored here:
// - recognition: "ftyp" at byte 4 and a major brand avif, avis, mif1 or msf1;
// - opening: libavif's parse with clean-aperture validation and the pixi requirement turned off
//   and the codec chosen by libavif; a parse failure Pillow reports as a SyntaxError (a bad ftyp,
//   a damaged or truncated box structure, no content) lets the formats after AVIF in Pillow's
//   order try the file, any other refuses it. Two checks of libavif >= 1.0's parse that older
//   libavif lacks are made here: an nclx colour property's reserved bits must be 0 (else a
//   damaged box structure), and an Exif item's exif_tiff_header_offset must give the first TIFF
//   header of its payload (else an invalid Exif payload, which refuses the file);
// - the Exif block, which Pillow reads whenever there is one: up to two "Exif\0\0" prefixes
//   dropped, then one of Pillow's TIFF heads (II*\0, MM\0*, MM*\0, II\0*, MM\0+) with room for
//   its IFD offset, or else the next formats try the file (Pillow's SyntaxError or struct.error,
//   which Image.open catches; II+\0, Pillow's BigTIFF, has no room);
// - decoding: the first frame (of an image sequence too), at 8 bits per sample: RGBA when the
//   decoder reports alpha (which convert("RGB") drops, premultiplied colour undone first), grey
//   for 4:0:0, RGB otherwise; irot, imir and clap are not applied, as Pillow applies none;
// - the mode (RGBA with alpha, L for 4:0:0, else RGB) and size are the parse's, as Pillow's
//   open takes them; where damaged AV1 data decodes to another layout than the properties say,
//   that mode's rows are read from the decoded frame's bytes, and too few bytes refuse the file
//   (Pillow's "image file is truncated");
// - more pixels than Pillow's decompression-bomb limit refuse the file.
// libavif is loaded when the first AVIF file is met (dlopen of the soname the build found), so
// that lcam and its bundle do not carry libavif's AV1 codec libraries; without it, an AVIF file
// is refused with a line that says what to install.
// Known to differ, on damaged files: where libavif 0.11 (Debian 12) and 1.4 (Pillow's wheels)
// parse a damaged box structure differently, and where dav1d 1.0 and 1.5 decode damaged AV1 data
// differently (1.5 refuses more); where irot/imir and an Exif block's own Orientation differ,
// Pillow rewrites the block (Exif.tobytes), which can fail on a damaged directory, and lcam does
// not model that. The AV1 decoder may print its own diagnostics on stderr for damaged data, as
// it does under Pillow.
#include <algorithm>  // std::search
#include <atomic>     // std::atomic (decodes in flight)
#include <cstddef>    // size_t
#include <cstdint>    // uint8_t, uint32_t, uint64_t
#include <cstring>    // std::memcmp, std::memcpy
#include <mutex>      // std::once_flag
#include <string>     // std::string
#include <vector>     // std::vector

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, be32, the declarations implemented here
#include "loaders/yuv.h"    // yuv_to_rgb: libavif 1.4's conversion, as Pillow gets it

#if LCAM_HAVE_AVIF
#include <dlfcn.h>        // dlopen, dlsym, dlerror
#include <avif/avif.h>    // the structures and functions of the libavif the build found
#endif

namespace lcam {

bool is_avif(const uint8_t* d, size_t n) {
  if (n < 12 || std::memcmp(d + 4, "ftyp", 4) != 0) return false;
  const uint8_t* brand = d + 8;
  return std::memcmp(brand, "avif", 4) == 0 || std::memcmp(brand, "avis", 4) == 0 ||
         std::memcmp(brand, "mif1", 4) == 0 || std::memcmp(brand, "msf1", 4) == 0;
}

namespace {

// Pillow 13's Image.Exif.load on an AVIF's Exif block: true when it raises an exception
// Image.open catches (SyntaxError for a head that is not one of Pillow's TIFF prefixes,
// struct.error for a head too short for its IFD offset, BigTIFF's "II+\0" included). Up to two
// "Exif\0\0" prefixes are dropped first; nothing left is no Exif. The directory itself cannot
// make Pillow raise: its short reads end it with a warning.
bool exif_rejected(const uint8_t* d, size_t n) {
  for (int k = 0; k < 2 && n >= 6 && std::memcmp(d, "Exif\0\0", 6) == 0; ++k) {
    d += 6;
    n -= 6;
  }
  if (n == 0) return false;
  static const char* const kPrefixes[] = {"MM\x00\x2a", "II\x2a\x00", "MM\x2a\x00",
                                          "II\x00\x2a", "MM\x00\x2b", "II\x2b\x00"};
  bool accepted = false;
  for (const char* p : kPrefixes) accepted = accepted || (n >= 4 && std::memcmp(d, p, 4) == 0);
  return !accepted || d[2] == 0x2b || n < 8;
}

}  // namespace

#if LCAM_HAVE_AVIF

namespace {

// libavif's entry points, looked up once in the library loaded at run time.
struct Avif {
  decltype(&avifVersion) version = nullptr;
  decltype(&avifResultToString) result_to_string = nullptr;
  decltype(&avifDecoderCreate) decoder_create = nullptr;
  decltype(&avifDecoderDestroy) decoder_destroy = nullptr;
  decltype(&avifDecoderSetIOMemory) set_io_memory = nullptr;
  decltype(&avifDecoderParse) parse = nullptr;
  decltype(&avifDecoderNthImage) nth_image = nullptr;
  std::string error;  // why libavif could not be used, when it could not
};

template <typename F>
bool bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

const Avif& avif() {
  static Avif a;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen(LCAM_AVIF_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      a.error = std::string("AVIF needs libavif (" LCAM_AVIF_SONAME ", Debian's libavif") +
                LCAM_AVIF_PACKAGE_SUFFIX + " package), which could not be loaded: " +
                (why ? why : "unknown reason");
      return;
    }
    const bool ok = bind(lib, "avifVersion", a.version) &&
                    bind(lib, "avifResultToString", a.result_to_string) &&
                    bind(lib, "avifDecoderCreate", a.decoder_create) &&
                    bind(lib, "avifDecoderDestroy", a.decoder_destroy) &&
                    bind(lib, "avifDecoderSetIOMemory", a.set_io_memory) &&
                    bind(lib, "avifDecoderParse", a.parse) &&
                    bind(lib, "avifDecoderNthImage", a.nth_image);
    if (!ok) {
      a.error = "AVIF: " LCAM_AVIF_SONAME " lacks a libavif function lcam calls";
      a.version = nullptr;
      return;
    }
    // The structures were compiled from this libavif's header: its major and minor must match.
    const std::string want = std::to_string(AVIF_VERSION_MAJOR) + "." +
                             std::to_string(AVIF_VERSION_MINOR) + ".";
    if (std::string(a.version()).rfind(want, 0) != 0) {
      a.error = std::string("AVIF: " LCAM_AVIF_SONAME " is libavif ") + a.version() +
                ", lcam was built for " + want + "x";
      a.version = nullptr;
    }
  });
  return a;
}

struct Decoder {
  const Avif& lib;
  avifDecoder* d;
  ~Decoder() { lib.decoder_destroy(d); }
};

// libavif >= 1.0's parse: an Exif item's exif_tiff_header_offset (the 4 bytes before the
// payload, which older libavif drops unchecked) must give the first TIFF header in the payload.
bool exif_offset_valid(const uint8_t* file, size_t size, const avifRWData& exif) {
  const uint8_t* at = std::search(file, file + size, exif.data, exif.data + exif.size);
  if (at == file + size || at - file < 4) return true;  // not found as one extent: unchecked
  const uint32_t declared = be32(at - 4);
  for (size_t i = 0; i + 4 < exif.size; ++i) {  // libavif's loop: a header with nothing after is not one
    if (std::memcmp(exif.data + i, "MM\x00\x2a", 4) == 0 ||
        std::memcmp(exif.data + i, "II\x2a\x00", 4) == 0) {
      return declared == i;
    }
  }
  return false;
}

// A box of the ISO base media file format within [p, end): its type, its body, and where the
// next one starts; false when its header does not fit.
struct Box {
  char type[4];
  const uint8_t* body;
  const uint8_t* end;
};
bool next_box(const uint8_t*& p, const uint8_t* end, Box& box) {
  if (end - p < 8) return false;
  uint64_t size = be32(p), header = 8;
  if (size == 1) {
    if (end - p < 16) return false;
    size = uint64_t{be32(p + 8)} << 32 | be32(p + 12);
    header = 16;
  } else if (size == 0) {
    size = static_cast<uint64_t>(end - p);
  }
  if (size < header || size > static_cast<uint64_t>(end - p)) return false;
  std::memcpy(box.type, p + 4, 4);
  box.body = p + header;
  box.end = p + size;
  p = box.end;
  return true;
}
const uint8_t* find_box(const uint8_t* p, const uint8_t* end, const char* type, Box& box) {
  while (next_box(p, end, box)) {
    if (std::memcmp(box.type, type, 4) == 0) return box.body;
  }
  return nullptr;
}

// libavif >= 1.0's parse of an nclx colour box in the image properties: the 7 bits after
// full_range_flag are reserved and must be 0 (older libavif ignores them).
bool nclx_reserved_bits_set(const uint8_t* data, size_t size) {
  Box meta, iprp, ipco, prop;
  if (!find_box(data, data + size, "meta", meta) || meta.end - meta.body < 4) return false;
  if (!find_box(meta.body + 4, meta.end, "iprp", iprp) || !find_box(iprp.body, iprp.end, "ipco", ipco)) return false;
  for (const uint8_t* p = ipco.body; next_box(p, ipco.end, prop);) {
    if (std::memcmp(prop.type, "colr", 4) == 0 && prop.end - prop.body >= 11 &&
        std::memcmp(prop.body, "nclx", 4) == 0 && (prop.body[10] & 0x7f) != 0) {
      return true;
    }
  }
  return false;
}

bool is_syntax_error(avifResult r) {
  return r == AVIF_RESULT_INVALID_FTYP || r == AVIF_RESULT_BMFF_PARSE_FAILED ||
         r == AVIF_RESULT_TRUNCATED_DATA || r == AVIF_RESULT_NO_CONTENT;
}

}  // namespace

bool decode_avif_memory(const uint8_t* data, size_t size, const std::string& name, ImageU8& out,
                        std::string& declined) {
  const Avif& lib = avif();
  if (!lib.version) fail_decode(name, lib.error);
  // Pillow gives libavif all the CPUs (the pixels are the same for any count); the loader's
  // workers share them here.
  static std::atomic<int> in_flight{0};
  const SharedCores cores(in_flight);
  Decoder dec{lib, lib.decoder_create()};
  if (!dec.d) fail_decode(name, "AVIF: cannot allocate a decoder");
  dec.d->maxThreads = cores.threads();
  dec.d->strictFlags &= ~AVIF_STRICT_CLAP_VALID;
  dec.d->strictFlags &= ~AVIF_STRICT_PIXI_REQUIRED;
  dec.d->codecChoice = AVIF_CODEC_CHOICE_AUTO;
  avifResult r = lib.set_io_memory(dec.d, data, size);
  if (r == AVIF_RESULT_OK) r = lib.parse(dec.d);
  if (r == AVIF_RESULT_OK && nclx_reserved_bits_set(data, size)) r = AVIF_RESULT_BMFF_PARSE_FAILED;
  if (r != AVIF_RESULT_OK) {
    if (is_syntax_error(r)) {
      declined = std::string("AVIF: failed to decode image: ") + lib.result_to_string(r);
      return false;
    }
    fail_decode(name, std::string("AVIF: failed to decode image: ") + lib.result_to_string(r));
  }
  const avifImage* im = dec.d->image;
  if (im->exif.size && !exif_offset_valid(data, size, im->exif)) {
    fail_decode(name, "AVIF: the Exif item's TIFF header offset is wrong (invalid Exif payload)");
  }
  // Pillow reads the Exif block (to put irot/imir's orientation into it) whenever there is one.
  if (exif_rejected(im->exif.data, im->exif.size)) {
    declined = "AVIF: its Exif block is not a TIFF structure (Pillow gives up on the file)";
    return false;
  }
  const uint64_t w = im->width, h = im->height;
  if (w * h > static_cast<uint64_t>(kMaxImagePixels)) {
    fail_decode(name, "AVIF: " + std::to_string(w) + "x" + std::to_string(h) +
                          " is more pixels than the decompression-bomb limit");
  }
  // Pillow's open takes the mode (RGBA with alpha, L for 4:0:0, else RGB) and the size from the
  // parse; its load then reads that mode's rows from the bytes of the decoded frame.
  const int open_bpp = dec.d->alphaPresent ? 4 : im->yuvFormat == AVIF_PIXEL_FORMAT_YUV400 ? 1 : 3;
  r = lib.nth_image(dec.d, 0);
  if (r != AVIF_RESULT_OK) {
    fail_decode(name, std::string("AVIF: failed to decode frame 0: ") + lib.result_to_string(r));
  }
  im = dec.d->image;
  // Pillow asks libavif for RGBA when the decoder reports alpha, GRAY for 4:0:0, else RGB; the
  // conversion is libavif 1.4's (loaders/yuv.cpp), not the one of the libavif loaded here.
  YuvPicture p;
  p.width = static_cast<int>(im->width);
  p.height = static_cast<int>(im->height);
  p.depth = static_cast<int>(im->depth);
  switch (im->yuvFormat) {
    case AVIF_PIXEL_FORMAT_YUV444: p.format = YuvPicture::k444; break;
    case AVIF_PIXEL_FORMAT_YUV422: p.format = YuvPicture::k422; break;
    case AVIF_PIXEL_FORMAT_YUV420: p.format = YuvPicture::k420; break;
    case AVIF_PIXEL_FORMAT_YUV400: p.format = YuvPicture::k400; break;
    default: fail_decode(name, "AVIF: conversion from YUV failed: no YUV format");
  }
  p.full_range = im->yuvRange == AVIF_RANGE_FULL;
  p.matrix = im->matrixCoefficients;
  p.primaries = im->colorPrimaries;
  const int sample_bytes = p.depth > 8 ? 2 : 1;
  const int planes = p.format == YuvPicture::k400 ? 1 : 3;
  for (int i = 0; i < planes; ++i) {
    if (!im->yuvPlanes[i]) fail_decode(name, "AVIF: conversion from YUV failed: a plane is missing");
    p.planes[i] = im->yuvPlanes[i];
    p.strides[i] = im->yuvRowBytes[i] / sample_bytes;
  }
  if (dec.d->alphaPresent && im->alphaPlane) {
    p.planes[3] = im->alphaPlane;
    p.strides[3] = im->alphaRowBytes / sample_bytes;
    p.alpha_premultiplied = im->alphaPremultiplied;
  }
  if (p.depth != 8 && p.depth != 10 && p.depth != 12) {
    fail_decode(name, "AVIF: conversion from YUV failed: " + std::to_string(p.depth) + "-bit samples");
  }
  std::vector<uint8_t> alpha;
  if (const std::string why = yuv_to_rgb(p, out, &alpha); !why.empty()) {
    fail_decode(name, "AVIF: conversion from YUV failed: " + why);
  }
  const int frame_bpp = p.planes[3] ? 4 : p.format == YuvPicture::k400 ? 1 : 3;
  if (frame_bpp != open_bpp || p.width != static_cast<int>(w) || p.height != static_cast<int>(h)) {
    // A damaged file whose AV1 data disagrees with its properties: the frame's bytes (RGB, RGBA
    // or grey, row after row) read as the image Pillow opened.
    const size_t pixels = static_cast<size_t>(p.width) * p.height, need = w * h * open_bpp;
    if (pixels * frame_bpp < need) {
      fail_decode(name, "AVIF: image file is truncated (the decoded frame is smaller than the image the file "
                        "describes)");
    }
    auto frame_byte = [&](size_t b) {  // byte b of the frame as libavif hands it to Pillow
      const size_t px = b / frame_bpp, c = b % frame_bpp;
      return frame_bpp == 1 ? out.rgb[px * 3] : c < 3 ? out.rgb[px * 3 + c] : alpha[px];
    };
    ImageU8 as_opened{static_cast<int>(w), static_cast<int>(h), std::vector<uint8_t>(w * h * 3)};
    for (size_t k = 0; k < w * h; ++k) {
      for (size_t c = 0; c < 3; ++c) as_opened.rgb[k * 3 + c] = frame_byte(k * open_bpp + (open_bpp == 1 ? 0 : c));
    }
    out = std::move(as_opened);
  }
  return true;
}

bool avif_available(std::string* why) {
  const Avif& lib = avif();
  if (!lib.version && why) *why = lib.error;
  return lib.version != nullptr;
}

#else  // !LCAM_HAVE_AVIF

bool avif_available(std::string* why) {
  if (why) *why = "this lcam was built without libavif's header (Debian's libavif-dev)";
  return false;
}

bool decode_avif_memory(const uint8_t*, size_t, const std::string& name, ImageU8&, std::string&) {
  fail_decode(name, "AVIF: this lcam was built without libavif's header (Debian's libavif-dev)");
}

#endif

}  // namespace lcam
