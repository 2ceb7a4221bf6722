// fuzz_targets.cpp — see fuzz_targets.h. The readers take paths, so each input is written to a
// file in a folder of this process's own (under TMPDIR, else /tmp) and read back from there.
#include "tests/fuzz_targets.h"

#include <unistd.h>  // getpid

#include <cstdio>        // std::fopen, std::fwrite, std::remove
#include <cstdlib>       // std::getenv
#include <filesystem>    // std::filesystem::create_directories
#include <stdexcept>     // std::runtime_error, std::invalid_argument
#include <system_error>  // std::error_code

#include "engine/common.h"         // InputError
#include "loaders/classes.h"       // parse_class_names
#include "loaders/dataset.h"       // Dataset, read_boxes
#include "loaders/idx.h"           // read_idx
#include "loaders/image.h"         // decode_image_memory, eval_transform_memory
#include "loaders/torch_file.h"    // pth::Reader
#include "models/checkpoint.h"     // load_checkpoint
#include "models/model.h"          // read_model_config, load_model
#include "models/torch_weights.h"  // find_backbone, find_attention

namespace lcam::fuzz {
namespace {

// The largest tensor the pth target converts (elements): a file may declare a storage far
// larger than itself, which the reader must refuse; a real large one would only slow the fuzzer.
constexpr int64_t kMaxRead = int64_t{1} << 22;

std::string own_dir() {
  const char* t = std::getenv("TMPDIR");
  std::string dir = std::string(t && *t ? t : "/tmp") + "/lcam-fuzz-" + std::to_string(getpid());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("fuzz: cannot make " + dir + ": " + ec.message());
  return dir;
}

// The input as the file DIR/input.SUFFIX, removed at scope exit.
struct TempFile {
  std::string dir, path;
  TempFile(const uint8_t* data, size_t size, const std::string& suffix)
      : dir(own_dir()), path(dir + "/input" + suffix) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("fuzz: cannot write " + path);
    const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    if (std::fclose(f) != 0 || !ok) throw std::runtime_error("fuzz: cannot write " + path);
  }
  ~TempFile() {
    std::remove(path.c_str());
    std::remove(dir.c_str());  // the folder too, now empty
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

// Each step on its own: an InputError ends that step only, so that one refusal does not hide
// what the later steps would do with the same input. Counts the steps that accepted it.
int g_accepted = 0;

template <class F>
void step(F f) {
  try {
    f();
    ++g_accepted;
  } catch (const InputError&) {
  }
}

// A torch.save file: the reader, every tensor and scalar it lists, and the searches for a
// backbone and an attention that the commands run.
void pth_target(const uint8_t* data, size_t size) {
  const TempFile in(data, size, ".pth");
  if (pth::looks_like(in.path)) step([&] {
    const pth::Reader r(in.path);
    for (const pth::TensorInfo& t : r.tensors()) {
      bool small = true;  // at most kMaxRead elements (no product can overflow on the way)
      int64_t n = 1;
      for (int64_t d : t.shape) {
        small = small && d >= 0 && d <= kMaxRead && (n *= d) <= kMaxRead;
        if (!small) break;
      }
      if (!small) continue;
      step([&] { (void)r.read(t.name); });
      if (t.dtype != "float32" && t.dtype != "float64" && t.dtype != "float16" && t.dtype != "bfloat16")
        step([&] { (void)r.read_i64(t.name); });
      (void)r.int_value(t.name);
      (void)r.float_value(t.name);
      (void)r.string_value(t.name);
    }
    step([&] { (void)find_backbone(r); });
    step([&] { (void)find_attention(r); });
  });
  // As `--weights FILE` and `--init FILE` take it.
  step([&] {
    const ModelConfig cfg = read_model_config(in.path);
    (void)load_model(in.path, cfg.arch, Device::CPU);
  });
  step([&] { (void)load_checkpoint(in.path, 512, Device::CPU, nullptr); });
}

// An image file: the decoder, the resize and crop of the eval transform (small sizes, to keep
// each run short), and the windowed path of eval_transform_memory under both Pillow orders.
void image_target(const uint8_t* data, size_t size) {
  step([&] {
    const ImageU8 img = decode_image_memory(data, size, "fuzz");
    if (static_cast<int64_t>(img.width) * img.height > (int64_t{1} << 22)) return;
    const ImageU8 small = center_crop(resize_shorter_side(img, 40), 32);
    std::vector<float> chw(3 * 32 * 32);
    to_chw_float(small, chw.data());
  });
  for (PillowResize order : {PillowResize::k12, PillowResize::k13}) {
    const PillowResize before = set_pillow_resize(order);
    struct Restore {
      PillowResize v;
      ~Restore() { set_pillow_resize(v); }
    } restore{before};
    step([&] {
      std::vector<float> out(3 * 24 * 24);
      eval_transform_memory(data, size, "fuzz", out.data(), 29, 24);
    });
  }
}

// An IDX file, plain or gzip-compressed.
void idx_target(const uint8_t* data, size_t size) {
  const TempFile in(data, size, ".idx");
  step([&] { (void)read_idx(in.path); });
}

// A list file (labelled and not), a box file and a class-names file, all the same bytes.
void text_target(const uint8_t* data, size_t size) {
  const TempFile in(data, size, ".txt");
  step([&] { (void)Dataset::from_list(in.dir, in.path, 1000, false); });
  step([&] { (void)Dataset::from_list(in.dir, in.path, 10, true); });
  step([&] { (void)read_boxes(in.path); });
  step([&] { (void)parse_class_names(std::string(reinterpret_cast<const char*>(data), size)); });
}

// An HDF5 file as weights (`--weights`) and as an L-CAM checkpoint (`--init`, `--resume`).
void hdf5_target(const uint8_t* data, size_t size) {
  const TempFile in(data, size, ".h5");
  step([&] {
    const ModelConfig cfg = read_model_config(in.path);
    (void)load_model(in.path, cfg.arch, Device::CPU);
  });
  for (int C : {8, 64, 512}) {
    step([&] {
      CheckpointState s;
      (void)load_checkpoint(in.path, C, Device::CPU, &s);
    });
  }
}

}  // namespace

const std::vector<std::string>& targets() {
  static const std::vector<std::string> names = {"pth", "image", "idx", "text", "hdf5"};
  return names;
}

int run(const std::string& target, const uint8_t* data, size_t size) {
  g_accepted = 0;
  if (target == "pth") pth_target(data, size);
  else if (target == "image") image_target(data, size);
  else if (target == "idx") idx_target(data, size);
  else if (target == "text") text_target(data, size);
  else if (target == "hdf5") hdf5_target(data, size);
  else throw std::invalid_argument("fuzz: no target " + target);
  return g_accepted;
}

}  // namespace lcam::fuzz
