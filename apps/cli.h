// cli.h — what every subcommand of `lcam` shares: the command table entry, device and thread
// options, and the ImageNet normalization constants. Each subcommand lives in its own file
// (apps/cmd_*.cpp) and registers its flags on a CLI11 sub-app, returning the function to run.
#pragma once
#include <functional>  // std::function
#include <string>      // std::string

#include <CLI/CLI.hpp>  // CLI::App

#include "engine/tensor.h"          // Device
#include "loaders/batch_loader.h"  // LoaderOptions

namespace lcam::app {

using Run = std::function<int()>;
struct Command {
  const char* name;
  const char* help;
  Run (*setup)(CLI::App& sub);
};

// Options most subcommands take.
struct RuntimeOptions {
  std::string device = "auto";  // auto | cpu | cuda
  int threads = 0;              // CPU threads, 0 = all cores
  std::string precision = "tf32";  // tf32 | fp32 | bf16 (GPU math mode)
  std::string fusion = "auto";     // auto | on | off (cuDNN's fused convolution + bias + ReLU)
  bool deterministic = false;      // GPU: reproducible cuDNN algorithm choices
  void add_to(CLI::App& sub);
  // Validates the flags, sets threads and math mode, returns the device to use.
  Device apply() const;
};

// The evaluation transform's sizes: shorter side to `resize`, center crop `crop` (the paper:
// 256 and 224; the demo's 64x64 scenes: 64 and 64). Training crops randomly at `crop`.
struct ImageSizeOptions {
  int resize = 256, crop = 224;
  void add_to(CLI::App& sub);
  // The loader settings of one pass over a list in order with these sizes (eval transform;
  // pinned host batches when the model runs on the GPU).
  LoaderOptions loader(int batch, int workers, Device dev) const;
};


// CLI11's PositiveNumber and NonNegativeNumber, with messages that say what was expected
// ("--batch: '0' is not a positive number", not the range of a double).
extern const CLI::Validator kPositive, kNonNegative;

// For a flag naming a file to write (a checkpoint, a label list, a report): fails at once,
// before any work, when the path is a folder, its folder does not exist or cannot be written
// in, so that a long run does not end with nowhere to put its result.
void check_output_file(const std::string& path, const char* flag);

// Subcommand setups (apps/cmd_*.cpp).
Run setup_predict(CLI::App& sub);
Run setup_init(CLI::App& sub);
Run setup_bench(CLI::App& sub);
Run setup_labels(CLI::App& sub);
Run setup_train(CLI::App& sub);
Run setup_explain(CLI::App& sub);
Run setup_eval(CLI::App& sub);
Run setup_scenes(CLI::App& sub);
Run setup_bench_data(CLI::App& sub);
Run setup_demo(CLI::App& sub);

}  // namespace lcam::app
