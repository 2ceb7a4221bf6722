// stb_impl.cpp — the one translation unit that compiles stb_image_write (single-header library
// from /usr/include/stb): lcam's PNG writer for its pictures (loaders/image.cpp, write_png) and
// the tests' BMP and TGA encoders. Every format lcam reads has a reader of its own or the
// library Pillow calls (libjpeg-turbo, zlib, libwebp, libtiff), so stb_image's decoders, which
// differ from Pillow on damaged and on some valid files, are not compiled.
// Deliberately omits: any code of its own.
#include <cstring>  // std::memcpy, before stb's own <string.h> so that the macro below reaches stb alone

// stb may copy zero bytes from or to a null pointer: harmless, but undefined for memcpy, and
// UndefinedBehaviorSanitizer stops there (tools/fuzz.sh).
static void* stb_copy(void* dst, const void* src, size_t n) { return n ? std::memcpy(dst, src, n) : dst; }
#define memcpy stb_copy

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>  // the encoders' definitions
#undef memcpy
