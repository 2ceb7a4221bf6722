// model.h — VGG-16 and ResNet-50 exactly as torchvision defines them (and smaller
// configurations of the same layer naming, for tests and the demo), built from an HDF5 weights
// file whose dataset names are the torchvision state_dict keys. The network is a flat list of
// modules with two split points: `features_end` (the last conv block's maps: VGG features[:30]
// 512x14x14, ResNet layer4 2048x7x7) and `pool_end` (VGG's 7x7 maps after the last max-pool;
// equals features_end for ResNet). Omits training of backbone weights: the backbone is frozen.
#pragma once
#include <cstdint>  // int64_t
#include <functional>  // std::function
#include <memory>   // std::unique_ptr
#include <string>   // std::string
#include <vector>   // std::vector

#include "models/layers.h"  // Module, Tape, Param

namespace lcam {

struct ModelConfig {
  std::string arch;                // "vgg16" | "resnet50"
  int num_classes = 1000;
  // VGG: conv widths with -1 for a max-pool (torchvision cfg "D"), classifier hidden width.
  std::vector<int> cfg;
  int hidden = 4096;
  // ResNet: base width (64) and bottleneck blocks per stage ([3,4,6,3]).
  int width = 64;
  std::vector<int> blocks;

  static ModelConfig standard(const std::string& arch);  // InputError for an unknown arch
  bool is_standard() const;
};

// Timing hook: called after each module with its index (for `lcam bench`).
using ModuleHook = std::function<void(int index)>;

class Model {
 public:
  explicit Model(ModelConfig cfg);

  const ModelConfig& config() const { return cfg_; }
  int num_classes() const { return cfg_.num_classes; }
  int feature_channels() const;  // C of the last conv block (512 / 2048)
  Device device() const { return device_; }
  void to(Device d);

  // Parameters in file order (torchvision state_dict order).
  std::vector<Param> params();
  // Folds batch-norm; call once after the parameters are filled.
  void finalize();
  // Dropout layers in training mode (seeded per layer from `seed`) or back in eval mode.
  // Batch-norm always stays frozen (folded).
  void set_dropout_training(bool on, uint64_t seed);

  // Modules [begin, end) applied to x. tape == nullptr for inference.
  // The early, high-resolution span [0, chunk_end()) (through the second max-pool, or the only
  // one) runs a few images at a time when the batch's largest activation there would exceed
  // chunk_bytes() (default 128 MiB): VGG-16's first blocks at batch 64 would otherwise hold
  // two 822 MB maps at once. Same results per image; the tape records the split and
  // backward_range follows it. Not with a hook (per-layer timing).
  Tensor forward_range(const Tensor& x, int begin, int end, Tape* tape, const ModuleHook& hook = {});
  Tensor backward_range(Tape& tape, const Tensor& dy, int begin, int end);
  int chunk_end() const { return chunk_end_; }
  size_t chunk_bytes() const { return chunk_bytes_; }
  void set_chunk_bytes(size_t bytes) { chunk_bytes_ = bytes; }
  // Images per chunk of [begin, chunk_end()) for input x (N itself when no split is needed).
  int64_t chunk_images(const Tensor& x, int begin) const;

  int size() const { return static_cast<int>(modules_.size()); }
  int features_end() const { return features_end_; }
  int pool_end() const { return pool_end_; }
  const std::string& module_name(int i) const { return names_[i]; }
  std::string module_kind(int i) const { return modules_[i]->kind(); }

  // Conveniences over forward_range for the split points.
  Tensor features(const Tensor& x, Tape* tape = nullptr) { return forward_range(x, 0, features_end_, tape); }
  Tensor head(const Tensor& f, Tape* tape = nullptr) { return forward_range(f, features_end_, size(), tape); }
  Tensor logits(const Tensor& x, Tape* tape = nullptr) { return forward_range(x, 0, size(), tape); }

 private:
  void add(std::string name, std::unique_ptr<Module> m);
  ModelConfig cfg_;
  std::vector<std::unique_ptr<Module>> modules_;
  std::vector<std::string> names_;
  std::vector<std::string> trace_fwd_, trace_bwd_;  // profiler range names: "name kind", "backward name kind"
  Tensor forward_plain(const Tensor& x, int begin, int end, Tape* tape, const ModuleHook& hook);
  Tensor backward_plain(Tape& tape, const Tensor& dy, int begin, int end);
  int features_end_ = 0, pool_end_ = 0, chunk_end_ = 0;
  size_t chunk_bytes_ = size_t{128} << 20;
  Device device_ = Device::CPU;
};

// The predicted class of one row of logits: the first maximum (as torch.argmax).
inline int top1(const float* logits, int64_t K) {
  int64_t best = 0;
  for (int64_t k = 1; k < K; ++k)
    if (logits[k] > logits[best]) best = k;
  return static_cast<int>(best);
}

// Reads the config attributes and every parameter of a weights file, checking names, shapes
// and dtypes (InputError naming the dataset and both shapes). `arch` must match the file's
// `arch` attribute. Returns a finalized model on `dev`.
std::unique_ptr<Model> load_model(const std::string& path, const std::string& arch, Device dev);
// Config recorded in a weights file (arch attribute plus the optional size attributes).
ModelConfig read_model_config(const std::string& path);
// Throws InputError "PATH: dataset 'NAME' holds NaN (at index I); weights must be finite" for the
// first NaN or infinity of a host tensor read from a file: a damaged file must not give
// believable-looking predictions.
// `why` replaces "; weights must be finite" where another reason fits.
void require_finite(const Tensor& t, const std::string& path, const std::string& name,
                    const std::string& why = "; weights must be finite");
// torchvision's default initialisation (Kaiming-normal fan-out convs, N(0, 0.01) linears, unit
// batch-norm), seeded; the model is left unfinalized so that it can be saved.
std::unique_ptr<Model> random_model(const ModelConfig& cfg, uint64_t seed);
// Writes the parameters (unfinalized model) in the weights format, atomically.
void save_weights(Model& m, const std::string& path);

}  // namespace lcam
