// figures.h — pictures of saliency maps: the JET colour map (as the paper's figures), heat-map
// overlays on the image, 8-bit images from [0,1] CHW tensors, and the comparison grid with
// captions (stb_easy_font's bitmap text). Omits anti-aliased text and any other layout.
#pragma once
#include <string>  // std::string
#include <vector>  // std::vector

#include "loaders/dataset.h"  // Box
#include "loaders/image.h"    // ImageU8

namespace lcam::app {

// JET colour of v in [0,1] (blue -> cyan -> yellow -> red), as MATLAB's and OpenCV's jet.
void jet(float v, uint8_t rgb[3]);
// The image ([0,1] CHW, 3 x h x w) as 8-bit RGB.
ImageU8 to_image(const float* chw, int h, int w);
// alpha * JET(sm) + (1 - alpha) * image, per pixel; sm is h x w in [0,1].
ImageU8 overlay(const ImageU8& img, const float* sm, float alpha = 0.5f);

// Draws text (ASCII) with its top-left corner at (x, y), `scale` pixels per font unit.
void draw_text(ImageU8& img, int x, int y, const std::string& text, int scale, const uint8_t rgb[3]);

// One column of the comparison grid: the image, its caption (class name) and one overlay per
// method, all the same size; optionally the object's box.
struct GridColumn {
  ImageU8 image;
  std::string caption;
  std::vector<ImageU8> overlays;
  Box box;  // drawn in white on every cell when non-empty
};
// White page: a label column with the method names, then a column per image (image, caption,
// then the overlays in the order of `methods`). Cells under 160 px are enlarged by an integer
// factor (nearest neighbour).
ImageU8 grid_figure(const std::vector<GridColumn>& columns, const std::vector<std::string>& methods);

}  // namespace lcam::app
