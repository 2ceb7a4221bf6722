// torch_weights.cpp — see torch_weights.h.
#include "models/torch_weights.h"

#include <fmt/format.h>  // fmt::format

#include <algorithm>  // std::max
#include <cstdio>     // std::sscanf
#include <iterator>   // std::next
#include <vector>     // std::vector

#include "engine/common.h"  // InputError

namespace lcam {
namespace {

// The name with every "module" component dropped.
std::string canonical(const std::string& name) {
  std::string out;
  size_t b = 0;
  while (b <= name.size()) {
    size_t e = name.find('.', b);
    if (e == std::string::npos) e = name.size();
    const std::string part = name.substr(b, e - b);
    if (part != "module") {
      if (!out.empty()) out += '.';
      out += part;
    }
    b = e + 1;
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// canonical name -> name in the file; InputError when two names collapse into one.
std::map<std::string, std::string> canonical_names(const pth::Reader& r) {
  std::map<std::string, std::string> out;
  for (const auto& t : r.tensors()) {
    auto [it, fresh] = out.emplace(canonical(t.name), t.name);
    if (!fresh)
      throw InputError(fmt::format("{}: '{}' and '{}' are the same weight once 'module.' is dropped", r.path(),
                                   it->second, t.name));
  }
  return out;
}

std::vector<std::string> prefixes_of(const std::map<std::string, std::string>& names, const std::string& anchor) {
  std::vector<std::string> out;
  for (const auto& [c, file] : names)
    if (ends_with(c, anchor)) {
      const std::string p = c.substr(0, c.size() - anchor.size());
      if (p.empty() || p.back() == '.') out.push_back(p);
    }
  return out;
}

}  // namespace

TorchBackbone find_backbone(const pth::Reader& r) {
  const auto names = canonical_names(r);
  auto has = [&](const std::string& n) { return names.count(n) > 0; };
  auto shape = [&](const std::string& n) { return r.find(names.at(n))->shape; };
  struct Found {
    std::string prefix, arch;
  };
  std::vector<Found> found;
  for (const auto& p : prefixes_of(names, "features.0.weight"))
    if (has(p + "classifier.6.weight")) found.push_back({p, "vgg16"});
  for (const auto& p : prefixes_of(names, "conv1.weight"))
    if (has(p + "fc.weight") && has(p + "layer1.0.conv1.weight")) found.push_back({p, "resnet50"});
  if (found.empty())
    throw InputError(fmt::format("{}: no VGG-16 or ResNet-50 state_dict among its {} tensors (looked for "
                                 "features.0.weight with classifier.6.weight, and for conv1.weight with fc.weight)",
                                 r.path(), r.tensors().size()));
  if (found.size() > 1)
    throw InputError(fmt::format("{}: {} backbones in one file, under '{}' and '{}'", r.path(), found.size(),
                                 found[0].prefix, found[1].prefix));
  const std::string& P = found[0].prefix;
  TorchBackbone b;
  b.config = ModelConfig::standard(found[0].arch);
  ModelConfig& c = b.config;
  for (const auto& [canon, file] : names) {
    if (canon.compare(0, P.size(), P) != 0) continue;
    const std::string name = canon.substr(P.size());
    if (name.rfind("attnM.", 0) == 0) continue;  // an L-CAM model's attention, saved with its backbone
    b.names[name] = file;
  }
  auto dim0 = [&](const std::string& n) { return static_cast<int>(shape(P + n).at(0)); };
  if (c.arch == "vgg16") {
    std::map<int, int> convs;  // features index -> output channels
    for (const auto& [name, file] : b.names) {
      int i = -1;
      char rest[16] = {0};
      if (std::sscanf(name.c_str(), "features.%d.%15s", &i, rest) == 2 && std::string(rest) == "weight" &&
          r.find(file)->shape.size() == 4)
        convs[i] = static_cast<int>(r.find(file)->shape[0]);
    }
    c.cfg.clear();
    for (auto it = convs.begin(); it != convs.end(); ++it) {
      c.cfg.push_back(it->second);
      auto next = std::next(it);
      const int pools = next == convs.end() ? 1 : next->first - it->first - 2;
      if (pools < 0)
        throw InputError(fmt::format("{}: features.{} and features.{} are convolutions with no ReLU between them",
                                     r.path(), it->first, next->first));
      c.cfg.insert(c.cfg.end(), static_cast<size_t>(pools), -1);
    }
    if (has(P + "classifier.0.weight")) c.hidden = dim0("classifier.0.weight");
    c.num_classes = dim0("classifier.6.weight");
  } else {
    c.width = dim0("conv1.weight");
    for (int s = 0; s < 4; ++s) {
      int n = 0;
      while (has(fmt::format("{}layer{}.{}.conv1.weight", P, s + 1, n))) ++n;
      c.blocks[static_cast<size_t>(s)] = std::max(n, 1);
    }
    c.num_classes = dim0("fc.weight");
  }
  return b;
}

TorchAttention find_attention(const pth::Reader& r) {
  const auto names = canonical_names(r);
  const auto prefixes = prefixes_of(names, "attnM.op.weight");
  if (prefixes.empty())
    throw InputError(fmt::format("{}: no attnM.op.weight among its {} tensors (not an L-CAM model?)", r.path(),
                                 r.tensors().size()));
  if (prefixes.size() > 1)
    throw InputError(fmt::format("{}: {} L-CAM attentions in one file, under '{}' and '{}'", r.path(),
                                 prefixes.size(), prefixes[0], prefixes[1]));
  const std::string& P = prefixes[0];
  auto bias = names.find(P + "attnM.op.bias");
  if (bias == names.end())
    throw InputError(fmt::format("{}: '{}' has no attnM.op.bias beside it", r.path(), names.at(P + "attnM.op.weight")));
  return {names.at(P + "attnM.op.weight"), bias->second};
}

}  // namespace lcam
