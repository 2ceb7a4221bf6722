// stb_impl.cpp — the one translation unit that compiles the stb_image decoder and the
// stb_image_write encoder (single-header libraries from /usr/include/stb), with stb's default
// configuration so that any file including the headers sees matching declarations, except that
// stb's own JPEG decoder is left out: JPEG is libjpeg-turbo's (loaders/image.cpp, for Pillow's
// bytes), and stb would otherwise take data that Pillow does not call JPEG (FF D8 without the
// third FF, or fill bytes FF FF D8 before the start marker) into a decoder of its own.
// Deliberately omits: any code of its own; loaders/image.cpp is the project's interface to stb.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_JPEG
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>        // the decoder's definitions
#include <stb_image_write.h>  // the encoders' definitions
