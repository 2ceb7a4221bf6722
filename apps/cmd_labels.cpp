// cmd_labels.cpp — `lcam labels`: runs the frozen classifier over a list (paper's eval
// transform) and writes each image's top-1 prediction, `PATH LABEL` per line in list order:
// the model-truth labels L-CAM trains on. Images that cannot be read are named once and left
// out; the exit status is then 2. When the input list has labels, the agreement (top-1
// accuracy) is reported too.
#include <cstdio>  // std::fprintf
#include <limits>  // std::numeric_limits
#include <vector>  // std::vector

#include <fmt/format.h>  // fmt::format

#include "apps/commands.h"       // LabelsOptions, run_labels
#include "apps/progress.h"       // Progress, write_text_atomic, images_status
#include "engine/ops.h"          // normalize_forward
#include "loaders/batch_loader.h"  // BatchLoader
#include "loaders/dataset.h"     // Dataset
#include "models/model.h"        // load_model

namespace lcam::app {

int run_labels(const LabelsOptions& o) {
  check_output_file(o.out, "--out", {{"--list", o.list}, {"--weights", o.weights}});
  const Device dev = o.rt.apply();
  auto model = load_model(o.weights, o.arch, dev);
  // The list's own labels (if any) are only compared with the predictions: any class index is
  // accepted, whatever the model's number of classes.
  Dataset data = Dataset::from_list(o.data, o.list, std::numeric_limits<int>::max(), /*allow_unlabeled=*/true);
  check_outputs_not_listed(data, o.list, {{"--out", o.out}});  // the whole list: --limit does not change what is read
  if (o.limit > 0) data.truncate(static_cast<size_t>(o.limit));
  BatchLoader loader(data, o.size.loader(o.batch, o.workers, dev, data.size()));
  loader.start_epoch(0);
  std::vector<int> pred(data.size(), -1);
  int64_t done = 0, failed = 0, labelled = 0, agree = 0;
  Progress progress("labels", static_cast<int64_t>(data.size()));
  Batch b;
  while (loader.next(b)) {
    for (const auto& f : b.failed) image_error(f);
    failed += static_cast<int64_t>(b.failed.size());
    done += static_cast<int64_t>(b.indices.size() + b.failed.size());
    if (b.indices.empty()) continue;
    Tensor x01 = b.images.to(dev);
    Tensor x = Tensor::empty(x01.shape(), dev);
    normalize_forward(x, x01, kImagenetMean, kImagenetStd);
    const std::vector<float> logits = model->logits(x).to_vector();
    const int K = model->num_classes();
    for (size_t r = 0; r < b.indices.size(); ++r) {
      const float* l = logits.data() + r * K;
      const int best = top1(l, K);
      pred[b.indices[r]] = best;
      if (b.labels[r] >= 0) {
        ++labelled;
        agree += b.labels[r] == best;
      }
    }
    progress.update(done);
  }
  progress.finish();
  require_images_read(done - failed, data.size(), o.list);
  std::string text;
  for (size_t i = 0; i < data.size(); ++i)
    if (pred[i] >= 0) text += fmt::format("{} {}\n", data[i].path, pred[i]);
  write_text_atomic(o.out, text);
  std::fprintf(stderr, "wrote %s: %lld labels", o.out.c_str(), static_cast<long long>(data.size() - failed));
  if (labelled) std::fprintf(stderr, ", top-1 agreement with the list's labels %.2f%%", 100.0 * agree / labelled);
  std::fprintf(stderr, "\n");
  return images_status(failed, data.size());
}

Run setup_labels(CLI::App& sub) {
  auto o = std::make_shared<LabelsOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "weights: HDF5 with torchvision names, or a torch.save .pth")->required();
  sub.add_option("--data", o->data, "folder the list's paths are relative to")->required();
  sub.add_option("--list", o->list, "input list: PATH [LABEL] per line")->required();
  sub.add_option("--out", o->out, "output list: PATH PREDICTED_LABEL per line")->required();
  sub.add_option("--batch", o->batch, "images per forward pass")->transform(kPositive);
  sub.add_option("--workers", o->workers, "decoding threads (0 = all cores; at most 4 per hardware thread)")->transform(kWorkers);
  sub.add_option("--limit", o->limit, "only the first N images (0 = all)")->transform(kNonNegative);
  o->rt.add_to(sub);
  o->size.add_to(sub);
  return [o] { return run_labels(*o); };
}

}  // namespace lcam::app
