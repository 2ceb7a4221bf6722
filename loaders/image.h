// image.h — image decoding (stb_image) and the torchvision eval transforms on 8-bit RGB images:
// Pillow-exact antialiased bilinear resize, Resize(int) / CenterCrop / crop / flip / ToTensor, and
// PNG writing for visualisations.
// Deliberately omits: normalization (done on the device), other interpolation filters, EXIF
// orientation (neither Pillow's Image.open nor torchvision applies it), colour management, and any
// bit-exactness of JPEG decoding with Pillow's libjpeg (stb_image's IDCT and colour conversion
// differ by a few levels on some pixels; everything after decoding is bit-exact).
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // uint8_t
#include <string>   // std::string
#include <vector>   // std::vector

namespace lcam {

// An 8-bit RGB image: HWC, 3 channels, row-major, rgb.size() == 3 * width * height.
struct ImageU8 {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// Decodes JPEG/PNG/BMP/GIF (first frame)/TGA/PNM... with stb_image into RGB: grey is expanded,
// alpha is dropped (as PIL's convert("RGB") does), 16-bit samples are reduced to 8 bits.
// Throws lcam::InputError with a one-line message "PATH: reason" when the file is missing or
// unreadable, is not an image, is truncated or corrupt, or is implausibly large (more pixels than
// Pillow's decompression-bomb limit).
ImageU8 decode_image(const std::string& path);
ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// PIL Image.resize((out_w, out_h), Image.BILINEAR) on an RGB image, bit-exact with Pillow 9:
// antialiased (the filter support widens when downscaling), separable, horizontal pass then
// vertical pass through a uint8 intermediate, Pillow's 22-bit fixed-point coefficients and
// rounding. A pass whose size does not change is skipped, as Pillow does. Sizes must be >= 1.
ImageU8 resize_bilinear_pil(const ImageU8& img, int out_w, int out_h);

// torchvision.transforms.Resize(size) with an int size (torchvision 0.14 on a PIL image): the
// shorter side becomes `size`, the longer one int(size * long / short), truncated.
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

// The eval transform: decode, Resize(resize), CenterCrop(crop), ToTensor into out[3*crop*crop].
// Normalization by the ImageNet mean/std is left to the caller (done on the device).
void load_eval_image(const std::string& path, float* out, int resize = 256, int crop = 224);

// Writes an 8-bit RGB PNG atomically (PATH.tmp, then rename). Throws InputError on failure.
void write_png(const std::string& path, const ImageU8& img);

}  // namespace lcam
