// runtime_options.cpp — the --device / --threads / --precision / --conv-fusion / --deterministic
// options (see cli.h).
#include <fcntl.h>   // open (check_output_file)
#include <unistd.h>  // close, unlink, getpid

#include <algorithm>     // std::max
#include <cctype>        // std::isspace
#include <cerrno>        // errno
#include <cmath>         // std::isfinite
#include <cstdlib>       // std::strtod
#include <cstring>       // std::strerror
#include <filesystem>    // std::filesystem::is_directory (check_output_file)
#include <system_error>  // std::error_code
#include <thread>        // std::thread::hardware_concurrency

#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"             // RuntimeOptions
#include "engine/backend.h"       // cpu::set_num_threads
#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::available, set_allow_tf32, set_conv_fusion
#include "loaders/dataset.h"       // Dataset (check_outputs_not_listed)
#include "loaders/image.h"         // set_pillow_resize

namespace lcam::app {

bool parse_integer(const std::string& s, long long& out) {
  size_t i = s.size() > 0 && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i == s.size() || s.size() - i > 18) return false;  // 18 digits cannot overflow
  long long v = 0;
  for (size_t k = i; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
    v = v * 10 + (s[k] - '0');
  }
  out = s[0] == '-' ? -v : v;
  return true;
}

bool parse_real(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  out = v;
  return true;
}

namespace {

// A number from lo to hi (an integer where `integer`), or the message saying what was expected:
// CLI11's Range lets NaN through, and an int option's own conversion reports only "Could not
// convert" for a value past its type.
CLI::Validator number_in(double lo, double hi, bool integer, const std::string& wanted, const std::string& name) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        long long n = 0;
        double v = 0;
        const bool ok = integer ? parse_integer(in, n) : parse_real(in, v);
        if (integer) v = static_cast<double>(n);
        if (ok && v >= lo && v > hi) return fmt::format("'{}' is too large (at most {})", in, hi);
        if (!ok || !(v >= lo && v <= hi)) return fmt::format("'{}' is not {}", in, wanted);
        // CLI11 then converts with base 0, where a leading 0 means octal: hand it plain decimal.
        if (integer) in = std::to_string(n);
        return {};
      },
      name);
}

}  // namespace

CLI::Validator integer_in(long long lo, long long hi, const std::string& wanted) {
  return number_in(static_cast<double>(lo), static_cast<double>(hi), true, wanted, fmt::format("{}-{}", lo, hi));
}

const CLI::Validator kPositive = number_in(1, 2147483647, true, "a positive integer", "POSITIVE");
const CLI::Validator kNonNegative = number_in(0, 2147483647, true, "an integer >= 0", "NONNEGATIVE");
const CLI::Validator kNonNegativeReal = number_in(0, 1e30, false, "a number from 0 to 1e30", "NONNEGATIVE");
const CLI::Validator kFraction = number_in(0, 1, false, "a number from 0 to 1", "FRACTION");
int max_threads() {
  return static_cast<int>(std::min(1024LL, std::max(8LL, 4LL * std::thread::hardware_concurrency())));
}

const CLI::Validator kWorkers(
    [](std::string& in) -> std::string {
      // libgomp ends the process with status 1 when the system refuses a thread: refused here.
      const unsigned hw = std::thread::hardware_concurrency();
      const int most = max_threads();
      long long v = 0;
      if (!parse_integer(in, v) || v < 0) return fmt::format("'{}' is not a number of threads (0 = all cores)", in);
      in = std::to_string(v);  // plain decimal for CLI11 (a leading 0 would be octal)
      if (v > most) return fmt::format("'{}' is too large (at most {}: 4 per hardware thread, and this machine has {})", in, most, hw);
      return {};
    },
    "THREADS");
const CLI::Validator kSeed(
    [](std::string& in) -> std::string {
      // Any unsigned 64-bit value, written in decimal digits (CLI11 would wrap "-1" and clamp
      // values past 2^64 - 1).
      const bool digits = !in.empty() && in.size() <= 20 && in.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || (in.size() == 20 && in > "18446744073709551615"))
        return fmt::format("'{}' is not a seed (an integer from 0 to 18446744073709551615)", in);
      in.erase(0, std::min(in.find_first_not_of('0'), in.size() - 1));  // no leading 0: CLI11 would read octal
      return {};
    },
    "SEED");

void check_output_file(const std::string& path, const char* flag, const std::vector<NamedPath>& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw InputError(fmt::format("{}: empty path (the file to write)", flag));
  for (const NamedPath& in : inputs)
    if (!in.path.empty() && fs::equivalent(path, in.path, ec))
      throw InputError(fmt::format("{}: {} names the file {} reads; write elsewhere", path, flag, in.flag));
  if (fs::is_directory(path, ec))
    throw InputError(fmt::format("{}: is a folder ({} names the file to write)", path, flag));
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  if (fs::exists(parent, ec) && !fs::is_directory(parent, ec))
    throw InputError(fmt::format("{}: {} is a file, not a folder ({})", path, parent.string(), flag));
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

void check_outputs_not_listed(const Dataset& data, const std::string& list, const std::vector<NamedPath>& outputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const NamedPath& out : outputs) {
    if (out.path.empty() || !fs::exists(out.path, ec)) continue;  // a file not there yet is no image of the list
    const std::string name = fs::path(out.path).filename().string();
    for (size_t i = 0; i < data.size(); ++i)
      if (fs::path(data[i].path).filename() == name && fs::equivalent(out.path, data.full_path(i), ec))
        throw InputError(fmt::format("{}: {} names image {} of {}; write elsewhere", out.path, out.flag, data[i].path, list));
  }
}

void RuntimeOptions::add_to(CLI::App& sub) {
  sub.add_option("--device", device, "cpu, cuda, or auto (cuda when a GPU is usable)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub.add_option("--threads", threads, "CPU threads (0 = all cores; at most 4 per hardware thread)")->transform(kWorkers);
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
  sub.add_option("--resize", resize, "shorter side after resizing (Resize)")->transform(integer_in(8, 4096, "an integer from 8 to 4096"));
  sub.add_option("--crop", crop, "side of the center (or, training, random) crop")->transform(integer_in(8, 4096, "an integer from 8 to 4096"));
  // Process-wide, as the resampler's setting is: set while the command line is read.
  sub.add_option_function<int>(
         "--pillow", [](const int& v) { set_pillow_resize(v == 13 ? PillowResize::k13 : PillowResize::k12); },
         "the Pillow whose resize is reproduced to the bit: 12 (default; every Pillow before 13, as the paper's "
         "results used) or 13 (the vertical pass first for images more than twice as tall as wide)")
      ->check(CLI::Validator([](std::string& in) { return in == "12" || in == "13" ? "" : "'" + in + "' is not 12 or 13"; },
                             "12|13"));
}

LoaderOptions ImageSizeOptions::loader(int batch, int workers, Device dev, size_t images) const {
  LoaderOptions lo;
  // No batch holds more than the list: buffers of --batch images for a shorter list would be
  // memory for nothing (the batches themselves are the same).
  lo.batch = images > 0 && static_cast<size_t>(batch) > images ? static_cast<int>(images) : batch;
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
