// image.h — image decoding as Pillow's Image.open(path).convert("RGB") decodes (JPEG with
// libjpeg-turbo set up like Pillow, WebP with libwebp, TIFF with Pillow's own rules and libtiff, PNG
// with Pillow's rules and zlib, JPEG 2000 with Pillow's rules and OpenJPEG, AVIF with libavif
// and libavif 1.4's conversion, PNM, GIF, BMP, ICO, CUR, PCX, TGA and PSD with readers of lcam's
// own) and
// the torchvision
// eval transforms on 8-bit RGB images: Pillow-exact antialiased bilinear resize, Resize(int) /
// CenterCrop / crop / flip / ToTensor, a fused eval transform that computes only what the crop
// keeps, and PNG writing for visualisations.
// Deliberately omits: normalization (done on the device), other interpolation filters, EXIF
// orientation of JPEGs (neither Pillow's Image.open nor torchvision applies it; Pillow 13 applies
// a TIFF's, and so does lcam), colour management (ICC profiles are ignored, as Pillow's
// convert("RGB") ignores them), and formats Pillow reads that lcam does not (the rest of
// Pillow's plugins).
#pragma once
#include <atomic>      // std::atomic (SharedCores)
#include <cstddef>     // size_t
#include <cstdint>     // uint8_t
#include <functional>  // std::function (choosing the JPEG rows to decode)
#include <string>      // std::string
#include <vector>      // std::vector

namespace lcam {

// An 8-bit RGB image: HWC, 3 channels, row-major, rgb.size() == 3 * width * height.
struct ImageU8 {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// Reads a whole file. Throws lcam::InputError "PATH: reason" when it is missing, a directory or
// unreadable.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Decodes an image file into RGB as Pillow's Image.open(path).convert("RGB") does (the same
// bytes for JPEG, PNG, BMP, ICO, CUR, GIF, WebP, TIFF, TGA, PSD, JPEG 2000, PCX, DCX, AVIF and
// every PNM).
// The format is recognised by content, never by the file name. JPEG (bytes FF D8 FF) goes through
// libjpeg-turbo set up as Pillow sets it up (see decode_jpeg_memory); PBM/PGM/PPM through
// decode_pnm_memory; GIF (its first frame) through decode_gif_memory; PNG, BMP, ICO, CUR,
// WebP, TIFF, JPEG 2000, PCX, DCX, TGA, PSD and AVIF through decode_png/bmp/ico/cur/webp/tiff/
// jpeg2000/pcx/dcx/tga/psd/avif_memory (a PCX or CUR header Pillow gives up on goes to TGA, as
// Pillow's next try; an AVIF Pillow gives up on goes on to the formats after AVIF).
// Throws lcam::InputError with a one-line message "PATH: reason" when the file is missing or
// unreadable, is not an image, is truncated or corrupt (where Pillow refuses it), or has more
// pixels than Pillow's decompression-bomb limit.
ImageU8 decode_image(const std::string& path);
ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// Throws InputError "NAME: reason": every decoder's one-line refusal.
[[noreturn]] void fail_decode(const std::string& name, const std::string& reason);

// One channel of Pillow's CMYK -> RGB (Convert.c's cmyk2rgb): nk - MULDIV255(c, nk), where
// nk = 255 - k and MULDIV255 is a * b / 255 rounded in integers; never outside [0, 255].
inline uint8_t cmyk_to_rgb_channel(int c, int nk) {
  const int t = c * nk + 128;
  return static_cast<uint8_t>(nk - (((t >> 8) + t) >> 8));
}

// Pillow's convert("RGB") of a LAB image (TIFF and PSD): `pixels` LAB pixels of four bytes (L,
// a + 128, b + 128, unused) into RGB triples, through littleCMS with Pillow's transform.
void lab_to_rgb(const uint8_t* labx, size_t pixels, uint8_t* rgb);

// Little-endian 16- and 32-bit fields of the BMP, GIF, ICO and TGA headers; big-endian ones of
// PNG's and PSD's.
inline uint32_t le16(const uint8_t* p) { return p[0] | p[1] << 8; }
inline uint32_t le32(const uint8_t* p) { return le16(p) | le16(p + 2) << 16; }
inline uint32_t be16(const uint8_t* p) { return uint32_t{p[0]} << 8 | p[1]; }
inline uint32_t be32(const uint8_t* p) { return be16(p) << 16 | be16(p + 2); }

// The threads a decoder with its own thread pool (OpenJPEG, libavif) may use: the cores divided
// by the decodes of its kind running at the time, counted in `in_flight` (one per kind) while the
// object lives; one image alone gets every core, the batch loader's workers side by side one
// each.
class SharedCores {
 public:
  explicit SharedCores(std::atomic<int>& in_flight);
  ~SharedCores();
  SharedCores(const SharedCores&) = delete;
  SharedCores& operator=(const SharedCores&) = delete;
  int threads() const { return threads_; }

 private:
  std::atomic<int>& in_flight_;
  int threads_;
};

// Pillow's Image.MAX_IMAGE_PIXELS is 89478485 and it refuses images of more than twice that; so
// does every decoder of lcam.
constexpr long long kMaxImagePixels = 2LL * 89478485LL;

// True when the data starts with the JPEG signature FF D8 FF (Pillow's test).
bool is_jpeg(const uint8_t* data, size_t size);

// True when the data starts with a Netpbm magic P1-P6 followed by whitespace (or nothing), as
// Pillow's PPM plugin reads its magic, or with one of Pillow's own variants (Pf, P0CMYK, Py*),
// which decode_pnm_memory refuses by name.
bool is_pnm(const uint8_t* data, size_t size);

// PBM/PGM/PPM, plain and raw, any maxval, bit-exact with Pillow 13's PpmImagePlugin followed by
// convert("RGB") (loaders/pnm.cpp lists its rules): bitmaps as 0/255, maxval other than 255
// rescaled with Python's rounding, 16-bit grey clipped to 255 (Pillow's mode I). Errors
// (InputError "NAME: reason"): a damaged header or data, too few samples, Pillow's own variants
// (Pf, P0CMYK, Py*), a size of 0, more pixels than Pillow's decompression-bomb limit.
ImageU8 decode_pnm_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with GIF87a or GIF89a, Pillow's test.
bool is_gif(const uint8_t* data, size_t size);

// The first frame of a GIF, bit-exact with Pillow 13's GifImagePlugin and LZW decoder followed by
// convert("RGB") (loaders/gif.cpp lists its rules): transparent pixels in their palette colour,
// the screen grown to hold the frame and filled outside it as Pillow fills it, indices as grey
// levels without a colour table. Errors (InputError "NAME: reason"): no image, a damaged header or
// LZW stream, data ending before the frame's last pixel, a frame of no pixels, more pixels than
// Pillow's decompression-bomb limit.
ImageU8 decode_gif_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with "BM", Pillow's test.
bool is_bmp(const uint8_t* data, size_t size);

// A Windows bitmap, bit-exact with Pillow 13's BmpImagePlugin followed by convert("RGB")
// (loaders/bmp.cpp lists its rules): every header Pillow reads, palette depths raw and RLE,
// 16-bit channels scaled as Pillow scales them, the bitfield layouts Pillow knows, rows top-down
// or bottom-up. Errors (InputError "NAME: reason"): what Pillow refuses (other headers, depths,
// compressions and bitfields, palettes over 256 colours), truncated data, a size of 0, more
// pixels than Pillow's decompression-bomb limit.
ImageU8 decode_bmp_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with PNG's signature.
bool is_png(const uint8_t* data, size_t size);

// A PNG (its first frame), bit-exact with Pillow 13's PngImagePlugin followed by convert("RGB")
// (loaders/png.cpp lists its rules): every bit depth and colour type, Adam7, palettes shorter
// than the indices (black past them), 16-bit samples by their high byte but grey clipped to 255,
// and damaged files read or refused as Pillow reads or refuses them (CRCs before the image data,
// zlib errors, data ending before the last row, chunks cut short). Errors (InputError "NAME:
// reason"): what Pillow refuses, a size of 0, more pixels than Pillow's decompression-bomb limit.
ImageU8 decode_png_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with "8BPS", Pillow's test for a Photoshop file.
bool is_psd(const uint8_t* data, size_t size);

// A Photoshop file's merged image, bit-exact with Pillow 13's PsdImagePlugin followed by
// convert("RGB") (loaders/psd.cpp lists its rules): 1-bit bitmaps, 8-bit grey, duotone,
// multichannel, indexed, RGB (with alpha), CMYK and LAB, raw or PackBits. Errors (InputError
// "NAME: reason"): what Pillow refuses (16- and 32-bit data, too few channels, other
// compressions), truncated data, a size of 0, more pixels than Pillow's decompression-bomb
// limit.
ImageU8 decode_psd_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when bytes 4-7 are "ftyp" and the major brand after them avif, avis, mif1 or msf1,
// Pillow's test for an AVIF file.
bool is_avif(const uint8_t* data, size_t size);

// An AVIF image's first frame as Pillow 13's AvifImagePlugin reads it, then convert("RGB")
// (loaders/avif.cpp lists its rules), through libavif loaded at the first AVIF file. Returns
// false, with the reason in `declined`, where Pillow gives up on the file in a way Image.open
// catches (a damaged box structure, an Exif block that is not TIFF), so that the formats after
// AVIF can try it. Errors (InputError "NAME: reason"): libavif missing, what libavif or Pillow
// refuses otherwise, more pixels than Pillow's decompression-bomb limit.
bool decode_avif_memory(const uint8_t* data, size_t size, const std::string& name_for_errors,
                        ImageU8& out, std::string& declined);

// Whether AVIF files can be decoded here: libavif loads (why not, into `why`, when it does not).
bool avif_available(std::string* why = nullptr);

// True when the data starts with 00 00 01 00, Pillow's test for a Windows icon.
bool is_ico(const uint8_t* data, size_t size);

// A Windows icon as Pillow 13's IcoImagePlugin reads it, then convert("RGB"): the largest image
// (of equal areas, the least colour depth first), a PNG read by the PNG rules (the file from its
// offset) or a bitmap by the BMP rules at half its height, with the checks Pillow's alpha and AND
// mask reading makes (their data must lie in the file). Errors (InputError "NAME: reason"): those
// of the BMP and PNG rules, and the icon's own (a short directory, no entries).
ImageU8 decode_ico_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts 00 00 02 00, Pillow's test for a Windows cursor.
bool is_cur(const uint8_t* data, size_t size);

// A Windows cursor as Pillow 13's CurImagePlugin reads it, then convert("RGB") (loaders/bmp.cpp
// lists its rules): the first entry, or a later one both wider and taller; its bitmap by the BMP
// rules at half the height, or, black and white or grey, the whole of it with its top half
// masking the bottom one. Where Pillow gives up on the header in a way Image.open catches, TGA
// is tried, as Pillow tries it. Errors (InputError "NAME: reason"): those of the BMP rules and
// the cursor's own.
ImageU8 decode_cur_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with RIFF....WEBP, Pillow's test.
bool is_webp(const uint8_t* data, size_t size);

// A WebP image (its first frame), as Pillow 13 decodes it: through libwebp's animation decoder,
// RGBA, then RGB. Errors (InputError "NAME: reason"): what libwebp cannot decode (damaged or
// truncated data), a canvas over Pillow's decompression-bomb limit.
ImageU8 decode_webp_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts as a raw JPEG 2000 codestream (SOC then SIZ: FF 4F FF 51) or with
// the JP2 signature box, Pillow's two prefixes.
bool is_jpeg2000(const uint8_t* data, size_t size);

// A JPEG 2000 image (JP2 file or J2K codestream) as Pillow 13 decodes it, through OpenJPEG called
// as Pillow calls it, then convert("RGB") (loaders/jpeg2000.cpp lists its rules). Errors
// (InputError "NAME: reason"): what Pillow refuses (a damaged header or box, data OpenJPEG cannot
// decode, palette and CMYK images, which Pillow's decoder cannot unpack), more pixels than
// Pillow's decompression-bomb limit.
ImageU8 decode_jpeg2000_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with one of Pillow's six TIFF prefixes (II*\0, MM\0*, their
// swapped forms, and BigTIFF's II+\0 / MM\0+).
bool is_tiff(const uint8_t* data, size_t size);

// A TIFF image (its first page), as Pillow 13 decodes it then converts it to RGB (loaders/tiff.cpp
// lists its rules): Pillow's directory parser, pixel modes, raw reading and conversions, libtiff
// for compressed data as Pillow calls it, the Orientation tag applied. Errors (InputError "NAME:
// reason"): what Pillow refuses (an unknown pixel mode, a damaged directory, data ending early,
// data libtiff cannot decode), modes lcam does not read (each named), more pixels than Pillow's
// decompression-bomb limit.
ImageU8 decode_tiff_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts as Pillow's PCX test asks: byte 10, then version 0, 2, 3 or 5.
bool is_pcx(const uint8_t* data, size_t size);

// True when Pillow's PCX plugin gives up on the header in a way that lets Image.open try its
// other formats (fewer than 68 bytes, or an empty box): TGA may then read the file.
bool pcx_header_rejected(const uint8_t* data, size_t size);

// A PCX image as Pillow 13 decodes it, then convert("RGB") (loaders/pcx.cpp lists its rules):
// black and white, 16-colour planes, 8-bit grey or palette, 24-bit RGB planes; RLE as Pillow's
// decoder reads it. Errors (InputError "NAME: reason"): what Pillow refuses (other layouts, a
// run past a line's end, data ending early), more pixels than Pillow's decompression-bomb limit.
ImageU8 decode_pcx_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when the data starts with DCX's magic number (0x3ADE68B1, little-endian).
bool is_dcx(const uint8_t* data, size_t size);

// A DCX (multi-page PCX) as Pillow 13's DcxImagePlugin opens it: its first frame, a PCX at the
// first offset of the directory, by the PCX rules (an 8-bit palette still looked for at the
// end of the whole file). Errors (InputError "NAME: reason"): a directory cut short or empty,
// and the PCX rules' own.
ImageU8 decode_dcx_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// True when an 18-byte TGA header passes Pillow's checks (a colour map type of 0 or 1, a size
// above 0, a depth of 1, 8, 16, 24 or 32). TGA has no signature: Pillow tries it on files no
// other format claims, and lcam after the formats with a signature (PNG and PSD never pass).
bool is_tga(const uint8_t* data, size_t size);

// A Targa image, bit-exact with Pillow 13's TgaImagePlugin followed by convert("RGB")
// (loaders/tga.cpp lists its rules): raw and RLE, colour maps with their first index, rows either
// way up and mirrored, 1-bit grey. Errors (InputError "NAME: reason"): what Pillow refuses,
// truncated data, more pixels than Pillow's decompression-bomb limit.
ImageU8 decode_tga_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// JPEG only, bit-exact with Pillow 9 on the same libjpeg-turbo: default integer DCT and fancy
// upsampling, libjpeg's colour-space guess, grey replicated to RGB, Adobe CMYK/YCCK converted with
// Pillow's inverted-CMYK -> RGB arithmetic. Errors (InputError "NAME: reason"): not a JPEG, corrupt
// data, data ending before the last row (Pillow's default refuses truncated files), other than 1,
// 3 or 4 components, more pixels than Pillow's decompression-bomb limit.
ImageU8 decode_jpeg_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// A rectangle of a JPEG: columns [x0, x1), rows [y0, y1).
struct JpegWindow {
  int x0 = 0, x1 = 0, y0 = 0, y1 = 0;
};
// Called once the header is read, with the image's size; returns the window to decode (clamped to
// the image, at least one pixel).
using JpegWindowFn = std::function<JpegWindow(int width, int height)>;

// decode_jpeg_memory for a window only, for speed: rows outside it skip the inverse DCT,
// upsampling and colour conversion (libjpeg-turbo's jpeg_skip_scanlines), and only the block
// columns around it are reconstructed (jpeg_crop_scanline). Every row is still entropy-decoded and
// the data read to its end, so corrupt and truncated files fail exactly as with the full decode.
// On return *out (its buffer reused) holds rows [window.y0, window.y1) and the columns
// [*out_x0, *out_x0 + out->width), which contain [window.x0, window.x1) plus some margin;
// *window is the clamped window. Inside the window the pixels are those of the full decode; in the
// margin they may not be (fancy upsampling replicates the edge of the reconstructed span), so use
// only the window. *full_width / *full_height receive the image's size. Pointers may be null
// except `out`.
void decode_jpeg_window(const uint8_t* data, size_t size, const std::string& name_for_errors,
                        const JpegWindowFn& choose, ImageU8* out, JpegWindow* window, int* out_x0,
                        int* full_width, int* full_height);

// PIL Image.resize((out_w, out_h), Image.BILINEAR) on an RGB image, bit-exact with Pillow (the
// version set_pillow_resize names): antialiased (the filter support widens when downscaling),
// separable, two passes through a uint8 intermediate, Pillow's 22-bit fixed-point coefficients
// and rounding. A pass whose size does not change is skipped, as Pillow does. Sizes must be >= 1.
ImageU8 resize_bilinear_pil(const ImageU8& img, int out_w, int out_h);

// Which Pillow's resize is reproduced. Pillow 12 and every earlier version (the paper's, Debian
// 12's 9.4) run the horizontal pass first; Pillow 13 runs the vertical pass first when the
// height shrinks by more than twice as many pixels as the width ((in_h - out_h) > 0 and
// (in_h - out_h) > 2 (in_w - out_w): with Resize(int), images more than twice as tall as wide).
// The intermediate is rounded to uint8, so the order shows in single pixel values. Process-wide
// (`--pillow`), default k12; returns the previous setting.
enum class PillowResize { k12 = 12, k13 = 13 };
PillowResize set_pillow_resize(PillowResize version);

// Whether the resampling may use its AVX2 kernels (x86-64 CPUs that have AVX2; on by default).
// The results are the same bytes either way; tests switch them off to cover the portable loops.
// Returns the previous setting (false where there are no such kernels).
bool set_resize_simd(bool enabled);

// The rectangle [left, left + w) x [top, top + h) of resize_bilinear_pil(img, out_w, out_h), the
// same bytes, computing only what it needs (e.g. Resize followed by a crop). The rectangle must lie
// inside the out_w x out_h result.
ImageU8 resize_bilinear_pil_region(const ImageU8& img, int out_w, int out_h, int left, int top,
                                   int w, int h);

// The size torchvision.transforms.Resize(size) with an int size (torchvision 0.14 on a PIL image)
// gives a w x h image: the shorter side becomes `size`, the longer one int(size * long / short),
// truncated.
void shorter_side_size(int w, int h, int size, int* out_w, int* out_h);

// torchvision.transforms.Resize(size): resize_bilinear_pil to shorter_side_size.
ImageU8 resize_shorter_side(const ImageU8& img, int size);

// torchvision.transforms.CenterCrop(size): top = round((h - size) / 2) with round-half-to-even,
// same for left; a side shorter than `size` is first zero-padded by (size - side) // 2 before and
// the rest after, as torchvision does.
ImageU8 center_crop(const ImageU8& img, int size);

// PIL Image.crop((left, top, left + w, top + h)): pixels outside the image are zero.
ImageU8 crop(const ImageU8& img, int top, int left, int h, int w);

// Mirror left-right.
ImageU8 hflip(const ImageU8& img);

// ToTensor: CHW float32 in [0,1] (v / 255.f, the value torch computes), out has 3*h*w floats.
void to_chw_float(const ImageU8& img, float* out);

// Seconds spent in each stage of eval_transform_memory, accumulated (for benchmarks).
struct EvalTimings {
  double decode = 0, resize = 0, to_float = 0;
};

// The eval transform of an encoded image: decode (as decode_image_memory), Resize(resize),
// CenterCrop(crop), ToTensor into out[3*crop*crop], bit-exact with Pillow 9 + torchvision 0.14.
// Only what the crop keeps is computed: JPEGs are decoded through decode_jpeg_window over the
// input pixels that the kept part of the resize reads, and the resize computes the kept part only;
// the values are those of the full pipeline. Normalization by the ImageNet mean/std is left to the caller
// (done on the device). Errors as decode_image_memory.
void eval_transform_memory(const uint8_t* data, size_t size, const std::string& name_for_errors,
                           float* out, int resize = 256, int crop = 224,
                           EvalTimings* timings = nullptr);

// read_file_bytes + eval_transform_memory.
void load_eval_image(const std::string& path, float* out, int resize = 256, int crop = 224);

// Writes an 8-bit RGB PNG atomically (PATH.tmp, then rename). Throws InputError on failure.
void write_png(const std::string& path, const ImageU8& img);

}  // namespace lcam
