// jpeg_decode.cpp — JPEG decoding with libjpeg-turbo's libjpeg API, set up the way Pillow 9
// decodes for Image.open(path).convert("RGB"), so that the pixels are identical: libjpeg's default
// integer DCT (JDCT_ISLOW) and fancy upsampling, its own guess of the stored colour space (JFIF /
// Adobe markers), RGB output for YCbCr/RGB/grey files (grey replicated, as convert("RGB") does),
// and CMYK/YCCK files read as CMYK, inverted (Pillow's "CMYK;I" Adobe convention) and turned into
// RGB with Pillow's own non-colour-managed arithmetic. A corrupt file, or data that ends before the
// last scanline (Pillow refuses truncated files by default), is an InputError naming the file;
// libjpeg's other warnings are ignored, as Pillow ignores them. Also decodes a window only
// (skipped rows, cropped block columns) with the same pixels inside the window.
// Deliberately omits: DCT-domain scaling (faster, but it changes pixels; Pillow only scales in
// draft mode, which torchvision never uses), ICC profiles, EXIF orientation, 12-bit and lossless
// JPEG (Pillow refuses them too), and decoding from a suspending (streaming) source.

#include <csetjmp>  // std::jmp_buf, setjmp, std::longjmp: libjpeg's error exit must not return
#include <cstdio>   // FILE and size_t, which jpeglib.h needs declared first; std::snprintf
#include <string>   // std::string

#include <jpeglib.h>  // jpeg_decompress_struct, the jpeg_* API, JCS_* colour spaces
#include <jerror.h>   // JWRN_JPEG_EOF (after jpeglib.h, which it needs)

#include "engine/common.h"  // InputError
#include "loaders/image.h"  // ImageU8, cmyk_to_rgb_channel, the declarations implemented here

namespace lcam {
namespace {


// libjpeg reports errors through error_exit, which must not return: it jumps back to the setjmp
// in run_decode. No C++ exception ever crosses libjpeg's C frames.
struct ErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg sees a jpeg_error_mgr*
  std::jmp_buf jump;
  bool all_rows_read;  // after the last scanline a missing end of data is harmless (as in Pillow)
  char message[JMSG_LENGTH_MAX + 64];
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  std::snprintf(err->message, sizeof err->message, "corrupt JPEG (%s)", text);
  std::longjmp(err->jump, 1);
}

// Warnings have level -1, trace messages 0 and above. Pillow feeds libjpeg from a suspending
// source and raises "image file is truncated" when the file ends before the image does; with an
// in-memory source libjpeg instead warns JWRN_JPEG_EOF and pads, so that warning is an error until
// every row has been read. Other warnings ("extraneous bytes before marker", ...) are ignored.
void on_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (cinfo->err->msg_code == JWRN_JPEG_EOF && !err->all_rows_read) {
    std::snprintf(err->message, sizeof err->message,
                  "truncated JPEG (the data ends before the image does)");
    std::longjmp(err->jump, 1);
  }
  ++cinfo->err->num_warnings;
}

void on_output_message(j_common_ptr) {}

// One CMYK row as libjpeg writes it -> RGB, as Pillow computes it: the "CMYK;I" unpacker inverts
// every channel, then Convert.c's cmyk2rgb (cmyk_to_rgb_channel) with nk = 255 - k. With
// c' = 255 - c and k' = 255 - k from the inversion, nk is libjpeg's K sample itself.
void cmyk_row_to_rgb(const JSAMPLE* in, uint8_t* out, JDIMENSION width) {
  for (JDIMENSION x = 0; x < width; ++x, in += 4, out += 3) {
    const int nk = in[3];
    out[0] = cmyk_to_rgb_channel(255 - in[0], nk);
    out[1] = cmyk_to_rgb_channel(255 - in[1], nk);
    out[2] = cmyk_to_rgb_channel(255 - in[2], nk);
  }
}

enum class Outcome { kOk, kLibjpegError, kTooLarge, kUnsupported };

// The part of the image to produce: columns [x0, x1), rows [y0, y1).
struct Window {
  int x0, x1, y0, y1;
};

// Called once the header is read with the image's size; narrows *w (already the whole image).
// It runs in run_decode's frame, not inside libjpeg, so it may throw.
using ChooseWindow = void (*)(void* ctx, int width, int height, Window* w);

// Rows are read this many at a time straight into the image.
constexpr int kRowsPerCall = 8;

// The libjpeg part: everything between setjmp and the last libjpeg call lives in this frame or in
// libjpeg's own pools, and every object here has a trivial destructor, so a longjmp back to the
// setjmp skips no destructor. `out` is owned by the caller (resized here before any libjpeg call
// that can fail; on an error it is left half filled). On success `out` holds rows [win->y0,
// win->y1) and columns [*out_x0, *out_x0 + out->width) of the full_w x full_h image.
Outcome run_decode(jpeg_decompress_struct* cinfo, ErrorManager* err, const uint8_t* data,
                   size_t size, ChooseWindow choose, void* choose_ctx, ImageU8* out, Window* win,
                   int* out_x0, int* full_w, int* full_h) {
  if (setjmp(err->jump)) return Outcome::kLibjpegError;
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  // Pillow maps 1, 3 and 4 components to L, RGB and CMYK and refuses the rest.
  const int nc = cinfo->num_components;
  if (nc != 1 && nc != 3 && nc != 4) {
    std::snprintf(err->message, sizeof err->message,
                  "unsupported JPEG with %d colour components", nc);
    return Outcome::kUnsupported;
  }
  if (static_cast<long long>(cinfo->image_width) * cinfo->image_height > kMaxImagePixels) {
    std::snprintf(err->message, sizeof err->message, "image too large (%ux%u pixels)",
                  cinfo->image_width, cinfo->image_height);
    return Outcome::kTooLarge;
  }
  // Pillow leaves dct_method, do_fancy_upsampling and do_block_smoothing at libjpeg's defaults
  // (JDCT_ISLOW, TRUE, TRUE) and keeps jpeg_color_space as libjpeg guessed it.
  cinfo->out_color_space = nc == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(cinfo);
  const JDIMENSION H = cinfo->output_height;
  *full_w = static_cast<int>(cinfo->output_width);
  *full_h = static_cast<int>(H);
  *win = Window{0, *full_w, 0, *full_h};
  if (choose) choose(choose_ctx, *full_w, *full_h, win);
  // Columns: libjpeg-turbo reconstructs whole iMCU columns covering the requested span. Fancy
  // upsampling of subsampled chroma reads one neighbouring chroma sample on each side and, at the
  // edge of the reconstructed span, replicates the edge instead, so the span is widened by one
  // iMCU on each side: the window's own columns then see the same neighbours as in a full decode.
  JDIMENSION xoff = 0, xlen = cinfo->output_width;
  if (win->x0 > 0 || win->x1 < *full_w) {
    const int margin = 8 * cinfo->max_h_samp_factor;
    const int a = win->x0 - margin < 0 ? 0 : win->x0 - margin;
    const int b = win->x1 + margin > *full_w ? *full_w : win->x1 + margin;
    xoff = static_cast<JDIMENSION>(a);
    xlen = static_cast<JDIMENSION>(b - a);
    if (xoff > 0 || xlen < cinfo->output_width) jpeg_crop_scanline(cinfo, &xoff, &xlen);
  }
  *out_x0 = static_cast<int>(xoff);
  const JDIMENSION W = cinfo->output_width;  // the reconstructed span after jpeg_crop_scanline
  const JDIMENSION first = static_cast<JDIMENSION>(win->y0), end = static_cast<JDIMENSION>(win->y1);
  const size_t row_bytes = static_cast<size_t>(W) * 3;
  out->width = static_cast<int>(W);
  out->height = static_cast<int>(end - first);
  out->rgb.resize(row_bytes * (end - first));
  // CMYK rows go through a scratch row (4 samples per pixel); rows read only to be dropped too.
  JSAMPARRAY scratch = (*cinfo->mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(cinfo),
                                                   JPOOL_IMAGE, W * (nc == 4 ? 4 : 3), 1);
  // Rows above the window skip the inverse DCT, upsampling and colour conversion; libjpeg-turbo
  // still entropy-decodes them and keeps the upsampler's context rows, so the rows that follow are
  // those of a full decode.
  if (first > 0) jpeg_skip_scanlines(cinfo, first);
  while (cinfo->output_scanline < end) {
    uint8_t* dst = out->rgb.data() + row_bytes * (cinfo->output_scanline - first);
    if (nc == 4) {
      if (jpeg_read_scanlines(cinfo, scratch, 1) != 1) break;
      cmyk_row_to_rgb(scratch[0], dst, W);
      continue;
    }
    JSAMPROW rows[kRowsPerCall];
    const JDIMENSION n = end - cinfo->output_scanline < kRowsPerCall
                             ? end - cinfo->output_scanline
                             : static_cast<JDIMENSION>(kRowsPerCall);
    for (JDIMENSION i = 0; i < n; ++i) rows[i] = dst + row_bytes * i;
    if (jpeg_read_scanlines(cinfo, rows, n) == 0) break;
  }
  if (cinfo->output_scanline < end) {  // only with a suspending source; never from memory
    std::snprintf(err->message, sizeof err->message, "corrupt JPEG (rows missing)");
    return Outcome::kLibjpegError;
  }
  // Rows below the window: the whole entropy-coded data must still be read, so that a file cut
  // short fails here as it fails in Pillow (skipping straight to the end would stop reading). Rows
  // are read up to a row-group boundary (a skip starting inside a row group is the case
  // libjpeg-turbo handles least well), the rest but the last skipped (entropy-decoded only), and
  // the last one read.
  const JDIMENSION group = static_cast<JDIMENSION>(cinfo->max_v_samp_factor);
  while (cinfo->output_scanline < H && cinfo->output_scanline % group != 0)
    jpeg_read_scanlines(cinfo, scratch, 1);
  if (cinfo->output_scanline + 1 < H) jpeg_skip_scanlines(cinfo, H - 1 - cinfo->output_scanline);
  while (cinfo->output_scanline < H) jpeg_read_scanlines(cinfo, scratch, 1);
  err->all_rows_read = true;
  jpeg_finish_decompress(cinfo);
  return Outcome::kOk;
}

void decode(const uint8_t* data, size_t size, const std::string& name, ChooseWindow choose,
            void* choose_ctx, ImageU8* img, Window* win, int* out_x0, int* full_w, int* full_h) {
  if (!is_jpeg(data, size)) throw InputError(name + ": not a JPEG file");
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  err.all_rows_read = false;
  err.message[0] = '\0';
  jpeg_create_decompress(&cinfo);
  Outcome r = Outcome::kOk;
  try {  // only `choose` or an allocation can throw; libjpeg's own errors come back as Outcome
    r = run_decode(&cinfo, &err, data, size, choose, choose_ctx, img, win, out_x0, full_w, full_h);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  jpeg_destroy_decompress(&cinfo);
  if (r != Outcome::kOk) throw InputError(name + ": " + err.message);
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

ImageU8 decode_jpeg_memory(const uint8_t* data, size_t size, const std::string& name) {
  ImageU8 img;
  Window win;
  int x0 = 0, w = 0, h = 0;
  decode(data, size, name, nullptr, nullptr, &img, &win, &x0, &w, &h);
  return img;
}

void decode_jpeg_window(const uint8_t* data, size_t size, const std::string& name,
                        const JpegWindowFn& choose, ImageU8* out, JpegWindow* window, int* out_x0,
                        int* full_width, int* full_height) {
  auto thunk = [](void* ctx, int w, int h, Window* win) {
    const JpegWindow r = (*static_cast<const JpegWindowFn*>(ctx))(w, h);
    // Clamp to the image and keep at least one pixel.
    const int x0 = r.x0 < 0 ? 0 : r.x0 > w - 1 ? w - 1 : r.x0;
    const int y0 = r.y0 < 0 ? 0 : r.y0 > h - 1 ? h - 1 : r.y0;
    const int x1 = r.x1 <= x0 ? x0 + 1 : r.x1 > w ? w : r.x1;
    const int y1 = r.y1 <= y0 ? y0 + 1 : r.y1 > h ? h : r.y1;
    *win = Window{x0, x1, y0, y1};
  };
  Window win;
  int x0 = 0, w = 0, h = 0;
  decode(data, size, name, thunk, const_cast<JpegWindowFn*>(&choose), out, &win, &x0, &w, &h);
  if (window) *window = JpegWindow{win.x0, win.x1, win.y0, win.y1};
  if (out_x0) *out_x0 = x0;
  if (full_width) *full_width = w;
  if (full_height) *full_height = h;
}

}  // namespace lcam
