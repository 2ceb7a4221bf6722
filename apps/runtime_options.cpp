// runtime_options.cpp — the --device / --threads / --precision / --conv-fusion / --deterministic
// options (see cli.h).
#include <fcntl.h>   // open (check_output_file)
#include <unistd.h>  // close, unlink, getpid

#include <cerrno>        // errno
#include <cstring>       // std::strerror
#include <filesystem>    // std::filesystem::is_directory (check_output_file)
#include <system_error>  // std::error_code

#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"             // RuntimeOptions
#include "engine/backend.h"       // cpu::set_num_threads
#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::available, set_allow_tf32, set_conv_fusion
#include "loaders/image.h"         // set_pillow_resize

namespace lcam::app {

namespace {
CLI::Validator at_least(double lo, const char* wanted, const char* name) {
  return CLI::Validator(
      [lo, wanted](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v) || !(v >= lo)) return fmt::format("'{}' is not {}", in, wanted);
        return {};
      },
      name);
}
}  // namespace

const CLI::Validator kPositive = at_least(1e-300, "a positive number", "POSITIVE");
const CLI::Validator kNonNegative = at_least(0, "a number >= 0", "NONNEGATIVE");

void check_output_file(const std::string& path, const char* flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw InputError(fmt::format("{}: is a folder ({} names the file to write)", path, flag));
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec))
    throw InputError(fmt::format("{}: folder {} does not exist ({})", path, parent.string(), flag));
  // A file made and removed at once tells what access() cannot (root, /proc, a read-only mount).
  const fs::path probe = parent / fmt::format(".lcam-write-check-{}", static_cast<long>(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    throw InputError(fmt::format("{}: cannot write in {} ({}: {})", path, parent.string(), flag, std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
}

void RuntimeOptions::add_to(CLI::App& sub) {
  sub.add_option("--device", device, "cpu, cuda, or auto (cuda when a GPU is usable)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(kNonNegative);
  sub.add_option("--precision", precision,
                 "GPU math: tf32 (tensor cores for convolutions and matrix products), fp32, or bf16 (convolutions on bfloat16 operands with "
                 "float32 accumulation, TF32 elsewhere; on the CPU bf16 emulates that rounding, for checking, slower)")
      ->check(CLI::IsMember({"tf32", "fp32", "bf16"}));
  sub.add_option("--conv-fusion", fusion,
                 "GPU convolutions: auto (cuDNN's fused bias/ReLU call where it times faster), on, or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  sub.add_flag("--deterministic", deterministic,
               "GPU: the same bits on every run: only convolution algorithms cuDNN reports deterministic, picked by its "
               "heuristic instead of by timing, and no fused call unless --conv-fusion on (may be slower; the CPU path always "
               "repeats for a given --threads)");
}

void ImageSizeOptions::add_to(CLI::App& sub) {
  sub.add_option("--resize", resize, "shorter side after resizing (Resize)")->check(CLI::Range(8, 4096));
  sub.add_option("--crop", crop, "side of the center (or, training, random) crop")->check(CLI::Range(8, 4096));
  // Process-wide, as the resampler's setting is: set while the command line is read.
  sub.add_option_function<int>(
         "--pillow", [](const int& v) { set_pillow_resize(v == 13 ? PillowResize::k13 : PillowResize::k12); },
         "the Pillow whose resize is reproduced to the bit: 12 (default; every Pillow before 13, as the paper's "
         "results used) or 13 (the vertical pass first for images more than twice as tall as wide)")
      ->check(CLI::IsMember({12, 13}));
}

LoaderOptions ImageSizeOptions::loader(int batch, int workers, Device dev) const {
  LoaderOptions lo;
  lo.batch = batch;
  lo.resize = resize;
  lo.crop = crop;
  lo.workers = workers;
  lo.pinned = dev == Device::CUDA;
  return lo;
}

Device RuntimeOptions::apply() const {
  cpu::set_num_threads(threads);
  Device d = Device::CPU;
  if (device == "cuda") {
    cuda::require_available();
    d = Device::CUDA;
  } else if (device == "auto" && cuda::available()) {
    d = Device::CUDA;
  }
  cpu::set_conv_bf16(d == Device::CPU && precision == "bf16");  // the emulation, on the CPU only
  if (d == Device::CUDA) {
    cuda::set_allow_tf32(precision != "fp32");
    cuda::set_conv_bf16(precision == "bf16");
    cuda::set_deterministic(deterministic);
    cuda::set_conv_fusion(fusion == "on" ? cuda::ConvFusion::On : fusion == "off" ? cuda::ConvFusion::Off : cuda::ConvFusion::Auto);
  }
  return d;
}

}  // namespace lcam::app
