// runtime_options.cpp — the --device / --threads / --precision / --conv-fusion / --deterministic
// options (see cli.h).
#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"             // RuntimeOptions
#include "engine/backend.h"       // cpu::set_num_threads
#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::available, set_allow_tf32, set_conv_fusion

namespace lcam::app {

void RuntimeOptions::add_to(CLI::App& sub) {
  sub.add_option("--device", device, "cpu, cuda, or auto (cuda when a GPU is usable)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
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
