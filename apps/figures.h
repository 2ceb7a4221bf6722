// figures.h — pictures of saliency maps: the JET colour map (as the paper's figures), heat-map
// overlays on the image, and 8-bit images from [0,1] CHW tensors. Omits text rendering and
// grid layouts (to come with the comparison figures).
#pragma once
#include "loaders/image.h"  // ImageU8

namespace lcam::app {

// JET colour of v in [0,1] (blue -> cyan -> yellow -> red), as MATLAB's and OpenCV's jet.
void jet(float v, uint8_t rgb[3]);
// The image ([0,1] CHW, 3 x h x w) as 8-bit RGB.
ImageU8 to_image(const float* chw, int h, int w);
// alpha * JET(sm) + (1 - alpha) * image, per pixel; sm is h x w in [0,1].
ImageU8 overlay(const ImageU8& img, const float* sm, float alpha = 0.5f);

}  // namespace lcam::app
