// commands.h — the subcommands that other commands reuse, as functions: their options (what the
// flags fill in) and the function that runs them. `lcam demo` chains them: scenes, labels,
// train, eval and explain, in one process. Each returns the exit status (0, or 2 when some
// images could not be read) and throws InputError for bad input.
#pragma once
#include <cstdint>  // int64_t, uint64_t
#include <string>   // std::string
#include <vector>   // std::vector

#include "apps/cli.h"        // RuntimeOptions, ImageSizeOptions
#include "apps/saliency.h"   // SaliencyOptions
#include "loaders/idx.h"     // kFashionMnistDir
#include "loaders/scenes.h"  // SceneOptions

namespace lcam::app {

// `lcam scenes`: DIR/images/*.png, list.txt, boxes.txt, classes.txt.
struct ScenesOptions {
  std::string out, source = kFashionMnistDir, split = "train";
  int64_t count = 1000, first = 0;
  int min_item = 0, max_item = 0;  // 0: a quarter and a half of the canvas
  SceneOptions scene;
  bool quiet = false;  // no closing line on stdout
};
int run_scenes(const ScenesOptions& o);

// `lcam labels`: the model-truth label of every image of a list.
struct LabelsOptions {
  RuntimeOptions rt;
  ImageSizeOptions size;
  std::string arch, weights, data, list, out;
  int batch = 64, workers = 0;
  int64_t limit = 0;
};
int run_labels(const LabelsOptions& o);

// `lcam train`: the attention mechanism on a frozen backbone.
struct TrainOptions {
  RuntimeOptions rt;
  ImageSizeOptions size;
  std::string arch, weights, method = "img", loss = "lcam", data, list, lr, decay_epochs, init, out;
  int epochs = 0, batch = 64, workers = 0;
  double lr_decay = 0, momentum = 0.9, weight_decay = 5e-4;
  bool official = false, official_selection = false, official_dropout = false, resume = false, no_augment = false,
       no_shuffle = false;
  uint64_t seed = 0;
  int64_t max_steps = 0;
  int64_t checkpoint_every = 0;  // also save every N steps (0: epoch ends, --max-steps, signals only)
};
int run_train(TrainOptions o);

// `lcam eval`: Table 1 (AD/IC per keep percentage), and with `boxes` the localization scores.
struct EvalOptions {
  RuntimeOptions rt;
  ImageSizeOptions size;
  SaliencyOptions sal;
  std::string arch, weights, data, list, keep = "100,50,15", report, misclassified, boxes, names_file;
  int batch = 16, workers = 0, misclassified_max = 16;
  int64_t limit = 0;
  bool json = false;
};
int run_eval(const EvalOptions& o);

// `lcam explain`: overlays per image, class and method, and the comparison grid.
struct ExplainOptions {
  RuntimeOptions rt;
  SaliencyOptions sal;
  ImageSizeOptions size;
  std::string arch, weights, classes_arg = "top1", names_file, save_maps, out, boxes;
  std::vector<std::string> images;
  bool quiet = false;  // no line per overlay on stdout
};
int run_explain(const ExplainOptions& o);

}  // namespace lcam::app
