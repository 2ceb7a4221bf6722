// webp.cpp — WebP images decoded as Pillow 13's WebPImagePlugin decodes them, then
// convert("RGB"): through libwebp's animation decoder (WebPAnimDecoder, RGBA, not
// premultiplied), still images and animations alike, keeping the first frame on its canvas.
// Pillow checks the canvas against its decompression-bomb limit before decoding; so does lcam,
// from the header (WebPGetFeatures), before libwebp allocates the canvas.
// Deliberately omits: every frame after the first, as Pillow's Image.open does until seek().
#include <cstdint>  // uint8_t
#include <cstring>  // std::memcmp
#include <memory>   // std::unique_ptr
#include <string>   // std::string

#include <webp/decode.h>  // WebPGetFeatures
#include <webp/demux.h>   // WebPAnimDecoder

#include "loaders/image.h"  // ImageU8, kMaxImagePixels, fail_decode, the declarations implemented here

namespace lcam {

bool is_webp(const uint8_t* d, size_t n) { return n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0; }

ImageU8 decode_webp_memory(const uint8_t* d, size_t n, const std::string& name) {
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(d, n, &features) == VP8_STATUS_OK &&
      static_cast<long long>(features.width) * features.height > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(features.width) + "x" + std::to_string(features.height) + " pixels)");
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) fail_decode(name, "libwebp: version mismatch");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  const WebPData data = {d, n};
  std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> dec(WebPAnimDecoderNew(&data, &options), WebPAnimDecoderDelete);
  if (!dec) fail_decode(name, "corrupt or truncated WebP (libwebp cannot read it)");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) fail_decode(name, "corrupt WebP (libwebp cannot read its header)");
  if (static_cast<long long>(info.canvas_width) * info.canvas_height > kMaxImagePixels)
    fail_decode(name, "image too large (" + std::to_string(info.canvas_width) + "x" + std::to_string(info.canvas_height) + " pixels)");
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || !rgba)
    fail_decode(name, "corrupt or truncated WebP (its first frame cannot be decoded)");
  ImageU8 img;
  img.width = static_cast<int>(info.canvas_width);
  img.height = static_cast<int>(info.canvas_height);
  const size_t pixels = static_cast<size_t>(img.width) * img.height;
  img.rgb.resize(pixels * 3);
  for (size_t i = 0; i < pixels; ++i) {
    img.rgb[3 * i] = rgba[4 * i];
    img.rgb[3 * i + 1] = rgba[4 * i + 1];
    img.rgb[3 * i + 2] = rgba[4 * i + 2];
  }
  return img;
}

}  // namespace lcam
