// cmd_eval.cpp — `lcam eval`: the paper's Table 1 for the methods asked for. Over a list (the
// paper's evaluation transform), for each image: the classifier's scores (computed once and
// shared by every method; top-1/top-5 against the list's labels), each method's saliency map
// for the predicted class, and for each --keep percentage the masked image's score of that
// class, accumulated into Average Drop and Increase in Confidence. Prints the table as Markdown
// and, with --report PREFIX, writes PREFIX.json and PREFIX.csv. Methods: lcam, gradcam,
// gradcampp, gradcampp-paper, scorecam, rise. --misclassified DIR adds the paper's analysis of
// misclassified images (section 4.4.2): the maps of the true and the predicted class, their
// correlation, sorted, as a CSV and a figure. --boxes FILE (PATH X0 Y0 X1 Y1 per line, in the
// pixels of the crop the network sees) adds each method's localization: the pointing game and
// the share of the map's energy inside the box.
#include <algorithm>  // std::stable_sort
#include <chrono>   // std::chrono::steady_clock
#include <cmath>    // std::sqrt
#include <filesystem>  // create_directories (misclassification folder)
#include <cstdio>   // std::printf, std::fprintf
#include <limits>   // std::numeric_limits
#include <map>      // per-method results
#include <sstream>  // comma lists

#include <fmt/format.h>       // fmt::format
#include <nlohmann/json.hpp>  // nlohmann::json

#include "apps/commands.h"         // EvalOptions, run_eval
#include "apps/figures.h"          // overlay, to_image, grid_figure (misclassification figure)
#include "apps/progress.h"         // Progress, write_text_atomic, parse_int_list, first_repeat, images_status
#include "apps/saliency.h"         // SaliencyOptions, SaliencyMethods
#include "engine/common.h"         // InputError
#include "engine/cuda_runtime.h"   // cuda::synchronize (timing)
#include "loaders/batch_loader.h"  // BatchLoader
#include "loaders/classes.h"       // class_names_for
#include "loaders/dataset.h"       // Dataset
#include "loaders/image.h"         // write_png
#include "models/evaluation.h"     // kept_scores, class_scores, Adic, Localization
#include "models/model.h"          // load_model

namespace lcam::app {
namespace {

struct MethodResult {
  std::vector<Adic> adic;  // one per keep percentage
  Localization loc;        // with --boxes
  double seconds = 0;      // saliency computation only
  int forward_passes = 1;  // per saliency map
};

double correlation(const std::vector<float>& a, const std::vector<float>& b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= a.size(), mb /= b.size();
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

// A CSV field: quoted, inner quotes doubled (paths and class names may hold commas and quotes).
std::string csv_field(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// DIR/misclassified.csv (every misclassified image, most similar maps first) and
// DIR/misclassified.png: the most similar half and the least similar half of at most
// --misclassified-max columns — "related classes" first, "multi-label images" last.
template <class Miss>
void write_misclassified(const EvalOptions& o, std::vector<Miss>& misses, const std::vector<ClassName>& names) {
  namespace fs = std::filesystem;
  std::stable_sort(misses.begin(), misses.end(), [](const Miss& a, const Miss& b) { return a.corr > b.corr; });
  auto name = [&](int c) { return c < static_cast<int>(names.size()) ? names[c].name : fmt::format("class {}", c); };
  std::string csv = "path,true_class,true_name,predicted_class,predicted_name,correlation\n";
  for (const auto& m : misses)
    csv += fmt::format("{},{},{},{},{},{:.4f}\n", csv_field(m.path), m.truth, csv_field(name(m.truth)), m.pred,
                       csv_field(name(m.pred)), m.corr);
  write_text_atomic((fs::path(o.misclassified) / "misclassified.csv").string(), csv);
  std::vector<GridColumn> cols;
  const size_t max = static_cast<size_t>(o.misclassified_max), first = (max + 1) / 2, last = max / 2;
  for (size_t i = 0; i < misses.size(); ++i) {
    if (misses.size() > max && i >= first && i < misses.size() - last) continue;
    cols.push_back({misses[i].image, fmt::format("r={:.2f}", misses[i].corr), {misses[i].sm_truth, misses[i].sm_pred}});
  }
  const fs::path figure = fs::path(o.misclassified) / "misclassified.png";
  if (!cols.empty()) {
    write_png(figure.string(), grid_figure(cols, {"true class", "predicted"}));
  } else {
    std::error_code ec;
    fs::remove(figure, ec);  // an earlier run's figure would belong to other images
  }
  std::fprintf(stderr, "misclassified: %zu images -> %s\n", misses.size(), o.misclassified.c_str());
}

}  // namespace

int run_eval(const EvalOptions& o) {
  namespace fs = std::filesystem;
  // Everything written at the end is checked first: a long evaluation must not end with half
  // of its outputs.
  const std::string report_json = o.report.empty() ? "" : o.report + ".json", report_csv = o.report.empty() ? "" : o.report + ".csv";
  const fs::path miss_dir(o.misclassified);
  const std::string miss_csv = o.misclassified.empty() ? "" : (miss_dir / "misclassified.csv").string();
  const std::string miss_png = o.misclassified.empty() ? "" : (miss_dir / "misclassified.png").string();
  if (!o.report.empty()) {
    std::vector<NamedPath> inputs = {{"--list", o.list}, {"--weights", o.weights}, {"--boxes", o.boxes},
                                     {"--classes", o.names_file}, {"--rise-cache", o.sal.rise_cache}};
    for (const std::string& c : o.sal.lcam_ckpts) inputs.push_back({"--lcam", c});
    check_output_file(report_json, "--report", inputs);
    check_output_file(report_csv, "--report", inputs);
  }
  if (!o.misclassified.empty()) {
    std::error_code ec;
    fs::create_directories(o.misclassified, ec);
    if (!fs::is_directory(o.misclassified))
      throw InputError(fmt::format("{}: cannot create folder (--misclassified)", o.misclassified));
    for (const std::string& file : {miss_csv, miss_png}) check_output_file(file, "--misclassified");
  }
  const Device dev = o.rt.apply();
  const std::vector<int> keeps = parse_int_list("--keep", o.keep, 100);
  if (const int r = first_repeat(keeps); r >= 0) throw InputError(fmt::format("--keep: {}% is given twice", keeps[r]));
  auto model = load_model(o.weights, o.arch, dev);
  const int K = model->num_classes();
  const std::vector<ClassName> names = o.misclassified.empty() ? std::vector<ClassName>{} : class_names_for(o.names_file, K);
  SaliencyOptions so = o.sal;
  so.size = o.size.crop;
  SaliencyMethods sal(*model, so, dev);
  const std::vector<std::string>& methods = sal.names();
  // Ground-truth labels are only compared: any class index is accepted.
  Dataset data = Dataset::from_list(o.data, o.list, std::numeric_limits<int>::max(), true);
  check_outputs_not_listed(data, o.list, {{"--report", report_json}, {"--report", report_csv}, {"--misclassified", miss_csv},
                                          {"--misclassified", miss_png}});
  if (o.limit > 0) data.truncate(static_cast<size_t>(o.limit));
  BatchLoader loader(data, o.size.loader(o.batch, o.workers, dev, data.size()));
  loader.start_epoch(0);

  const std::map<std::string, Box> boxes = o.boxes.empty() ? std::map<std::string, Box>{} : read_boxes(o.boxes, o.size.crop);
  int64_t boxed = 0;
  auto saliency = [&](const std::string& m, const Tensor& x, const std::vector<int>& cls) { return sal.compute(m, x, cls); };
  // Misclassification analysis (paper 4.4.2): the first method's maps of the true and the
  // predicted class side by side, with their correlation.
  struct Miss {
    std::string path;
    int truth, pred;
    double corr;
    ImageU8 image, sm_truth, sm_pred;
  };
  std::vector<Miss> misses;
  std::map<std::string, MethodResult> res;
  for (const auto& m : methods) {
    res[m].adic.resize(keeps.size());
    res[m].forward_passes = sal.forward_passes(m);
  }
  int64_t images = 0, failed = 0, labelled = 0, top1 = 0, top5 = 0;
  Progress progress("eval", static_cast<int64_t>(data.size()));
  Batch b;
  while (loader.next(b)) {
    for (const auto& f : b.failed) image_error(f);
    failed += static_cast<int64_t>(b.failed.size());
    const int64_t N = static_cast<int64_t>(b.indices.size());
    if (N == 0) continue;
    Tensor x01 = b.images.to(dev);
    // Scores of the unmasked images, once for every method: predicted class and its score Y.
    Tensor xn = Tensor::empty(x01.shape(), dev);
    normalize_forward(xn, x01, kImagenetMean, kImagenetStd);
    const Tensor unmasked = model->logits(xn);
    const std::vector<float> logits = unmasked.to_vector();
    std::vector<int> pred(N);
    for (int64_t n = 0; n < N; ++n) {
      const float* l = logits.data() + n * K;
      const int best = lcam::top1(l, K);
      int above = 0;
      pred[n] = best;
      const int y = b.labels[n];
      if (y >= 0) {
        ++labelled;
        if (y < K)
          for (int k = 0; k < K; ++k) above += l[k] > l[y];
        top1 += y == best;
        top5 += y < K && above < 5;
      }
    }
    const std::vector<float> Y = class_probs(unmasked, pred);  // from the same pass (not a second one)
    if (!o.misclassified.empty())
      for (int64_t n = 0; n < N; ++n) {
        const int y = b.labels[n];
        if (y < 0 || y >= K || y == pred[n]) continue;
        Tensor x1 = x01.slice0(n, n + 1);
        const std::vector<float> st = saliency(methods[0], x1, {y}).to_vector(), sp = saliency(methods[0], x1, {pred[n]}).to_vector();
        const std::vector<float> xv = x1.to_vector();
        const ImageU8 img = to_image(xv.data(), static_cast<int>(x01.dim(2)), static_cast<int>(x01.dim(3)));
        misses.push_back({data[b.indices[n]].path, y, pred[n], correlation(st, sp), img, overlay(img, st.data()), overlay(img, sp.data())});
      }
    const int64_t L = x01.dim(2) * x01.dim(3);
    const int H = static_cast<int>(x01.dim(2)), W = static_cast<int>(x01.dim(3));
    std::vector<const Box*> box(N, nullptr);
    if (!o.boxes.empty())
      for (int64_t n = 0; n < N; ++n)
        if (auto it = boxes.find(data[b.indices[n]].path); it != boxes.end()) box[n] = &it->second, ++boxed;
    for (const auto& m : methods) {
      MethodResult& r = res[m];
      if (dev == Device::CUDA) cuda::synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      Tensor sm = saliency(m, x01, pred);
      const Tensor smh = dev == Device::CPU ? sm : sm.to(Device::CPU);
      r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t n = 0; n < N; ++n)
        if (box[n]) r.loc.add(smh.data() + n * L, H, W, *box[n]);
      const std::vector<std::vector<float>> O = kept_scores(*model, x01, smh, keeps, pred);
      for (size_t ki = 0; ki < keeps.size(); ++ki)
        for (int64_t n = 0; n < N; ++n) r.adic[ki].add(Y[n], O[ki][n]);
    }
    images += N;
    progress.update(images + failed);
  }
  progress.finish();
  require_images_read(images, data.size(), o.list);

  // The table: rows methods; AD/IC per keep, forward passes per map, seconds per image.
  std::string header = "| method |", rule = "|---|", csv = "method";
  for (int k : keeps) {
    header += fmt::format(" AD({}%) | IC({}%) |", k, k);
    rule += "---:|---:|";
    csv += fmt::format(",AD{},IC{}", k, k);
  }
  const bool loc = !o.boxes.empty();
  if (loc) {
    header += " PG | energy |";
    rule += "---:|---:|";
    csv += ",pointing_game,energy_in_box";
  }
  header += " #FW | s/image |";
  rule += "---:|---:|";
  csv += ",FW,seconds_per_image\n";
  nlohmann::json report{{"arch", o.arch}, {"images", images}, {"failed", failed}, {"keep", keeps}};
  if (labelled) report["top1"] = 100.0 * top1 / labelled, report["top5"] = 100.0 * top5 / labelled;
  std::printf("%s\n%s\n", header.c_str(), rule.c_str());
  for (const auto& m : methods) {
    const MethodResult& r = res[m];
    std::string row = "| " + m + " |";
    std::string crow = m;
    nlohmann::json jm{{"method", m}, {"forward_passes", r.forward_passes}, {"seconds_per_image", images ? r.seconds / images : 0}};
    for (size_t ki = 0; ki < keeps.size(); ++ki) {
      const double ad = r.adic[ki].average_drop(), ic = r.adic[ki].increase_in_confidence();
      row += fmt::format(" {:.2f} | {:.2f} |", ad, ic);
      crow += fmt::format(",{:.4f},{:.4f}", ad, ic);
      jm[fmt::format("AD{}", keeps[ki])] = ad;
      jm[fmt::format("IC{}", keeps[ki])] = ic;
    }
    if (loc) {
      row += fmt::format(" {:.2f} | {:.2f} |", r.loc.pointing_game(), r.loc.energy());
      crow += fmt::format(",{:.4f},{:.4f}", r.loc.pointing_game(), r.loc.energy());
      jm["pointing_game"] = r.loc.pointing_game();
      jm["energy_in_box"] = r.loc.energy();
    }
    row += fmt::format(" {} | {:.4f} |", r.forward_passes, images ? r.seconds / images : 0.0);
    crow += fmt::format(",{},{:.6f}\n", r.forward_passes, images ? r.seconds / images : 0.0);
    csv += crow;
    report["methods"].push_back(jm);
    std::printf("%s\n", row.c_str());
    if (o.json) std::printf("%s\n", jm.dump().c_str());
  }
  if (loc) {
    report["boxed"] = boxed;
    std::printf("\nPG: pointing game, %% of maps whose maximum lies in the object's box; energy: %% of the map inside it"
                " (%lld of %lld images have a box)\n", static_cast<long long>(boxed), static_cast<long long>(images));
  }
  if (labelled)
    std::printf("\nclassifier on %lld labelled images: top-1 %.2f%%, top-5 %.2f%%\n", static_cast<long long>(labelled),
                100.0 * top1 / labelled, 100.0 * top5 / labelled);
  if (!o.misclassified.empty()) write_misclassified(o, misses, names);
  if (!o.report.empty()) {
    write_text_atomic(o.report + ".json", report.dump(2) + "\n");
    write_text_atomic(o.report + ".csv", csv);
  }
  return images_status(failed, data.size(), " (left out of the averages)");
}

Run setup_eval(CLI::App& sub) {
  auto o = std::make_shared<EvalOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "backbone weights: HDF5 with torchvision names, or a torch.save .pth")->required();
  o->sal.add_to(sub, /*required=*/true);
  sub.add_option("--data", o->data, "folder the list's paths are relative to")->required();
  sub.add_option("--list", o->list, "PATH [LABEL] per line (labels: ground truth, for top-1/top-5)")->required();
  sub.add_option("--keep", o->keep, "percentages of the map kept (comma-separated)");
  sub.add_option("--batch", o->batch, "images per batch")->transform(kPositive);
  sub.add_option("--workers", o->workers, "decoding threads (0 = all cores; at most 4 per hardware thread)")->transform(kWorkers);
  sub.add_option("--limit", o->limit, "only the first N images (0 = all)")->transform(kNonNegative);
  sub.add_option("--report", o->report, "also write PREFIX.json and PREFIX.csv");
  sub.add_flag("--json", o->json, "also print one JSON object per method");
  sub.add_option("--boxes", o->boxes, "PATH X0 Y0 X1 Y1 per line (crop pixels): adds pointing game and energy in box");
  CLI::Option* classes = sub.add_option("--classes", o->names_file, "class-name file for the misclassification figure");
  CLI::Option* misclassified = sub.add_option(
      "--misclassified", o->misclassified,
      "folder for the misclassification analysis: the first method's maps of the true and predicted class");
  classes->needs(misclassified);
  sub.add_option("--misclassified-max", o->misclassified_max, "columns of its figure")->transform(kPositive)->needs(misclassified);
  o->rt.add_to(sub);
  o->size.add_to(sub);
  return [o] { return run_eval(*o); };
}

}  // namespace lcam::app
