// cli.h — what every subcommand of `lcam` shares: the command table entry, device and thread
// options, and the ImageNet normalization constants. Each subcommand lives in its own file
// (apps/cmd_*.cpp) and registers its flags on a CLI11 sub-app, returning the function to run.
#pragma once
#include <functional>  // std::function
#include <string>      // std::string
#include <vector>      // check_output_file's inputs

#include <CLI/CLI.hpp>  // CLI::App

#include "engine/tensor.h"          // Device
#include "loaders/batch_loader.h"  // LoaderOptions

namespace lcam {
class Dataset;  // loaders/dataset.h (check_outputs_not_listed)
}

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
  // The loader settings of one pass over a list of `images` in order with these sizes (eval
  // transform; pinned host batches when the model runs on the GPU; batches no larger than the
  // list).
  LoaderOptions loader(int batch, int workers, Device dev, size_t images) const;
};


// Flag value checks with messages that say what was expected ("--batch: '0' is not a positive
// integer"); none lets NaN, infinities or trailing characters through. The integer ones rewrite
// the value as plain decimal (CLI11 reads a leading 0 as octal), so they go on with
// ->transform(), which lets a validator change the value (->check() does not). kPositive and
// kNonNegative: integers up to 2^31 - 1; kNonNegativeReal: reals up to 1e30 (finite in float
// too); kFraction: reals from 0 to 1; kWorkers: thread counts from 0 (all cores) to
// max_threads(); kSeed: unsigned 64-bit integers.
extern const CLI::Validator kPositive, kNonNegative, kNonNegativeReal, kFraction, kWorkers, kSeed;

// The most threads a flag may ask for: 4 per hardware thread (at least 8, at most 1024). Far past
// the machine's own threads nothing is faster, and the system may refuse to start them.
int max_threads();

// An integer from lo to hi (at most 2^53), `wanted` saying so in the message ("a number of scenes
// from 1 to 10000000").
CLI::Validator integer_in(long long lo, long long hi, const std::string& wanted);

// The whole string as a decimal integer (an optional sign, at most 18 digits) or as a finite
// real (strtod's syntax, nothing after it); false otherwise. For lists given in one flag.
bool parse_integer(const std::string& s, long long& out);
bool parse_real(const std::string& s, double& out);

// For a flag naming a file to write (a checkpoint, a label list, a report): fails at once,
// before any work, when the path is empty, a folder, the same file as one of `inputs` (a flag
// and its path; empty paths ignored), or its folder does not exist or cannot be written in, so
// that a long run does not end with nowhere to put its result, or overwrite what it read.
struct NamedPath {
  const char* flag;
  const std::string& path;
};
void check_output_file(const std::string& path, const char* flag, const std::vector<NamedPath>& inputs = {});
// The same for the images of a list, once it is read: an existing `outputs` file that is one of
// the list's images (compared by file name first, so a million-image list costs no stat each).
void check_outputs_not_listed(const Dataset& data, const std::string& list, const std::vector<NamedPath>& outputs);

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
