// cmd_predict.cpp — `lcam predict`: the paper's eval transform (shorter side 256 with PIL's
// antialiased bilinear, center crop 224, normalize) and a forward pass, top-k per image as
// text or one JSON object per line. A file that cannot be decoded is named once on stderr, the
// rest are still classified, and the exit status is 2 if any failed.
#include <algorithm>  // std::partial_sort, std::min
#include <cstdio>     // std::printf, std::fprintf
#include <numeric>    // std::iota
#include <vector>     // std::vector

#include <fmt/format.h>        // fmt::format
#include <nlohmann/json.hpp>   // nlohmann::json

#include "apps/cli.h"          // RuntimeOptions, ImageSizeOptions
#include "apps/progress.h"     // images_status, image_error
#include "engine/common.h"     // InputError
#include "engine/ops.h"        // normalize_forward, softmax_forward
#include "loaders/classes.h"   // class_names_for
#include "loaders/image.h"     // load_eval_image
#include "models/model.h"      // load_model

namespace lcam::app {
namespace {

struct PredictOptions {
  RuntimeOptions rt;
  ImageSizeOptions size;
  std::string arch, weights, classes;
  std::vector<std::string> images;
  int topk = 5, batch = 8;
  bool json = false, all_logits = false;
};

std::string class_label(const std::vector<ClassName>& names, int c) {
  if (c < static_cast<int>(names.size())) return names[c].name;
  return fmt::format("class {}", c);
}

int run_predict(const PredictOptions& o) {
  const Device dev = o.rt.apply();
  auto model = load_model(o.weights, o.arch, dev);
  const int K = model->num_classes();
  const std::vector<ClassName> names = class_names_for(o.classes, K);
  const int topk = std::min(o.topk, K);
  int failed = 0;
  const int kSize = o.size.crop;
  const int64_t per = 3LL * kSize * kSize;
  for (size_t start = 0; start < o.images.size(); start += o.batch) {
    const size_t end = std::min(o.images.size(), start + static_cast<size_t>(o.batch));
    Tensor host = Tensor::empty({static_cast<int64_t>(end - start), 3, kSize, kSize});
    std::vector<std::string> ok;
    for (size_t i = start; i < end; ++i) {
      try {
        load_eval_image(o.images[i], host.data() + ok.size() * per, o.size.resize, o.size.crop);
        ok.push_back(o.images[i]);
      } catch (const InputError& e) {
        image_error(e.what());
        ++failed;
      }
    }
    if (ok.empty()) continue;
    const int64_t n = static_cast<int64_t>(ok.size());
    Tensor x01 = host.slice0(0, n).to(dev);
    Tensor x = Tensor::empty(x01.shape(), dev);
    normalize_forward(x, x01, kImagenetMean, kImagenetStd);
    Tensor logits = model->logits(x);
    Tensor probs = Tensor::empty(logits.shape(), dev);
    softmax_forward(probs, logits);
    std::vector<float> lv = logits.to_vector(), pv = probs.to_vector();
    for (int64_t i = 0; i < n; ++i) {
      const float* l = lv.data() + i * K;
      const float* p = pv.data() + i * K;
      std::vector<int> idx(K);
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + topk, idx.end(),
                        [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
      if (o.json) {
        nlohmann::json j;
        j["image"] = ok[i];
        j["top"] = nlohmann::json::array();
        for (int t = 0; t < topk; ++t)
          j["top"].push_back({{"class", idx[t]}, {"name", class_label(names, idx[t])},
                              {"logit", l[idx[t]]}, {"prob", p[idx[t]]}});
        if (o.all_logits) j["logits"] = std::vector<float>(l, l + K);
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", ok[i].c_str());
        for (int t = 0; t < topk; ++t)
          std::printf("  %d. %6.2f%%  %4d  %s\n", t + 1, 100.0 * p[idx[t]], idx[t], class_label(names, idx[t]).c_str());
      }
    }
    std::fflush(stdout);
  }
  return images_status(failed, o.images.size());
}

}  // namespace

Run setup_predict(CLI::App& sub) {
  auto o = std::make_shared<PredictOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "weights: HDF5 with torchvision names, or a torch.save .pth")->required();
  sub.add_option("--topk", o->topk, "classes to print per image")->transform(kPositive);
  sub.add_option("--batch", o->batch, "images per forward pass")->transform(kPositive);
  sub.add_option("--classes", o->classes, "class-name file (default: the 1000 ImageNet classes)");
  CLI::Option* json = sub.add_flag("--json", o->json, "one JSON object per image and line");
  sub.add_flag("--all-logits", o->all_logits, "with --json: also print every logit")->needs(json);
  o->rt.add_to(sub);
  o->size.add_to(sub);
  sub.add_option("images", o->images, "image files (JPEG, PNG, ...)")->required();
  return [o] { return run_predict(*o); };
}

}  // namespace lcam::app
