// stb_impl.cpp — the one translation unit that compiles the stb_image decoder and the
// stb_image_write encoder (single-header libraries from /usr/include/stb), with stb's default
// configuration so that any file including the headers sees matching declarations, except that
// stb's own JPEG decoder is left out: JPEG is libjpeg-turbo's (loaders/image.cpp, for Pillow's
// bytes), and stb would otherwise take data that Pillow does not call JPEG (FF D8 without the
// third FF, or fill bytes FF FF D8 before the start marker) into a decoder of its own. So are its
// PNM decoder (no plain or 1-bit files, maxval ignored): loaders/pnm.cpp reads those as Pillow,
// and its GIF decoder (strict where Pillow's LZW decoder reads on: no leading clear code, a
// deferred clear, codes after the frame's last pixel): loaders/gif.cpp; and its BMP decoder
// (no RLE, no top-down rows, other 16-bit scaling, bitfields Pillow refuses): loaders/bmp.cpp;
// its TGA decoder (no mirrored rows, no colour map index offset, no 1-bit): loaders/tga.cpp;
// its PNG decoder (uninitialized palette entries past a short PLTE, no CRC or adler-32 checks,
// strict where Pillow stops at the last row): loaders/png.cpp. Left is PSD.
// Deliberately omits: any code of its own; loaders/image.cpp is the project's interface to stb.
#include <cstring>  // std::memcpy, before stb's own <string.h> so that the macro below reaches stb alone

// stb copies zero bytes from or to a null pointer in places (a PNG's empty chunk): harmless,
// but undefined for memcpy, and UndefinedBehaviorSanitizer stops there (tools/fuzz.sh).
static void* stb_copy(void* dst, const void* src, size_t n) { return n ? std::memcpy(dst, src, n) : dst; }
#define memcpy stb_copy

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_JPEG
#define STBI_NO_PNM  // loaders/pnm.cpp reads Netpbm files as Pillow does
#define STBI_NO_GIF  // loaders/gif.cpp reads GIFs as Pillow does
#define STBI_NO_BMP  // loaders/bmp.cpp reads BMPs as Pillow does
#define STBI_NO_PNG  // loaders/png.cpp reads PNGs as Pillow does
#define STBI_NO_TGA  // loaders/tga.cpp reads TGAs as Pillow does
#define STBI_NO_PIC  // Softimage PIC and Radiance HDR: formats Pillow does not read
#define STBI_NO_HDR
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>        // the decoder's definitions
#include <stb_image_write.h>  // the encoders' definitions
#undef memcpy
