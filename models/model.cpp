// model.cpp — builders, loading, random initialisation and saving (see model.h).
#include "models/model.h"

#include <cmath>    // std::sqrt, std::isfinite
#include <cstdint>  // INT32_MIN, INT32_MAX
#include <functional>  // std::function
#include <map>      // std::map
#include <random>   // std::mt19937_64, std::normal_distribution
#include <set>      // std::set

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::TraceRange (profiler ranges per module)
#include "loaders/hdf5.h"   // h5::Reader, h5::Writer
#include "loaders/torch_file.h"  // pth::Reader, pth::looks_like
#include "models/torch_weights.h"  // find_backbone

namespace lcam {

ModelConfig ModelConfig::standard(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  if (arch == "vgg16") {
    c.cfg = {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1};
  } else if (arch == "resnet50") {
    c.blocks = {3, 4, 6, 3};
  } else {
    throw InputError(fmt::format("unknown architecture '{}' (expected vgg16 or resnet50)", arch));
  }
  return c;
}

bool ModelConfig::is_standard() const {
  ModelConfig s = standard(arch);
  return cfg == s.cfg && hidden == s.hidden && width == s.width && blocks == s.blocks &&
         num_classes == s.num_classes;
}

namespace {

// The sizes a configuration may ask for: well beyond any VGG or ResNet, and small enough that
// no width, feature count or module count derived from them overflows an int or asks for
// memory that no weights file could fill (a damaged file's attributes must not).
constexpr int kMaxWidth = 1 << 16, kMaxClasses = 1 << 20, kMaxVggLayers = 256, kMaxResnetWidth = 1 << 12,
              kMaxBlocks = 256;

void check_config(const ModelConfig& c) {
  if (c.num_classes <= 0 || c.num_classes > kMaxClasses)
    throw InputError(fmt::format("num_classes {} out of range [1, {}]", c.num_classes, kMaxClasses));
  if (c.arch == "vgg16") {
    if (c.cfg.empty() || c.cfg.back() != -1) throw InputError("vgg16 config must end with a max-pool (-1)");
    if (c.cfg.size() > static_cast<size_t>(kMaxVggLayers))
      throw InputError(fmt::format("vgg16 config has {} layers (at most {})", c.cfg.size(), kMaxVggLayers));
    for (int v : c.cfg)
      if (v != -1 && (v <= 0 || v > kMaxWidth))
        throw InputError(fmt::format("vgg16 config: bad width {} (1 to {}, or -1 for a max-pool)", v, kMaxWidth));
    if (c.hidden <= 0 || c.hidden > kMaxWidth)
      throw InputError(fmt::format("vgg16 config: hidden width {} out of range [1, {}]", c.hidden, kMaxWidth));
  } else if (c.arch == "resnet50") {
    if (c.blocks.size() != 4) throw InputError("resnet50 config needs 4 stages");
    if (c.width <= 0 || c.width > kMaxResnetWidth)
      throw InputError(fmt::format("resnet50 config: width {} out of range [1, {}]", c.width, kMaxResnetWidth));
    for (int b : c.blocks)
      if (b <= 0 || b > kMaxBlocks)
        throw InputError(fmt::format("resnet50 config: {} blocks in a stage (1 to {})", b, kMaxBlocks));
  }
}

}  // namespace

Model::Model(ModelConfig cfg) : cfg_(std::move(cfg)) {
  check_config(cfg_);
  if (cfg_.arch == "vgg16") {
    int C = 3, idx = 0;
    for (size_t i = 0; i < cfg_.cfg.size(); ++i) {
      const int v = cfg_.cfg[i];
      if (v == -1) {
        if (i + 1 == cfg_.cfg.size()) features_end_ = size();  // before the last max-pool
        add(fmt::format("features.{}", idx), std::make_unique<MaxPool2d>(2, 2, 0));
        idx += 1;
      } else {
        add(fmt::format("features.{}", idx),
            std::make_unique<Conv2d>(fmt::format("features.{}", idx), C, v, 3, 1, 1, true, "", true));
        C = v;
        idx += 2;  // conv + its ReLU (fused)
      }
    }
    pool_end_ = size();
    add("avgpool", std::make_unique<AdaptiveAvgPool2d>(7, 7));
    add("flatten", std::make_unique<Flatten>());
    add("classifier.0", std::make_unique<Linear>("classifier.0", C * 49, cfg_.hidden, true));
    add("classifier.2", std::make_unique<Dropout>());
    add("classifier.3", std::make_unique<Linear>("classifier.3", cfg_.hidden, cfg_.hidden, true));
    add("classifier.5", std::make_unique<Dropout>());
    add("classifier.6", std::make_unique<Linear>("classifier.6", cfg_.hidden, cfg_.num_classes, false));
  } else if (cfg_.arch == "resnet50") {
    const int w = cfg_.width;
    add("conv1", std::make_unique<Conv2d>("conv1", 3, w, 7, 2, 3, false, "bn1", true));
    add("maxpool", std::make_unique<MaxPool2d>(3, 2, 1));
    int inplanes = w;
    for (int s = 0; s < 4; ++s) {
      const int planes = w << s;
      for (int b = 0; b < cfg_.blocks[s]; ++b) {
        std::string name = fmt::format("layer{}.{}", s + 1, b);
        add(name, std::make_unique<Bottleneck>(name, inplanes, planes, (b == 0 && s > 0) ? 2 : 1));
        inplanes = planes * 4;
      }
    }
    features_end_ = pool_end_ = size();
    add("avgpool", std::make_unique<AdaptiveAvgPool2d>(1, 1));
    add("flatten", std::make_unique<Flatten>());
    add("fc", std::make_unique<Linear>("fc", inplanes, cfg_.num_classes, false));
  } else {
    throw InputError(fmt::format("unknown architecture '{}' (expected vgg16 or resnet50)", cfg_.arch));
  }
  // The early span that may run in chunks: through the second max-pool (or the only one), at
  // most up to the feature maps.
  int pools = 0;
  for (int i = 0; i < size() && pools < 2; ++i)
    if (dynamic_cast<MaxPool2d*>(modules_[i].get())) {
      ++pools;
      chunk_end_ = i + 1;
    }
  chunk_end_ = std::min(chunk_end_, features_end_);
}

int64_t Model::chunk_images(const Tensor& x, int begin) const {
  const int64_t N = x.ndim() == 4 ? x.dim(0) : 0;
  if (N <= 1 || begin >= chunk_end_) return N;
  // The largest activation per image in [begin, chunk_end_), from the layers' shapes.
  int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3), most = C * H * W;
  for (int i = begin; i < chunk_end_; ++i) {
    if (const auto* c = dynamic_cast<const Conv2d*>(modules_[i].get())) {
      const ConvParams p{1, c->C_, static_cast<int>(H), static_cast<int>(W), c->K_, c->R_, c->R_, c->stride_, c->stride_, c->pad_, c->pad_};
      C = c->K_, H = p.P(), W = p.Q();
    } else if (const auto* m = dynamic_cast<const MaxPool2d*>(modules_[i].get())) {
      const PoolParams p = m->shape_for({1, C, H, W});
      H = p.P(), W = p.Q();
    } else {
      return N;  // a module whose output size is not known here: no split
    }
    most = std::max(most, C * H * W);
  }
  const int64_t per_image = most * static_cast<int64_t>(sizeof(float));
  if (per_image <= 0 || per_image * N <= static_cast<int64_t>(chunk_bytes_)) return N;
  return std::max<int64_t>(1, static_cast<int64_t>(chunk_bytes_) / per_image);
}

void Model::add(std::string name, std::unique_ptr<Module> m) {
  trace_fwd_.push_back(name + " " + m->kind());
  trace_bwd_.push_back("backward " + trace_fwd_.back());
  names_.push_back(std::move(name));
  modules_.push_back(std::move(m));
}

int Model::feature_channels() const {
  if (cfg_.arch == "resnet50") return cfg_.width * 8 * 4;
  int C = 3;
  for (int v : cfg_.cfg)
    if (v > 0) C = v;
  return C;
}

void Model::to(Device d) {
  for (auto& m : modules_) m->to(d);
  device_ = d;
}

std::vector<Param> Model::params() {
  std::vector<Param> out;
  for (auto& m : modules_) m->params(out);
  return out;
}

void Model::set_dropout_training(bool on, uint64_t seed) {
  for (size_t i = 0; i < modules_.size(); ++i)
    if (auto* d = dynamic_cast<Dropout*>(modules_[i].get())) d->set_training(on, seed * 1000003u + i);
}

void Model::finalize() {
  for (auto& m : modules_) m->finalize();
}

Tensor Model::forward_plain(const Tensor& x, int begin, int end, Tape* tape, const ModuleHook& hook) {
  Tensor h = x;
  for (int i = begin; i < end; ++i) {
    // Inference (no tape, no per-layer hook): a convolution with its ReLU and the 2x2/2 max-pool
    // after it in one pass where the backend fuses them (VGG's block ends on the CPU).
    if (!tape && !hook && i + 1 < end) {
      auto* conv = dynamic_cast<Conv2d*>(modules_[i].get());
      auto* pool = dynamic_cast<MaxPool2d*>(modules_[i + 1].get());
      if (conv && pool && pool->is_2x2_stride2() && conv->pools_in_one_pass(h)) {
        cuda::TraceRange range(trace_fwd_[i] + " + " + trace_fwd_[i + 1]);
        h = conv->forward_pooled(h);
        ++i;
        continue;
      }
    }
    {
      cuda::TraceRange range(trace_fwd_[i]);
      h = modules_[i]->forward(h, tape);
    }
    if (hook) hook(i);
  }
  return h;
}

Tensor Model::backward_plain(Tape& tape, const Tensor& dy, int begin, int end) {
  Tensor g = dy;
  for (int i = end - 1; i >= begin; --i) {
    cuda::TraceRange range(trace_bwd_[i]);
    g = modules_[i]->backward(tape, g);
  }
  return g;
}

namespace {
// Copies `part` (images [n0, n0 + part.dim(0)) of a batch of N) into `whole`, which the first
// part allocates with its own shape but N images.
void place_chunk(Tensor& whole, int64_t N, int64_t n0, const Tensor& part) {
  if (!whole.defined()) {
    std::vector<int64_t> s = part.shape();
    s[0] = N;
    whole = Tensor::empty(s, part.device());
  }
  Tensor dst = whole.slice0(n0, n0 + part.dim(0));
  dst.copy_from(part);
}
}  // namespace

// A span that crosses chunk_end_ (begin < chunk_end_ <= end) runs [begin, chunk_end_) on chunks
// of the batch and writes the outputs side by side; with a tape, a marker {N, chunk} follows
// the chunks' entries (pushed even when there is one chunk), so that backward_range can undo the
// split: chunks in reverse order, each popping its own entries.
Tensor Model::forward_range(const Tensor& x, int begin, int end, Tape* tape, const ModuleHook& hook) {
  LCAM_REQUIRE(0 <= begin && begin <= end && end <= size(), fmt::format("forward_range [{},{})", begin, end));
  if (hook || begin >= chunk_end_ || end < chunk_end_) return forward_plain(x, begin, end, tape, hook);
  const int64_t N = x.ndim() == 4 ? x.dim(0) : 0, chunk = chunk_images(x, begin);
  Tensor mid;
  if (chunk >= N) {
    mid = forward_plain(x, begin, chunk_end_, tape, hook);
  } else {
    cuda::TraceRange range(fmt::format("forward [{},{}) in chunks of {}", begin, chunk_end_, chunk));
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
      const int64_t n1 = std::min(N, n0 + chunk);
      place_chunk(mid, N, n0, forward_plain(x.slice0(n0, n1), begin, chunk_end_, tape, hook));
    }
  }
  if (tape) tape->push_shape({N, std::min(chunk, N)});
  return forward_plain(mid, chunk_end_, end, tape, hook);
}

Tensor Model::backward_range(Tape& tape, const Tensor& dy, int begin, int end) {
  LCAM_REQUIRE(0 <= begin && begin <= end && end <= size(), fmt::format("backward_range [{},{})", begin, end));
  if (begin >= chunk_end_ || end < chunk_end_) return backward_plain(tape, dy, begin, end);
  const Tensor g = backward_plain(tape, dy, chunk_end_, end);
  const std::vector<int64_t> marker = tape.pop_shape();
  LCAM_REQUIRE(marker.size() == 2 && marker[0] == g.dim(0) && marker[1] >= 1,
               "backward_range: the tape does not match the forward pass's chunks");
  const int64_t N = marker[0], chunk = marker[1];
  if (chunk >= N) return backward_plain(tape, g, begin, chunk_end_);
  cuda::TraceRange range(fmt::format("backward [{},{}) in chunks of {}", begin, chunk_end_, chunk));
  Tensor dx;
  const int64_t last = (N - 1) / chunk * chunk;
  for (int64_t n0 = last; n0 >= 0; n0 -= chunk) {  // the last chunk's entries are on top
    const int64_t n1 = std::min(N, n0 + chunk);
    place_chunk(dx, N, n0, backward_plain(tape, g.slice0(n0, n1), begin, chunk_end_));
  }
  return dx;
}

namespace {

// A weights file's parameters, whichever its format: torchvision name -> where and what.
struct FileTensor {
  std::string name;  // in the file (messages)
  std::vector<int64_t> shape;
  std::string type;
};
using FileTensors = std::map<std::string, FileTensor>;

ModelConfig read_hdf5_config(const h5::Reader& f) {
  const std::string& path = f.path();
  auto arch = f.attr_string("arch");
  if (!arch) throw InputError(fmt::format("{}: no 'arch' attribute (not an lcam weights file?)", path));
  ModelConfig c = ModelConfig::standard(*arch);
  // Values beyond an int are refused here by name; the model checks the ranges it needs.
  auto to_int = [&](int64_t v, const char* attr) {
    if (v < INT32_MIN || v > INT32_MAX) throw InputError(fmt::format("{}: attribute '{}' value {} out of range", path, attr, v));
    return static_cast<int>(v);
  };
  auto to_ints = [&](const std::vector<int64_t>& v, const char* attr) {
    std::vector<int> out;
    for (int64_t x : v) out.push_back(to_int(x, attr));
    return out;
  };
  if (auto v = f.attr_int("num_classes")) c.num_classes = to_int(*v, "num_classes");
  if (c.arch == "vgg16") {
    if (auto v = f.attr_ints("cfg")) c.cfg = to_ints(*v, "cfg");
    if (auto v = f.attr_int("hidden")) c.hidden = to_int(*v, "hidden");
  } else {
    if (auto v = f.attr_int("width")) c.width = to_int(*v, "width");
    if (auto v = f.attr_ints("blocks")) c.blocks = to_ints(*v, "blocks");
  }
  return c;
}

// Fills every parameter of `model` from `in_file` (read by `read`), checking names, shapes
// and dtypes (`float_types`: the dtypes accepted), and that nothing else is there.
void fill_params(Model& model, const std::string& path, const FileTensors& in_file,
                 const std::function<Tensor(const std::string& file_name)>& read,
                 const std::set<std::string>& float_types) {
  std::set<std::string> expected;
  for (Param& p : model.params()) {
    expected.insert(p.name);
    auto it = in_file.find(p.name);
    if (it == in_file.end())
      throw InputError(fmt::format("{}: missing dataset '{}' (expected float32 {})", path, p.name, shape_str(p.shape)));
    const FileTensor& t = it->second;
    if (t.shape != p.shape)
      throw InputError(fmt::format("{}: dataset '{}' has shape {}, expected {}", path, t.name, shape_str(t.shape),
                                   shape_str(p.shape)));
    if (!float_types.count(t.type))
      throw InputError(fmt::format("{}: dataset '{}' is {}, expected {}", path, t.name, t.type,
                                   float_types.size() == 1 ? "float32" : "a floating-point tensor"));
    *p.tensor = read(t.name);
    require_finite(*p.tensor, path, t.name);
  }
  for (auto& [name, t] : in_file) {
    const std::string tail = ".num_batches_tracked";  // PyTorch bookkeeping, not a weight
    if (name.size() > tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0) continue;
    if (!expected.count(name))
      throw InputError(fmt::format("{}: unexpected dataset '{}' {} for {}", path, t.name, shape_str(t.shape),
                                   model.config().arch));
  }
}

}  // namespace

void require_finite(const Tensor& t, const std::string& path, const std::string& name, const std::string& why) {
  LCAM_REQUIRE(t.device() == Device::CPU, "require_finite: a host tensor");
  const float* v = t.data();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw InputError(fmt::format("{}: dataset '{}' holds {} (at index {}){}", path, name,
                                   std::isnan(v[i]) ? "NaN" : "an infinity", i, why));
}

ModelConfig read_model_config(const std::string& path) {
  if (pth::looks_like(path)) return find_backbone(pth::Reader(path)).config;
  return read_hdf5_config(h5::Reader(path));
}

std::unique_ptr<Model> load_model(const std::string& path, const std::string& arch, Device dev) {
  std::unique_ptr<Model> model;
  auto make = [&](const ModelConfig& cfg) {
    if (!arch.empty() && cfg.arch != arch)
      throw InputError(fmt::format("{}: weights are for {}, but --arch {} was given", path, cfg.arch, arch));
    try {
      model = std::make_unique<Model>(cfg);
    } catch (const InputError& e) {  // the configuration the file's attributes describe
      throw InputError(fmt::format("{}: {}", path, e.what()));
    }
  };
  if (pth::looks_like(path)) {  // a torch.save file: any floating type, converted as load_state_dict does
    pth::Reader f(path);
    const TorchBackbone b = find_backbone(f);
    make(b.config);
    FileTensors in_file;
    for (const auto& [name, file] : b.names) {
      const pth::TensorInfo* t = f.find(file);
      in_file[name] = {file, t->shape, t->dtype};
    }
    fill_params(*model, path, in_file, [&](const std::string& n) { return f.read(n); },
                {"float32", "float64", "float16", "bfloat16"});
  } else {
    h5::Reader f(path);
    make(read_hdf5_config(f));
    FileTensors in_file;
    for (auto& d : f.datasets()) in_file[d.name] = {d.name, d.shape, d.type};
    fill_params(*model, path, in_file, [&](const std::string& n) { return f.read(n); }, {"float32"});
  }
  model->finalize();
  model->to(dev);
  return model;
}

std::unique_ptr<Model> random_model(const ModelConfig& cfg, uint64_t seed) {
  auto model = std::make_unique<Model>(cfg);
  std::mt19937_64 rng(seed);
  for (Param& p : model->params()) {
    Tensor t = Tensor::empty(p.shape);
    float* v = t.data();
    const int64_t n = t.numel();
    auto ends_with = [&](const char* s) {
      const std::string suf(s);
      return p.name.size() >= suf.size() && p.name.compare(p.name.size() - suf.size(), suf.size(), suf) == 0;
    };
    const bool is_bn = p.name.find(".bn") != std::string::npos || p.name.find("bn1.") == 0 ||
                       p.name.find("downsample.1") != std::string::npos;
    if (is_bn) {
      const float fill = (ends_with(".weight") || ends_with(".running_var")) ? 1.f : 0.f;
      for (int64_t i = 0; i < n; ++i) v[i] = fill;
    } else if (ends_with(".bias")) {
      for (int64_t i = 0; i < n; ++i) v[i] = 0.f;
    } else if (p.shape.size() == 4) {  // Kaiming normal, fan_out, ReLU gain
      const double fan_out = static_cast<double>(p.shape[0]) * p.shape[2] * p.shape[3];
      std::normal_distribution<double> d(0.0, std::sqrt(2.0 / fan_out));
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(d(rng));
    } else {
      std::normal_distribution<double> d(0.0, 0.01);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(d(rng));
    }
    *p.tensor = t;
  }
  return model;
}

void save_weights(Model& m, const std::string& path) {
  h5::Writer w(path);
  for (Param& p : m.params()) {
    LCAM_REQUIRE(p.tensor->defined() && p.tensor->shape() == p.shape,
                 fmt::format("save_weights: '{}' missing or folded (save before finalize)", p.name));
    w.write(p.name, *p.tensor);
  }
  const ModelConfig& c = m.config();
  w.attr_string("arch", c.arch);
  w.attr_int("num_classes", c.num_classes);
  if (c.arch == "vgg16") {
    w.attr_ints("cfg", std::vector<int64_t>(c.cfg.begin(), c.cfg.end()));
    w.attr_int("hidden", c.hidden);
  } else {
    w.attr_int("width", c.width);
    w.attr_ints("blocks", std::vector<int64_t>(c.blocks.begin(), c.blocks.end()));
  }
  w.commit();
}

}  // namespace lcam
