// scenes.h — the demo's data: Fashion-MNIST items placed at a random position and scale on a
// larger colour canvas with clutter (lines, boxes), fragments of other items and noise. Each
// scene is labelled with its main item's class and that item's bounding box, and is a pure
// function of (seed, index), so a data set is reproducible without storing it.
// Omits any other source of items and any augmentation (the batch loader does that).
#pragma once
#include <cstdint>  // int64_t, uint64_t

#include "loaders/idx.h"    // FashionMnist
#include "loaders/image.h"  // ImageU8

namespace lcam {

struct SceneOptions {
  int size = 96;                   // canvas side, pixels
  int min_item = 36, max_item = 72;  // side of the main item after scaling
  int fragments = 3;               // pieces of other items scattered as distractors
  int clutter = 3;                 // random lines and rectangles
  float noise = 6.f;               // Gaussian noise, standard deviation in 8-bit levels
  uint64_t seed = 0;
};

struct Scene {
  ImageU8 image;
  int label = 0;        // class of the main item
  int64_t item = 0;     // its index in the Fashion-MNIST split
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // its bounding box (pixels with ink), end exclusive
};

Scene make_scene(const FashionMnist& fm, int64_t index, const SceneOptions& o);

}  // namespace lcam
